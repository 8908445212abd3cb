//! The data sets weightflow knows by name, and how each is split.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::csv::{load_csv, parse_csv, CsvHeader, CsvOptions, LabelColumn};
use super::error::{Error, Result};
use super::idx::idx_dataset;
use super::split::Splits;
use crate::rng::stream;

/// The RNG stream of a seed that seeded splits draw from (`"SPLIT"` in ASCII), apart from the streams
/// `0, 1, 2, …` that per-run and per-window draws use.
pub const SPLIT_STREAM: u64 = 0x53_50_4c_49_54;

/// The names [`DatasetSpec::from_str`] accepts.
pub const DATASET_NAMES: &[&str] = &["uci-heart", "digits", "mnist", "csv:PATH", "csv:PATH#label=COLUMN"];

/// A data set by name; parses from and prints as `uci-heart`, `digits`, `mnist`, `csv:PATH` or
/// `csv:PATH#label=COLUMN`, and is serialised as that string.
///
/// | name | file(s) under `data/` | splits |
/// |---|---|---|
/// | `uci-heart` | `uci_heart/uci_heart_{train,val,iid_test,ood_test}.csv` | Detectron's fixed splits 358/120/119, shifted = `ood_test` (323) |
/// | `digits` | `sklearn/digits.csv.gz` (1797 × 64) | seeded 60/20/20 |
/// | `mnist` | `mnist/t10k-{images-idx3,labels-idx1}-ubyte.gz` (10,000 × 784) | seeded 7,000/1,000/2,000 |
/// | `csv:PATH` | any CSV ([`parse_csv`](crate::data::parse_csv), header detected) | seeded 60/20/20 |
///
/// With the `embedded-data` feature (on by default) the files are compiled into the library and errors call
/// them `embedded:<name>`; without it they are read at run time from `$WEIGHTFLOW_DATA_DIR`, or else from the
/// crate's `data/` directory as it was at build time. Seeded splits draw from
/// `crate::rng::stream(seed, SPLIT_STREAM)`. Nothing is standardised here: the trainer fits a
/// [`Standardizer`](crate::data::Standardizer) on `train` and stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatasetSpec {
    /// UCI heart disease, Detectron's preprocessed splits (9 features, 2 classes).
    UciHeart,
    /// sklearn's optical digits (8×8 images, 64 features, 10 classes).
    Digits,
    /// The MNIST test set (28×28 images, 784 features, 10 classes).
    Mnist,
    /// A CSV file of the user's.
    Csv {
        /// The file (a path that is not UTF-8 prints lossily and so does not round-trip).
        path: PathBuf,
        /// The label column's name in the header, else the last column.
        label_column: Option<String>,
    },
}

macro_rules! builtin_files {
    ($($name:ident = $rel:literal;)*) => {
        $(const $name: &str = $rel;)*
        #[cfg(feature = "embedded-data")]
        static EMBEDDED: &[(&str, &[u8])] =
            &[$(($rel, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/", $rel)))),*];
    };
}

builtin_files! {
    UCI_TRAIN = "uci_heart/uci_heart_train.csv";
    UCI_VAL = "uci_heart/uci_heart_val.csv";
    UCI_IID_TEST = "uci_heart/uci_heart_iid_test.csv";
    UCI_OOD_TEST = "uci_heart/uci_heart_ood_test.csv";
    DIGITS = "sklearn/digits.csv.gz";
    MNIST_IMAGES = "mnist/t10k-images-idx3-ubyte.gz";
    MNIST_LABELS = "mnist/t10k-labels-idx1-ubyte.gz";
}

/// A built-in file: its name for errors and its bytes.
struct DataFile {
    source: String,
    bytes: Cow<'static, [u8]>,
}

#[cfg(feature = "embedded-data")]
fn builtin_file(rel: &str) -> Result<DataFile> {
    let (_, bytes) = EMBEDDED.iter().find(|(name, _)| *name == rel).expect("every built-in file is embedded");
    Ok(DataFile { source: format!("embedded:{rel}"), bytes: Cow::Borrowed(bytes) })
}

#[cfg(not(feature = "embedded-data"))]
fn builtin_file(rel: &str) -> Result<DataFile> {
    let (dir, from_env) = data_dir();
    file_from_dir(&dir, rel, from_env)
}

/// `$WEIGHTFLOW_DATA_DIR` (and `true`), else the crate's `data/` directory at build time.
#[cfg_attr(feature = "embedded-data", allow(dead_code))]
fn data_dir() -> (PathBuf, bool) {
    match std::env::var_os("WEIGHTFLOW_DATA_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")), false),
    }
}

#[cfg_attr(feature = "embedded-data", allow(dead_code))]
fn file_from_dir(dir: &Path, rel: &str, from_env: bool) -> Result<DataFile> {
    let path = dir.join(rel);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(DataFile { source: path.display().to_string(), bytes: Cow::Owned(bytes) }),
        Err(source) => Err(Error::BuiltinMissing { file: rel.to_owned(), path, from_env, source }),
    }
}

fn builtin_csv(rel: &str, options: &CsvOptions) -> Result<super::Dataset> {
    let f = builtin_file(rel)?;
    parse_csv(&f.bytes, &f.source, options)
}

impl DatasetSpec {
    /// Loads the data set and splits it (see [`DatasetSpec`]); `seed` fixes the random splits and is
    /// unused by `uci-heart`. Features are not standardised.
    pub fn load(&self, seed: u64) -> Result<Splits> {
        let mut rng = stream(seed, SPLIT_STREAM);
        match self {
            DatasetSpec::UciHeart => {
                let options = CsvOptions { header: CsvHeader::Named, label_column: LabelColumn::Name("label".into()) };
                Ok(Splits {
                    train: builtin_csv(UCI_TRAIN, &options)?,
                    val: builtin_csv(UCI_VAL, &options)?,
                    test: builtin_csv(UCI_IID_TEST, &options)?,
                    shifted: Some(builtin_csv(UCI_OOD_TEST, &options)?),
                })
            }
            DatasetSpec::Digits => {
                let options = CsvOptions { header: CsvHeader::Absent, label_column: LabelColumn::Last };
                Splits::random(&builtin_csv(DIGITS, &options)?, [0.6, 0.2, 0.2], &mut rng)
            }
            DatasetSpec::Mnist => {
                let (images, labels) = (builtin_file(MNIST_IMAGES)?, builtin_file(MNIST_LABELS)?);
                let all = idx_dataset(&images.bytes, &images.source, &labels.bytes, &labels.source)?;
                Splits::random_sizes(&all, [7_000, 1_000, 2_000], &mut rng)
            }
            DatasetSpec::Csv { path, label_column } => {
                let label_column = label_column.clone().map_or(LabelColumn::Last, LabelColumn::Name);
                let data = load_csv(path, &CsvOptions { header: CsvHeader::Auto, label_column })?;
                Splits::random(&data, [0.6, 0.2, 0.2], &mut rng)
            }
        }
    }

    /// Loads the data set's splits (see [`Self::load`]) and applies `task` to each of them
    /// ([`Splits::shifted`], its randomness from `seed`): the data of base runs trained on a variant of the
    /// set, such as rotated digits. `None` is [`Self::load`].
    pub fn load_task(&self, seed: u64, task: Option<&super::Shift>) -> Result<Splits> {
        let splits = self.load(seed)?;
        match task {
            Some(shift) => splits.shifted(shift, seed),
            None => Ok(splits),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::UciHeart => f.write_str("uci-heart"),
            DatasetSpec::Digits => f.write_str("digits"),
            DatasetSpec::Mnist => f.write_str("mnist"),
            DatasetSpec::Csv { path, label_column: None } => write!(f, "csv:{}", path.display()),
            DatasetSpec::Csv { path, label_column: Some(c) } => write!(f, "csv:{}#label={c}", path.display()),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || Error::UnknownDataset { name: s.to_owned(), accepted: DATASET_NAMES };
        match s {
            "uci-heart" => Ok(DatasetSpec::UciHeart),
            "digits" => Ok(DatasetSpec::Digits),
            "mnist" => Ok(DatasetSpec::Mnist),
            _ => {
                let rest = s.strip_prefix("csv:").ok_or_else(unknown)?;
                let (path, label_column) = match rest.rsplit_once("#label=") {
                    Some((path, column)) if !column.is_empty() => (path, Some(column.to_owned())),
                    Some(_) => return Err(unknown()),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(unknown());
                }
                Ok(DatasetSpec::Csv { path: path.into(), label_column })
            }
        }
    }
}

impl TryFrom<String> for DatasetSpec {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DatasetSpec> for String {
    fn from(spec: DatasetSpec) -> String {
        spec.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_and_serde() -> std::result::Result<(), Box<dyn std::error::Error>> {
        for name in ["uci-heart", "digits", "mnist", "csv:a/b.csv", "csv:x.csv#label=y", "csv:a#b.csv"] {
            let spec: DatasetSpec = name.parse()?;
            assert_eq!(spec.to_string(), name);
            let json = serde_json::to_string(&spec)?;
            assert_eq!(json, format!("{name:?}"));
            assert_eq!(serde_json::from_str::<DatasetSpec>(&json)?, spec);
        }
        let spec: DatasetSpec = "csv:d/x.csv#label=y".parse()?;
        assert_eq!(spec, DatasetSpec::Csv { path: "d/x.csv".into(), label_column: Some("y".into()) });
        Ok(())
    }

    #[test]
    fn bad_names_list_the_accepted_ones() {
        for bad in ["cifar", "csv:", "csv:x.csv#label=", "MNIST"] {
            let err = bad.parse::<DatasetSpec>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("unknown data set {bad:?}: expected one of uci-heart, digits, mnist, csv:PATH, csv:PATH#label=COLUMN")
            );
        }
        assert!(serde_json::from_str::<DatasetSpec>("\"cifar\"").unwrap_err().to_string().contains("unknown data set"));
    }

    #[test]
    fn missing_data_dir_names_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = file_from_dir(dir.path(), MNIST_LABELS, true).err().expect("no such file");
        let msg = err.to_string();
        assert!(msg.starts_with("mnist/t10k-labels-idx1-ubyte.gz: built-in data file not found at "), "{msg}");
        assert!(msg.contains(&dir.path().join(MNIST_LABELS).display().to_string()), "{msg}");
        assert!(msg.contains("looked in $WEIGHTFLOW_DATA_DIR"), "{msg}");
        let (dir, _) = data_dir();
        assert!(file_from_dir(&dir, DIGITS, false).is_ok() || std::env::var_os("WEIGHTFLOW_DATA_DIR").is_some());
    }
}
