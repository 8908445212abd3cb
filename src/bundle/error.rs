//! Errors of the bundle layer: one variant per check the strict reader makes.

use std::path::PathBuf;

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file system refused an operation.
    #[error("bundle {path}: cannot {op}: {source}")]
    Io {
        /// What was attempted (`read`, `write`, `rename`).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input is not a weightflow bundle at all (too short for the header, wrong magic, a directory).
    #[error("not a weightflow bundle: {reason}")]
    NotABundle {
        /// What gave it away.
        reason: String,
    },
    /// The bundle was written by a format version this library does not read.
    #[error(
        "bundle format version {found} is not supported (this library reads versions {}–{supported})",
        super::OLDEST_READABLE_VERSION
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The newest version this library reads (the one it writes).
        supported: u32,
    },
    /// The file ends before a part it declares.
    #[error("bundle truncated: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The part that does not fit.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// Bytes after the last declared section.
    #[error("bundle corrupt: {extra} bytes after the last section")]
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The declared manifest length exceeds the reader's limit.
    #[error("bundle corrupt: manifest of {len} bytes exceeds the limit of {limit}")]
    ManifestTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("bundle corrupt: manifest: {0}")]
    Manifest(#[source] serde_json::Error),
    /// The sections table is inconsistent (missing, duplicate, overlapping or out-of-order sections).
    #[error("bundle corrupt: section {name}: {reason}")]
    Section {
        /// The section.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A section's sha256 differs from the manifest's.
    #[error("bundle corrupt: section {section}: sha256 {got} differs from the manifest's {expected}")]
    Checksum {
        /// The section.
        section: String,
        /// The manifest's digest.
        expected: String,
        /// The digest of the bytes.
        got: String,
    },
    /// The tensors section is not valid safetensors.
    #[error("bundle corrupt: tensors: {0}")]
    Tensors(#[source] safetensors::SafeTensorError),
    /// A tensor has the wrong name, dtype or shape for the manifest.
    #[error("bundle corrupt: {what}: expected {expected}, got {got}")]
    Shape {
        /// Which tensor or field.
        what: String,
        /// What the manifest implies.
        expected: String,
        /// What is there.
        got: String,
    },
    /// A manifest value is out of its valid range (zero steps, an empty pool, a non-finite number, …).
    #[error("bundle invalid: {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}
