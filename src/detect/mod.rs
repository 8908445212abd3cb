//! Harmful covariate-shift detection: ensemble statistics, calibration on null windows, p-values, and the
//! inference-only meta-detectron path (METHOD.md §4).
//!
//! * [`ks_two_sample`]: the two-sample KS test (exact p-values for small samples, Kolmogorov's otherwise);
//! * [`mean_softmax_entropy`], [`disagreement_mean`], [`disagreement_any`]: statistics of an ensemble;
//! * [`Calibration`], [`p_value`], [`threshold`]: null statistics from in-distribution windows, p-values
//!   (1 + k)/(1 + B) and the decision at level α;
//! * [`EnsembleDetector`] with [`EnsembleConfig`]: the untilted ensemble (`steps = 0`) and meta-detectron
//!   (the most disagreeing candidates per window, [`Selection`], moved by gradient steps on ℓ_cdc towards
//!   "agree with f on P, disagree on Q");
//! * baselines: [`Detectron`] (CDCs trained from a copy of f), [`Bbsd`], [`FEntropy`], [`Mmd`];
//! * [`SlidingWindows`]: windows of a stream of rows (size, stride), the buffering of a streaming detector;
//! * [`WindowTest`] and [`Method`]: the one trait every test implements and the enum that builds them, so that
//!   evaluations treat all alike.
//!
//! This layer uses `ndarray` and the `classifier`, `space`, `data` and `rng` layers only (no candle): a
//! scoring runtime links it. The one exception is [`AdjointDetector`], the faithful path (adjoint matching of
//! the meta-model per window), which exists with the `train` feature only and uses `flow` and `tune`. Rows passed in are already standardised (see [`crate::data::Standardizer`]).

#[cfg(feature = "train")]
mod adjoint;
mod calibration;
mod config;
mod detectron;
mod ensemble;
mod error;
mod ks;
mod method;
mod mmd;
mod output_tests;
mod sliding;
mod stats;

#[cfg(feature = "train")]
pub use adjoint::{AdjointDetector, AdjointDetectorConfig};
pub use calibration::{p_value, threshold, Calibration};
pub use config::{
    EnsembleConfig, EnsembleSize, Selection, Statistic, StepRule, BACKOFF_WINDOWS, BACKOFF_WINDOW_ROWS, CALIBRATED_CAP,
    STEP_BACKOFFS,
};
pub use detectron::{Detectron, DetectronConfig, DetectronStatistics};
pub use ensemble::{step, EnsembleDetector, Score, WindowStatistics};
pub use error::DetectError;
pub use ks::{kolmogorov_sf, ks_two_sample, KsTest, EXACT_MAX_CELLS};
pub use method::{Method, MethodInputs, WindowTest};
pub use mmd::Mmd;
pub use output_tests::{Bbsd, FEntropy};
pub use sliding::{window_seed, CompletedWindow, SlidingWindows};
pub use stats::{disagreement_any, disagreement_mean, mean_softmax_entropy};
