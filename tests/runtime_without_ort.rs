//! A missing onnxruntime library is an error naming the path tried, never a panic. Its own test binary:
//! a process that has loaded onnxruntime keeps it, so this must run before any successful load.
#![cfg(feature = "runtime")]

use weightflow::runtime::{Detector, OpenOptions, RuntimeError};

#[path = "support/junk_bundle.rs"]
mod junk_bundle;
use junk_bundle::junk_bundle;

#[test]
fn a_missing_library_is_reported_with_its_path() -> Result<(), Box<dyn std::error::Error>> {
    let bundle = junk_bundle("tests/runtime_without_ort.rs");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("b.wfb");
    bundle.write(&path)?;
    let missing = dir.path().join("no/libonnxruntime.so");
    let err = Detector::open(&path, &OpenOptions { onnxruntime: Some(missing.clone()), ..OpenOptions::default() })
        .unwrap_err();
    match &err {
        RuntimeError::OnnxRuntimeUnavailable { path, .. } => assert_eq!(path, &missing),
        other => panic!("expected OnnxRuntimeUnavailable, got {other}"),
    }
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
    // A file that is not a shared library at all.
    let foreign = dir.path().join("libfake.so");
    std::fs::write(&foreign, b"not a library")?;
    let err = Detector::open(&path, &OpenOptions { onnxruntime: Some(foreign), ..OpenOptions::default() }).unwrap_err();
    assert!(matches!(err, RuntimeError::OnnxRuntimeUnavailable { .. }), "{err}");
    Ok(())
}
