//! The detect layer's error type.

use crate::classifier;

/// Errors of the detect layer: every malformed input or setting is reported here, never by a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The classifier layer refused an operand (shape, non-finite weights, labels).
    #[error(transparent)]
    Classifier(#[from] classifier::Error),
    /// An operand that must hold at least one row or value is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which operand (`window`, `reference sample`, `pool`, …).
        what: &'static str,
    },
    /// A matrix has the wrong number of columns.
    #[error("{what} has {got} columns, expected {expected}")]
    Width {
        /// Which operand.
        what: &'static str,
        /// The number of columns required.
        expected: usize,
        /// The number of columns passed.
        got: usize,
    },
    /// An operand holds NaN or ±∞.
    #[error("{what} holds a non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Which operand.
        what: &'static str,
        /// Row of the first non-finite entry (0 for a vector).
        row: usize,
        /// Column of the first non-finite entry.
        col: usize,
        /// The value found.
        value: f64,
    },
    /// A setting is out of its range.
    #[error("invalid setting {name} = {value}: {reason}")]
    Config {
        /// The setting's name.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// No calibration table matches the window's size.
    #[error("no calibration for windows of {window_size} rows (calibrated sizes: {available:?})")]
    NotCalibrated {
        /// The window's number of rows.
        window_size: usize,
        /// The calibrated window sizes.
        available: Vec<usize>,
    },
    /// A calibration table cannot be used (empty or non-finite null statistics).
    #[error("calibration for windows of {window_size} rows is unusable: {reason}")]
    BadCalibration {
        /// The table's window size.
        window_size: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A window size that the null pool cannot supply (distinct rows are drawn).
    #[error("window size {size} is not in 1..={available} (rows of the null pool)")]
    WindowSize {
        /// The size requested.
        size: usize,
        /// The rows available.
        available: usize,
    },
    /// The faithful path's per-window fine-tuning or generation failed (feature `train`; the `tune` or `flow`
    /// layer's message).
    #[error("per-window adjoint matching: {0}")]
    Tuning(String),
    /// No member of the pool agrees with f often enough on the reference sample to vote.
    #[error("no pool member agrees with f on at least {floor} of the reference sample (best agreement {best:.3})")]
    NoMemberPassesFloor {
        /// The accuracy floor.
        floor: f64,
        /// The best agreement found in the pool.
        best: f64,
    },
    /// The window's refinement steps carried a member's weights to ±∞ or NaN: the window lies so far outside
    /// the data the detector was built on (huge features, even after standardisation) that its gradients
    /// overflow f32. Such a window cannot be scored; it is not a verdict of "no shift".
    #[error(
        "the refinement diverged on this window: step {step} left member {member} with non-finite weights \
         (largest |feature| of the standardised window: {max_abs:.3e}); check the window's units and scale"
    )]
    Diverged {
        /// The step (1-based) after which a weight was first non-finite.
        step: usize,
        /// The first member (row of the ensemble) with a non-finite weight.
        member: usize,
        /// max |x| over the window's standardised rows.
        max_abs: f64,
    },
}

/// The first non-finite entry of a 2-D f32 array, as an error naming `what`.
pub(crate) fn check_finite(what: &'static str, a: ndarray::ArrayView2<'_, f32>) -> Result<(), DetectError> {
    if crate::classifier::all_finite(a) {
        return Ok(());
    }
    let ((row, col), &value) = a.indexed_iter().find(|(_, v)| !v.is_finite()).expect("a non-finite entry exists");
    Err(DetectError::NonFinite { what, row, col, value: value as f64 })
}

/// The first non-finite value of a slice, as an error naming `what`.
pub(crate) fn check_finite_slice(what: &'static str, a: &[f64]) -> Result<(), DetectError> {
    match a.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(col) => Err(DetectError::NonFinite { what, row: 0, col, value: a[col] }),
    }
}

/// Checks that `x` is a non-empty, finite `[n, width]` matrix.
pub(crate) fn check_rows(what: &'static str, x: ndarray::ArrayView2<'_, f32>, width: usize) -> Result<(), DetectError> {
    if x.ncols() != width {
        return Err(DetectError::Width { what, expected: width, got: x.ncols() });
    }
    if x.nrows() == 0 {
        return Err(DetectError::Empty { what });
    }
    check_finite(what, x)
}
