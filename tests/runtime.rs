//! The runtime against the candle meta-model: the exported ONNX velocity equals candle's, onnxruntime
//! generation equals `MetaModel::generate`, and onnx.checker accepts the graph.
#![cfg(all(feature = "train", feature = "runtime"))]

#[path = "support/ort.rs"]
mod ort_support;

use candle_core::Device;
use ndarray::{s, Array1, Array2, Array3};
use rand::Rng as _;
use weightflow::bundle::{Bundle, Manifest, PoolSpec};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::detect::{EnsembleConfig, EnsembleDetector, EnsembleSize, StepRule};
use weightflow::flow::{train_meta, Coupling, MetaModel, MetaTrainConfig, NetConfig, Objective, Prediction, Sampler};
use weightflow::rng;
use weightflow::runtime::{Detector, ExecutionProvider, OpenOptions, RuntimeError};
use weightflow::space::{KaimingUniform, Layout, Source};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The kinds of velocity network a bundle can export: CFM's endpoint net and both of MMFM's.
const VELOCITY_NETS: [(Objective, Prediction); 3] = [
    (Objective::Cfm, Prediction::Endpoint),
    (Objective::Mmfm, Prediction::Endpoint),
    (Objective::Mmfm, Prediction::Velocity),
];

/// A small meta-model over 3-4-2 MLPs trained briefly on synthetic runs whose finals are a scaled copy of
/// their init plus an offset (any weights will do: the tests compare two implementations of one field).
fn tiny_model(objective: Objective, prediction: Prediction) -> Result<MetaModel, Box<dyn std::error::Error>> {
    let layout = Layout::parse("3-4-2")?;
    let mut r = rng::rng(9);
    let mut traj = Array3::<f32>::zeros((32, 3, layout.dim()));
    for run in 0..32 {
        let init = KaimingUniform.sample(&layout, 1, &mut r);
        for k in 0..3 {
            let row: Array2<f32> = &init * (1.0 + k as f32) + 0.3 * k as f32;
            traj.slice_mut(s![run, k, ..]).assign(&row.row(0));
        }
    }
    let cfg = MetaTrainConfig {
        prediction,
        coupling: Coupling::Independent,
        net: NetConfig { hidden: vec![32, 32], time_dim: 8, cond_dim: 0 },
        batch_size: 16,
        steps: 60,
        seed: 3,
        ..MetaTrainConfig::for_objective(objective)
    };
    Ok(train_meta(&layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {})?)
}

/// Settings under which the briefly trained model's members vote (no accuracy floor), untilted.
fn ensemble_config() -> EnsembleConfig {
    EnsembleConfig { ensemble_size: EnsembleSize::Fixed(16), floor: 0.0, ..EnsembleConfig::untilted() }
}

/// A bundle around `model`: f and the pool drawn from the model itself (candle), P a random reference
/// sample, calibration tables for windows of 5 and 8 rows from random null rows.
fn bundle_of(model: &MetaModel, sampler: Sampler, steps: usize) -> Result<Bundle, Box<dyn std::error::Error>> {
    let layout = model.layout().clone();
    let f = model.generate(1, sampler, steps, 99)?.row(0).to_owned();
    let mut r = rng::rng(4);
    let p_ref = Array2::from_shape_fn((30, layout.n_inputs()), |_| r.random_range(-1.0f32..1.0));
    let null = Array2::from_shape_fn((40, layout.n_inputs()), |_| r.random_range(-1.0f32..1.0));
    let mlp = Mlp::new(layout.clone(), Activation::default());
    let pool = model.generate(40, sampler, steps, 17)?;
    let ens = EnsembleDetector::new(mlp.clone(), f.clone(), p_ref.clone(), pool, ensemble_config())?;
    let calibration = ens.calibrate(null.view(), &[5, 8], 20, 1)?;
    let p_labels =
        mlp.predict(f.view().insert_axis(ndarray::Axis(0)), p_ref.view())?.row(0).iter().map(|&c| c as u32).collect();
    Ok(Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: format!("weightflow {}", weightflow::VERSION),
            classifier: Mlp::new(layout.clone(), Activation::default()),
            standardizer: Standardizer { mean: vec![0.5; layout.n_inputs()], std: vec![2.0; layout.n_inputs()] },
            source: model.config().source,
            sampler,
            steps,
            pool: PoolSpec { size: 40, seed: 17 },
            ensemble: ensemble_config(),
            calibration,
            sections: Vec::new(),
        },
        onnx: model.to_onnx()?,
        f: Array1::from(f.to_vec()),
        p_ref,
        p_labels,
        // Generated at open through onnxruntime: the tests below compare that generation with candle's.
        pool: None,
    })
}

/// ‖a − b‖ / ‖b‖ over all entries, in f64.
fn relative(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn open(bundle: &Bundle, lib: std::path::PathBuf) -> Result<(tempfile::TempDir, Detector), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.wfb");
    bundle.write(&path)?;
    let det = Detector::open(&path, &OpenOptions { onnxruntime: Some(lib), threads: 1, ..OpenOptions::default() })?;
    Ok((dir, det))
}

#[test]
fn onnx_velocity_equals_candle_for_endpoint_and_velocity_nets() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("onnx_velocity_equals_candle") else { return Ok(()) };
    for (objective, prediction) in VELOCITY_NETS {
        let model = tiny_model(objective, prediction)?;
        let (_dir, det) = open(&bundle_of(&model, Sampler::Euler, 10)?, lib.clone())?;
        let mut r = rng::rng(21);
        let x = Array2::from_shape_fn((33, model.layout().dim()), |_| r.random_range(-1.5f32..1.5));
        // Interior times, and the ends where the endpoint conversion floors 1 − t.
        for t in [0.0, 0.137, 0.5, 0.93, 0.995, 1.0] {
            let ours = det.velocity(x.view(), t)?;
            let candle = model.velocity_at(x.view(), t)?;
            let rel = relative(&ours, &candle);
            assert!(rel <= 1e-5, "{objective:?}/{prediction:?} t = {t}: relative difference {rel:e}");
        }
    }
    Ok(())
}

#[test]
fn onnxruntime_generation_equals_candle_generation() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("onnxruntime_generation_equals_candle_generation") else {
        return Ok(());
    };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    for (sampler, steps) in [(Sampler::Euler, 50), (Sampler::Rk4, 8)] {
        let (_dir, det) = open(&bundle_of(&model, sampler, steps)?, lib.clone())?;
        let ours = det.generate(100, 5)?;
        let candle = model.generate(100, sampler, steps, 5)?;
        // The same source samples, the same steps; only float rounding differs (θ vs z = θ/s stepping).
        let rel = relative(&ours, &candle);
        assert!(rel <= 1e-5, "{sampler:?}: relative difference {rel:e}");
        // The pool generated at open is the bundle's seed's generation.
        let pool = model.generate(40, sampler, steps, 17)?;
        assert!(relative(det.pool(), &pool) <= 1e-5);
        assert_eq!(det.info().ensemble_size, 16);
        assert_eq!(det.info().n_params, model.layout().dim());
        assert_eq!(det.info().window_sizes, vec![5, 8]);
        assert!(det.generate(0, 1).is_err());
    }
    Ok(())
}

#[test]
fn onnx_checker_accepts_the_exported_graph() -> TestResult {
    let Some(py) = ort_support::python_with_onnx() else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but .venv has no onnx (scripts/setup-ort.sh)");
        eprintln!(
            "skipping onnx_checker_accepts_the_exported_graph: .venv/bin/python has no onnx (run scripts/setup-ort.sh)"
        );
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    for (objective, prediction) in VELOCITY_NETS {
        let path = dir.path().join(format!("{objective:?}-{prediction:?}.onnx"));
        std::fs::write(&path, tiny_model(objective, prediction)?.to_onnx()?)?;
        let out = std::process::Command::new(&py)
            .args(["-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)"])
            .arg(&path)
            .output()?;
        assert!(out.status.success(), "onnx.checker: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[test]
fn scoring_standardises_validates_and_matches_the_ensemble_detector() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("scoring_standardises_validates_and_matches") else { return Ok(()) };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    let bundle = bundle_of(&model, Sampler::Euler, 20)?;
    let (_dir, det) = open(&bundle, lib)?;
    // The same computation by hand: standardise (x − 0.5)/2, and an EnsembleDetector over the runtime's pool.
    let ens = EnsembleDetector::new(
        bundle.manifest.classifier.clone(),
        bundle.f.clone(),
        bundle.p_ref.clone(),
        det.pool().clone(),
        ensemble_config(),
    )?;
    let mut r = rng::rng(8);
    for n in [5, 8] {
        let raw = Array2::from_shape_fn((n, 3), |_| r.random_range(-3.0f32..3.0));
        let std = raw.mapv(|v| (v - 0.5) / 2.0);
        let got = det.score(raw.view(), 3)?;
        let want = ens.score(std.view(), &bundle.manifest.calibration, 3)?;
        assert_eq!(got, want, "window of {n}");
        assert!((0.0..=1.0).contains(&got.p_value) && got.ensemble_size == 16);
        // Same window, same seed: same verdict, even from another thread.
        let again = std::thread::scope(|s| s.spawn(|| det.score(raw.view(), 3).unwrap()).join().unwrap());
        assert_eq!(again, got);
    }
    let bad = |rows: Array2<f32>| det.score(rows.view(), 0).unwrap_err();
    assert!(matches!(bad(Array2::zeros((0, 3))), RuntimeError::InvalidArgument(_)));
    assert!(matches!(bad(Array2::zeros((5, 4))), RuntimeError::InvalidArgument(_)));
    let mut nan = Array2::zeros((5, 3));
    nan[[2, 1]] = f32::NAN;
    let err = bad(nan);
    assert!(matches!(err, RuntimeError::InvalidArgument(_)) && err.to_string().contains("row 2, feature 1"), "{err}");
    let mut inf = Array2::zeros((5, 3));
    inf[[0, 0]] = f32::INFINITY;
    assert!(matches!(bad(inf), RuntimeError::InvalidArgument(_)));
    assert!(matches!(bad(Array2::zeros((6, 3))), RuntimeError::Detect(_)), "window size 6 is not calibrated");
    Ok(())
}

#[test]
fn a_stored_pool_is_used_as_is_and_the_session_is_built_on_first_generate() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("a_stored_pool_is_used_as_is") else { return Ok(()) };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    let generated = bundle_of(&model, Sampler::Euler, 20)?;
    let pool = model.generate(40, Sampler::Euler, 20, 17)?;
    let stored = Bundle { pool: Some(pool.clone()), ..generated.clone() };
    let (_d1, from_generation) = open(&generated, lib.clone())?;
    let (_d2, from_storage) = open(&stored, lib)?;
    assert_eq!(from_storage.pool(), &pool, "a stored pool is taken bit for bit");
    assert!(from_storage.info().pool_stored && !from_generation.info().pool_stored);
    assert_eq!(from_storage.info().bundle_version, weightflow::bundle::FORMAT_VERSION);
    // The stored pool is the one open would have generated (candle vs onnxruntime rounding only).
    assert!(relative(from_storage.pool(), from_generation.pool()) <= 1e-5);
    // Generation still works (the session is built lazily) and equals the eagerly built session's.
    assert_eq!(from_storage.generate(7, 5)?, from_generation.generate(7, 5)?);
    // Scoring with the stored pool matches an EnsembleDetector over that pool exactly.
    let ens = EnsembleDetector::new(
        stored.manifest.classifier.clone(),
        stored.f.clone(),
        stored.p_ref.clone(),
        pool,
        ensemble_config(),
    )?;
    let raw = Array2::from_shape_fn((8, 3), |(i, j)| (i as f32 * 0.7 - j as f32 * 1.3).sin() * 2.0);
    let got = from_storage.score(raw.view(), 4)?;
    assert_eq!(got, ens.score(raw.mapv(|v| (v - 0.5) / 2.0).view(), &stored.manifest.calibration, 4)?);
    Ok(())
}

#[test]
fn a_stored_pool_does_not_hide_a_foreign_onnx_section() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("a_stored_pool_does_not_hide_a_foreign_onnx_section") else {
        return Ok(());
    };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    let good = bundle_of(&model, Sampler::Euler, 4)?;
    let pool = Some(model.generate(40, Sampler::Euler, 4, 17)?);
    // A velocity over another width, and bytes that are not ONNX: both refused at open without running them.
    let other = tiny_model(Objective::Mmfm, Prediction::Velocity)?;
    let mut other_onnx = other.to_onnx()?;
    other_onnx.truncate(other_onnx.len() / 2);
    for onnx in [vec![7u8; 64], other_onnx] {
        let bad = Bundle { onnx, pool: pool.clone(), ..good.clone() };
        let err = open(&bad, lib.clone()).unwrap_err().to_string();
        assert!(err.contains("ONNX model"), "{err}");
    }
    Ok(())
}

#[test]
fn a_bundle_in_memory_opens_as_its_file_does_and_is_checked_the_same() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("a_bundle_in_memory_opens_as_its_file_does") else { return Ok(()) };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    let bundle = bundle_of(&model, Sampler::Euler, 8)?;
    let (_dir, from_file) = open(&bundle, lib.clone())?;
    let options = OpenOptions { onnxruntime: Some(lib), threads: 1, ..OpenOptions::default() };
    let in_memory = Detector::from_bundle(bundle.clone(), &options)?;
    assert_eq!(in_memory.pool(), from_file.pool(), "the same pool, generated from the same seed");
    assert_eq!(in_memory.info().window_sizes, from_file.info().window_sizes);
    let raw = Array2::from_shape_fn((5, 3), |(i, j)| (i as f32 * 1.1 + j as f32 * 0.4).cos() * 2.0);
    assert_eq!(in_memory.score(raw.view(), 6)?, from_file.score(raw.view(), 6)?);
    // What the writer would refuse is refused here too, as a corrupt bundle rather than a panic later.
    let short_labels = Bundle { p_labels: bundle.p_labels[1..].to_vec(), ..bundle.clone() };
    let err = Detector::from_bundle(short_labels, &options).unwrap_err();
    assert!(matches!(err, RuntimeError::BundleCorrupt(_)) && err.to_string().contains("p_labels"), "{err}");
    Ok(())
}

#[test]
fn a_stream_scores_its_windows_like_score_with_seed_plus_index() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("a_stream_scores_its_windows_like_score") else { return Ok(()) };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    let (_dir, det) = open(&bundle_of(&model, Sampler::Euler, 4)?, lib)?;
    let rows = Array2::from_shape_fn((17, 3), |(i, j)| ((i * 3 + j) as f32 * 0.61).sin() * 2.0);
    let mut stream = det.stream(5, 3, 40)?;
    let mut got = stream.push(rows.slice(s![..7, ..]))?;
    got.extend(stream.push(rows.slice(s![7.., ..]))?);
    // Windows [0,5), [3,8), [6,11), [9,14), [12,17).
    assert_eq!(got.iter().map(|w| w.end_row).collect::<Vec<_>>(), [5, 8, 11, 14, 17]);
    for w in &got {
        let end = w.end_row as usize;
        assert_eq!(w.score, det.score(rows.slice(s![end - 5..end, ..]), 40 + w.index)?, "window {}", w.index);
    }
    assert!(matches!(det.stream(6, 1, 0), Err(RuntimeError::InvalidArgument(_))), "6 rows are not calibrated");
    assert!(matches!(det.stream(5, 0, 0), Err(RuntimeError::InvalidArgument(_))));
    let mut bad = rows.slice(s![..2, ..]).to_owned();
    bad[[1, 2]] = f32::NAN;
    assert!(matches!(stream.push(bad.view()), Err(RuntimeError::InvalidArgument(_))));
    assert_eq!(stream.windows().rows_seen(), 17, "a refused push consumes nothing");
    Ok(())
}

#[test]
fn a_stream_push_whose_scoring_fails_part_way_changes_nothing() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("a_stream_push_whose_scoring_fails") else { return Ok(()) };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    // Members that take plain gradient steps: enormous finite features make those steps diverge, so a window
    // holding one fails to score (the calibration tables are the untilted ones; only the failure matters here).
    let mut bundle = bundle_of(&model, Sampler::Euler, 4)?;
    bundle.manifest.ensemble =
        EnsembleConfig { steps: 2, lr: 2.0, step_rule: StepRule::Absolute, ..bundle.manifest.ensemble.clone() };
    let (_dir, det) = open(&bundle, lib)?;
    let mut stream = det.stream(5, 3, 40)?;
    let rows = Array2::from_shape_fn((9, 3), |(i, j)| ((i * 5 + j) as f32 * 0.37).cos());
    assert_eq!(stream.push(rows.slice(s![..4, ..]))?.len(), 0);
    // Rows 4..9 complete windows [0,5) and [3,8); row 7 poisons the second only.
    let mut poisoned = rows.slice(s![4.., ..]).to_owned();
    poisoned[[3, 0]] = 3e38;
    assert!(det.score(rows.slice(s![..5, ..]), 40).is_ok(), "the first window alone scores");
    let err = stream.push(poisoned.view()).expect_err("the window holding 3e38 cannot be scored");
    assert!(err.to_string().contains("the refinement diverged on this window"), "{err}");
    assert_eq!(stream.windows().rows_seen(), 4, "a push that fails part-way consumes nothing");
    let got = stream.push(rows.slice(s![4.., ..]))?;
    assert_eq!(got.iter().map(|w| (w.index, w.end_row)).collect::<Vec<_>>(), [(0, 5), (1, 8)]);
    assert_eq!(got[0].score, det.score(rows.slice(s![..5, ..]), 40)?, "as if the failed push never happened");
    Ok(())
}

#[test]
fn the_cuda_provider_fails_where_onnxruntime_has_none_instead_of_falling_back() -> TestResult {
    let Some(lib) = ort_support::library_or_skip("the_cuda_provider_fails") else { return Ok(()) };
    let model = tiny_model(Objective::Cfm, Prediction::Endpoint)?;
    let bundle = bundle_of(&model, Sampler::Euler, 4)?;
    let dir = tempfile::tempdir()?;
    let (generated_at_open, stored) = (dir.path().join("a.wfb"), dir.path().join("b.wfb"));
    bundle.write(&generated_at_open)?;
    let pool = model.generate(40, Sampler::Euler, 4, 17)?;
    Bundle { pool: Some(pool), ..bundle }.write(&stored)?;
    // Loads the library, so that the provider can be asked about.
    Detector::open(&stored, &OpenOptions { onnxruntime: Some(lib.clone()), ..OpenOptions::default() })?;
    use ort::ep::ExecutionProvider as _;
    if ort::ep::CUDA::default().is_available()? {
        eprintln!("skipped: this onnxruntime has the CUDA provider");
        return Ok(());
    }
    let cuda = OpenOptions { onnxruntime: Some(lib), threads: 1, provider: ExecutionProvider::Cuda { device: 0 } };
    let is_cuda_failure =
        |e: &RuntimeError| matches!(e, RuntimeError::OnnxRuntime { .. }) && e.to_string().contains("CUDA");
    // Without a stored pool the session, and with it the provider, is built at open.
    let err = Detector::open(&generated_at_open, &cuda).err().ok_or("opened on a CUDA provider that is not there")?;
    eprintln!("open: {err}");
    assert!(is_cuda_failure(&err), "{err}");
    // With a stored pool, open only reads and scoring runs on the CPU; the first generation builds the session.
    let det = Detector::open(&stored, &cuda)?;
    let window = Array2::from_shape_fn((5, 3), |(i, j)| ((i * 3 + j) as f32 * 0.7).sin());
    det.score(window.view(), 1)?;
    let err = det.generate(2, 0).err().ok_or("generated on a CUDA provider that is not there")?;
    assert!(is_cuda_failure(&err), "{err}");
    Ok(())
}
