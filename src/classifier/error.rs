//! The classifier layer's error type.

/// Errors of the classifier layer: every malformed input is reported here, never by a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The weight matrix `[M, D]` has the wrong number of columns for the layout.
    #[error("weight matrix has {got} columns, the layout {arch} needs D = {expected}")]
    ThetaDim {
        /// The layout's architecture string, e.g. `9-16-16-2`.
        arch: String,
        /// The layout's dimension D.
        expected: usize,
        /// The number of columns passed.
        got: usize,
    },
    /// The input batch `[B, d_in]` has the wrong number of features.
    #[error("inputs have {got} features, the classifier takes {expected}")]
    InputWidth {
        /// The layout's input width d_in.
        expected: usize,
        /// The number of columns passed.
        got: usize,
    },
    /// A class label is not below the number of classes.
    #[error("label {label} at row {row} is out of range for {n_classes} classes")]
    Label {
        /// Row of the offending label.
        row: usize,
        /// The label.
        label: usize,
        /// The number of classes N (labels must lie in `0..N`).
        n_classes: usize,
    },
    /// An operand that must hold at least one row is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which operand (`x`, `thetas`, `targets`, `scores`, …).
        what: &'static str,
    },
    /// Two operands that must have the same length do not.
    #[error("{what} has length {got}, expected {expected}")]
    Length {
        /// Which operand.
        what: &'static str,
        /// The length required by the other operands.
        expected: usize,
        /// The length passed.
        got: usize,
    },
    /// An operand holds NaN or ±∞.
    #[error("{what} holds a non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Which operand (`x`, `thetas`, `logits`, `target weights`, …).
        what: &'static str,
        /// Row of the first non-finite entry (0 for a vector).
        row: usize,
        /// Column of the first non-finite entry.
        col: usize,
        /// The value found.
        value: f32,
    },
    /// Disagreement cross entropy needs a class other than the pseudo-label.
    #[error("disagreement cross entropy needs at least 2 classes, got {n_classes}")]
    TooFewClasses {
        /// The number of classes N.
        n_classes: usize,
    },
    /// An activation name that is not `relu`, `tanh` or `silu`.
    #[error("unknown activation {name:?} (expected relu, tanh or silu)")]
    UnknownActivation {
        /// The name as given.
        name: String,
    },
}

/// Whether every entry of `a` is finite. Contiguous data (the common case) is checked in one pass without an
/// early exit, which the compiler vectorises; the position of a failure is looked up only when there is one.
pub(crate) fn all_finite(a: ndarray::ArrayView2<'_, f32>) -> bool {
    match a.as_slice_memory_order() {
        Some(s) => s.iter().fold(true, |ok, v| ok & v.is_finite()),
        None => a.iter().all(|v| v.is_finite()),
    }
}

/// The first non-finite entry of a 2-D array, as an error naming `what`.
pub(crate) fn check_finite(what: &'static str, a: ndarray::ArrayView2<'_, f32>) -> Result<(), Error> {
    if all_finite(a) {
        return Ok(());
    }
    let ((row, col), &value) = a.indexed_iter().find(|(_, v)| !v.is_finite()).expect("a non-finite entry exists");
    Err(Error::NonFinite { what, row, col, value })
}
