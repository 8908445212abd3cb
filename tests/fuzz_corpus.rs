//! Replays every input of the fuzz corpus (fuzz/corpus/<target>/) through the fuzz harnesses on stable Rust,
//! so the parsers are checked against every input fuzzing ever kept, in every test run. Fuzzing itself:
//! `scripts/fuzz.sh` (nightly, outside CI).

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

#[test]
fn every_corpus_input_is_refused_or_accepted_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for target in harness::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut files = 0;
        for entry in entries {
            let path = entry.expect("a readable corpus entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| harness::run(target, &bytes));
            assert!(outcome.is_ok(), "{target}: {} made the harness panic", path.display());
            files += 1;
        }
        assert!(files > 0, "{}: an empty corpus replays nothing", dir.display());
        replayed += files;
    }
    eprintln!("replayed {replayed} corpus inputs");
}
