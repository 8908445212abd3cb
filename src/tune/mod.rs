//! Reward fine-tuning of flow meta-models by Adjoint Matching (METHOD.md §3): turn a trained velocity v^base
//! into v^ft whose samples follow the reward-tilted p*(θ) ∝ p^base(θ) · exp(λ r(θ)).
//!
//! * [`Reward`]: r(θ) and ∇_θ r per generated classifier — [`TaskReward`] (−mean CE on labelled rows),
//!   [`CdcReward`] (−ℓ_cdc(θ; P, Q), METHOD.md §4), and the closed-form [`LinearReward`] and
//!   [`QuadraticReward`].
//! * [`AdjointMatching`] with an [`AdjointConfig`]: memoryless SDE trajectories of the fine-tuned copy, the
//!   lean adjoint of the frozen base, the regression loss on a time subset, clipped AdamW steps (module
//!   `adjoint` for the equations; [`memoryless_sigma`] and [`source_variance`] for the schedule in the flow's
//!   scaled coordinates).
//! * [`AdjointMatching::model`]: the tuned [`MetaModel`](crate::flow::MetaModel) — same kind, layout, scaling
//!   and source, with a [`TuningRecord`](crate::flow::TuningRecord) in its manifest — which generates with
//!   the ordinary ODE samplers, so evaluation and export need nothing new.
//!
//! The tilt is exact in the limit for a Gaussian source; with the Kaiming-uniform source it is an
//! approximation (docs/TUNE.md measures both on a toy with a closed-form answer).

mod adjoint;
mod config;
mod error;
mod reward;
mod schedule;
mod toy;

pub use adjoint::{mean_and_covariance, AdjointMatching, IterationStats};
pub use config::AdjointConfig;
pub use error::{Error, Result};
pub use reward::{CdcReward, LinearReward, QuadraticReward, Reward, TaskReward};
pub use schedule::{memoryless_sigma, source_variance};
pub use toy::GaussianToy;
