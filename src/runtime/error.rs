//! Errors of the runtime; every variant is a kind the C ABI maps to its own status code.

use std::path::PathBuf;

use crate::bundle::BundleError;

/// Why opening a detector, generating or scoring failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The caller's input is unusable (wrong feature count, NaN/Inf, an empty window, n = 0, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The file is not a weightflow bundle (empty, wrong magic, a directory).
    #[error(transparent)]
    NotABundle(BundleError),
    /// The bundle is damaged: truncated, a checksum or shape mismatch, an invalid manifest or ONNX model.
    #[error(transparent)]
    BundleCorrupt(BundleError),
    /// The bundle's format version is not one this library reads.
    #[error(
        "bundle format version {found} is not supported (this library reads versions {}–{supported})",
        crate::bundle::OLDEST_READABLE_VERSION
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The newest version this library reads.
        supported: u32,
    },
    /// The onnxruntime shared library could not be loaded.
    #[error(
        "onnxruntime is unavailable (tried {}): {reason}; run scripts/setup-ort.sh and set ORT_DYLIB_PATH \
         or OpenOptions::onnxruntime",
        path.display()
    )]
    OnnxRuntimeUnavailable {
        /// The library path tried.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// onnxruntime refused an operation (building the session, running the model).
    #[error("onnxruntime: {op}: {message}")]
    OnnxRuntime {
        /// What was attempted.
        op: &'static str,
        /// onnxruntime's message.
        message: String,
    },
    /// The detector refused the window or the bundle's settings (an uncalibrated window size, no pool member
    /// passing the accuracy floor, …).
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),
    /// The file system refused an operation.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl From<BundleError> for RuntimeError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::NotABundle { .. } => Self::NotABundle(e),
            BundleError::UnsupportedVersion { found, supported } => Self::UnsupportedVersion { found, supported },
            BundleError::Io { path, source, .. } => Self::Io { path, source },
            e => Self::BundleCorrupt(e),
        }
    }
}

/// Wraps an ort error with the operation, keeping ort's type out of the public API.
pub(crate) fn ort_err(op: &'static str) -> impl FnOnce(ort::Error) -> RuntimeError {
    move |e| RuntimeError::OnnxRuntime { op, message: e.to_string() }
}
