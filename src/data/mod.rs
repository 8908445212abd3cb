//! Data: loaders, seeded splits, standardisation and window sampling, with `ndarray` only.
//!
//! * [`Dataset`]: features `x` `[n, d]` (f32), labels `y` in `0..n_classes`, feature names, source.
//! * Loaders: IDX ([`parse_idx_images`], [`load_idx`], …; MNIST) and CSV ([`parse_csv`], [`load_csv`]), raw or
//!   gzip, checked strictly; every [`Error`] names the file and the line or byte offset.
//! * [`DatasetSpec`]: the built-in data sets (`uci-heart`, `digits`, `mnist`, `csv:PATH`) and their
//!   [`Splits`]; the files are compiled in with the `embedded-data` feature.
//! * [`Standardizer`]: per-feature `(x − μ) / σ`, fitted on train, serialisable.
//! * [`split_indices`] / [`split_sizes`]: seeded random splits; [`sample_window`] and [`WindowSampler`]:
//!   windows of distinct rows.
//! * [`Shift`]: synthetic covariate shifts of image rows (rotation, noise, a class subset, blacked-out corners).
//!
//! ```
//! use weightflow::data::{parse_csv, CsvOptions, Standardizer};
//! let ds = parse_csv(b"a,b,label\n1,10,0\n3,30,1\n", "tiny.csv", &CsvOptions::default())?;
//! assert_eq!((ds.len(), ds.n_features(), ds.n_classes), (2, 2, 2));
//! let scaled = Standardizer::fit(&ds.x)?.transform(&ds)?;
//! assert_eq!(scaled.x, ndarray::array![[-1.0f32, -1.0], [1.0, 1.0]]);
//! # Ok::<(), weightflow::data::Error>(())
//! ```

mod builtin;
mod csv;
mod dataset;
mod error;
mod gzip;
mod idx;
mod shift;
mod split;
mod standardize;
mod window;

pub use builtin::{DatasetSpec, DATASET_NAMES, SPLIT_STREAM};
pub use csv::{
    load_csv, load_features_csv, parse_csv, parse_features_csv, CsvHeader, CsvOptions, LabelColumn, MAX_CLASSES,
};
pub use dataset::{default_feature_names, Dataset};
pub use error::{Error, Result};
pub use gzip::{is_gzip, maybe_gunzip, GZIP_MAGIC};
pub use idx::{
    idx_dataset, load_idx, load_idx_images, load_idx_labels, parse_idx_images, parse_idx_labels, IdxImages,
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
pub use shift::{Shift, SHIFT_FORMS};
pub use split::{split_indices, split_sizes, Splits};
pub use standardize::Standardizer;
pub use window::{sample_window, WindowSampler};
