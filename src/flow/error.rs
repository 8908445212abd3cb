use std::path::PathBuf;

/// Errors of the meta-model layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A weight-space operation failed (layout dimension, alignment).
    #[error(transparent)]
    Space(#[from] crate::space::Error),
    /// The ONNX export refused the network.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
    /// The base classifiers could not be evaluated (the autoencoder's functional term).
    #[error(transparent)]
    Train(#[from] crate::train::Error),
    /// A candle operation failed; `op` names what the flow code was doing.
    #[error("{op}: {source}")]
    Candle {
        /// The operation, e.g. `"velocity forward"`.
        op: &'static str,
        /// candle's error.
        #[source]
        source: candle_core::Error,
    },
    /// An input array has the wrong shape.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape given.
        got: String,
    },
    /// A configuration value is out of range or unsupported.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The field, e.g. `"intermediates"`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Training produced a non-finite loss.
    #[error("training diverged at step {step}: loss {loss}")]
    Diverged {
        /// The step (0-based).
        step: usize,
        /// The loss seen.
        loss: f32,
    },
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// `"read"`, `"write"`, `"rename"`, `"create dir"`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `meta.json` is not valid JSON for a meta-model manifest.
    #[error("manifest {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `meta.safetensors` could not be parsed or written.
    #[error("weights {path}: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The safetensors error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The manifest's `format` field is not `weightflow.meta`.
    #[error("{path}: format check failed: expected {expected:?}, found {got:?}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format this build reads.
        expected: &'static str,
        /// What the file says.
        got: String,
    },
    /// The manifest's version is not one this build reads.
    #[error("{path}: version check failed: this build reads versions up to {expected}, the file is version {got}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The newest version this build reads.
        expected: u32,
        /// The file's version.
        got: u32,
    },
    /// The weights file's sha256 differs from the one recorded in the manifest.
    #[error("{path}: checksum check failed: manifest says sha256 {expected}, file has {got}")]
    Checksum {
        /// The weights file.
        path: PathBuf,
        /// The digest in the manifest.
        expected: String,
        /// The digest of the file.
        got: String,
    },
    /// A tensor of the weights file is missing, extra, or has the wrong shape or dtype for the manifest's
    /// network.
    #[error("{path}: tensor check failed for {name:?}: {reason}")]
    Tensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        reason: String,
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
