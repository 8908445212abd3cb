//! `wf_detector`: open a bundle, describe it, score windows, generate classifiers.
//!
//! A detector is immutable after `wf_detector_open`: `wf_detector_info`, `wf_detector_score` and
//! `wf_detector_generate` may be called on one detector from many threads at once. `wf_detector_free` must not
//! race with any other call on the same detector.

use std::ffi::c_char;
use std::path::Path;

use ndarray::ArrayView2;

use super::backend::{self, Backend, Info, OpenSettings};
use super::error::{wf_error, CapiError};
use super::guard::{arg_out, arg_ref, arg_slice, arg_slice_mut, arg_str, guard, guard_value};
use super::status::wf_status;
use super::types::{wf_info, wf_open_options, wf_score};
use super::version::WF_ABI_VERSION;

/// An opened bundle: opaque; created by `wf_detector_open`, released by `wf_detector_free`.
/// Thread-safe for every call except `wf_detector_free`.
pub struct wf_detector {
    backend: Box<dyn Backend>,
    info: Info,
}

impl wf_detector {
    pub(crate) fn from_backend(backend: Box<dyn Backend>) -> Self {
        let info = backend.info();
        wf_detector { backend, info }
    }

    /// The facts read at open.
    pub(crate) fn info(&self) -> &Info {
        &self.info
    }

    /// The detector behind the ABI.
    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }
}

/// The `n_rows × n_cols` floats at `rows`, checked: a non-empty block of the detector's feature count, no
/// overflow, a valid pointer, every value finite (the one check of `wf_detector_score` and `wf_stream_push`).
///
/// # Safety
/// `rows` is NULL or points to `n_rows * n_cols` floats that live for `'a`.
pub(crate) unsafe fn window_values<'a>(
    det: &wf_detector,
    rows: *const f32,
    n_rows: usize,
    n_cols: usize,
) -> Result<&'a [f32], CapiError> {
    if n_rows == 0 || n_cols == 0 {
        return Err(CapiError::invalid(format!("the window is empty: n_rows = {n_rows}, n_cols = {n_cols}")));
    }
    if n_cols != det.info.n_features {
        return Err(CapiError::invalid(format!(
            "n_cols is {n_cols}, the bundle's classifier takes {} features",
            det.info.n_features
        )));
    }
    let len = n_rows
        .checked_mul(n_cols)
        .ok_or_else(|| CapiError::invalid(format!("n_rows × n_cols overflows: {n_rows} × {n_cols}")))?;
    let values = unsafe { arg_slice(rows, len, "rows") }?;
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(CapiError::invalid(format!(
            "rows[{}][{}] is {}: every feature must be finite",
            at / n_cols,
            at % n_cols,
            values[at]
        )));
    }
    Ok(values)
}

/// Options with every field at its default and `struct_size` set: start from this, then change fields.
#[no_mangle]
pub extern "C" fn wf_open_options_default() -> wf_open_options {
    guard_value(wf_open_options { struct_size: 0, onnxruntime_path: std::ptr::null(), threads: 0 }, || {
        wf_open_options {
            struct_size: std::mem::size_of::<wf_open_options>(),
            onnxruntime_path: std::ptr::null(),
            threads: 0,
        }
    })
}

/// Opens the bundle at `bundle_path` (NUL-terminated UTF-8) and writes a new detector to `*out` on success.
/// The caller owns it and releases it with `wf_detector_free`. `options` may be NULL (all defaults); it and the
/// path are borrowed for the call only. On failure returns the status and, when `err` is non-NULL, writes an
/// owned error to `*err` (release it with `wf_error_free`); `*out` is then left untouched.
///
/// # Safety
/// Pointers are NULL or valid for their types; `bundle_path` and `options->onnxruntime_path` are
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wf_detector_open(
    bundle_path: *const c_char,
    options: *const wf_open_options,
    out: *mut *mut wf_detector,
    err: *mut *mut wf_error,
) -> wf_status {
    // SAFETY: forwarded under the same contract.
    guard(err, || unsafe { open_detector(bundle_path, options, None, out) })
}

/// `execution_provider` of `wf_detector_open_with_provider`: onnxruntime's CPU provider (what
/// `wf_detector_open` uses).
pub const WF_PROVIDER_CPU: u32 = 0;
/// `execution_provider` of `wf_detector_open_with_provider`: onnxruntime's CUDA provider.
pub const WF_PROVIDER_CUDA: u32 = 1;

/// Like `wf_detector_open`, with the onnxruntime execution provider that runs the meta-model:
/// `WF_PROVIDER_CPU`, or `WF_PROVIDER_CUDA` on GPU `cuda_device` (ignored for the CPU). The meta-model runs for
/// `wf_detector_generate`, and at open for a bundle that stores no candidate pool; scoring runs on the CPU
/// either way. The CUDA provider needs an onnxruntime build that has it (the `onnxruntime-gpu` wheel) and a
/// GPU; without them the call that builds the session (open, or the first `wf_detector_generate` of a bundle
/// with a stored pool) fails with `WF_STATUS_ONNXRUNTIME` instead of falling back to the CPU. An unknown
/// provider is `WF_STATUS_INVALID_ARGUMENT`. Added in ABI 3.
///
/// # Safety
/// As for `wf_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn wf_detector_open_with_provider(
    bundle_path: *const c_char,
    options: *const wf_open_options,
    execution_provider: u32,
    cuda_device: u32,
    out: *mut *mut wf_detector,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let cuda = match execution_provider {
            WF_PROVIDER_CPU => None,
            WF_PROVIDER_CUDA => Some(cuda_device),
            other => {
                return Err(CapiError::invalid(format!(
                    "`execution_provider` is {other}: use WF_PROVIDER_CPU ({WF_PROVIDER_CPU}) or WF_PROVIDER_CUDA \
                     ({WF_PROVIDER_CUDA})"
                )))
            }
        };
        // SAFETY: forwarded under the same contract.
        unsafe { open_detector(bundle_path, options, cuda, out) }
    })
}

/// The body of both open functions; `cuda_device`: `Some(GPU)` for onnxruntime's CUDA provider.
///
/// # Safety
/// As for `wf_detector_open`.
unsafe fn open_detector(
    bundle_path: *const c_char,
    options: *const wf_open_options,
    cuda_device: Option<u32>,
    out: *mut *mut wf_detector,
) -> Result<(), CapiError> {
    let out = arg_out(out, "out")?;
    // SAFETY: the caller's contract covers both pointers.
    let path = unsafe { arg_str(bundle_path, "bundle_path") }?;
    let settings = if options.is_null() { OpenSettings::default() } else { unsafe { settings(options) }? };
    let settings = OpenSettings { cuda_device, ..settings };
    if path.is_empty() {
        return Err(CapiError::invalid("`bundle_path` is empty"));
    }
    let detector = wf_detector::from_backend(backend::open(Path::new(path), &settings)?);
    // SAFETY: `out` was checked non-NULL and aligned.
    unsafe { out.write(Box::into_raw(Box::new(detector))) };
    Ok(())
}

/// # Safety
/// `options` is non-NULL and points to at least `struct_size` readable bytes (checked against our size first).
unsafe fn settings(options: *const wf_open_options) -> Result<OpenSettings, CapiError> {
    // Read the size field alone first: a caller built against another ABI version has a struct of another size.
    let size_field = std::ptr::addr_of!((*options).struct_size);
    let size = unsafe { arg_ref(size_field, "options") }?;
    let ours = std::mem::size_of::<wf_open_options>();
    if *size != ours {
        return Err(CapiError::invalid(format!(
            "`options->struct_size` is {size}, this library (ABI {WF_ABI_VERSION}) knows only {ours}: initialise \
             options with wf_open_options_default()"
        )));
    }
    // SAFETY: the struct has our size, so every field is readable.
    let o = unsafe { arg_ref(options, "options") }?;
    let onnxruntime = if o.onnxruntime_path.is_null() {
        None
    } else {
        Some(unsafe { arg_str(o.onnxruntime_path, "options->onnxruntime_path") }?.into())
    };
    let threads = usize::try_from(o.threads).map_err(|_| CapiError::invalid("`options->threads` is too large"))?;
    Ok(OpenSettings { onnxruntime, threads, cuda_device: None })
}

/// Releases a detector. `wf_detector_free(NULL)` does nothing. No other call on `det` may run concurrently or
/// follow; pointers obtained from it (`wf_info.window_sizes`) dangle afterwards.
///
/// # Safety
/// `det` is NULL or a live detector from `wf_detector_open`, freed at most once.
#[no_mangle]
pub unsafe extern "C" fn wf_detector_free(det: *mut wf_detector) {
    guard_value((), || {
        if !det.is_null() {
            // SAFETY: `det` came from Box::into_raw in wf_detector_open and is freed once, by contract.
            drop(unsafe { Box::from_raw(det) });
        }
    })
}

/// Writes the detector's facts to `*out`. Thread-safe.
///
/// # Safety
/// `det` is NULL or a live detector; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wf_detector_info(
    det: *const wf_detector,
    out: *mut wf_info,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let det = unsafe { arg_ref(det, "det") }?;
        let out = arg_out(out, "out")?;
        let i = &det.info;
        let info = wf_info {
            n_features: i.n_features,
            n_classes: i.n_classes,
            n_params: i.n_params,
            ensemble_size: i.ensemble_size,
            window_sizes: i.window_sizes.as_ptr(),
            n_window_sizes: i.window_sizes.len(),
            bundle_version: i.bundle_version,
            abi_version: WF_ABI_VERSION,
        };
        // SAFETY: checked non-NULL and aligned.
        unsafe { out.write(info) };
        Ok(())
    })
}

/// Scores one window: `rows` holds `n_rows × n_cols` raw (unstandardised) features, row-major; `n_cols` must
/// equal `wf_info.n_features` and every value must be finite. The same detector, rows and `seed` give the same
/// score. Writes the verdict to `*out` on success. Thread-safe: many threads may score one detector at once.
///
/// # Safety
/// `det` is NULL or a live detector; `rows` is NULL or points to `n_rows * n_cols` floats; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn wf_detector_score(
    det: *const wf_detector,
    rows: *const f32,
    n_rows: usize,
    n_cols: usize,
    seed: u64,
    out: *mut wf_score,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let det = unsafe { arg_ref(det, "det") }?;
        let out = arg_out(out, "out")?;
        // SAFETY: the caller's contract covers `rows`.
        let values = unsafe { window_values(det, rows, n_rows, n_cols) }?;
        let window = ArrayView2::from_shape((n_rows, n_cols), values).expect("len = n_rows × n_cols was checked");
        let score = det.backend.score(window, seed)?;
        // SAFETY: checked non-NULL and aligned.
        unsafe { out.write(score) };
        Ok(())
    })
}

/// Generates `n` classifiers from fresh source samples drawn with `seed` and writes their flat weights
/// (`n × wf_info.n_params` floats, row-major, in the classifier's layout) to the caller's buffer `out`, which
/// holds `out_len` floats. `n` must be positive and `out_len` at least `n * n_params`; only the first
/// `n * n_params` floats are written, and only on success. Thread-safe.
///
/// # Safety
/// `det` is NULL or a live detector; `out` is NULL or points to `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn wf_detector_generate(
    det: *const wf_detector,
    n: usize,
    seed: u64,
    out: *mut f32,
    out_len: usize,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let det = unsafe { arg_ref(det, "det") }?;
        if n == 0 {
            return Err(CapiError::invalid("n is 0: generate at least one classifier"));
        }
        let needed = n
            .checked_mul(det.info.n_params)
            .ok_or_else(|| CapiError::invalid(format!("n × n_params overflows: {n} × {}", det.info.n_params)))?;
        if out_len < needed {
            return Err(CapiError::invalid(format!(
                "out_len is {out_len}, {n} classifiers of {} parameters need {needed}",
                det.info.n_params
            )));
        }
        let buffer = unsafe { arg_slice_mut(out, out_len, "out") }?;
        let weights = det.backend.generate(n, seed)?;
        if weights.dim() != (n, det.info.n_params) {
            return Err(CapiError::new(
                wf_status::Panic,
                format!("the generator returned {:?}, expected ({n}, {})", weights.dim(), det.info.n_params),
            ));
        }
        for (dst, src) in buffer[..needed].iter_mut().zip(weights.iter()) {
            *dst = *src;
        }
        Ok(())
    })
}
