//! The settings of an [`EnsembleDetector`](super::EnsembleDetector) (stored in a bundle).

use serde::{Deserialize, Serialize};

use super::error::DetectError;

/// Which statistic decides a window (both are always computed and reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Statistic {
    /// −ln p of the KS test between the ensemble's entropies on the window and on the reference sample.
    #[default]
    Entropy,
    /// The members' mean disagreement rate with f's pseudo-labels on the window.
    Disagreement,
}

/// Scoring settings: which members vote, how far each is moved towards "agree on P, disagree on Q", and the
/// decision level. `steps = 0` is the *untilted* ensemble (the pool's members as generated); `steps > 0` is
/// the inference-only *meta-detectron* path (gradient descent on ℓ_cdc from each pool member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnsembleConfig {
    /// Members M that vote: the first M pool members whose agreement with f on the reference sample reaches
    /// `floor` (fewer if the pool holds fewer).
    pub ensemble_size: usize,
    /// Accuracy floor on P: the least agreement with f's predictions on the reference sample a member needs to
    /// vote, checked on the pool at construction and again after refinement.
    pub floor: f64,
    /// Gradient steps on ℓ_cdc(g; P, Q) per window (0 = untilted).
    pub steps: usize,
    /// Step size of those steps (plain gradient descent on the flat weights).
    pub lr: f32,
    /// Reference rows (drawn per window) that carry the "agree on P" term of the steps; 0 = all of them.
    pub refine_rows: usize,
    /// Weight λ of the disagreement term; `None` = 1/(|Q|+1) (METHOD.md §4). With 1/(|Q|+1) the "agree on P"
    /// term dominates a few steps and pulls members towards copies of f (measured: lower disagreement than
    /// untilted), so the refined default weighs Q's rows like P's.
    pub lambda: Option<f32>,
    /// The decision level α.
    pub alpha: f64,
    /// The statistic that decides.
    pub statistic: Statistic,
}

impl Default for EnsembleConfig {
    /// The refined meta-detectron path (see docs/DETECT.md for the measurements behind these values).
    fn default() -> Self {
        Self {
            ensemble_size: 32,
            floor: 0.8,
            steps: 10,
            lr: 1.0,
            refine_rows: 64,
            lambda: Some(1.0),
            alpha: 0.05,
            statistic: Statistic::Entropy,
        }
    }
}

impl EnsembleConfig {
    /// The untilted ensemble: the default without refinement steps.
    pub fn untilted() -> Self {
        Self { steps: 0, ..Self::default() }
    }

    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |name, value: String, reason| Err(DetectError::Config { name, value, reason });
        if self.ensemble_size == 0 {
            return bad("ensemble_size", "0".into(), "at least one member must vote");
        }
        if !(0.0..=1.0).contains(&self.floor) {
            return bad("floor", self.floor.to_string(), "an agreement rate in [0, 1]");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr.to_string(), "a positive finite step size");
        }
        if let Some(l) = self.lambda {
            if !(l.is_finite() && l >= 0.0) {
                return bad("lambda", l.to_string(), "a non-negative finite weight");
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad("alpha", self.alpha.to_string(), "a level in (0, 1)");
        }
        Ok(())
    }
}
