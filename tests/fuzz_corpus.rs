//! Replays every input of the fuzz seeds and corpus (fuzz/{seeds,corpus}/<target>/) through the fuzz harnesses on stable Rust,
//! so the parsers are checked against every input fuzzing ever kept, in every test run. Fuzzing itself:
//! `scripts/fuzz.sh` (nightly, outside CI).

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_corpus_input_is_refused_or_accepted_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    // capi_score opens a detector through wf_detector_open, which loads onnxruntime (never run: the bundle
    // stores its pool); without the library that target is skipped here (a failure under CI=true).
    let ort = ort::library_or_skip("fuzz_corpus capi_score");
    if let Some(lib) = &ort {
        let _ = harness::ONNXRUNTIME.set(lib.clone());
    }
    for target in harness::TARGETS {
        if *target == "capi_score" && ort.is_none() {
            continue;
        }
        let seeds = root.join("seeds").join(target);
        let corpus = root.join("corpus").join(target);
        let read = |dir: &Path| std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        // The corpus folder appears once fuzzing has run; the seeds are always there.
        let entries =
            read(&seeds).chain(if corpus.exists() { Some(read(&corpus)) } else { None }.into_iter().flatten());
        let mut files = 0;
        for entry in entries {
            let path = entry.expect("a readable corpus entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| harness::run(target, &bytes));
            assert!(outcome.is_ok(), "{target}: {} made the harness panic", path.display());
            files += 1;
        }
        assert!(files > 0, "{}: no seeds, nothing replays", seeds.display());
        replayed += files;
    }
    eprintln!("replayed {replayed} corpus inputs");
}

#[path = "support/ort.rs"]
mod ort;

#[path = "support/junk_bundle.rs"]
mod junk_bundle;

/// The `bundle` and `bundle_digests` targets' seeds are real bundles of the current format, with and without
/// a stored pool; they are regenerated (`WF_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_corpus`) when the format
/// changes, and this test fails while they are stale, so the fuzzer always starts from what the reader accepts
/// today.
#[test]
fn the_bundle_seeds_are_bundles_of_the_current_format() {
    let without = junk_bundle::junk_bundle("fuzz seed");
    let mut with = without.clone();
    with.pool = Some(ndarray::Array2::from_shape_fn((1, with.f.len()), |(_, j)| j as f32 * 0.25 - 0.5));
    for target in ["bundle", "bundle_digests"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
        for (name, b) in [("pool.wfb", &with), ("no_pool.wfb", &without)] {
            let bytes = b.to_bytes().expect("the seed bundle is valid");
            let path = dir.join(name);
            if std::env::var_os("WF_WRITE_FUZZ_SEEDS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(committed == bytes, "{} is stale: rerun with WF_WRITE_FUZZ_SEEDS=1", path.display());
            assert_eq!(weightflow::bundle::Bundle::from_bytes(&committed).unwrap().pool, b.pool);
        }
    }
}
