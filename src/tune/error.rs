//! The tuning layer's error type.

/// Errors of reward fine-tuning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The base meta-model could not be evaluated, copied or rebuilt.
    #[error(transparent)]
    Flow(#[from] crate::flow::Error),
    /// A reward's classifiers could not be evaluated (shapes, labels, non-finite weights).
    #[error(transparent)]
    Classifier(#[from] crate::classifier::Error),
    /// A candle operation failed; `op` names what the tuning code was doing.
    #[error("{op}: {source}")]
    Candle {
        /// The operation, e.g. `"lean adjoint"`.
        op: &'static str,
        /// candle's error.
        #[source]
        source: candle_core::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The field, e.g. `"lambda"`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An input has the wrong shape (a reward's data, a gradient a reward returned).
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape given.
        got: String,
    },
    /// The base model cannot be fine-tuned this way.
    #[error("cannot fine-tune this meta-model: {reason}")]
    Unsupported {
        /// Why.
        reason: String,
    },
    /// A reward, its gradient, or the regression loss became NaN or infinite.
    #[error("fine-tuning diverged at iteration {iteration}: {what} is {value}")]
    Diverged {
        /// The iteration (0-based).
        iteration: usize,
        /// What was not finite.
        what: &'static str,
        /// The value seen.
        value: f32,
    },
}

/// The layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps a candle result with the name of the operation.
pub(crate) trait CandleContext<T> {
    /// Maps a candle error to [`Error::Candle`] with `op`.
    fn op(self, op: &'static str) -> Result<T>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|source| Error::Candle { op, source })
    }
}
