//! `wf_status`: the stable numbering of every outcome a `wf_` function reports.
//!
//! Codes are grouped by layer (call and arguments 0–99, bundle 100–199, onnxruntime 200–299, detection
//! 300–399). They are append-only: a code is never renumbered or reused; a retired one stays as `// reserved`.

use std::ffi::{c_char, CStr};

use super::guard::guard_value;

/// The outcome of a `wf_` call. `WF_STATUS_OK` (0) is success; every other value is a failure whose detail is
/// in the `wf_error` the call hands back. New codes may be added in later ABI versions: treat an unknown code
/// as a generic failure.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum wf_status {
    /// Success.
    Ok = 0,
    /// An argument has a wrong value: a zero or inconsistent size, a NaN/Inf input, the wrong number of
    /// features, a string that is not UTF-8, an options struct of an unknown size.
    InvalidArgument = 1,
    /// A pointer argument that must not be NULL was NULL.
    NullPointer = 2,
    /// A bug inside the library: a Rust panic was caught at the boundary. The message says where.
    Panic = 3,
    /// The library was built without the part this call needs (e.g. without the `runtime` feature).
    NotBuiltIn = 4,
    /// A pointer argument is not aligned for its type.
    Misaligned = 5,
    /// The file is not a weightflow bundle (wrong magic, e.g. another file format).
    NotABundle = 100,
    /// The file is a bundle but damaged: truncated, a checksum mismatch, inconsistent shapes.
    BundleCorrupt = 101,
    /// The bundle's format version is one this library does not read (e.g. written by a newer weightflow).
    UnsupportedVersion = 102,
    /// Reading the bundle failed (missing file, permissions, …).
    Io = 103,
    /// The onnxruntime shared library could not be found or loaded.
    OnnxruntimeUnavailable = 200,
    /// onnxruntime reported an error while building or running the meta-model.
    Onnxruntime = 201,
    /// Scoring failed inside the detector (e.g. no calibration for this window size).
    Detect = 300,
}

impl wf_status {
    /// Every code, in numbering order (for tests and bindings that mirror the table).
    pub const ALL: [wf_status; 13] = [
        wf_status::Ok,
        wf_status::InvalidArgument,
        wf_status::NullPointer,
        wf_status::Panic,
        wf_status::NotBuiltIn,
        wf_status::Misaligned,
        wf_status::NotABundle,
        wf_status::BundleCorrupt,
        wf_status::UnsupportedVersion,
        wf_status::Io,
        wf_status::OnnxruntimeUnavailable,
        wf_status::Onnxruntime,
        wf_status::Detect,
    ];
}

impl wf_status {
    /// The code's name as the header spells it, NUL-terminated.
    fn name(self) -> &'static CStr {
        match self {
            wf_status::Ok => c"WF_STATUS_OK",
            wf_status::InvalidArgument => c"WF_STATUS_INVALID_ARGUMENT",
            wf_status::NullPointer => c"WF_STATUS_NULL_POINTER",
            wf_status::Panic => c"WF_STATUS_PANIC",
            wf_status::NotBuiltIn => c"WF_STATUS_NOT_BUILT_IN",
            wf_status::Misaligned => c"WF_STATUS_MISALIGNED",
            wf_status::NotABundle => c"WF_STATUS_NOT_A_BUNDLE",
            wf_status::BundleCorrupt => c"WF_STATUS_BUNDLE_CORRUPT",
            wf_status::UnsupportedVersion => c"WF_STATUS_UNSUPPORTED_VERSION",
            wf_status::Io => c"WF_STATUS_IO",
            wf_status::OnnxruntimeUnavailable => c"WF_STATUS_ONNXRUNTIME_UNAVAILABLE",
            wf_status::Onnxruntime => c"WF_STATUS_ONNXRUNTIME",
            wf_status::Detect => c"WF_STATUS_DETECT",
        }
    }
}

/// The name of a status code as the header spells it (`"WF_STATUS_INVALID_ARGUMENT"`), or
/// `"WF_STATUS_UNKNOWN"` for a number this library does not define (e.g. from a newer header). Static
/// NUL-terminated string: the caller must not free it. Thread-safe. Takes a plain integer so that any value is
/// safe to pass.
#[no_mangle]
pub extern "C" fn wf_status_name(status: u32) -> *const c_char {
    guard_value(c"WF_STATUS_UNKNOWN".as_ptr(), || {
        wf_status::ALL.iter().find(|s| **s as u32 == status).map_or(c"WF_STATUS_UNKNOWN", |s| s.name()).as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_header() {
        // SAFETY: wf_status_name returns static NUL-terminated strings.
        let name = |n: u32| unsafe { CStr::from_ptr(wf_status_name(n)) }.to_str().unwrap().to_owned();
        assert_eq!(name(1), "WF_STATUS_INVALID_ARGUMENT");
        assert_eq!(name(102), "WF_STATUS_UNSUPPORTED_VERSION");
        assert_eq!(name(6), "WF_STATUS_UNKNOWN");
        assert_eq!(name(u32::MAX), "WF_STATUS_UNKNOWN");
        let header = include_str!(concat!(env!("OUT_DIR"), "/weightflow.h"));
        for s in wf_status::ALL {
            let line = format!("{} = {},", name(s as u32), s as u32);
            assert!(header.contains(&line), "header lacks {line:?}");
        }
    }

    #[test]
    fn codes_keep_their_published_numbers() {
        // The numbers are the ABI: this table is written out by hand from the header, not derived from the enum.
        let published: [(wf_status, u32); 13] = [
            (wf_status::Ok, 0),
            (wf_status::InvalidArgument, 1),
            (wf_status::NullPointer, 2),
            (wf_status::Panic, 3),
            (wf_status::NotBuiltIn, 4),
            (wf_status::Misaligned, 5),
            (wf_status::NotABundle, 100),
            (wf_status::BundleCorrupt, 101),
            (wf_status::UnsupportedVersion, 102),
            (wf_status::Io, 103),
            (wf_status::OnnxruntimeUnavailable, 200),
            (wf_status::Onnxruntime, 201),
            (wf_status::Detect, 300),
        ];
        for (status, number) in published {
            assert_eq!(status as u32, number, "{status:?}");
        }
        assert_eq!(wf_status::ALL.len(), published.len());
    }
}
