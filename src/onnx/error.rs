//! Errors of the ONNX export.

/// Why a velocity field could not be exported, or why ONNX bytes are not one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// A tensor of the specification has the wrong shape.
    #[error("ONNX export: {what} has shape {got:?}, expected {expected:?}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        got: Vec<usize>,
    },
    /// The specification is not exportable (e.g. no layers, an odd time embedding).
    #[error("ONNX export: {0}")]
    Unsupported(String),
    /// The bytes are not a velocity model of the expected signature.
    #[error("ONNX model: {0}")]
    Signature(String),
}
