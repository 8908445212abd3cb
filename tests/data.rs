//! Integration tests of the data layer: the real built-in files, split determinism, standardisation, and the
//! error message of every bad input. Expected counts come from the data folders' README files (verified there
//! by loading with numpy); bad files are written under a temp dir or built in memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{array, Array2};
use weightflow::data::{
    idx_dataset, load_csv, load_idx, load_idx_labels, parse_csv, parse_idx_images, parse_idx_labels, sample_window,
    split_indices, CsvHeader, CsvOptions, Dataset, DatasetSpec, Error, LabelColumn, Splits, Standardizer,
    WindowSampler, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
use weightflow::rng::rng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn data_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}

fn sum_counts(parts: &[&Dataset]) -> Vec<usize> {
    let mut total = vec![0; parts[0].n_classes];
    for p in parts {
        for (t, c) in total.iter_mut().zip(p.class_counts()) {
            *t += c;
        }
    }
    total
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

// ---------------------------------------------------------------- real files

#[test]
fn uci_heart_has_detectrons_splits() -> TestResult {
    let s = DatasetSpec::UciHeart.load(0)?;
    let shifted = s.shifted.as_ref().ok_or("uci-heart has a shifted split")?;
    let parts = [&s.train, &s.val, &s.test, shifted];
    // data/uci_heart/README.md: rows 358/120/119/323, label=1 139/52/54/264.
    assert_eq!(parts.map(Dataset::len), [358, 120, 119, 323]);
    assert_eq!(parts.map(|p| p.class_counts()[1]), [139, 52, 54, 264]);
    for p in parts {
        assert_eq!((p.n_features(), p.n_classes), (9, 2));
        assert_eq!(p.feature_names, ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang"]);
    }
    // First data line of uci_heart_train.csv.
    assert_eq!(s.train.x.row(0).to_vec(), [44.0, 0.0, 3.0, 108.0, 141.0, 0.0, 0.0, 175.0, 0.0]);
    assert_eq!(s.train.y[0], 0);
    if cfg!(feature = "embedded-data") {
        assert_eq!(s.train.source, "embedded:uci_heart/uci_heart_train.csv");
        assert_eq!(shifted.source, "embedded:uci_heart/uci_heart_ood_test.csv");
    }
    // The seed does not matter: the splits are fixed.
    assert_eq!(DatasetSpec::UciHeart.load(99)?, s);
    Ok(())
}

#[test]
fn digits_is_sklearns_and_split_60_20_20() -> TestResult {
    let s = DatasetSpec::Digits.load(0)?;
    assert_eq!([s.train.len(), s.val.len(), s.test.len()], [1078, 360, 359]);
    assert!(s.shifted.is_none());
    assert_eq!((s.train.n_features(), s.train.n_classes), (64, 10));
    // data/sklearn/README.md: class counts of the 1797 rows.
    assert_eq!(sum_counts(&[&s.train, &s.val, &s.test]), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert!(s.train.x.iter().all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    Ok(())
}

#[test]
fn mnist_test_set_by_path_and_by_name() -> TestResult {
    let all = load_idx(&data_file("mnist/t10k-images-idx3-ubyte.gz"), &data_file("mnist/t10k-labels-idx1-ubyte.gz"))?;
    assert_eq!((all.len(), all.n_features(), all.n_classes), (10_000, 784, 10));
    assert_eq!(all.y[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    assert_eq!(all.class_counts(), counts);
    // data/mnist/README.md: mean pixel 33.79.
    let mean = all.x.iter().map(|&v| f64::from(v)).sum::<f64>() / all.x.len() as f64;
    assert!((mean - 33.79).abs() < 0.01, "mean pixel {mean}");
    assert!(all.x.iter().all(|&v| (0.0..=255.0).contains(&v)));

    let s = DatasetSpec::Mnist.load(3)?;
    assert_eq!([s.train.len(), s.val.len(), s.test.len()], [7_000, 1_000, 2_000]);
    assert_eq!(sum_counts(&[&s.train, &s.val, &s.test]), counts);
    Ok(())
}

#[test]
fn iris_has_a_sklearn_header() -> TestResult {
    let iris = load_csv(&data_file("sklearn/iris.csv"), &CsvOptions::default())?;
    assert_eq!((iris.len(), iris.n_features(), iris.n_classes), (150, 4, 3));
    assert_eq!(iris.class_counts(), [50, 50, 50]);
    assert_eq!(iris.x.row(0).to_vec(), [5.1, 3.5, 1.4, 0.2]);
    let forced = CsvOptions { header: CsvHeader::Sklearn, ..Default::default() };
    assert_eq!(load_csv(&data_file("sklearn/iris.csv"), &forced)?, iris);
    Ok(())
}

#[test]
fn csv_spec_loads_a_users_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mine.csv");
    let mut text = String::from("y,a,b\n");
    for i in 0..10 {
        text.push_str(&format!("{},{i},{}\n", i % 3, 2 * i));
    }
    std::fs::write(&path, text)?;
    let spec: DatasetSpec = format!("csv:{}#label=y", path.display()).parse()?;
    let s = spec.load(1)?;
    assert_eq!([s.train.len(), s.val.len(), s.test.len()], [6, 2, 2]);
    assert_eq!((s.train.feature_names.clone(), s.train.n_classes), (vec!["a".to_string(), "b".to_string()], 3));
    for p in [&s.train, &s.val, &s.test] {
        for (row, &y) in p.x.rows().into_iter().zip(&p.y) {
            assert_eq!(y, row[0] as usize % 3);
        }
    }
    let missing = DatasetSpec::Csv { path: dir.path().join("nope.csv"), label_column: None };
    let err = missing.load(0).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().starts_with(&format!("{}: cannot read", dir.path().join("nope.csv").display())));
    Ok(())
}

// ---------------------------------------------------------------- splits and windows

#[test]
fn splits_are_deterministic_and_partition_the_rows() -> TestResult {
    let n = 103;
    let a = split_indices(n, &[0.6, 0.2, 0.2], &mut rng(5))?;
    assert_eq!(a, split_indices(n, &[0.6, 0.2, 0.2], &mut rng(5))?);
    assert_ne!(a, split_indices(n, &[0.6, 0.2, 0.2], &mut rng(6))?);
    let mut all: Vec<usize> = a.concat();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());

    // The same through Splits, with row i holding feature value i.
    let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f32);
    let data = Dataset::new(x, vec![0; n], 1, "rows")?;
    let s = Splits::random(&data, [0.6, 0.2, 0.2], &mut rng(5))?;
    let rows = |d: &Dataset| d.x.iter().map(|&v| v as usize).collect::<Vec<_>>();
    assert_eq!([rows(&s.train), rows(&s.val), rows(&s.test)], [a[0].clone(), a[1].clone(), a[2].clone()]);

    assert_eq!(DatasetSpec::Digits.load(11)?, DatasetSpec::Digits.load(11)?);
    assert_ne!(DatasetSpec::Digits.load(11)?.train, DatasetSpec::Digits.load(12)?.train);
    Ok(())
}

#[test]
fn windows_from_the_shifted_pool() -> TestResult {
    let pool = DatasetSpec::UciHeart.load(0)?.shifted.ok_or("shifted")?;
    let sampler = WindowSampler::new(&pool, 20, 42)?;
    assert_eq!(sampler.window(5), WindowSampler::new(&pool, 20, 42)?.window(5));
    let mut idx = sampler.indices(5);
    idx.sort_unstable();
    idx.dedup();
    assert_eq!(idx.len(), 20);
    assert_eq!(sample_window(&pool, 10, &mut rng(1))?, sample_window(&pool, 10, &mut rng(1))?);

    let err = sample_window(&pool, 324, &mut rng(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: expected a window size in 1..=323 (distinct rows of the pool), found 324", pool.source)
    );
    assert!(matches!(WindowSampler::new(&pool, 0, 1), Err(Error::WindowSize { requested: 0, available: 323, .. })));
    Ok(())
}

// ---------------------------------------------------------------- standardisation

#[test]
fn standardizer_matches_a_hand_computation() -> TestResult {
    let x = array![[1.0f32, 2.0, 5.0], [3.0, 2.0, -1.0], [8.0, 2.0, 0.5]];
    let s = Standardizer::fit(&x)?;
    // Column 0: mean 12/3 = 4, variance (9 + 1 + 16)/3 = 26/3. Column 1 is constant: mean 2, std set to 1.
    // Column 2: mean 4.5/3 = 1.5, variance (12.25 + 6.25 + 1)/3 = 6.5. Population std (ddof = 0).
    let (mean, std) = ([4.0f64, 2.0, 1.5], [(26.0f64 / 3.0).sqrt(), 1.0, 6.5f64.sqrt()]);
    for j in 0..3 {
        assert!((f64::from(s.mean[j]) - mean[j]).abs() < 1e-6);
        assert!((f64::from(s.std[j]) - std[j]).abs() < 1e-6);
    }
    let data = Dataset::new(x.clone(), vec![0, 1, 0], 2, "small.csv")?;
    let t = s.transform(&data)?;
    for ((i, j), &v) in t.x.indexed_iter() {
        let want = (f64::from(x[[i, j]]) - mean[j]) / std[j];
        assert!((f64::from(v) - want).abs() < 1e-6, "[{i},{j}] {v} vs {want}");
    }
    assert_eq!(t.x.column(1).to_vec(), [0.0, 0.0, 0.0]);
    assert_eq!(t.y, data.y);

    let wrong = Dataset::new(Array2::zeros((2, 4)), vec![0, 0], 1, "wide.csv")?;
    let err = s.transform(&wrong).unwrap_err();
    assert_eq!(err.to_string(), "wide.csv: expected 3 features, found 4");
    let err = s.apply(&mut Array2::zeros((1, 2))).unwrap_err();
    assert_eq!(err.to_string(), "<array>: expected 3 features, found 2");
    Ok(())
}

#[test]
fn standardized_mnist_train_has_zero_mean_and_unit_or_constant_columns() -> TestResult {
    let s = DatasetSpec::Mnist.load(0)?;
    let st = Standardizer::fit(&s.train.x)?;
    let t = st.transform(&s.train)?;
    assert!(t.x.iter().all(|v| v.is_finite()));
    // The corner pixel is 0 in every image: std 1, standardised to 0.
    assert_eq!((st.mean[0], st.std[0]), (0.0, 1.0));
    assert!(t.x.column(0).iter().all(|&v| v == 0.0));
    Ok(())
}

// ---------------------------------------------------------------- bad inputs: IDX and gzip

#[test]
fn truncated_gzip_names_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("labels.gz");
    let good = std::fs::read(data_file("mnist/t10k-labels-idx1-ubyte.gz"))?;
    std::fs::write(&path, &good[..good.len() / 2])?;
    let err = load_idx_labels(&path).unwrap_err();
    assert!(matches!(err, Error::Gzip { .. }));
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: truncated or corrupt gzip stream (failed after ", path.display())), "{msg}");

    let mut corrupt = good.clone();
    corrupt[100] ^= 0xff;
    let err = parse_idx_labels(&corrupt, "corrupt.gz").unwrap_err();
    assert!(err.to_string().starts_with("corrupt.gz: truncated or corrupt gzip stream"), "{err}");
    Ok(())
}

#[test]
fn bad_idx_magic_names_the_offset_and_both_values() {
    let labels = idx(IDX_LABELS_MAGIC, &[1], &[0]);
    let err = parse_idx_images(&labels, "labels-as-images").unwrap_err();
    assert_eq!(
        err.to_string(),
        "labels-as-images: byte offset 0: expected IDX magic 2051 (0x00000803), found 2049 (0x00000801)"
    );
    let err = parse_idx_labels(&gzip(b"PK\x03\x04zip!"), "x.gz").unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.gz (decompressed): byte offset 0: expected IDX magic 2049 (0x00000801), found 1347093252 (0x504b0304)"
    );
}

#[test]
fn truncated_idx_header_and_data() {
    let short = &idx(IDX_IMAGES_MAGIC, &[3, 2, 2], &[])[..10];
    let err = parse_idx_images(short, "short").unwrap_err();
    assert_eq!(err.to_string(), "short: truncated IDX header: expected 16 bytes, found 10");
    let err = parse_idx_labels(&[0, 0], "tiny").unwrap_err();
    assert_eq!(err.to_string(), "tiny: truncated IDX header: expected 4 bytes, found 2");

    let img = idx(IDX_IMAGES_MAGIC, &[3, 2, 2], &[1, 2, 3, 4, 5]);
    let err = parse_idx_images(&gzip(&img), "img.gz").unwrap_err();
    assert_eq!(
        err.to_string(),
        "img.gz (decompressed): truncated IDX data at byte offset 16: expected 12 bytes (dimensions [3, 2, 2]), found 5"
    );
    assert!(matches!(err, Error::IdxData { offset: 16, expected: 12, found: 5, .. }));

    let lab = idx(IDX_LABELS_MAGIC, &[1 << 31], &[1; 7]);
    let err = parse_idx_labels(&lab, "lab").unwrap_err();
    assert_eq!(
        err.to_string(),
        "lab: truncated IDX data at byte offset 8: expected 2147483648 bytes (dimensions [2147483648]), found 7"
    );
}

#[test]
fn label_count_must_match_image_count() -> TestResult {
    let img = idx(IDX_IMAGES_MAGIC, &[3, 1, 1], &[1, 2, 3]);
    let lab = idx(IDX_LABELS_MAGIC, &[2], &[0, 1]);
    let err = idx_dataset(&img, "i.idx", &lab, "l.idx").unwrap_err();
    assert_eq!(err.to_string(), "l.idx: expected 3 labels (one per image of i.idx), found 2");

    let dir = tempfile::tempdir()?;
    let (ip, lp) = (dir.path().join("i.gz"), dir.path().join("l"));
    std::fs::write(&ip, gzip(&img))?;
    std::fs::write(&lp, &lab)?;
    let err = load_idx(&ip, &lp).unwrap_err();
    assert!(matches!(err, Error::IdxCount { images: 3, labels: 2, .. }));
    assert!(err.to_string().contains(&lp.display().to_string()) && err.to_string().contains(&ip.display().to_string()));
    Ok(())
}

// ---------------------------------------------------------------- bad inputs: CSV

/// The error of loading `text` from a temp file (so the message holds a real path), and that path.
fn csv_error(text: &[u8], options: &CsvOptions) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, text).unwrap();
    let err = load_csv(&path, options).expect_err("the file is bad");
    (err.to_string(), path.display().to_string())
}

#[test]
fn ragged_row_names_line_and_counts() {
    let (msg, path) = csv_error(b"a,b,label\n1,2,0\n3,1\n", &CsvOptions::default());
    assert_eq!(msg, format!("{path}:3: expected 3 fields, found 2"));
    let (msg, path) = csv_error(b"1,2,0\n\n3,1,1,4\n", &CsvOptions::default());
    assert_eq!(msg, format!("{path}:3: expected 3 fields, found 4"));
}

#[test]
fn non_numeric_nan_and_inf_cells_are_quoted() {
    let cases: [(&[u8], &str); 6] = [
        (b"a,b,label\n1,abc,0\n", "column 2: expected a number, found \"abc\""),
        (b"a,b,label\n1,,0\n", "column 2: expected a number, found \"\""),
        (b"a,b,label\nNaN,1,0\n", "column 1: expected a finite number, found \"NaN\""),
        (b"a,b,label\n1,inf,0\n", "column 2: expected a finite number, found \"inf\""),
        (b"a,b,label\n1,-Infinity,0\n", "column 2: expected a finite number, found \"-Infinity\""),
        (b"a,b,label\n1e39,1,0\n", "column 1: expected a finite number, found \"1e39\""),
    ];
    for (text, want) in cases {
        let (msg, path) = csv_error(text, &CsvOptions::default());
        assert_eq!(msg, format!("{path}:2: {want}"));
    }
}

#[test]
fn bad_labels_are_rejected() {
    for cell in ["1.5", "-1", "x", "nan", "1e300"] {
        let text = format!("a,label\n1,0\n2,{cell}\n");
        let (msg, path) = csv_error(text.as_bytes(), &CsvOptions::default());
        assert_eq!(msg, format!("{path}:3: column 2: expected a class label, an integer in 0..65536, found {cell:?}"));
    }
    let ds = parse_csv(b"a,label\n1,0\n2,2.0\n", "ok.csv", &CsvOptions::default()).unwrap();
    assert_eq!((ds.y, ds.n_classes), (vec![0, 2], 3));
}

#[test]
fn empty_files_and_missing_label_column() {
    for text in [&b""[..], b"\n  \n\r\n"] {
        let (msg, path) = csv_error(text, &CsvOptions::default());
        assert_eq!(msg, format!("{path}: empty file, expected a header or data rows"));
    }
    let (msg, path) = csv_error(b"a,b,label\n", &CsvOptions::default());
    assert_eq!(msg, format!("{path}: expected data rows after the header line, found none"));
    let (msg, path) = csv_error(&gzip(b""), &CsvOptions::default());
    assert_eq!(msg, format!("{path}: empty file, expected a header or data rows"));

    let by_name = CsvOptions { label_column: LabelColumn::Name("target".into()), ..Default::default() };
    let (msg, path) = csv_error(b"a,b,label\n1,2,0\n", &by_name);
    assert_eq!(msg, format!("{path}:1: expected a label column \"target\", found columns a, b, label"));
    let (msg, path) = csv_error(b"1,2,0\n", &by_name);
    assert_eq!(msg, format!("{path}:1: expected a label column \"target\", found no header and 3 columns"));
}

#[test]
fn non_utf8_and_bad_sklearn_header() {
    let (msg, path) = csv_error(b"a,label\n1,0\n\xff,1\n", &CsvOptions::default());
    assert_eq!(msg, format!("{path}:3: expected UTF-8 text, found invalid bytes"));
    let forced = CsvOptions { header: CsvHeader::Sklearn, ..Default::default() };
    let (msg, path) = csv_error(b"a,b,label\n1,2,0\n", &forced);
    assert_eq!(msg, format!("{path}:1: column 1: expected a number, found \"a\""));
}

#[test]
fn unknown_dataset_lists_the_accepted_names() {
    let err = "cifar10".parse::<DatasetSpec>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown data set \"cifar10\": expected one of uci-heart, digits, mnist, csv:PATH, csv:PATH#label=COLUMN"
    );
}
