//! A real bundle through the C ABI: open, info, generation identical to the Rust runtime's (also from 8
//! threads at once), and the window checks in front of scoring. Skips (and says so) without onnxruntime.
#![cfg(all(feature = "train", feature = "runtime"))]

// Shared with tests/runtime.rs, which also uses its onnx.checker helper.
#[allow(dead_code)]
#[path = "support/ort.rs"]
mod ort_support;

use std::ffi::{CStr, CString};

use candle_core::Device;
use ndarray::{s, Array1, Array2, Array3};
use weightflow::bundle::{Bundle, Manifest, PoolSpec};
use weightflow::capi::*;
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::flow::{train_meta, Coupling, MetaTrainConfig, NetConfig, Objective, Prediction, Sampler};
use weightflow::rng;
use weightflow::runtime::{Detector, OpenOptions};
use weightflow::space::{KaimingUniform, Layout, Source};

/// A bundle of a briefly trained CFM meta-model over 3-4-2 MLPs (any weights do: the tests compare two
/// paths to one generator), written under `dir`.
fn write_bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let layout = Layout::parse("3-4-2").unwrap();
    let mut r = rng::rng(9);
    let mut traj = Array3::<f32>::zeros((16, 2, layout.dim()));
    for run in 0..16 {
        let init = KaimingUniform.sample(&layout, 1, &mut r);
        traj.slice_mut(s![run, 0, ..]).assign(&init.row(0));
        traj.slice_mut(s![run, 1, ..]).assign(&(&init.row(0) * 2.0 + 0.3));
    }
    let cfg = MetaTrainConfig {
        prediction: Prediction::Endpoint,
        coupling: Coupling::Independent,
        net: NetConfig { hidden: vec![16], time_dim: 8, cond_dim: 0 },
        batch_size: 8,
        steps: 10,
        seed: 3,
        ..MetaTrainConfig::for_objective(Objective::Cfm)
    };
    let model = train_meta(&layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {}).unwrap();
    let bundle = Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: "tests/capi_runtime.rs".into(),
            classifier: Mlp::new(layout.clone(), Activation::default()),
            standardizer: Standardizer { mean: vec![0.0; 3], std: vec![1.0; 3] },
            source: model.config().source,
            sampler: Sampler::Euler,
            steps: 4,
            pool: PoolSpec { size: 8, seed: 17 },
            ensemble: serde_json::json!({}),
            calibration: vec![serde_json::json!({ "window_size": 10 })],
            sections: Vec::new(),
        },
        onnx: model.to_onnx().unwrap(),
        f: Array1::zeros(layout.dim()),
        p_ref: Array2::zeros((4, 3)),
        p_labels: vec![0; 4],
    };
    let path = dir.join("tiny.wfb");
    bundle.write(&path).unwrap();
    path
}

fn take(err: *mut wf_error) -> (wf_status, String) {
    assert!(!err.is_null());
    // SAFETY: a live error handed back by a failed call; freed once.
    unsafe {
        let out = (wf_error_status(err), CStr::from_ptr(wf_error_message(err)).to_str().unwrap().to_owned());
        wf_error_free(err);
        out
    }
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
fn the_c_abi_generates_what_the_rust_runtime_generates() {
    let Some(lib) = ort_support::library_or_skip("the_c_abi_generates_what_the_rust_runtime_generates") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_bundle(dir.path());
    let rust = Detector::open(&path, &OpenOptions { onnxruntime: Some(lib.clone()), threads: 1 }).unwrap();

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
