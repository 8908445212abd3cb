//! The ABI's checks, exercised through the exported functions on a detector whose backend is a small, exactly
//! computable test double (the runtime-backed detector is tested in `tests/capi.rs` where a bundle exists).

use std::ffi::CStr;

use ndarray::{Array2, ArrayView2};

use super::backend::{Backend, Info};
use super::*;
use crate::capi::error::CapiError;

const FEATURES: usize = 3;
const PARAMS: usize = 5;
/// A feature value the test double fails to score.
const POISON: f32 = 1234.0;

/// Scores a window by a weighted sum the tests recompute in f64; generates `seed + 10k + j`; panics on seed 666;
/// fails with WF_STATUS_DETECT on a window holding the value `POISON`.
struct Weighted;

impl Backend for Weighted {
    fn info(&self) -> Info {
        Info {
            n_features: FEATURES,
            n_classes: 2,
            n_params: PARAMS,
            window_sizes: vec![4, 8],
            ensemble_size: 16,
            bundle_version: 1,
        }
    }

    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<wf_score, CapiError> {
        assert_ne!(seed, 666, "the test double was asked to panic");
        if rows.iter().any(|&v| v == POISON) {
            return Err(CapiError::new(wf_status::Detect, "the test double refuses a poisoned window"));
        }
        let statistic = rows.indexed_iter().map(|((i, j), &v)| v as f64 * ((i + 1) * (j + 1)) as f64).sum::<f64>();
        Ok(wf_score {
            p_value: 1.0 / (1.0 + statistic.abs()),
            statistic,
            threshold: rows.nrows() as f64,
            disagreement: 0.25,
            entropy_p: seed as f64,
            ensemble_size: 16,
            is_shift: statistic > rows.nrows() as f64,
        })
    }

    fn generate(&self, n: usize, seed: u64) -> Result<Array2<f32>, CapiError> {
        Ok(Array2::from_shape_fn((n, PARAMS), |(k, j)| seed as f32 + (10 * k + j) as f32))
    }
}

fn detector() -> *mut wf_detector {
    Box::into_raw(Box::new(wf_detector::from_backend(Box::new(Weighted))))
}

/// Takes the error a failed call handed back: its status and message (and frees it).
fn take(err: *mut wf_error) -> (wf_status, String) {
    assert!(!err.is_null(), "a failed call must hand back an error");
    // SAFETY: a live error from the library, freed once here.
    unsafe {
        let out = (wf_error_status(err), CStr::from_ptr(wf_error_message(err)).to_str().unwrap().to_owned());
        wf_error_free(err);
        out
    }
}

fn sentinel_score() -> wf_score {
    wf_score {
        p_value: -1.0,
        statistic: -1.0,
        threshold: -1.0,
        disagreement: -1.0,
        entropy_p: -1.0,
        ensemble_size: 12345,
        is_shift: false,
    }
}

/// A call's outcome as the tests see it: the score, or the status and message of the error handed back.
type Outcome = Result<wf_score, (wf_status, String)>;

/// Calls `wf_detector_score` and returns its status, the error (if any) and what `*out` holds afterwards.
fn score(det: *const wf_detector, rows: *const f32, n_rows: usize, n_cols: usize, seed: u64) -> Outcome {
    let mut out = sentinel_score();
    let mut err = std::ptr::null_mut();
    // SAFETY: the test passes valid pointers or the invalid ones the function must refuse before reading.
    let status = unsafe { wf_detector_score(det, rows, n_rows, n_cols, seed, &mut out, &mut err) };
    if status == wf_status::Ok {
        assert!(err.is_null(), "success must leave err untouched");
        Ok(out)
    } else {
        assert_eq!(out, sentinel_score(), "a failure must leave *out untouched");
        let (s, m) = take(err);
        assert_eq!(s, status);
        Err((s, m))
    }
}

fn window(n_rows: usize) -> Vec<f32> {
    (0..n_rows * FEATURES).map(|k| ((k as f32) * 0.37).sin()).collect()
}

#[test]
fn score_passes_the_window_through_unchanged() {
    let det = detector();
    let rows = window(4);
    let got = score(det, rows.as_ptr(), 4, FEATURES, 42).expect("valid window");
    // Independent recomputation in f64 from the row-major buffer.
    let mut expected = 0.0f64;
    for i in 0..4 {
        for j in 0..FEATURES {
            expected += rows[i * FEATURES + j] as f64 * ((i + 1) * (j + 1)) as f64;
        }
    }
    assert_eq!(got.statistic, expected);
    assert_eq!(got.p_value, 1.0 / (1.0 + expected.abs()));
    assert_eq!(got.entropy_p, 42.0, "the seed reaches the backend");
    // SAFETY: freed once.
    unsafe { wf_detector_free(det) };
}

#[test]
fn score_refuses_bad_arguments_with_a_status_and_message() {
    let det = detector();
    let rows = window(4);
    let p = rows.as_ptr();
    let cases: Vec<(&str, Outcome, wf_status, &str)> = vec![
        ("null det", score(std::ptr::null(), p, 4, FEATURES, 0), wf_status::NullPointer, "`det` is NULL"),
        ("null rows", score(det, std::ptr::null(), 4, FEATURES, 0), wf_status::NullPointer, "`rows` is NULL"),
        ("zero rows", score(det, p, 0, FEATURES, 0), wf_status::InvalidArgument, "n_rows = 0"),
        ("zero cols", score(det, p, 4, 0, 0), wf_status::InvalidArgument, "n_cols = 0"),
        ("wrong width", score(det, p, 3, FEATURES + 1, 0), wf_status::InvalidArgument, "takes 3 features"),
        ("overflow", score(det, p, usize::MAX, FEATURES, 0), wf_status::InvalidArgument, "overflows"),
        (
            "misaligned",
            score(det, p.cast::<u8>().wrapping_add(1).cast(), 1, FEATURES, 0),
            wf_status::Misaligned,
            "aligned",
        ),
    ];
    for (name, got, status, needle) in cases {
        let (s, m) = got.expect_err(name);
        assert_eq!(s, status, "{name}: {m}");
        assert!(m.contains(needle), "{name}: {m:?} lacks {needle:?}");
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut rows = window(4);
        rows[2 * FEATURES + 1] = bad;
        let (s, m) = score(det, rows.as_ptr(), 4, FEATURES, 0).expect_err("non-finite");
        assert_eq!(s, wf_status::InvalidArgument);
        assert!(m.contains("rows[2][1]"), "{m}");
    }
    // Out-pointer NULL: checked before any work.
    let mut err = std::ptr::null_mut();
    // SAFETY: valid detector and rows; NULL out is what is tested.
    let status = unsafe { wf_detector_score(det, p, 4, FEATURES, 0, std::ptr::null_mut(), &mut err) };
    assert_eq!((status, take(err).1.as_str()), (wf_status::NullPointer, "`out` is NULL"));
    // SAFETY: freed once.
    unsafe { wf_detector_free(det) };
}

#[test]
fn a_panic_inside_the_detector_becomes_a_status() {
    let det = detector();
    let rows = window(4);
    let (s, m) = score(det, rows.as_ptr(), 4, FEATURES, 666).expect_err("the double panics");
    assert_eq!(s, wf_status::Panic);
    assert!(m.contains("asked to panic"), "{m}");
    // The detector is still usable after a caught panic (it is immutable).
    assert!(score(det, rows.as_ptr(), 4, FEATURES, 1).is_ok());
    // SAFETY: freed once.
    unsafe { wf_detector_free(det) };
}

#[test]
fn eight_threads_score_one_detector_like_one_thread() {
    let det = detector();
    let windows: Vec<Vec<f32>> = (0..32).map(|w| window(4 + w % 5).iter().map(|v| v * w as f32).collect()).collect();
    let sequential: Vec<wf_score> = windows
        .iter()
        .enumerate()
        .map(|(w, r)| score(det, r.as_ptr(), r.len() / FEATURES, FEATURES, w as u64).unwrap())
        .collect();
    let shared = det as usize;
    let parallel: Vec<Vec<(usize, wf_score)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let windows = &windows;
                s.spawn(move || {
                    (t..windows.len())
                        .step_by(8)
                        .map(|w| {
                            let r = &windows[w];
                            (
                                w,
                                score(shared as *const wf_detector, r.as_ptr(), r.len() / FEATURES, FEATURES, w as u64)
                                    .unwrap(),
                            )
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = 0;
    for (w, got) in parallel.into_iter().flatten() {
        assert_eq!(got, sequential[w], "window {w}");
        seen += 1;
    }
    assert_eq!(seen, windows.len());
    // SAFETY: freed once, after every thread joined.
    unsafe { wf_detector_free(det) };
}

#[test]
fn generate_checks_the_buffer_and_writes_only_what_it_owes() {
    let det = detector();
    let mut buf = vec![-7.0f32; 2 * PARAMS + 3];
    let mut err = std::ptr::null_mut();
    // SAFETY: valid detector and buffer of buf.len() floats.
    let status = unsafe { wf_detector_generate(det, 2, 9, buf.as_mut_ptr(), buf.len(), &mut err) };
    assert_eq!(status, wf_status::Ok);
    for k in 0..2 {
        for j in 0..PARAMS {
            assert_eq!(buf[k * PARAMS + j], 9.0 + (10 * k + j) as f32);
        }
    }
    assert!(buf[2 * PARAMS..].iter().all(|&v| v == -7.0), "past n × n_params nothing is written");

    let mut small = vec![-7.0f32; 2 * PARAMS - 1];
    // SAFETY: as above; the sizes are what is tested.
    unsafe {
        let s = wf_detector_generate(det, 2, 9, small.as_mut_ptr(), small.len(), &mut err);
        let (status, m) = take(err);
        assert_eq!((s, status), (wf_status::InvalidArgument, wf_status::InvalidArgument));
        assert!(m.contains("need 10"), "{m}");
        assert!(small.iter().all(|&v| v == -7.0));
        let s = wf_detector_generate(det, 0, 9, buf.as_mut_ptr(), buf.len(), &mut err);
        assert_eq!((s, take(err).0), (wf_status::InvalidArgument, wf_status::InvalidArgument));
        let s = wf_detector_generate(det, 1, 9, std::ptr::null_mut(), PARAMS, &mut err);
        assert_eq!((s, take(err).1.as_str()), (wf_status::NullPointer, "`out` is NULL"));
        let s = wf_detector_generate(det, usize::MAX, 9, buf.as_mut_ptr(), buf.len(), std::ptr::null_mut());
        assert_eq!(s, wf_status::InvalidArgument, "overflow is refused, even without an err slot");
        wf_detector_free(det);
    }
}

#[test]
fn info_reports_the_backend_and_abi() {
    let det = detector();
    let mut info = std::mem::MaybeUninit::<wf_info>::uninit();
    // SAFETY: valid detector and out slot; the window sizes live as long as the detector.
    unsafe {
        assert_eq!(wf_detector_info(det, info.as_mut_ptr(), std::ptr::null_mut()), wf_status::Ok);
        let info = info.assume_init();
        assert_eq!((info.n_features, info.n_params, info.n_classes, info.ensemble_size), (FEATURES, PARAMS, 2, 16));
        assert_eq!(std::slice::from_raw_parts(info.window_sizes, info.n_window_sizes), &[4, 8]);
        assert_eq!(info.abi_version, wf_abi_version());
        let mut err = std::ptr::null_mut();
        assert_eq!(wf_detector_info(std::ptr::null(), std::ptr::null_mut(), &mut err), wf_status::NullPointer);
        assert_eq!(take(err).1, "`det` is NULL");
        wf_detector_free(det);
        wf_detector_free(std::ptr::null_mut());
    }
}

#[test]
fn open_validates_its_arguments() {
    let mut det = 0x10 as *mut wf_detector;
    let mut err = std::ptr::null_mut();
    let open = |path: *const std::ffi::c_char,
                options: *const wf_open_options,
                det: &mut *mut wf_detector,
                err: &mut *mut wf_error| {
        // SAFETY: the test passes valid pointers or the invalid ones the function must refuse before reading.
        unsafe { wf_detector_open(path, options, det, err) }
    };
    assert_eq!(open(std::ptr::null(), std::ptr::null(), &mut det, &mut err), wf_status::NullPointer);
    assert_eq!(take(err).1, "`bundle_path` is NULL");
    // SAFETY: NULL out slot is what is tested.
    let s = unsafe { wf_detector_open(c"x.wfb".as_ptr(), std::ptr::null(), std::ptr::null_mut(), &mut err) };
    assert_eq!((s, take(err).1.as_str()), (wf_status::NullPointer, "`out` is NULL"));
    let not_utf8 = [b'a', 0xff, 0];
    assert_eq!(open(not_utf8.as_ptr().cast(), std::ptr::null(), &mut det, &mut err), wf_status::InvalidArgument);
    take(err);
    assert_eq!(open(c"".as_ptr(), std::ptr::null(), &mut det, &mut err), wf_status::InvalidArgument);
    take(err);
    let mut options = wf_open_options_default();
    assert_eq!(options.struct_size, std::mem::size_of::<wf_open_options>());
    options.struct_size += 8;
    assert_eq!(open(c"x.wfb".as_ptr(), &options, &mut det, &mut err), wf_status::InvalidArgument);
    assert!(take(err).1.contains("wf_open_options_default"));
    assert_eq!(det, 0x10 as *mut wf_detector, "failures leave *out untouched");
}

#[cfg(not(feature = "runtime"))]
#[test]
fn open_without_the_runtime_says_so() {
    let mut det = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    let options = wf_open_options_default();
    // SAFETY: valid pointers.
    let s = unsafe { wf_detector_open(c"model.wfb".as_ptr(), &options, &mut det, &mut err) };
    assert_eq!(s, wf_status::NotBuiltIn);
    assert!(take(err).1.contains("`runtime` feature"));
    assert!(det.is_null());
}

/// Pushes `n_rows` rows into `stream`, sized by `wf_stream_windows_after`; the verdicts or the error.
fn push(
    stream: *mut wf_stream,
    rows: &[f32],
    n_rows: usize,
    n_cols: usize,
) -> Result<Vec<wf_window_score>, (wf_status, String)> {
    let (mut needed, mut err) = (0usize, std::ptr::null_mut());
    // SAFETY: a live stream and a writable count.
    assert_eq!(unsafe { wf_stream_windows_after(stream, n_rows, &mut needed, &mut err) }, wf_status::Ok);
    let mut out = vec![wf_window_score { index: 99, end_row: 99, score: sentinel_score() }; needed];
    let mut n_out = usize::MAX;
    // SAFETY: the buffer holds `needed` entries; rows hold n_rows × n_cols floats (or the call must refuse).
    let status = unsafe {
        wf_stream_push(stream, rows.as_ptr(), n_rows, n_cols, out.as_mut_ptr(), out.len(), &mut n_out, &mut err)
    };
    if status != wf_status::Ok {
        assert_eq!(n_out, usize::MAX, "a failure must leave *n_out untouched");
        return Err(take(err));
    }
    assert_eq!(n_out, needed, "wf_stream_windows_after predicts what the push writes");
    Ok(out)
}

#[test]
fn a_stream_scores_each_window_like_a_separate_call_with_seed_plus_index() {
    let det = detector();
    let mut stream = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: a live detector; the stream is freed before it.
    assert_eq!(unsafe { wf_stream_new(det, 4, 2, 100, &mut stream, &mut err) }, wf_status::Ok);
    let rows = window(11);
    let mut got = Vec::new();
    let mut at = 0;
    for chunk in [3, 5, 3] {
        got.extend(push(stream, &rows[at * FEATURES..(at + chunk) * FEATURES], chunk, FEATURES).unwrap());
        at += chunk;
    }
    // Windows end at rows 4, 6, 8, 10: each equals wf_detector_score on its rows with seed 100 + k.
    assert_eq!(got.iter().map(|w| (w.index, w.end_row)).collect::<Vec<_>>(), [(0, 4), (1, 6), (2, 8), (3, 10)]);
    for w in &got {
        let start = (w.end_row as usize - 4) * FEATURES;
        let alone = score(det, rows[start..].as_ptr(), 4, FEATURES, 100 + w.index).unwrap();
        assert_eq!(w.score, alone, "window {}", w.index);
    }
    // Refusals consume nothing: a NaN, a wrong width, a buffer too small; the next window still ends at 12.
    let mut nan = window(2);
    nan[4] = f32::NAN;
    assert_eq!(push(stream, &nan, 2, FEATURES).unwrap_err().0, wf_status::InvalidArgument);
    assert_eq!(push(stream, &window(2), 1, FEATURES + 1).unwrap_err().0, wf_status::InvalidArgument);
    let two = window(2);
    let mut n_out = 0usize;
    // SAFETY: out may be NULL with capacity 0; the call must refuse since the rows complete a window.
    let status =
        unsafe { wf_stream_push(stream, two.as_ptr(), 2, FEATURES, std::ptr::null_mut(), 0, &mut n_out, &mut err) };
    assert_eq!(status, wf_status::InvalidArgument);
    assert!(take(err).1.contains("wf_stream_windows_after"));
    assert_eq!(push(stream, &two, 1, FEATURES).unwrap().len(), 1, "row 12 completes window 4");
    unsafe {
        wf_stream_free(stream);
        wf_stream_free(std::ptr::null_mut());
        wf_detector_free(det);
    }
}

#[test]
fn a_stream_needs_a_calibrated_window_and_a_positive_stride() {
    let det = detector();
    let mut stream = std::ptr::null_mut();
    for (window, stride, needle) in [(5, 1, "calibrated for windows of [4, 8]"), (4, 0, "stride is 0")] {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live detector and writable out-parameters.
        let status = unsafe { wf_stream_new(det, window, stride, 0, &mut stream, &mut err) };
        assert_eq!(status, wf_status::InvalidArgument);
        assert!(stream.is_null(), "a failure leaves *out untouched");
        let (_, message) = take(err);
        assert!(message.contains(needle), "{message}");
    }
    let mut err = std::ptr::null_mut();
    // SAFETY: NULL detector and NULL out are refused before use.
    assert_eq!(unsafe { wf_stream_new(std::ptr::null(), 4, 1, 0, &mut stream, &mut err) }, wf_status::NullPointer);
    take(err);
    assert_eq!(unsafe { wf_stream_new(det, 4, 1, 0, std::ptr::null_mut(), &mut err) }, wf_status::NullPointer);
    take(err);
    unsafe { wf_detector_free(det) };
}

#[test]
fn windows_after_answers_for_any_row_count_once_rows_have_arrived() {
    // Found by the capi_score fuzz target: after 20 rows, wf_stream_windows_after(SIZE_MAX) overflowed the row
    // count (WF_STATUS_PANIC with overflow checks, 0 without). Windows of 4 every row: the next one ends at row
    // 21, so SIZE_MAX more rows complete SIZE_MAX windows (ends 21 ..= 20 + SIZE_MAX).
    let det = detector();
    let mut stream = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: a live detector; the stream is freed before it.
    assert_eq!(unsafe { wf_stream_new(det, 4, 1, 0, &mut stream, &mut err) }, wf_status::Ok);
    assert_eq!(push(stream, &window(20), 20, FEATURES).unwrap().len(), 17);
    for (n_rows, expected) in [(usize::MAX, usize::MAX), (usize::MAX - 1, usize::MAX - 1), (1, 1), (0, 0)] {
        let mut n = 7usize;
        // SAFETY: a live stream and writable out-parameters.
        let status = unsafe { wf_stream_windows_after(stream, n_rows, &mut n, &mut err) };
        assert_eq!(status, wf_status::Ok, "{n_rows}");
        assert_eq!(n, expected, "{n_rows} more rows");
    }
    unsafe {
        wf_stream_free(stream);
        wf_detector_free(det);
    }
}

#[test]
fn a_push_whose_scoring_fails_part_way_changes_nothing() {
    // Found by the capi_score fuzz target: a window that failed to score (large finite features made the
    // refinement steps diverge: WF_STATUS_DETECT) left the rows before it consumed and the verdicts before it
    // written, so the caller could not tell where the stream stood. Windows of 4 every 2 rows.
    let det = detector();
    let (mut stream, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: a live detector; the stream is freed before it.
    assert_eq!(unsafe { wf_stream_new(det, 4, 2, 0, &mut stream, &mut err) }, wf_status::Ok);
    assert!(push(stream, &window(3), 3, FEATURES).unwrap().is_empty());
    // Stream rows 3..8 complete the windows ending at rows 4, 6 and 8; row 5 poisons the second (rows 2..6).
    let mut rows = window(5);
    rows[2 * FEATURES] = POISON;
    let sentinel = wf_window_score { index: 99, end_row: 99, score: sentinel_score() };
    let mut out = [sentinel; 3];
    let mut n_out = usize::MAX;
    // SAFETY: out holds 3 entries (what wf_stream_windows_after reports); rows hold 5 × FEATURES floats.
    let status =
        unsafe { wf_stream_push(stream, rows.as_ptr(), 5, FEATURES, out.as_mut_ptr(), 3, &mut n_out, &mut err) };
    assert_eq!(status, wf_status::Detect);
    assert!(take(err).1.contains("poisoned"));
    assert_eq!(n_out, usize::MAX, "a failure leaves *n_out untouched");
    assert_eq!(out, [sentinel; 3], "a failure writes no verdict, not even the first window's");
    let mut needed = 0;
    // SAFETY: a live stream and a writable count.
    assert_eq!(unsafe { wf_stream_windows_after(stream, 5, &mut needed, &mut err) }, wf_status::Ok);
    assert_eq!(needed, 3, "no row was consumed");
    // The same rows repaired: windows 0, 1, 2 end at rows 4, 6, 8, as if the failed push never happened.
    rows[2 * FEATURES] = 0.5;
    let got = push(stream, &rows, 5, FEATURES).unwrap();
    assert_eq!(got.iter().map(|w| (w.index, w.end_row)).collect::<Vec<_>>(), [(0, 4), (1, 6), (2, 8)]);
    unsafe {
        wf_stream_free(stream);
        wf_detector_free(det);
    }
}
