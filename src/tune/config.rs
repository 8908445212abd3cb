//! Settings of adjoint-matching fine-tuning.

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Settings of [`super::AdjointMatching`] (METHOD.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdjointConfig {
    /// Tilt strength λ of p* ∝ p_base · exp(λ r).
    pub lambda: f64,
    /// Fine-tuning iterations (one batch of trajectories and one optimiser step each).
    pub iterations: usize,
    /// Trajectories per iteration.
    pub batch_size: usize,
    /// Euler–Maruyama steps on the grid t = h, 2h, …, 1 (h = 1/steps); also the number of time points.
    pub steps: usize,
    /// Fraction of the time points at the end of the grid always in the loss (METHOD.md: the last quarter).
    pub last_fraction: f64,
    /// Fraction of the remaining time points drawn at random into the loss each iteration (a quarter).
    pub random_fraction: f64,
    /// Adam learning rate of the fine-tuned copy.
    pub lr: f64,
    /// AdamW decoupled weight decay (0: Adam).
    pub weight_decay: f64,
    /// Every (trajectory, time) term of the loss is clipped at this value, so that one trajectory with a huge
    /// adjoint cannot dominate a step.
    pub loss_clip: f64,
    /// The gradient's global L2 norm is clipped at this value.
    pub grad_clip: f64,
    /// Seed of the source samples, the Brownian increments and the time subsets.
    pub seed: u64,
}

impl Default for AdjointConfig {
    fn default() -> Self {
        Self {
            lambda: 1.0,
            iterations: 200,
            batch_size: 64,
            steps: 20,
            last_fraction: 0.25,
            random_fraction: 0.25,
            lr: 1e-4,
            weight_decay: 0.0,
            loss_clip: 1e4,
            grad_clip: 1.0,
            seed: 0,
        }
    }
}

impl AdjointConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if !self.lambda.is_finite() || self.lambda < 0.0 {
            return bad("lambda", format!("must be finite and ≥ 0, got {}", self.lambda));
        }
        if self.iterations == 0 {
            return bad("iterations", "must be ≥ 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be ≥ 1".into());
        }
        if self.steps < 4 {
            return bad("steps", format!("must be ≥ 4 (the loss needs time points before t = 1), got {}", self.steps));
        }
        for (field, v) in [("last_fraction", self.last_fraction), ("random_fraction", self.random_fraction)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, format!("must lie in [0, 1], got {v}"));
            }
        }
        if self.last_fraction == 0.0 && self.random_fraction == 0.0 {
            return bad("last_fraction", "and random_fraction are both 0: the loss would have no time points".into());
        }
        for (field, v) in [("lr", self.lr), ("loss_clip", self.loss_clip), ("grad_clip", self.grad_clip)] {
            if !v.is_finite() || v <= 0.0 {
                return bad(field, format!("must be finite and > 0, got {v}"));
            }
        }
        if !self.weight_decay.is_finite() || self.weight_decay < 0.0 {
            return bad("weight_decay", format!("must be finite and ≥ 0, got {}", self.weight_decay));
        }
        Ok(())
    }
}
