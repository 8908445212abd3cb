//! The data layer's one error type.
//!
//! Every message names where the data came from (`file`: a path, `embedded:<name>` for data compiled into the
//! library, `<array>` for an in-memory matrix), where in it the problem is (a 1-based CSV line and column, or
//! an IDX byte offset) and what was expected against what was found.

use std::path::PathBuf;

/// Errors of the data layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The path.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A built-in data file is not compiled in and was not found on disk.
    #[error(
        "{file}: built-in data file not found at {} (looked in {}; build with the `embedded-data` \
         feature or set WEIGHTFLOW_DATA_DIR): {source}",
        path.display(),
        if *from_env { "$WEIGHTFLOW_DATA_DIR" } else { "<CARGO_MANIFEST_DIR>/data" }
    )]
    BuiltinMissing {
        /// The file's name relative to the data directory (`mnist/t10k-labels-idx1-ubyte.gz`).
        file: String,
        /// Where it was looked for.
        path: PathBuf,
        /// Whether the directory came from `$WEIGHTFLOW_DATA_DIR` (else from the crate's manifest directory).
        from_env: bool,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A gzip stream (the data start with the magic `1f 8b`) is truncated or corrupt.
    #[error("{file}: truncated or corrupt gzip stream (failed after {decoded} decompressed bytes): {source}")]
    Gzip {
        /// The file.
        file: String,
        /// How many bytes had been decompressed when it failed.
        decoded: usize,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// An IDX file does not start with the expected magic number.
    #[error("{file}{}: byte offset 0: expected IDX magic {expected} ({expected:#010x}), found {found} ({found:#010x})", gz(*decompressed))]
    IdxMagic {
        /// The file.
        file: String,
        /// Whether the offset counts bytes of the decompressed stream.
        decompressed: bool,
        /// 2051 for images (u8, 3 dimensions), 2049 for labels (u8, 1 dimension).
        expected: u32,
        /// The first four bytes, big-endian.
        found: u32,
    },
    /// An IDX file ends inside its header.
    #[error("{file}{}: truncated IDX header: expected {expected} bytes, found {found}", gz(*decompressed))]
    IdxHeader {
        /// The file.
        file: String,
        /// Whether the sizes count bytes of the decompressed stream.
        decompressed: bool,
        /// The header's length in bytes (4 + 4 per dimension).
        expected: usize,
        /// The file's length in bytes.
        found: usize,
    },
    /// The non-zero dimensions in an IDX header multiply to more than `isize::MAX`.
    #[error("{file}{}: byte offset 4: IDX dimensions {dims:?} are too large to address", gz(*decompressed))]
    IdxOverflow {
        /// The file.
        file: String,
        /// Whether the file was decompressed.
        decompressed: bool,
        /// The dimensions as read.
        dims: Vec<u32>,
    },
    /// An IDX file ends before the data its header declares.
    #[error(
        "{file}{}: truncated IDX data at byte offset {offset}: expected {expected} bytes (dimensions {dims:?}), \
         found {found}",
        gz(*decompressed)
    )]
    IdxData {
        /// The file.
        file: String,
        /// Whether the offset counts bytes of the decompressed stream.
        decompressed: bool,
        /// Where the data start (just after the header).
        offset: usize,
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// The data length the header declares.
        expected: u64,
        /// The bytes present after the header.
        found: usize,
    },
    /// An IDX file has bytes after the data its header declares.
    #[error("{file}{}: {extra} trailing bytes at byte offset {offset}, expected end of file", gz(*decompressed))]
    IdxTrailing {
        /// The file.
        file: String,
        /// Whether the offset counts bytes of the decompressed stream.
        decompressed: bool,
        /// Where the declared data end.
        offset: usize,
        /// How many bytes follow.
        extra: usize,
    },
    /// An images file and a labels file disagree on the number of items.
    #[error("{labels_file}: expected {images} labels (one per image of {images_file}), found {labels}")]
    IdxCount {
        /// The images file.
        images_file: String,
        /// The labels file.
        labels_file: String,
        /// Images in the images file.
        images: usize,
        /// Labels in the labels file.
        labels: usize,
    },
    /// A text file is empty or has no data rows.
    #[error("{file}: {what}")]
    Empty {
        /// The file.
        file: String,
        /// What is missing (`empty file, expected a header or data rows`, …).
        what: &'static str,
    },
    /// A CSV line is not UTF-8.
    #[error("{file}:{line}: expected UTF-8 text, found invalid bytes")]
    CsvEncoding {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
    },
    /// A CSV row has a different number of fields from the first row.
    #[error("{file}:{line}: expected {expected} fields, found {found}")]
    CsvRagged {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The field count of the header or first row.
        expected: usize,
        /// This row's field count.
        found: usize,
    },
    /// A CSV cell is not a number.
    #[error("{file}:{line}: column {column}: expected a number, found {cell:?}")]
    CsvNumber {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// The cell's text.
        cell: String,
    },
    /// A CSV cell is NaN, infinite, or beyond the range of `f32`.
    #[error("{file}:{line}: column {column}: expected a finite number, found {cell:?}")]
    CsvNotFinite {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// The cell's text.
        cell: String,
    },
    /// A CSV label cell is not a class index in `0..max`.
    #[error("{file}:{line}: column {column}: expected a class label, an integer in 0..{max}, found {cell:?}")]
    CsvLabel {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// One past the largest label allowed (the classes of a sklearn header, else [`crate::data::MAX_CLASSES`]).
        max: usize,
        /// The cell's text.
        cell: String,
    },
    /// The requested label column does not exist.
    #[error("{file}:1: expected a label column {wanted}, found {}", found_columns(columns, *n_columns))]
    CsvLabelColumn {
        /// The file.
        file: String,
        /// The column asked for: `"name"` or `index 12` (0-based).
        wanted: String,
        /// The header's names, empty when the file has none.
        columns: Vec<String>,
        /// The number of fields in the first line.
        n_columns: usize,
    },
    /// A sklearn header (`n_samples,n_features,class names…`) disagrees with the rows that follow.
    #[error("{file}:1: sklearn header: expected {expected} {what}, found {found}")]
    CsvSklearnHeader {
        /// The file.
        file: String,
        /// What disagrees (`data rows`, `fields per row`, `class names`).
        what: &'static str,
        /// What the header declares.
        expected: usize,
        /// What the file holds.
        found: usize,
    },
    /// The parts of a [`crate::data::Dataset`] disagree in size.
    #[error("{file}: {what}: expected {expected}, found {found}")]
    Shape {
        /// The data set's source.
        file: String,
        /// What was counted.
        what: &'static str,
        /// The size implied by the feature matrix.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// A label is not below the number of classes.
    #[error("{file}: row {row}: expected a label below {n_classes}, found {label}")]
    LabelRange {
        /// The data set's source.
        file: String,
        /// The 0-based row.
        row: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        n_classes: usize,
    },
    /// A matrix's feature count differs from the one a [`crate::data::Standardizer`] was fitted on.
    #[error("{file}: expected {expected} features, found {found}")]
    FeatureCount {
        /// The data set's source, or `<array>`.
        file: String,
        /// The fitted feature count.
        expected: usize,
        /// The matrix's feature count.
        found: usize,
    },
    /// A standardizer was asked to fit zero rows, or holds unusable statistics.
    #[error("{file}: {reason}")]
    Standardizer {
        /// The data set's source, `<array>` or `<standardizer>`.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Split fractions or sizes are not usable for `n` rows.
    #[error("split of {n} rows: expected {expected}, found {found:?}")]
    Split {
        /// The number of rows to split.
        n: usize,
        /// What was expected.
        expected: &'static str,
        /// The fractions or sizes given.
        found: Vec<f64>,
    },
    /// A window cannot be drawn from a pool of this size.
    #[error("{file}: expected a window size in 1..={available} (distinct rows of the pool), found {requested}")]
    WindowSize {
        /// The pool's source.
        file: String,
        /// The window size asked for.
        requested: usize,
        /// The pool's rows.
        available: usize,
    },
    /// A synthetic shift cannot be parsed or applied to this data.
    #[error("{file}: {reason}")]
    Shift {
        /// The shift's spelling, or the pool's source.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A data set name is not one of the accepted ones.
    #[error("unknown data set {name:?}: expected one of {}", accepted.join(", "))]
    UnknownDataset {
        /// The name as given.
        name: String,
        /// The accepted names.
        accepted: &'static [&'static str],
    },
}

/// The data layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn gz(decompressed: bool) -> &'static str {
    if decompressed {
        " (decompressed)"
    } else {
        ""
    }
}

fn found_columns(columns: &[String], n_columns: usize) -> String {
    if columns.is_empty() {
        format!("no header and {n_columns} columns")
    } else {
        format!("columns {}", columns.join(", "))
    }
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { file: path.display().to_string(), source }
    }
}
