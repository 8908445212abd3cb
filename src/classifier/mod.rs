//! The classifier family: MLPs run M at a time, their losses, and the gradients of those losses with respect to
//! the weights.
//!
//! A classifier is a point θ ∈ R^D of weight space, laid out by [`crate::space::Layout`]. An [`Mlp`] (layout +
//! [`Activation`]) evaluates a batch `thetas` `[M, D]` of classifiers on one input batch `x` `[B, d_in]`:
//!
//! * [`Mlp::logits`] `[M, B, C]`, [`Mlp::probabilities`] (softmax, `[M, B, C]`), [`Mlp::predict`] (argmax,
//!   `[M, B]`); small classifiers (D ≤ 8,192) run fused, one classifier and a block of rows at a time in L1,
//!   larger ones as GEMMs: the first layer one GEMM over all M classifiers (over chunks of them when M·B is
//!   large), later layers one GEMM per classifier;
//! * [`Mlp::loss`] and [`Mlp::loss_and_grad`] `([M], [M, D])` for per-row [`Targets`]: L_m = Σ_b w_b ℓ_b with
//!   ℓ_b cross entropy or disagreement cross entropy, which covers mean CE, ℓ_cdc and weighted mixes
//!   (formulas [below](self#losses));
//! * [`metrics`]: accuracy, AUROC (midranks), mean log loss.
//!
//! This module uses `ndarray` only, so a scoring runtime links it without candle.
//!
//! ```
//! use ndarray::array;
//! use weightflow::classifier::{Activation, Mlp, Targets};
//! use weightflow::space::Layout;
//!
//! // Two linear classifiers of 2 inputs and 2 classes (no hidden layer): D = (2+1)·2 = 6.
//! let mlp = Mlp::new(Layout::parse("2-2")?, Activation::Relu);
//! let thetas = array![[1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]];
//! let x = array![[2.0f32, -1.0]];
//! let logits = mlp.logits(thetas.view(), x.view())?;
//! assert_eq!(logits.shape(), [2, 1, 2]);
//! assert_eq!(logits[[1, 0, 0]], -1.0);
//! let (loss, grad) = mlp.loss_and_grad(thetas.view(), x.view(), &Targets::cross_entropy(&[0]))?;
//! assert!(loss[0] < loss[1]);
//! assert_eq!(grad.shape(), [2, 6]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Losses
//! Per row (details in [`Targets`]): CE(z, y) = logsumexp(z) − z_y, DCE(z, ŷ) = logsumexp(z) − (1/(N−1)) Σ_{c≠ŷ} z_c,
//! ℓ_cdc = (Σ_P CE + λ Σ_Q DCE) / (|P| + |Q|), λ = 1/(|Q|+1).

mod activation;
mod adam;
mod backward;
mod error;
mod forward;
mod fused;
mod loss;
pub mod metrics;
mod mlp;

pub use activation::Activation;
pub use adam::Adam;
pub(crate) use error::all_finite;
pub use error::Error;
pub use loss::{cross_entropy, disagreement_cross_entropy, log_sum_exp, LossKind, Target, Targets};
pub use metrics::{accuracy, auroc, mean_log_loss};
pub use mlp::Mlp;
