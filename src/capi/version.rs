//! Version queries, so that bindings can check at load time that header and library agree.

use super::guard::guard_value;

/// The ABI version: bumped only when functions are *added* (the ABI is never changed in place), so a library
/// serves every caller built against this version or an older one. Bindings check at load time that
/// `wf_abi_version()` is at least the `WF_ABI_VERSION` of the header they were built against.
/// Version 2 added `wf_stream_*` and `wf_window_score`; version 3 added `wf_detector_open_with_provider`.
pub const WF_ABI_VERSION: u32 = 3;

/// The library's version as a NUL-terminated UTF-8 string with static lifetime (`"MAJOR.MINOR.PATCH"`).
/// The caller must not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn wf_version() -> *const std::ffi::c_char {
    // concat! with "\0" keeps the string static: nothing is allocated, so nothing can fail or panic; the guard
    // is there because every entry point has one (tests/capi.rs checks).
    guard_value(std::ptr::null(), || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

/// The ABI version of the loaded library (see `WF_ABI_VERSION`). Thread-safe.
#[no_mangle]
pub extern "C" fn wf_abi_version() -> u32 {
    guard_value(0, || WF_ABI_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_cargo_toml() {
        // SAFETY: wf_version returns a pointer to a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(wf_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(wf_abi_version(), WF_ABI_VERSION);
    }
}
