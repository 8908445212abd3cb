//! One window's score through the C ABI against the same call on the Rust runtime: what the FFI layer
//! (argument checks, NaN/Inf scan, panic guard, the result struct) adds per window.
//!
//! `cargo bench --bench capi` scores a 5-row window of the tiny test bundle (tests/support/tiny_bundle.rs);
//! `WF_BENCH_BUNDLE=runs/quickstart/detector.wfb cargo bench --bench capi` scores a 20-row UCI-heart window of
//! the quickstart's bundle. Needs onnxruntime (`ORT_DYLIB_PATH`, or `.venv/` from scripts/setup-ort.sh).

#[path = "../tests/support/ort.rs"]
mod ort_support;
#[path = "../tests/support/tiny_bundle.rs"]
mod tiny_bundle;

use std::ffi::CString;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use weightflow::capi::*;
use weightflow::data::{DatasetSpec, WindowSampler};
use weightflow::runtime::{Detector, OpenOptions};

fn window(path_given: bool) -> Array2<f32> {
    if path_given {
        let splits = DatasetSpec::UciHeart.load(0).expect("embedded UCI heart");
        let shifted = splits.shifted.expect("UCI heart has a shifted split");
        WindowSampler::new(&shifted, 20, 3).expect("20 ≤ 323 rows").window(0).x
    } else {
        Array2::from_shape_fn((5, 3), |(i, j)| ((i * 3 + j) as f32 * 0.7).sin())
    }
}

fn score(c: &mut Criterion) {
    let Some(lib) = ort_support::library_or_skip("bench capi") else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let given = std::env::var_os("WF_BENCH_BUNDLE").map(PathBuf::from);
    let path = given.clone().unwrap_or_else(|| tiny_bundle::write_bundle(dir.path()));
    let rows = window(given.is_some());
    let (n, d) = rows.dim();

    let rust =
        Detector::open(&path, &OpenOptions { onnxruntime: Some(lib.clone()), threads: 1, ..OpenOptions::default() })
            .expect("open");
    let c_path = CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
    let c_lib = CString::new(lib.to_str().expect("UTF-8 path")).expect("no NUL");
    let mut options = wf_open_options_default();
    options.onnxruntime_path = c_lib.as_ptr();
    options.threads = 1;
    let mut det = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: valid C strings, options and out-pointers that outlive the call.
    let status = unsafe { wf_detector_open(c_path.as_ptr(), &options, &mut det, &mut err) };
    assert_eq!(status, wf_status::Ok);

    let flat = rows.as_slice().expect("standard layout");
    let mut group = c.benchmark_group(format!("score_window_{n}_rows"));
    group.bench_function("rust_runtime", |b| b.iter(|| rust.score(rows.view(), 7).expect("score")));
    group.bench_function("c_abi", |b| {
        b.iter(|| {
            let mut out = std::mem::MaybeUninit::<wf_score>::uninit();
            let mut err = std::ptr::null_mut();
            // SAFETY: a live detector, n × d floats, an out slot.
            let s = unsafe { wf_detector_score(det, flat.as_ptr(), n, d, 7, out.as_mut_ptr(), &mut err) };
            assert_eq!(s, wf_status::Ok);
            // SAFETY: written on success.
            unsafe { out.assume_init() }
        })
    });
    group.finish();
    // SAFETY: opened above, freed once.
    unsafe { wf_detector_free(det) };
}

criterion_group!(benches, score);
criterion_main!(benches);
