//! The C ABI as a C caller sees it: every entry point behind the panic guard, and `wf_detector_open` refusing what it cannot open with a status and a message.

use std::ffi::CStr;

use weightflow::capi::*;

/// Every `extern "C"` function body in src/capi must start with `guard(` or `guard_value(`: a panic that
/// escapes into C is undefined behaviour, so no entry point may skip the guard (rustls-ffi misses some).
#[test]
fn every_entry_point_goes_through_the_guard() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/capi");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for (at, _) in source.match_indices("extern \"C\" fn ") {
            let name: String = source[at + 14..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // The body starts at the first `{` after the signature (no signature here contains a brace).
            let body = &source[at + source[at..].find('{').expect("a body") + 1..];
            // Comment lines may come first.
            let first = body.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("//")).unwrap_or("");
            assert!(
                first.starts_with("guard(") || first.starts_with("guard_value("),
                "{}: `{name}` does not start with guard(…) or guard_value(…)",
                path.display()
            );
            checked += 1;
        }
    }
    // wf_version, wf_abi_version, 3 error functions, 6 detector functions.
    assert!(checked >= 11, "only {checked} entry points found: did the sources move?");
}

fn take(err: *mut wf_error) -> (wf_status, String) {
    assert!(!err.is_null());
    // SAFETY: a live error from the library, freed once.
    unsafe {
        let out = (wf_error_status(err), CStr::from_ptr(wf_error_message(err)).to_str().unwrap().to_owned());
        wf_error_free(err);
        out
    }
}

#[test]
fn error_functions_accept_null() {
    // SAFETY: NULL is documented as accepted by all three.
    unsafe {
        assert_eq!(wf_error_status(std::ptr::null()), wf_status::NullPointer);
        assert!(wf_error_message(std::ptr::null()).is_null());
        wf_error_free(std::ptr::null_mut());
        wf_detector_free(std::ptr::null_mut());
    }
}

#[test]
fn open_refuses_a_null_path_and_leaves_out_untouched() {
    let mut det = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: valid out slots; the NULL path is what is tested.
    let s = unsafe { wf_detector_open(std::ptr::null(), std::ptr::null(), &mut det, &mut err) };
    assert_eq!(s, wf_status::NullPointer);
    assert_eq!(take(err), (wf_status::NullPointer, "`bundle_path` is NULL".to_owned()));
    assert!(det.is_null());
}

#[cfg(not(feature = "runtime"))]
#[test]
fn open_without_the_runtime_feature_reports_not_built_in() {
    let mut det = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: valid pointers.
    let s = unsafe { wf_detector_open(c"bundle.wfb".as_ptr(), std::ptr::null(), &mut det, &mut err) };
    assert_eq!(s, wf_status::NotBuiltIn);
    let (status, message) = take(err);
    assert_eq!(status, wf_status::NotBuiltIn);
    assert!(message.contains("bundle.wfb") && message.contains("runtime"), "{message}");
    assert!(det.is_null());
}
