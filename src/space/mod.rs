//! Weight space: where a classifier's parameters live as one flat vector θ ∈ R^D.
//!
//! * [`Layout`] names every tensor of an MLP, with its shape, offset and fan-in, and fixes the flattening
//!   order: layer by layer, weight then bias, row-major, weights shaped `[out, in]` (PyTorch's `Linear`).
//! * [`Source`] draws initial weights: [`KaimingUniform`] (each tensor uniform in ±1/√fan_in, PyTorch's
//!   default `Linear` init for weights and biases alike) and the isotropic [`Gaussian`] ablation.
//! * [`weight_matching`] aligns hidden units across runs; [`linear_sum_assignment`] solves the assignments
//!   it, minibatch OT couplings and exact W1 distances need.

mod align;
mod assignment;
mod error;
mod layout;
mod source;

pub use align::{permute, weight_matching, HiddenPermutation, MatchingConfig};
pub use assignment::linear_sum_assignment;
pub use error::Error;
pub use layout::{Layout, NamedTensor, TensorSpec};
pub use source::{Gaussian, KaimingUniform, Source, SourceKind};
