//! Calibration on null windows, p-values and the decision at level α (Detectron's protocol, METHOD.md §4).
//!
//! Each test turns a window into a statistic s where larger means "more shifted". The same test is run on B
//! windows drawn from held-out in-distribution data P*; a window's p-value is
//! p = (1 + #{b : s_b ≥ s}) / (1 + B), computed in f64, and the window is flagged at level α when p ≤ α.
//! Equivalently (no ties at the threshold), it is flagged when s > t, where t is the (K+1)-th largest null
//! statistic and K = ⌊α(1+B)⌋ − 1; with K < 0 no window can be flagged and t = +∞. Hence B ≥ 1/α − 1 null
//! windows are needed before anything can be flagged at all.

use serde::{Deserialize, Serialize};

use super::error::{check_finite_slice, DetectError};

/// The calibrated p-value (1 + #{null ≥ s}) / (1 + B) of statistic `s` against the null statistics.
pub fn p_value(null: &[f64], s: f64) -> f64 {
    let k = null.iter().filter(|&&v| v >= s).count();
    (1 + k) as f64 / (1 + null.len()) as f64
}

/// The threshold t: a statistic above t has p-value ≤ `alpha` (module docs); +∞ when no statistic can be.
pub fn threshold(null: &[f64], alpha: f64) -> f64 {
    let k = (alpha * (1 + null.len()) as f64 + 1e-9).floor() as i64 - 1;
    if k < 0 {
        return f64::INFINITY;
    }
    let mut sorted = null.to_vec();
    sorted.sort_unstable_by(|a, b| b.total_cmp(a));
    sorted.get(k as usize).copied().unwrap_or(f64::NEG_INFINITY)
}

/// Null statistics of one window size, drawn from in-distribution windows (stored in a bundle's manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The window size N these statistics hold for.
    pub window_size: usize,
    /// The entropy test's statistic −ln p_KS on each null window.
    pub null_entropy: Vec<f64>,
    /// The disagreement rate on each null window.
    pub null_disagreement: Vec<f64>,
}

impl Calibration {
    /// Checks that the table is usable: both null samples non-empty, equally long and finite.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |reason| Err(DetectError::BadCalibration { window_size: self.window_size, reason });
        if self.null_entropy.is_empty() || self.null_disagreement.is_empty() {
            return bad("no null statistics");
        }
        if self.null_entropy.len() != self.null_disagreement.len() {
            return bad("the entropy and disagreement null samples differ in length");
        }
        check_finite_slice("null entropy statistics", &self.null_entropy)?;
        check_finite_slice("null disagreement statistics", &self.null_disagreement)
    }

    /// The table for windows of `window_size` rows among `tables`.
    pub fn find(tables: &[Calibration], window_size: usize) -> Result<&Calibration, DetectError> {
        tables.iter().find(|c| c.window_size == window_size).ok_or_else(|| DetectError::NotCalibrated {
            window_size,
            available: tables.iter().map(|c| c.window_size).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_and_threshold_agree() {
        // 39 null statistics 1..=39: at α = 0.05, K = ⌊0.05·40⌋ − 1 = 1, t = 38 (the 2nd largest).
        let null: Vec<f64> = (1..=39).map(f64::from).collect();
        assert_eq!(p_value(&null, 39.5), 1.0 / 40.0);
        assert_eq!(p_value(&null, 39.0), 2.0 / 40.0);
        assert_eq!(p_value(&null, 0.0), 1.0);
        let t = threshold(&null, 0.05);
        assert_eq!(t, 38.0);
        // Flagging s > t is the same decision as p ≤ α, for every statistic on a fine grid.
        for i in 0..900 {
            let s = i as f64 * 0.05;
            assert_eq!(s > t, p_value(&null, s) <= 0.05, "s = {s}");
        }
        // Too few null windows: nothing can be flagged.
        assert_eq!(threshold(&null[..10], 0.05), f64::INFINITY);
    }

    #[test]
    fn malformed_tables_are_refused() {
        let c = Calibration { window_size: 10, null_entropy: vec![1.0], null_disagreement: vec![] };
        assert!(matches!(c.validate(), Err(DetectError::BadCalibration { window_size: 10, .. })));
        let err = Calibration::find(std::slice::from_ref(&c), 20).unwrap_err();
        assert_eq!(err, DetectError::NotCalibrated { window_size: 20, available: vec![10] });
    }
}
