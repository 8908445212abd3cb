//! The evaluation layer's error type.

/// Errors of the evaluation layer: malformed inputs are reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A classifier-layer error (weights that do not fit the layout, inputs of the wrong width, bad labels).
    #[error(transparent)]
    Classifier(#[from] crate::classifier::Error),
    /// A weight-space error.
    #[error(transparent)]
    Space(#[from] crate::space::Error),
    /// A data-layer error (loading or standardising the evaluation splits).
    #[error(transparent)]
    Data(#[from] crate::data::Error),
    /// An operand that must hold at least one row (or column) is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which operand.
        what: &'static str,
    },
    /// Two operands that must have matching sizes do not.
    #[error("{what} has size {got}, expected {expected}")]
    Length {
        /// Which operand and which size (rows, columns, labels, …).
        what: &'static str,
        /// The size required by the other operands.
        expected: usize,
        /// The size passed.
        got: usize,
    },
    /// An operand holds NaN or ±∞.
    #[error("{what} holds a non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Which operand.
        what: &'static str,
        /// Row of the first non-finite entry.
        row: usize,
        /// Column of the first non-finite entry.
        col: usize,
        /// The value found.
        value: f32,
    },
    /// A setting is out of its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    Config {
        /// The setting's name.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// The valid range.
        reason: &'static str,
    },
}

/// `Ok` when every entry of `a` is finite, else the first non-finite entry as [`Error::NonFinite`].
pub(crate) fn check_finite(what: &'static str, a: ndarray::ArrayView2<'_, f32>) -> Result<(), Error> {
    if a.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let ((row, col), &value) = a.indexed_iter().find(|(_, v)| !v.is_finite()).expect("a non-finite entry exists");
    Err(Error::NonFinite { what, row, col, value })
}

/// `Ok` when `a` has at least one row and one column.
pub(crate) fn check_nonempty(what: &'static str, a: ndarray::ArrayView2<'_, f32>) -> Result<(), Error> {
    if a.is_empty() {
        return Err(Error::Empty { what });
    }
    Ok(())
}

/// `Ok` when `got == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if got != expected {
        return Err(Error::Length { what, expected, got });
    }
    Ok(())
}
