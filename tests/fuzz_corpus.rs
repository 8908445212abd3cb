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
    for target in harness::TARGETS {
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
