//! The plain C structs of the ABI. Fields are only ever appended (a struct that carries `struct_size` says
//! which version the caller compiled against).

use std::ffi::c_char;

/// How to open a bundle. Initialise it with `wf_open_options_default()`, then set fields; pass NULL to
/// `wf_detector_open` for all defaults. The library reads it only during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wf_open_options {
    /// `sizeof(wf_open_options)` as the caller compiled it (set by `wf_open_options_default`). Lets later ABI
    /// versions append fields; a size this library does not know is refused with `WF_STATUS_INVALID_ARGUMENT`.
    pub struct_size: usize,
    /// Path of the onnxruntime shared library (`libonnxruntime.so*`), NUL-terminated UTF-8, or NULL to use the
    /// environment variable `ORT_DYLIB_PATH`. Borrowed for the duration of the call only.
    pub onnxruntime_path: *const c_char,
    /// onnxruntime intra-op threads; 0 lets onnxruntime choose.
    pub threads: u32,
}

/// What a detector tells about itself (`wf_detector_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wf_info {
    /// Features per input row (the `n_cols` `wf_detector_score` expects).
    pub n_features: usize,
    /// Classes of the deployed classifier.
    pub n_classes: usize,
    /// Parameters of one classifier (the row length of `wf_detector_generate`'s output).
    pub n_params: usize,
    /// Classifiers in the ensemble that scores a window.
    pub ensemble_size: usize,
    /// The window sizes the bundle is calibrated for, ascending: `n_window_sizes` values owned by the
    /// detector, valid until `wf_detector_free`. The caller must not free them.
    pub window_sizes: *const usize,
    /// Length of `window_sizes`.
    pub n_window_sizes: usize,
    /// The bundle's format version.
    pub bundle_version: u32,
    /// The library's ABI version (as `wf_abi_version()`).
    pub abi_version: u32,
}

/// The verdict on one window (`wf_detector_score`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct wf_score {
    /// p-value of the window under the calibrated null (in distribution); small means shifted.
    pub p_value: f64,
    /// The deciding statistic of the bundle's detector; larger means more shifted.
    pub statistic: f64,
    /// The window is flagged when `statistic > threshold` (the same decision as `p_value <= alpha`).
    pub threshold: f64,
    /// The ensemble members' mean disagreement rate with the deployed classifier on the window.
    pub disagreement: f64,
    /// The raw (uncalibrated) KS p-value of the window's prediction entropies against the reference sample's.
    pub entropy_p: f64,
    /// Ensemble members that voted (the deployed classifier not counted).
    pub ensemble_size: usize,
    /// Whether the window is flagged as harmfully shifted at the bundle's level alpha.
    pub is_shift: bool,
}

/// The ABI's copy of the detect layer's verdict (field for field).
impl From<crate::detect::Score> for wf_score {
    fn from(s: crate::detect::Score) -> Self {
        wf_score {
            p_value: s.p_value,
            statistic: s.statistic,
            threshold: s.threshold,
            disagreement: s.disagreement,
            entropy_p: s.entropy_p,
            ensemble_size: s.ensemble_size,
            is_shift: s.is_shift,
        }
    }
}

/// One window's verdict in a stream (`wf_stream_push`). Added in ABI version 2.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct wf_window_score {
    /// The window's index k (from 0): it holds stream rows `[k·stride, k·stride + window)`.
    pub index: u64,
    /// Stream rows seen when the window completed (`k·stride + window`).
    pub end_row: u64,
    /// The window's verdict, as `wf_detector_score` would give it with seed `seed + k`.
    pub score: wf_score,
}
