//! `wf_stream`: a sliding-window detector over a stream of rows (windows of a calibrated size every `stride`
//! rows), on top of a `wf_detector`. Added in ABI version 2.
//!
//! A stream borrows its detector, which must outlive it. A stream is *not* thread-safe: one thread at a time
//! may call `wf_stream_push` or `wf_stream_windows_after` on it; many streams may share one detector.

use ndarray::ArrayView2;

use super::detector::wf_detector;
use super::error::{wf_error, CapiError};
use super::guard::{arg_mut, arg_out, arg_ref, arg_slice_mut, guard, guard_value};
use super::status::wf_status;
use super::types::{wf_score, wf_window_score};
use crate::detect::{window_seed, SlidingWindows};

/// A sliding-window detector: opaque; created by `wf_stream_new`, released by `wf_stream_free`. Borrows its
/// detector (free the stream first). Not thread-safe.
pub struct wf_stream {
    det: *const wf_detector,
    windows: SlidingWindows,
    seed: u64,
}

/// Creates a stream over `det`: windows of `window` rows (one of the sizes in `wf_info.window_sizes`) starting
/// every `stride` rows (≥ 1; `stride < window` overlaps windows, `stride > window` skips rows). Window k holds
/// stream rows `[k·stride, k·stride + window)` and is scored like `wf_detector_score` with seed `seed + k`;
/// each window's false-alarm rate on in-distribution rows is the bundle's α. Writes the new stream to `*out`
/// on success; the caller releases it with `wf_stream_free`, before `wf_detector_free(det)`.
///
/// # Safety
/// `det` is NULL or a live detector that outlives the stream; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wf_stream_new(
    det: *const wf_detector,
    window: usize,
    stride: usize,
    seed: u64,
    out: *mut *mut wf_stream,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let d = unsafe { arg_ref(det, "det") }?;
        let out = arg_out(out, "out")?;
        let info = d.info();
        if !info.window_sizes.contains(&window) {
            return Err(CapiError::invalid(format!(
                "window is {window}: the bundle is calibrated for windows of {:?} rows",
                info.window_sizes
            )));
        }
        if stride == 0 {
            return Err(CapiError::invalid("stride is 0: windows must start at least one row apart"));
        }
        let windows =
            SlidingWindows::new(info.n_features, window, stride).map_err(|e| CapiError::invalid(e.to_string()))?;
        // SAFETY: `out` was checked non-NULL and aligned.
        unsafe { out.write(Box::into_raw(Box::new(wf_stream { det, windows, seed }))) };
        Ok(())
    })
}

/// Releases a stream. `wf_stream_free(NULL)` does nothing.
///
/// # Safety
/// `stream` is NULL or a live stream from `wf_stream_new`, freed at most once, with no call on it running.
#[no_mangle]
pub unsafe extern "C" fn wf_stream_free(stream: *mut wf_stream) {
    guard_value((), || {
        if !stream.is_null() {
            // SAFETY: it came from Box::into_raw in wf_stream_new and is freed once, by contract.
            drop(unsafe { Box::from_raw(stream) });
        }
    })
}

/// Writes to `*out` how many windows a push of `n_rows` more rows would complete: the capacity
/// `wf_stream_push` needs. At most `n_rows / stride + 1`.
///
/// # Safety
/// `stream` is NULL or a live stream; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wf_stream_windows_after(
    stream: *const wf_stream,
    n_rows: usize,
    out: *mut usize,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let s = unsafe { arg_ref(stream, "stream") }?;
        let out = arg_out(out, "out")?;
        let n = usize::try_from(s.windows.windows_after(n_rows)).expect("at most n_rows + 1 windows");
        // SAFETY: checked non-NULL and aligned.
        unsafe { out.write(n) };
        Ok(())
    })
}

/// Appends `n_rows × n_cols` raw feature rows (row-major, `n_cols = wf_info.n_features`, every value finite)
/// to the stream and scores every window they complete, writing the verdicts in order to `out` (capacity
/// `out_cap` entries, at least what `wf_stream_windows_after` reports; `out` may be NULL when that is 0) and
/// their count to `*n_out`. A push that fails changes nothing, whether an argument was refused or a window's
/// scoring failed: no row is consumed and no verdict written, so the stream's window k still starts at stream
/// row k·stride (drop or repair the rows, then push again).
///
/// # Safety
/// `stream` is NULL or a live stream whose detector is live; `rows` is NULL or points to `n_rows * n_cols`
/// floats; `out` is NULL or points to `out_cap` writable entries; `n_out` is NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C convention: each buffer with its length, then out-parameters
pub unsafe extern "C" fn wf_stream_push(
    stream: *mut wf_stream,
    rows: *const f32,
    n_rows: usize,
    n_cols: usize,
    out: *mut wf_window_score,
    out_cap: usize,
    n_out: *mut usize,
    err: *mut *mut wf_error,
) -> wf_status {
    guard(err, || {
        let s = unsafe { arg_mut(stream, "stream") }?;
        let n_out = arg_out(n_out, "n_out")?;
        // SAFETY: the stream's detector outlives it, by contract.
        let det = unsafe { arg_ref(s.det, "stream's detector") }?;
        let values = unsafe { super::detector::window_values(det, rows, n_rows, n_cols) }?;
        let needed = usize::try_from(s.windows.windows_after(n_rows)).expect("at most n_rows + 1 windows");
        if out_cap < needed {
            return Err(CapiError::invalid(format!(
                "out_cap is {out_cap}, these {n_rows} rows complete {needed} windows (wf_stream_windows_after)"
            )));
        }
        let buffer = if needed == 0 { &mut [][..] } else { unsafe { arg_slice_mut(out, out_cap, "out") }? };
        let block = ArrayView2::from_shape((n_rows, n_cols), values).expect("len = n_rows × n_cols was checked");
        // Pushed into a copy (at most `window` rows), kept only when every window scored: a scoring failure
        // part-way leaves neither consumed rows nor written verdicts behind.
        let (seed, mut windows, mut verdicts) = (s.seed, s.windows.clone(), Vec::with_capacity(needed));
        windows.push(block, |w| {
            let score: wf_score = det.backend().score(w.rows, window_seed(seed, w.index))?;
            verdicts.push(wf_window_score { index: w.index, end_row: w.end_row, score });
            Ok::<(), CapiError>(())
        })?;
        buffer[..verdicts.len()].copy_from_slice(&verdicts);
        s.windows = windows;
        // SAFETY: checked non-NULL and aligned.
        unsafe { n_out.write(verdicts.len()) };
        Ok(())
    })
}
