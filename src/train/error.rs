use std::path::PathBuf;

/// Errors of the training layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A candle operation failed (shape mismatch, device error, …).
    #[error("candle failed in {op}: {source}")]
    Candle {
        /// What we were doing.
        op: &'static str,
        /// candle's error.
        #[source]
        source: candle_core::Error,
    },
    /// An invalid training configuration.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite: the learning rate is too high for this data.
    #[error("training diverged at step {step} (mean loss {loss}): lower the learning rate")]
    Diverged {
        /// Optimiser step.
        step: usize,
        /// The non-finite loss.
        loss: f32,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A trajectory set on disk is malformed.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data layer refused the input.
    #[error(transparent)]
    Data(#[from] crate::data::Error),
    /// The weight-space layer refused the input.
    #[error(transparent)]
    Space(#[from] crate::space::Error),
    /// The classifier layer refused the input.
    #[error(transparent)]
    Classifier(#[from] crate::classifier::Error),
}

/// Adds the operation's name to candle's errors.
pub(crate) trait CandleContext<T> {
    fn op(self, op: &'static str) -> Result<T, Error>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn op(self, op: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Candle { op, source })
    }
}
