//! `wf_detector_open` on bundles it must refuse — truncated, bit-flipped, foreign, of a future format version,
//! missing — and with an onnxruntime library that is not there: each a status and a message, never a crash.
//! Its own test binary: none of these loads onnxruntime, and the missing-library case needs a process that
//! has not loaded it yet.
#![cfg(feature = "runtime")]

use std::ffi::{CStr, CString};
use std::path::Path;

use weightflow::bundle::{Bundle, FORMAT_VERSION};
use weightflow::capi::*;

#[path = "support/junk_bundle.rs"]
mod junk_bundle;
use junk_bundle::junk_bundle;

/// A well-formed bundle whose ONNX bytes are junk: every case here fails before onnxruntime would read them.
fn bundle_bytes() -> Vec<u8> {
    junk_bundle("tests/capi_bundle.rs").to_bytes().unwrap()
}

/// Opens `path` through the C ABI with `onnxruntime` as the library path; returns the status and message.
fn open(path: &Path, onnxruntime: Option<&Path>) -> (wf_status, String) {
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let c_ort = onnxruntime.map(|p| CString::new(p.to_str().unwrap()).unwrap());
    let mut options = wf_open_options_default();
    options.onnxruntime_path = c_ort.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    let mut det = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and out slots for the call's duration.
    let status = unsafe { wf_detector_open(c_path.as_ptr(), &options, &mut det, &mut err) };
    assert_ne!(status, wf_status::Ok, "{} opened", path.display());
    assert!(det.is_null(), "a failed open must leave *out untouched");
    // SAFETY: the failed call handed back a live error; freed once.
    unsafe {
        assert_eq!(wf_error_status(err), status);
        let message = CStr::from_ptr(wf_error_message(err)).to_str().unwrap().to_owned();
        wf_error_free(err);
        (status, message)
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn damaged_foreign_future_and_missing_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = bundle_bytes();
    // The ONNX section is junk, so the good bundle fails only at onnxruntime: its bytes pass every check.
    assert!(Bundle::from_bytes(&good).is_ok());

    let truncated = write(dir.path(), "truncated.wfb", &good[..good.len() - 7]);
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    let flipped = write(dir.path(), "flipped.wfb", &flipped);
    let foreign =
        write(dir.path(), "foreign.wfb", b"\x89PNG\r\n\x1a\n not a bundle at all, but long enough to have a header");
    let mut future = good.clone();
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let future = write(dir.path(), "future.wfb", &future);
    let missing = dir.path().join("missing.wfb");

    for (path, status) in [
        (&truncated, wf_status::BundleCorrupt),
        (&flipped, wf_status::BundleCorrupt),
        (&foreign, wf_status::NotABundle),
        (&future, wf_status::UnsupportedVersion),
        (&missing, wf_status::Io),
    ] {
        let (got, message) = open(path, None);
        assert_eq!(got, status, "{}: {message}", path.display());
        assert!(!message.is_empty());
    }
    let (_, message) = open(&future, None);
    assert!(message.contains(&(FORMAT_VERSION + 1).to_string()), "{message}");
}

#[test]
fn a_missing_onnxruntime_library_is_a_status_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.wfb", &bundle_bytes());
    let lib = dir.path().join("nowhere/libonnxruntime.so");
    let (status, message) = open(&good, Some(&lib));
    assert_eq!(status, wf_status::OnnxruntimeUnavailable, "{message}");
    assert!(message.contains(lib.to_str().unwrap()), "{message}");
}
