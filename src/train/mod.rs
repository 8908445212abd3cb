//! Base-model training: R independent runs of one MLP, trained *as one batched computation* with candle,
//! each from its own Kaiming-uniform initialisation, saved at K+1 checkpoints (t_0 = init … t_K = final).
//!
//! The runs share nothing but the training data: run `r` draws its init and its minibatch order from
//! `rng::stream(seed, r)`, so a run's trajectory does not depend on how many runs train beside it, and the
//! loss is a *sum* over runs of each run's mean cross entropy, so each run receives exactly its own gradient.
//! Two engines compute the batched step (native hand-written backprop, the default on CPU; or one candle graph,
//! for CUDA and as an independent check): see [`Backend`].

mod base;
mod batched_mlp;
mod config;
mod device;
mod engine;
mod error;
mod runs;
mod trajectories;

pub use base::{train_base, train_base_task};
pub use batched_mlp::BatchedMlp;
pub use config::{Backend, OptimizerKind, TrainConfig};
pub use device::{device, DeviceKind};
pub use error::Error;
pub use runs::{train_runs, Progress, RunMetrics, TrainData, TrainedRuns};
pub use trajectories::{
    CheckpointSummary, FinalSummary, SplitSizes, TrajectoryManifest, TrajectorySet, TRAJECTORY_FORMAT,
    TRAJECTORY_VERSION,
};
