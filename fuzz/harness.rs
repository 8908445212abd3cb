// The fuzz harnesses: what each target does with one input. Shared by the libFuzzer targets
// (fuzz_targets/*.rs, nightly) and the corpus replay in the ordinary test suite (tests/fuzz_corpus.rs, stable),
// so both run exactly the same code. Every call may return an error; none may panic, hang or abort.

use weightflow::bundle::Bundle;
use weightflow::data::{
    parse_csv, parse_features_csv, parse_idx_images, parse_idx_labels, CsvHeader, CsvOptions, LabelColumn,
};

/// The names of the targets, each a folder under `fuzz/corpus/`.
#[allow(dead_code)]
pub const TARGETS: &[&str] = &["csv", "idx_images", "idx_labels", "bundle", "features_csv"];

/// Run target `name` on `bytes`.
pub fn run(name: &str, bytes: &[u8]) {
    match name {
        "csv" => csv(bytes),
        "idx_images" => drop(parse_idx_images(bytes, "fuzz")),
        "idx_labels" => drop(parse_idx_labels(bytes, "fuzz")),
        "bundle" => bundle(bytes),
        "features_csv" => {
            if let Ok(x) = parse_features_csv(bytes, "fuzz.csv") {
                assert!(x.nrows() > 0 && x.iter().all(|v| v.is_finite()));
            }
        }
        other => panic!("unknown fuzz target {other:?}"),
    }
}

fn csv(bytes: &[u8]) {
    let headers = [CsvHeader::Auto, CsvHeader::Named, CsvHeader::Absent, CsvHeader::Sklearn];
    let labels = [LabelColumn::Last, LabelColumn::Index(0), LabelColumn::Name("label".into())];
    for header in &headers {
        for label_column in &labels {
            let options = CsvOptions { header: header.clone(), label_column: label_column.clone() };
            if let Ok(ds) = parse_csv(bytes, "fuzz.csv", &options) {
                // What the loader accepts must be a consistent data set.
                assert_eq!(ds.x.nrows(), ds.y.len());
                assert!(ds.y.iter().all(|&y| y < ds.n_classes));
                assert!(ds.x.iter().all(|v| v.is_finite()));
            }
        }
    }
}

/// The strict bundle reader (what `wf_detector_open` runs on a file before onnxruntime sees anything). What it
/// accepts must pass its own validation and write back to bytes that read as the same bundle.
fn bundle(bytes: &[u8]) {
    if let Ok(b) = Bundle::from_bytes(bytes) {
        b.validate().expect("an accepted bundle is valid");
        let again = Bundle::from_bytes(&b.to_bytes().expect("an accepted bundle writes")).expect("and reads back");
        assert_eq!(again.f, b.f);
        assert_eq!(again.pool, b.pool);
        assert_eq!(again.p_labels, b.p_labels);
    }
}
