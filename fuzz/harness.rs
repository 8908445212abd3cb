// The fuzz harnesses: what each target does with one input. Shared by the libFuzzer targets
// (fuzz_targets/*.rs, nightly) and the corpus replay in the ordinary test suite (tests/fuzz_corpus.rs, stable),
// so both run exactly the same code. Every call may return an error; none may panic, hang or abort.

use weightflow::bundle::Bundle;
use weightflow::data::{
    parse_csv, parse_features_csv, parse_idx_images, parse_idx_labels, CsvHeader, CsvOptions, LabelColumn,
};

/// The names of the targets, each a folder under `fuzz/corpus/`.
#[allow(dead_code)]
pub const TARGETS: &[&str] = &["csv", "idx_images", "idx_labels", "bundle", "bundle_digests", "features_csv"];

/// Run target `name` on `bytes`.
pub fn run(name: &str, bytes: &[u8]) {
    match name {
        "csv" => csv(bytes),
        "idx_images" => drop(parse_idx_images(bytes, "fuzz")),
        "idx_labels" => drop(parse_idx_labels(bytes, "fuzz")),
        "bundle" => bundle(bytes),
        "bundle_digests" => {
            if let Some(repaired) = with_repaired_digests(bytes) {
                bundle(&repaired);
            }
        }
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

/// `bytes` with the manifest's section digests and the header's manifest digest recomputed, so that mutations
/// reach the manifest's JSON, the sections table and the safetensors parser instead of stopping at the first
/// sha256 check (which the `bundle` target covers). None when the bytes have no header or no JSON manifest.
fn with_repaired_digests(bytes: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    const HEADER: usize = 52; // magic 8, version 4, manifest length 8, manifest sha256 32
    let hex = |b: &[u8]| Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let len = usize::try_from(u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?)).ok()?;
    let end = HEADER.checked_add(len)?;
    let manifest = bytes.get(HEADER..end)?;
    let data = &bytes[end..];
    let mut m: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    if let Some(sections) = m.get_mut("sections").and_then(|s| s.as_array_mut()) {
        for s in sections {
            let range = || -> Option<&[u8]> {
                let offset = usize::try_from(s.get("offset")?.as_u64()?).ok()?;
                let length = usize::try_from(s.get("length")?.as_u64()?).ok()?;
                data.get(offset..offset.checked_add(length)?)
            };
            if let Some(slice) = range() {
                s["sha256"] = serde_json::Value::String(hex(slice));
            }
        }
    }
    let json = serde_json::to_vec(&m).ok()?;
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&json));
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    Some(out)
}
