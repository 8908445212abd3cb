//! A real, calibrated bundle of a briefly trained CFM meta-model over 3-4-2 MLPs, for tests that need one
//! on disk (the C ABI against the Rust runtime, the sidecar over HTTP). Any weights do: those tests compare
//! two paths to one generator and one scorer.

use candle_core::Device;
use ndarray::{s, Array1, Array2, Array3, Axis};
use rand::Rng as _;
use weightflow::bundle::{Bundle, Manifest, PoolSpec};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::detect::{EnsembleConfig, EnsembleDetector, EnsembleSize};
use weightflow::flow::{train_meta, Coupling, MetaTrainConfig, NetConfig, Objective, Prediction, Sampler};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};

/// A bundle of a briefly trained CFM meta-model over 3-4-2 MLPs (any weights do: the tests compare two
/// paths to one generator), written under `dir`.
pub fn write_bundle(dir: &std::path::Path) -> std::path::PathBuf {
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
    // f and the pool drawn from the model; P and the null windows random rows; calibrated for windows of 5.
    let f = model.generate(1, Sampler::Euler, 4, 99).unwrap().row(0).to_owned();
    let mut r = rng::rng(4);
    let p_ref = Array2::from_shape_fn((30, 3), |_| r.random_range(-1.0f32..1.0));
    let null = Array2::from_shape_fn((40, 3), |_| r.random_range(-1.0f32..1.0));
    let mlp = Mlp::new(layout.clone(), Activation::default());
    let pool = model.generate(40, Sampler::Euler, 4, 17).unwrap();
    let ens = EnsembleDetector::new(mlp.clone(), f.clone(), p_ref.clone(), pool.clone(), ensemble_config()).unwrap();
    let calibration = ens.calibrate(null.view(), &[5], 20, 1).unwrap();
    let p_labels =
        mlp.predict(f.view().insert_axis(Axis(0)), p_ref.view()).unwrap().row(0).iter().map(|&c| c as u32).collect();
    let bundle = Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: "tests/capi_runtime.rs".into(),
            classifier: Mlp::new(layout.clone(), Activation::default()),
            standardizer: Standardizer { mean: vec![0.0; 3], std: vec![1.0; 3] },
            source: model.config().source,
            sampler: Sampler::Euler,
            steps: 4,
            pool: PoolSpec { size: 40, seed: 17 },
            ensemble: ensemble_config(),
            calibration,
            sections: Vec::new(),
        },
        onnx: model.to_onnx().unwrap(),
        f: Array1::from(f.to_vec()),
        p_ref,
        p_labels,
        pool: Some(pool),
    };
    let path = dir.join("tiny.wfb");
    bundle.write(&path).unwrap();
    path
}

/// Members of a briefly trained model vote without an accuracy floor (as in tests/runtime.rs).
pub fn ensemble_config() -> EnsembleConfig {
    EnsembleConfig { ensemble_size: EnsembleSize::Fixed(16), floor: 0.0, ..EnsembleConfig::untilted() }
}
