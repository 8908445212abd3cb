// The fuzz harnesses: what each target does with one input. Shared by the libFuzzer targets
// (fuzz_targets/*.rs, nightly) and the corpus replay in the ordinary test suite (tests/fuzz_corpus.rs, stable),
// so both run exactly the same code. Every call may return an error; none may panic, hang or abort.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use ndarray::{Array1, Array2, ArrayView2};
use weightflow::bundle::Bundle;
use weightflow::bundle::{Manifest, PoolSpec};
use weightflow::capi::{
    wf_detector, wf_detector_info, wf_detector_open, wf_detector_score, wf_error, wf_error_free, wf_error_message,
    wf_error_status, wf_info, wf_open_options_default, wf_score, wf_status, wf_stream, wf_stream_free, wf_stream_new,
    wf_stream_push, wf_stream_windows_after, wf_window_score,
};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::data::{
    parse_csv, parse_features_csv, parse_idx_images, parse_idx_labels, CsvHeader, CsvOptions, LabelColumn,
};
use weightflow::detect::{window_seed, EnsembleConfig, EnsembleDetector, EnsembleSize, Score, Selection};
use weightflow::ode::Sampler;
use weightflow::onnx::{export_velocity, DenseLayer, VelocitySpec};
use weightflow::runtime::{Detector, OpenOptions, RuntimeError};
use weightflow::space::{Layout, SourceKind};

/// The names of the targets, each a folder under `fuzz/corpus/`.
#[allow(dead_code)]
pub const TARGETS: &[&str] =
    &["csv", "idx_images", "idx_labels", "bundle", "bundle_digests", "features_csv", "capi_score"];

/// Run target `name` on `bytes`.
pub fn run(name: &str, bytes: &[u8]) {
    match name {
        "csv" => csv(bytes),
        "idx_images" => drop(parse_idx_images(bytes, "fuzz")),
        "idx_labels" => drop(parse_idx_labels(bytes, "fuzz")),
        "bundle" => bundle(bytes),
        "bundle_digests" => {
            if let Some(repaired) = with_repaired_digests(bytes) {
                bundle(&repaired);
            }
        }
        "features_csv" => {
            if let Ok(x) = parse_features_csv(bytes, "fuzz.csv") {
                assert!(x.nrows() > 0 && x.iter().all(|v| v.is_finite()));
            }
        }
        "capi_score" => capi_score(bytes),
        other => panic!("unknown fuzz target {other:?}"),
    }
}

fn csv(bytes: &[u8]) {
    let headers = [CsvHeader::Auto, CsvHeader::Named, CsvHeader::Absent, CsvHeader::Sklearn];
    let labels = [LabelColumn::Last, LabelColumn::Index(0), LabelColumn::Name("label".into())];
    for header in &headers {
        for label_column in &labels {
            let options = CsvOptions { header: header.clone(), label_column: label_column.clone() };
            if let Ok(ds) = parse_csv(bytes, "fuzz.csv", &options) {
                // What the loader accepts must be a consistent data set.
                assert_eq!(ds.x.nrows(), ds.y.len());
                assert!(ds.y.iter().all(|&y| y < ds.n_classes));
                assert!(ds.x.iter().all(|v| v.is_finite()));
            }
        }
    }
}

/// The strict bundle reader (what `wf_detector_open` runs on a file before onnxruntime sees anything). What it
/// accepts must pass its own validation and write back to bytes that read as the same bundle.
fn bundle(bytes: &[u8]) {
    if let Ok(b) = Bundle::from_bytes(bytes) {
        b.validate().expect("an accepted bundle is valid");
        let again = Bundle::from_bytes(&b.to_bytes().expect("an accepted bundle writes")).expect("and reads back");
        assert_eq!(again.f, b.f);
        assert_eq!(again.pool, b.pool);
        assert_eq!(again.p_labels, b.p_labels);
    }
}

/// `bytes` with the manifest's section digests and the header's manifest digest recomputed, so that mutations
/// reach the manifest's JSON, the sections table and the safetensors parser instead of stopping at the first
/// sha256 check (which the `bundle` target covers). None when the bytes have no header or no JSON manifest.
fn with_repaired_digests(bytes: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    const HEADER: usize = 52; // magic 8, version 4, manifest length 8, manifest sha256 32
    let hex = |b: &[u8]| Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let len = usize::try_from(u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?)).ok()?;
    let end = HEADER.checked_add(len)?;
    let manifest = bytes.get(HEADER..end)?;
    let data = &bytes[end..];
    let mut m: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    if let Some(sections) = m.get_mut("sections").and_then(|s| s.as_array_mut()) {
        for s in sections {
            let range = || -> Option<&[u8]> {
                let offset = usize::try_from(s.get("offset")?.as_u64()?).ok()?;
                let length = usize::try_from(s.get("length")?.as_u64()?).ok()?;
                data.get(offset..offset.checked_add(length)?)
            };
            if let Some(slice) = range() {
                s["sha256"] = serde_json::Value::String(hex(slice));
            }
        }
    }
    let json = serde_json::to_vec(&m).ok()?;
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&json));
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    Some(out)
}

// ---------------------------------------------------------------------------------------------------------------
// `capi_score`: the C ABI's score input (`wf_detector_score`, `wf_stream_*`), called through the `extern "C"`
// functions themselves on a detector opened once from a small calibrated bundle with a stored pool.

/// The onnxruntime library `capi_score` opens its detector with (`wf_detector_open` loads it even for a
/// bundle with a stored pool, whose scoring never runs it): set by the corpus replay before the first input,
/// else `ORT_DYLIB_PATH` (scripts/fuzz.sh exports it from scripts/setup-ort.sh).
#[allow(dead_code)]
pub static ONNXRUNTIME: OnceLock<PathBuf> = OnceLock::new();

/// Rows a stream sees per input at most, windows it completes at most, and pushes at most (bounds the work
/// of one input: every window is scored twice, through the ABI and by the runtime).
const STREAM_ROWS: usize = 32;
const STREAM_WINDOWS: usize = 6;
const PUSHES: usize = 32;

/// The detector behind the ABI, and the same bundle opened as a `runtime::Detector` for reference verdicts.
struct Fixture {
    det: *const wf_detector,
    rust: Detector,
    n_features: usize,
    window_sizes: Vec<usize>,
    ensemble_size: usize,
    alpha: f64,
}

// SAFETY: a wf_detector is immutable after open and documented thread-safe for every call but free (never
// called: the fixture lives as long as the process).
unsafe impl Send for Fixture {}
unsafe impl Sync for Fixture {}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ort = ONNXRUNTIME.get().cloned().or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from));
        let ort = ort.expect("capi_score needs onnxruntime: export ORT_DYLIB_PATH=$(scripts/setup-ort.sh)");
        let bundle = capi_bundle();
        let path = std::env::temp_dir().join(format!("weightflow-fuzz-capi-{}.wfb", std::process::id()));
        bundle.write(&path).expect("the fixture bundle writes");
        let lib = CString::new(ort.to_str().expect("a UTF-8 onnxruntime path")).unwrap();
        let path_c = CString::new(path.to_str().expect("a UTF-8 temp path")).unwrap();
        let mut options = wf_open_options_default();
        options.onnxruntime_path = lib.as_ptr();
        let (mut det, mut err): (*mut wf_detector, *mut wf_error) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid NUL-terminated strings and out-pointers.
        let status = unsafe { wf_detector_open(path_c.as_ptr(), &options, &mut det, &mut err) };
        assert_eq!(status, wf_status::Ok, "wf_detector_open: {}", unsafe { message(err) });
        let rust = Detector::open(&path, &OpenOptions { onnxruntime: Some(ort), threads: 1, ..OpenOptions::default() })
            .expect("Detector::open");
        let _ = std::fs::remove_file(&path); // both detectors read the whole bundle at open
        let mut info = std::mem::MaybeUninit::<wf_info>::uninit();
        // SAFETY: a live detector, a writable out-parameter.
        assert_eq!(unsafe { wf_detector_info(det, info.as_mut_ptr(), std::ptr::null_mut()) }, wf_status::Ok);
        let info = unsafe { info.assume_init() };
        // SAFETY: window_sizes holds n_window_sizes values owned by the (never freed) detector.
        let window_sizes = unsafe { std::slice::from_raw_parts(info.window_sizes, info.n_window_sizes) }.to_vec();
        assert_eq!(window_sizes, rust.info().window_sizes);
        assert!(rust.info().pool_stored);
        Fixture {
            det,
            n_features: info.n_features,
            window_sizes,
            ensemble_size: info.ensemble_size,
            alpha: bundle.manifest.ensemble.alpha,
            rust,
        }
    })
}

/// A calibrated format-2 bundle of 3-4-2 MLPs with a stored pool, built without candle or onnxruntime:
/// pseudo-random weights, a valid (untrained) velocity graph from `onnx::export_velocity`, and the
/// meta-detectron's selection and refinement steps (floor 0, so every member may vote), calibrated for
/// windows of 4 and 8 rows. The standardiser's σ is below 1 so that large finite inputs overflow it.
fn capi_bundle() -> weightflow::bundle::Bundle {
    let layout = Layout::parse("3-4-2").expect("a valid architecture");
    let d = layout.dim();
    let mut state = 0x5eed_u64;
    let mut uniform = move || {
        // splitmix64 → [-1, 1)
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let f = Array1::from_shape_fn(d, |_| uniform());
    let p_ref = Array2::from_shape_fn((20, 3), |_| uniform());
    let null = Array2::from_shape_fn((40, 3), |_| uniform());
    let pool = Array2::from_shape_fn((12, d), |_| uniform());
    let mlp = Mlp::new(layout.clone(), Activation::default());
    let ensemble = EnsembleConfig {
        ensemble_size: EnsembleSize::Fixed(6),
        selection: Selection::Disagreeing,
        floor: 0.0,
        steps: 2,
        refine_rows: 8,
        ..EnsembleConfig::default()
    };
    let det = EnsembleDetector::new(mlp.clone(), f.clone(), p_ref.clone(), pool.clone(), ensemble.clone())
        .expect("the fixture's ensemble");
    let calibration = det.calibrate(null.view(), &[4, 8], 20, 1).expect("the fixture calibrates");
    let p_labels = mlp.predict(f.view().insert_axis(ndarray::Axis(0)), p_ref.view()).unwrap();
    let layer =
        |out: usize, inp: usize, w: f32| DenseLayer { out, inp, weight: vec![w; out * inp], bias: vec![0.0; out] };
    let spec = VelocitySpec {
        dim: d,
        scale: vec![1.0; d],
        freqs: vec![1.0],
        hidden: vec![layer(4, d + 2, 0.01)],
        head: layer(d, 4, 0.01),
        endpoint: None,
    };
    weightflow::bundle::Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: "fuzz/harness.rs capi_score".into(),
            classifier: mlp,
            standardizer: Standardizer { mean: vec![0.5, -0.25, 0.0], std: vec![0.5, 2.0, 0.125] },
            source: SourceKind::Kaiming,
            sampler: Sampler::Euler,
            steps: 2,
            pool: PoolSpec { size: 12, seed: 0 },
            ensemble,
            calibration,
            sections: Vec::new(),
        },
        onnx: export_velocity(&spec).expect("the velocity graph"),
        f,
        p_ref,
        p_labels: p_labels.row(0).iter().map(|&c| c as u32).collect(),
        pool: Some(pool),
    }
}

/// The message of a live error (empty for NULL).
///
/// # Safety
/// `err` is NULL or a live error.
unsafe fn message(err: *const wf_error) -> String {
    let m = unsafe { wf_error_message(err) };
    if m.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(m) }.to_string_lossy().into_owned()
}

/// Checks a call's outcome against the contract: `status` is `expected`; a failure handed back an error of
/// that status with a non-empty message (released here); a success left `err` untouched.
fn check_outcome(what: &str, status: wf_status, err: *mut wf_error, expected: wf_status) {
    assert!(wf_status::ALL.contains(&status), "{what}: undocumented status {}", status as u32);
    if status == wf_status::Ok {
        assert!(err.is_null(), "{what}: success wrote an error");
    } else {
        assert!(!err.is_null(), "{what}: failure {status:?} without an error object");
        // SAFETY: the library just handed back this live error.
        let (err_status, text) = unsafe { (wf_error_status(err), message(err)) };
        unsafe { wf_error_free(err) };
        assert_eq!(err_status, status, "{what}: the error's status differs from the returned one");
        assert!(!text.trim().is_empty(), "{what}: failure {status:?} with an empty message");
        assert_ne!(status, wf_status::Panic, "{what}: a panic was caught at the boundary: {text}");
        assert_eq!(status, expected, "{what}: {text}");
    }
    assert_eq!(status, expected, "{what}");
}

/// The status the ABI maps a runtime failure to (capi/backend.rs).
fn status_of(e: &RuntimeError) -> wf_status {
    match e {
        RuntimeError::InvalidArgument(_) => wf_status::InvalidArgument,
        RuntimeError::Detect(_) => wf_status::Detect,
        other => panic!("scoring failed with an unexpected error: {other}"),
    }
}

/// A successful verdict keeps the contract and equals `s`, the runtime's on the same window and seed.
fn check_score(what: &str, fx: &Fixture, got: &wf_score, s: &Score) {
    assert!(got.p_value > 0.0 && got.p_value <= 1.0, "{what}: p-value {} outside (0, 1]", got.p_value);
    assert!(got.statistic.is_finite(), "{what}: statistic {}", got.statistic);
    assert!(!got.threshold.is_nan(), "{what}: threshold is NaN");
    assert!((0.0..=1.0).contains(&got.disagreement), "{what}: disagreement {}", got.disagreement);
    assert!((0.0..=1.0).contains(&got.entropy_p), "{what}: entropy_p {}", got.entropy_p);
    assert!(got.ensemble_size <= fx.ensemble_size, "{what}: {} voters of {}", got.ensemble_size, fx.ensemble_size);
    assert_eq!(got.is_shift, got.p_value <= fx.alpha, "{what}: is_shift disagrees with p ≤ α");
    assert_eq!(got.is_shift, got.statistic > got.threshold, "{what}: is_shift disagrees with statistic > threshold");
    assert_eq!(*got, wf_score::from(*s), "{what}: the ABI's verdict differs from runtime::Detector's");
}

/// Reads the input front to back; missing bytes read as 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
}

/// `capi_score`'s input: a mode byte (bit 0: `n_cols` from the next bytes instead of the detector's feature
/// count; 1: `n_rows` raw instead of a calibrated window size; 2: an `n_rows` so large that `n_rows × n_cols`
/// floats overflow (the ABI must refuse it before reading); 3: values as raw little-endian f32 bits (NaN, Inf,
/// subnormals, huge magnitudes) instead of small steps i8/16; 4: `rows` NULL; 5: `rows` misaligned; 6: the
/// stream's output buffer one entry short; 7: the stream's window size raw instead of a calibrated one), then
/// n_rows, n_cols, seed (8 bytes), window, stride, chunk rows and a `wf_stream_windows_after` probe (8 bytes),
/// then the values.
fn capi_score(bytes: &[u8]) {
    let fx = fixture();
    let nf = fx.n_features;
    let mut input = Input(bytes);
    let mode = input.byte();
    let bit = |i: u32| mode & (1 << i) != 0;
    let (rows_byte, cols_byte, seed) = (input.byte() as usize, input.byte() as usize, input.u64());
    let (window_byte, stride, chunk, probe) = (input.byte(), input.byte() as usize, input.byte(), input.u64());
    let raw = bit(3);
    let mut values = Vec::new();
    while !input.0.is_empty() && values.len() < 255 * 255 {
        values.push(if raw {
            f32::from_le_bytes(std::array::from_fn(|_| input.byte()))
        } else {
            input.byte() as i8 as f32 / 16.0
        });
    }

    // wf_detector_score.
    let n_cols = if bit(0) { cols_byte } else { nf };
    let n_rows = if bit(2) {
        // n_rows × n_cols floats need more than isize::MAX bytes (or overflow usize): refused before any read.
        (isize::MAX as usize / 4 / n_cols.max(1)).saturating_add(1).saturating_add(rows_byte << (rows_byte % 48))
    } else if bit(1) {
        rows_byte
    } else {
        fx.window_sizes[rows_byte % fx.window_sizes.len()]
    };
    let claimed = if bit(2) { 0 } else { n_rows * n_cols };
    // One float more than claimed, so that a pointer one byte in (misaligned: refused unread) stays inside.
    let buffer: Vec<f32> = values.iter().copied().chain(std::iter::repeat(0.0)).take(claimed + 1).collect();
    let block = &buffer[..claimed];
    let rows_ptr: *const f32 = if bit(4) {
        std::ptr::null()
    } else if bit(5) {
        buffer.as_ptr().cast::<u8>().wrapping_add(1).cast()
    } else {
        buffer.as_ptr()
    };
    // The ABI's order: sizes, then the count n_rows × n_cols, then the pointer, then the count's bytes.
    let expected = if n_rows == 0 || n_cols == 0 || n_cols != nf || n_rows.checked_mul(n_cols).is_none() {
        Err(wf_status::InvalidArgument)
    } else if bit(4) {
        Err(wf_status::NullPointer)
    } else if bit(5) {
        Err(wf_status::Misaligned)
    } else if bit(2) || block.iter().any(|v| !v.is_finite()) {
        Err(wf_status::InvalidArgument)
    } else {
        let view = ArrayView2::from_shape((n_rows, n_cols), block).unwrap();
        fx.rust.score(view, seed).map_err(|e| status_of(&e))
    };
    let sentinel = wf_score {
        p_value: -1.0,
        statistic: 0.0,
        threshold: 0.0,
        disagreement: 0.0,
        entropy_p: 0.0,
        ensemble_size: usize::MAX,
        is_shift: false,
    };
    let (mut out, mut err) = (sentinel, std::ptr::null_mut());
    // SAFETY: a live detector; rows_ptr is NULL, misaligned (refused unread), or covers n_rows × n_cols floats
    // unless that product overflows (refused unread); out and err are writable.
    let status = unsafe { wf_detector_score(fx.det, rows_ptr, n_rows, n_cols, seed, &mut out, &mut err) };
    let what = format!("wf_detector_score(n_rows {n_rows}, n_cols {n_cols}, seed {seed})");
    check_outcome(&what, status, err, expected.as_ref().err().copied().unwrap_or(wf_status::Ok));
    match &expected {
        Ok(s) => check_score(&what, fx, &out, s),
        Err(_) => assert_eq!(out, sentinel, "{what}: a failure wrote the verdict"),
    }

    // The same values as a stream.
    let window =
        if bit(7) { window_byte as usize } else { fx.window_sizes[window_byte as usize % fx.window_sizes.len()] };
    let (mut stream, mut err): (*mut wf_stream, *mut wf_error) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: a live detector that outlives the stream; writable out-parameters.
    let status = unsafe { wf_stream_new(fx.det, window, stride, seed, &mut stream, &mut err) };
    let ok = fx.window_sizes.contains(&window) && stride > 0;
    let what = format!("wf_stream_new(window {window}, stride {stride})");
    check_outcome(&what, status, err, if ok { wf_status::Ok } else { wf_status::InvalidArgument });
    if !ok {
        assert!(stream.is_null(), "{what}: a failure wrote the stream");
        return;
    }
    let total = (values.len() / nf).min(STREAM_ROWS).min(window + (STREAM_WINDOWS - 1) * stride);
    let mut pushed: Vec<f32> = Vec::new(); // every row the stream consumed
    let (mut at, mut pushes) = (0, 0);
    let step = chunk as usize % 17;
    while at < total && pushes < PUSHES {
        pushes += 1;
        // A chunk of 0 rows is one refused push; then the rest goes at once.
        let n = if step == 0 && pushes == 1 {
            0
        } else if step == 0 {
            total - at
        } else {
            step.min(total - at)
        };
        let rows = &values[at * nf..(at + n) * nf];
        let seen = (pushed.len() / nf) as u64;
        let ends: Vec<(u64, u64)> = (0..)
            .map(|k: u64| (k, k * stride as u64 + window as u64))
            .skip_while(|&(_, end)| end <= seen)
            .take_while(|&(_, end)| end <= seen + n as u64)
            .collect();
        let mut needed = usize::MAX;
        // SAFETY: a live stream; a writable out-parameter.
        let status = unsafe { wf_stream_windows_after(stream, n, &mut needed, std::ptr::null_mut()) };
        assert_eq!(status, wf_status::Ok);
        assert_eq!(needed, ends.len(), "wf_stream_windows_after({n}) after {seen} rows, stride {stride}");
        let short = bit(6) && needed > 0;
        let cap = if short { needed - 1 } else { needed };
        let mut out = vec![wf_window_score { index: u64::MAX, end_row: 0, score: sentinel }; cap.max(1)];
        let out_ptr = if cap == 0 { std::ptr::null_mut() } else { out.as_mut_ptr() };
        let (mut n_out, mut err) = (usize::MAX, std::ptr::null_mut());
        // Window k's verdict from the runtime, on the rows the stream holds when it completes.
        let mut all: Vec<f32> = pushed.clone();
        all.extend_from_slice(rows);
        let reference: Vec<Result<Score, wf_status>> = if n == 0 || short || rows.iter().any(|v| !v.is_finite()) {
            Vec::new()
        } else {
            ends.iter()
                .map(|&(k, end)| {
                    let w = &all[(end as usize - window) * nf..end as usize * nf];
                    let view = ArrayView2::from_shape((window, nf), w).unwrap();
                    fx.rust.score(view, window_seed(seed, k)).map_err(|e| status_of(&e))
                })
                .collect()
        };
        let failing = reference.iter().position(|r| r.is_err());
        let expected = if n == 0 || short || rows.iter().any(|v| !v.is_finite()) {
            wf_status::InvalidArgument
        } else if let Some(i) = failing {
            reference[i].unwrap_err()
        } else {
            wf_status::Ok
        };
        // SAFETY: a live stream over a live detector; rows covers n × nf floats (NULL-free: values is a Vec);
        // out_ptr is NULL only with capacity 0; n_out and err are writable.
        let status = unsafe { wf_stream_push(stream, rows.as_ptr(), n, nf, out_ptr, cap, &mut n_out, &mut err) };
        let what = format!("wf_stream_push({n} rows after {seen}, window {window}, stride {stride}, cap {cap})");
        check_outcome(&what, status, err, expected);
        if status != wf_status::Ok {
            // A failed push changes nothing (refused arguments or a window that failed to score): no row
            // consumed, no verdict written. These rows are dropped; the next chunk follows the earlier rows.
            assert_eq!(n_out, usize::MAX, "{what}: a failure wrote n_out");
            assert!(out.iter().all(|w| w.index == u64::MAX), "{what}: a failure wrote a verdict");
            at += n;
            continue;
        }
        assert_eq!(n_out, ends.len(), "{what}: n_out");
        for ((w, &(k, end)), want) in out[..n_out].iter().zip(&ends).zip(&reference) {
            assert_eq!((w.index, w.end_row), (k, end), "{what}: window order");
            check_score(&format!("{what}, window {k}"), fx, &w.score, want.as_ref().unwrap());
        }
        pushed = all;
        at += n;
    }
    // How many windows a push of `probe` more rows would complete (any size: nothing is read).
    let probe = usize::try_from(probe).unwrap_or(usize::MAX);
    let seen = (pushed.len() / nf) as u128;
    let (w, s) = (window as u128, stride as u128);
    // Windows k with seen < k·s + w ≤ seen + probe.
    let upto = |rows: u128| if rows < w { 0 } else { (rows - w) / s + 1 };
    let want = upto(seen + probe as u128) - upto(seen);
    let mut got = usize::MAX;
    let mut err = std::ptr::null_mut();
    // SAFETY: a live stream; writable out-parameters.
    let status = unsafe { wf_stream_windows_after(stream, probe, &mut got, &mut err) };
    let what = format!("wf_stream_windows_after({probe}) after {seen} rows, window {window}, stride {stride}");
    check_outcome(&what, status, err, wf_status::Ok);
    assert_eq!(got as u128, want, "{what}");
    // SAFETY: the stream is live and freed once, before its detector (which is never freed).
    unsafe { wf_stream_free(stream) };
}
