//! Meta-models over weight space: generative models of trained classifiers' weights learned by gradient flow
//! matching (METHOD.md §2).
//!
//! Input: checkpoint trajectories as a plain array `[R, K+1, D]` — run r, checkpoint k (k = 0 each run's
//! Kaiming init, k = K its final weights, t_k = k/K), flat weights in [`Layout`](crate::space::Layout) order.
//!
//! 1. [`align_trajectories`]: weight-matching alignment of every run's whole trajectory to a reference run.
//! 2. [`Scaling`]: one scale per layout tensor; the flow works on z = θ / s.
//! 3. [`VelocityNet`] v(x, t [, c]) and [`PotentialNet`] V(x, t [, c]) (JKO), candle-nn MLPs with a
//!    sinusoidal time embedding.
//! 4. [`Objective`]s, all on minibatches of B runs:
//!    * CFM: x_t = (1−t) x_0 + t x_1 + σ ε with x_0 fresh source samples, x_1 final checkpoints, paired by
//!      a [`Coupling`]; target x_1 − x_0.
//!    * MMFM: a natural cubic spline μ(t) ([`NaturalCubicSpline`]) through a coupled chain of marginals
//!      (fresh source, `intermediates` checkpoint marginals, finals); x_t = μ(t) + σ ε, target μ'(t).
//!    * JKO: on consecutive chosen checkpoints x_k, x_{k+1} of one run, ‖τ ∇F(x_k, t_{k+1}) + x_{k+1} − B_k(x_k)‖²,
//!      where B_k is the per-coordinate Gaussian map between the two marginals (module `precond`) and a step is
//!      B_k(x) − τ ∇F(x); or, for the raw potential (`Prediction::Velocity`), JKOnet*'s first-order condition
//!      ‖τ ∇V(x_{k+1}, t_{k+1}) + (x_{k+1} − x_k)‖², stepped as x − τ ∇V(x).
//! 5. [`train_meta`] with a [`MetaTrainConfig`] → [`MetaModel`].
//! 6. [`MetaModel::generate`] / [`MetaModel::generate_path`]: fresh source samples carried to t = 1 by a
//!    [`Sampler`] (Euler, Heun, RK4), unscaled to θ.
//! 7. [`MetaModel::to_onnx`]: the velocity field as an ONNX graph in θ space, for the runtime.
//! 8. [`MetaModel::save`] / [`MetaModel::load`]: `meta.safetensors` + `meta.json` ([`MetaManifest`]; a
//!    reward fine-tuned model also records its [`TuningRecord`]).
//! 9. [`WeightAutoencoder`] ([`train_autoencoder`]): an encoder/decoder between weights and a small latent,
//!    with the decoder's vector-Jacobian product for gradients through it; [`train_meta_latent`] trains a CFM
//!    meta-model in its latent (module `space`: where a flow runs), which generation decodes.

mod align;
mod autoenc;
mod config;
mod context;
mod coupling;
mod error;
mod export;
mod functional;
mod io;
pub(crate) mod model;
mod net;
mod objective;
mod optim;
pub(crate) mod precond;
mod sampler;
mod scaling;
pub(crate) mod space;
mod spline;
mod train;

pub use align::align_trajectories;
pub use autoenc::{
    autoencoder_inputs, train_autoencoder, AutoencoderConfig, AutoencoderManifest, FunctionData, WeightAutoencoder,
    AUTOENCODER_FORMAT, AUTOENCODER_MANIFEST, AUTOENCODER_VERSION, AUTOENCODER_WEIGHTS,
};
pub use config::{knots, LrSchedule, MetaTrainConfig, Objective, Prediction, ENDPOINT_MIN_GAP};
pub use context::{ContextConfig, ContextEncoder, ContextSet, ContextTasks};
pub use coupling::{ot_pairing, squared_distances, Coupling};
pub use error::{Error, Result};
pub use functional::FunctionalConfig;
pub use io::{
    data_digest, LatentRecord, MetaManifest, TuningRecord, META_FORMAT, META_MANIFEST, META_VERSION, META_WEIGHTS,
};
pub use model::MetaModel;
pub use net::{NetConfig, PotentialNet, VelocityNet};
pub use sampler::Sampler;
pub use scaling::{Scaling, SCALE_FLOOR};
pub use spline::NaturalCubicSpline;
pub(crate) use train::sorted_vars;
pub use train::{prepared_trajectories, train_meta, train_meta_conditioned, train_meta_functional, train_meta_latent};
