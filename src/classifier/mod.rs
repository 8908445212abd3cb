//! The classifier family: activations, per-row losses (CE, DCE, ℓ_cdc as weighted [`Targets`]) and their
//! gradients with respect to logits, and evaluation [`metrics`].

mod activation;
mod error;
mod loss;
pub mod metrics;

pub use activation::Activation;
pub use error::Error;
pub use loss::{cross_entropy, disagreement_cross_entropy, log_sum_exp, LossKind, Target, Targets};
pub use metrics::{accuracy, auroc, mean_log_loss};
