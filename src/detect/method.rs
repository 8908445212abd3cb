//! The seam every shift test shares, so that an evaluation treats meta-detectron and its baselines alike.

use ndarray::ArrayView2;

use super::error::DetectError;

/// A shift test reduced to one statistic per window: larger means more shifted. Calibration and decisions
/// ([`p_value`](super::p_value), [`threshold`](super::threshold)) work on these statistics for every test.
pub trait WindowTest: Send + Sync {
    /// The statistic of window `q` (standardised rows); `seed` fixes whatever the test draws at random.
    fn statistic(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<f64, DetectError>;
}
