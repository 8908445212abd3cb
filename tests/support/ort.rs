#![allow(dead_code)] // shared by several test binaries, each using a part
//! Where the tests find onnxruntime: `ORT_DYLIB_PATH` (scripts/test.sh exports it from scripts/setup-ort.sh),
//! else the project's `.venv/` that scripts/setup-ort.sh fills. None: the caller skips and says why.

use std::path::PathBuf;

/// The onnxruntime shared library, if this machine has one set up.
pub fn library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    for py in std::fs::read_dir(lib).ok()?.flatten() {
        let capi = py.path().join("site-packages/onnxruntime/capi");
        if let Ok(entries) = std::fs::read_dir(&capi) {
            let mut libs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
                .collect();
            libs.sort();
            if let Some(p) = libs.into_iter().next() {
                return Some(p);
            }
        }
    }
    None
}

/// The library, or a printed reason to skip (the test then returns early).
pub fn library_or_skip(test: &str) -> Option<PathBuf> {
    let lib = library();
    // CI sets the library up (scripts/test.sh): there a missing one is a failure, not a skip.
    assert!(
        lib.is_some() || std::env::var("CI").as_deref() != Ok("true"),
        "{test}: CI=true but no onnxruntime (scripts/setup-ort.sh exports ORT_DYLIB_PATH)"
    );
    if lib.is_none() {
        eprintln!("skipping {test}: no onnxruntime (run scripts/setup-ort.sh or set ORT_DYLIB_PATH)");
    }
    lib
}

/// `.venv/bin/python` when it can import onnx.
pub fn python_with_onnx() -> Option<PathBuf> {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = std::process::Command::new(&py).args(["-c", "import onnx"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(py)
}
