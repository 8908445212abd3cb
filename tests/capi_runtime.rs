//! A real, calibrated bundle through the C ABI: open, info, generation and scores identical to the Rust
//! runtime's (also from 8 threads at once), and the window checks in front of scoring. Skips (and says so) without onnxruntime.
#![cfg(all(feature = "train", feature = "runtime"))]

// Shared with tests/runtime.rs, which also uses its onnx.checker helper.
#[path = "support/ort.rs"]
mod ort_support;

use std::ffi::{CStr, CString};

use rand::Rng as _;
use weightflow::capi::*;
use weightflow::rng;
use weightflow::runtime::{Detector, OpenOptions};

#[path = "support/tiny_bundle.rs"]
mod tiny_bundle;
use tiny_bundle::write_bundle;

fn take(err: *mut wf_error) -> (wf_status, String) {
    assert!(!err.is_null());
    // SAFETY: a live error handed back by a failed call; freed once.
    unsafe {
        let out = (wf_error_status(err), CStr::from_ptr(wf_error_message(err)).to_str().unwrap().to_owned());
        wf_error_free(err);
        out
    }
}

/// Scores through the C ABI.
fn score(det: *const wf_detector, rows: &[f32], seed: u64) -> wf_score {
    let mut out = std::mem::MaybeUninit::<wf_score>::uninit();
    let mut err = std::ptr::null_mut();
    // SAFETY: live detector, rows.len() floats, out slot.
    let status = unsafe { wf_detector_score(det, rows.as_ptr(), rows.len() / 3, 3, seed, out.as_mut_ptr(), &mut err) };
    assert_eq!(status, wf_status::Ok, "{:?}", (!err.is_null()).then(|| take(err)));
    // SAFETY: written on success.
    unsafe { out.assume_init() }
}

/// Generates through the C ABI into a fresh buffer.
fn generate(det: *const wf_detector, n: usize, seed: u64, n_params: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n * n_params];
    let mut err = std::ptr::null_mut();
    // SAFETY: live detector, buffer of out.len() floats.
    let status = unsafe { wf_detector_generate(det, n, seed, out.as_mut_ptr(), out.len(), &mut err) };
    assert_eq!(status, wf_status::Ok, "{:?}", (!err.is_null()).then(|| take(err)));
    out
}

#[test]
fn the_c_abi_generates_and_scores_as_the_rust_runtime_does() {
    let Some(lib) = ort_support::library_or_skip("the_c_abi_generates_and_scores_as_the_rust_runtime_does") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_bundle(dir.path());
    let rust =
        Detector::open(&path, &OpenOptions { onnxruntime: Some(lib.clone()), threads: 1, ..OpenOptions::default() })
            .unwrap();

    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let c_lib = CString::new(lib.to_str().unwrap()).unwrap();
    let mut options = wf_open_options_default();
    options.onnxruntime_path = c_lib.as_ptr();
    options.threads = 1;
    let mut det = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: valid strings and out slots.
    let status = unsafe { wf_detector_open(c_path.as_ptr(), &options, &mut det, &mut err) };
    assert_eq!(status, wf_status::Ok, "{:?}", (!err.is_null()).then(|| take(err)));

    let mut info = std::mem::MaybeUninit::<wf_info>::uninit();
    // SAFETY: live detector and out slot; window_sizes lives as long as the detector.
    let (info, sizes) = unsafe {
        assert_eq!(wf_detector_info(det, info.as_mut_ptr(), std::ptr::null_mut()), wf_status::Ok);
        let info = info.assume_init();
        (info, std::slice::from_raw_parts(info.window_sizes, info.n_window_sizes).to_vec())
    };
    let expected = rust.info();
    assert_eq!(
        (info.n_features, info.n_classes, info.n_params, info.ensemble_size, info.bundle_version),
        (expected.n_features, expected.n_classes, expected.n_params, expected.ensemble_size, expected.bundle_version)
    );
    assert_eq!(sizes, expected.window_sizes);

    // Same seed → the same weights as the Rust call, bit for bit.
    let want = rust.generate(5, 21).unwrap();
    assert_eq!(generate(det, 5, 21, info.n_params), want.iter().copied().collect::<Vec<_>>());

    // 8 threads on one detector give what one thread gives.
    let sequential: Vec<Vec<f32>> = (0..16).map(|seed| generate(det, 3, seed, info.n_params)).collect();
    let shared = det as usize;
    let parallel: Vec<(u64, Vec<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                s.spawn(move || {
                    (t..16)
                        .step_by(8)
                        .map(|seed| (seed, generate(shared as *const wf_detector, 3, seed, info.n_params)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(parallel.len(), 16);
    for (seed, got) in parallel {
        assert_eq!(got, sequential[seed as usize], "seed {seed}");
    }

    // Scores: the C ABI gives exactly the Rust runtime's verdict, and 8 threads give what one thread gives.
    let mut r = rng::rng(8);
    let windows: Vec<Vec<f32>> = (0..16).map(|_| (0..15).map(|_| r.random_range(-3.0f32..3.0)).collect()).collect();
    let sequential: Vec<wf_score> = windows.iter().enumerate().map(|(i, w)| score(det, w, i as u64)).collect();
    for (i, w) in windows.iter().enumerate() {
        let want = rust.score(ndarray::ArrayView2::from_shape((5, 3), w).unwrap(), i as u64).unwrap();
        let got = sequential[i];
        assert_eq!(
            (
                got.p_value,
                got.statistic,
                got.threshold,
                got.is_shift,
                got.disagreement,
                got.entropy_p,
                got.ensemble_size
            ),
            (
                want.p_value,
                want.statistic,
                want.threshold,
                want.is_shift,
                want.disagreement,
                want.entropy_p,
                want.ensemble_size
            ),
            "window {i}"
        );
    }
    let parallel: Vec<(usize, wf_score)> = std::thread::scope(|s| {
        let windows = &windows;
        let handles: Vec<_> = (0..8usize)
            .map(|t| {
                s.spawn(move || {
                    (t..16)
                        .step_by(8)
                        .map(|i| (i, score(shared as *const wf_detector, &windows[i], i as u64)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(parallel.len(), 16);
    for (i, got) in parallel {
        assert_eq!(got, sequential[i], "window {i}");
    }
    // The fixture window is the one with the smallest p-value, so that agreement is not agreement on p = 1.
    let lowest = (0..windows.len()).min_by(|&a, &b| sequential[a].p_value.total_cmp(&sequential[b].p_value)).unwrap();
    write_fixture_if_asked(&path, &windows[lowest], lowest as u64, &rust);

    // A window size without calibration is the detector's refusal.
    let mut err = std::ptr::null_mut();
    let mut out = std::mem::MaybeUninit::<wf_score>::uninit();
    // SAFETY: live detector, 6 rows of 3 floats, out slot.
    let s = unsafe { wf_detector_score(det, [0.1f32; 18].as_ptr(), 6, 3, 0, out.as_mut_ptr(), &mut err) };
    assert_eq!((s, take(err).0), (wf_status::Detect, wf_status::Detect));

    // The window checks run before scoring: a wrong width and a NaN are refused with their own messages.
    let mut score = std::mem::MaybeUninit::<wf_score>::uninit();
    let wide = [0.5f32; 8];
    let mut nan = [0.5f32; 6];
    nan[4] = f32::NAN;
    // SAFETY: live detector, buffers of the stated sizes, out slot.
    unsafe {
        let s = wf_detector_score(det, wide.as_ptr(), 2, 4, 0, score.as_mut_ptr(), &mut err);
        assert_eq!((s, take(err).1.contains("takes 3 features")), (wf_status::InvalidArgument, true));
        let s = wf_detector_score(det, nan.as_ptr(), 2, 3, 0, score.as_mut_ptr(), &mut err);
        assert_eq!((s, take(err).1.contains("rows[1][1]")), (wf_status::InvalidArgument, true));
        wf_detector_free(det);
    }
}

/// With `WF_WRITE_FIXTURE=DIR` (scripts/test-bindings.sh sets it), leaves the bundle, one window and the Rust
/// runtime's score of it in DIR, for the C example and the Go and Java tests to reproduce.
fn write_fixture_if_asked(bundle: &std::path::Path, window: &[f32], seed: u64, rust: &Detector) {
    let Some(dir) = std::env::var_os("WF_WRITE_FIXTURE") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(bundle, dir.join("bundle.wfb")).unwrap();
    // `{}` prints the shortest text that parses back to the same f32 (strtof, Go and Java read it exactly).
    let csv: String =
        window.chunks(3).map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n").collect();
    std::fs::write(dir.join("window.csv"), csv).unwrap();
    let s = rust.score(ndarray::ArrayView2::from_shape((window.len() / 3, 3), window).unwrap(), seed).unwrap();
    let expected = serde_json::json!({ "seed": seed, "p_value": s.p_value, "is_shift": s.is_shift });
    std::fs::write(dir.join("expected.json"), expected.to_string()).unwrap();
}

#[test]
fn open_with_provider_takes_the_cpu_refuses_unknown_providers_and_reports_a_missing_cuda() {
    let Some(lib) = ort_support::library_or_skip("open_with_provider") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = write_bundle(dir.path());
    let (c_path, c_lib) = (CString::new(path.to_str().unwrap()).unwrap(), CString::new(lib.to_str().unwrap()).unwrap());
    let mut options = wf_open_options_default();
    options.onnxruntime_path = c_lib.as_ptr();
    let open = |provider: u32| {
        let (mut det, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid strings, options and out slots.
        let status =
            unsafe { wf_detector_open_with_provider(c_path.as_ptr(), &options, provider, 0, &mut det, &mut err) };
        (status, det, err)
    };
    let rust =
        Detector::open(&path, &OpenOptions { onnxruntime: Some(lib.clone()), ..OpenOptions::default() }).unwrap();
    let n_params = rust.info().n_params;

    // The CPU provider is wf_detector_open.
    let (status, det, _) = open(WF_PROVIDER_CPU);
    assert_eq!(status, wf_status::Ok);
    let expected: Vec<f32> = rust.generate(3, 5).unwrap().iter().copied().collect();
    assert_eq!(generate(det, 3, 5, n_params), expected);
    // SAFETY: live detector, freed once.
    unsafe { wf_detector_free(det) };

    let (status, det, err) = open(7);
    assert_eq!((status, det.is_null()), (wf_status::InvalidArgument, true));
    assert!(take(err).1.contains("execution_provider"));

    use ort::ep::ExecutionProvider as _;
    if ort::ep::CUDA::default().is_available().unwrap() {
        eprintln!("the CUDA half skipped: this onnxruntime has the CUDA provider");
        return;
    }
    // The pool is stored, so open only reads and scoring runs on the CPU; generating builds the session, which
    // fails on a CPU-only onnxruntime rather than running on the CPU.
    let (status, det, _) = open(WF_PROVIDER_CUDA);
    assert_eq!(status, wf_status::Ok);
    score(det, &[0.1; 15], 1);
    let mut out = vec![0f32; 2 * n_params];
    let mut err = std::ptr::null_mut();
    // SAFETY: live detector, buffer of out.len() floats.
    let status = unsafe { wf_detector_generate(det, 2, 0, out.as_mut_ptr(), out.len(), &mut err) };
    assert_eq!(status, wf_status::Onnxruntime);
    assert!(take(err).1.contains("CUDA"));
    // SAFETY: live detector, freed once.
    unsafe { wf_detector_free(det) };
}
