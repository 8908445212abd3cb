/// Errors of the weight-space layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An architecture string such as `9-16-16-2` could not be parsed.
    #[error("invalid architecture {arch:?}: {reason}")]
    Arch {
        /// The string as given.
        arch: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A flat vector or matrix does not match the layout's dimension.
    #[error("weight vector has {got} entries, the layout needs {expected}")]
    Dim {
        /// The layout's dimension D.
        expected: usize,
        /// What was passed.
        got: usize,
    },
}
