//! `wf_status`: the stable numbering of every outcome a `wf_` function reports.
//!
//! Codes are grouped by layer (call and arguments 0–99, bundle 100–199, onnxruntime 200–299, detection
//! 300–399). They are append-only: a code is never renumbered or reused; a retired one stays as `// reserved`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
