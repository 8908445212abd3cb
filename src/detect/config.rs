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

/// Which of the pool's candidates (those that pass the accuracy floor on P) vote on a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Selection {
    /// The first M candidates, the same for every window (the only choice of format-1 bundles).
    #[default]
    First,
    /// Per window, the M candidates that disagree most with f on the window (ties: pool order): a cheap
    /// importance selection by the CDC reward's "disagree on Q" term among members that already agree on P.
    /// The gradient steps then start from the members closest to the tilted distribution.
    Disagreeing,
}

/// Scoring settings: which members vote, how far each is moved towards "agree on P, disagree on Q", and the
/// decision level. `steps = 0` with [`Selection::First`] is the *untilted* ensemble (the pool's members as
/// generated); the default, *meta-detectron*, selects the most disagreeing candidates per window and moves
/// them by gradient descent on ℓ_cdc (inference only: no meta-model runs per window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnsembleConfig {
    /// Members M that vote: M of the pool's candidates whose agreement with f on the reference sample reaches
    /// `floor`, chosen by `selection` (fewer if fewer pass).
    pub ensemble_size: usize,
    /// How the M voters are chosen among the candidates. A manifest without this field predates it and was
    /// calibrated with [`Selection::First`], so that is the value a missing field reads as.
    #[serde(default)]
    pub selection: Selection,
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
    /// Caps λ at `lambda_rows / |Q|`, so that the window's rows together never weigh more in ℓ_cdc than
    /// `lambda_rows` rows at weight λ would. Without a cap, large windows drown the "agree on P" term and the
    /// steps make members disagree on in-distribution windows too (measured at N = 50: TPR .62 with the cap
    /// off, docs/DETECT.md). `None`: no cap — also what a stored config without the field reads as.
    #[serde(default)]
    pub lambda_rows: Option<usize>,
    /// The decision level α.
    pub alpha: f64,
    /// The statistic that decides.
    pub statistic: Statistic,
}

impl Default for EnsembleConfig {
    /// The meta-detectron path (see docs/DETECT.md for the measurements behind these values).
    fn default() -> Self {
        Self {
            ensemble_size: 32,
            selection: Selection::Disagreeing,
            floor: 0.8,
            steps: 5,
            lr: 2.0,
            refine_rows: 64,
            lambda: Some(1.0),
            lambda_rows: Some(10),
            alpha: 0.05,
            statistic: Statistic::Entropy,
        }
    }
}

impl EnsembleConfig {
    /// The untilted ensemble: the first M candidates as generated, no steps.
    pub fn untilted() -> Self {
        Self { steps: 0, selection: Selection::First, ..Self::default() }
    }

    /// Selection alone: the default's most disagreeing candidates per window, without gradient steps.
    pub fn selected() -> Self {
        Self { steps: 0, ..Self::default() }
    }

    /// Steps alone (the previous default, docs/DETECT.md): the first 32 candidates, 10 ℓ_cdc steps each, λ
    /// not capped.
    pub fn steps_only() -> Self {
        Self { ensemble_size: 32, selection: Selection::First, steps: 10, lambda_rows: None, ..Self::default() }
    }

    /// The DCE weight λ of ℓ_cdc for a window of `n_q` rows: `lambda` (or 1/(n_q + 1) when unset), capped at
    /// `lambda_rows / n_q`.
    pub fn lambda_for(&self, n_q: usize) -> f32 {
        let lambda = self.lambda.unwrap_or_else(|| crate::classifier::Targets::default_lambda(n_q));
        match self.lambda_rows {
            Some(rows) if n_q > 0 => lambda.min(rows as f32 / n_q as f32),
            _ => lambda,
        }
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
        if self.lambda_rows == Some(0) {
            return bad("lambda_rows", "0".into(), "a cap of at least one row (or none)");
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad("alpha", self.alpha.to_string(), "a level in (0, 1)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_capped_at_the_rows_worth_of_weight() {
        let c = EnsembleConfig { lambda: Some(1.0), lambda_rows: Some(10), ..EnsembleConfig::default() };
        assert_eq!([c.lambda_for(5), c.lambda_for(10), c.lambda_for(20), c.lambda_for(50)], [1.0, 1.0, 0.5, 0.2]);
        let uncapped = EnsembleConfig { lambda_rows: None, ..c.clone() };
        assert_eq!(uncapped.lambda_for(50), 1.0);
        // Unset λ is 1/(N + 1), and the cap still applies (it binds only when below it).
        let default_lambda = EnsembleConfig { lambda: None, lambda_rows: Some(1), ..c };
        assert_eq!(default_lambda.lambda_for(4), 0.2);
        let zero = EnsembleConfig { lambda_rows: Some(0), ..EnsembleConfig::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("lambda_rows"));
    }
}
