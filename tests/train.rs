//! Base-model training: the two engines agree, runs are deterministic and independent of R, trajectory sets
//! round-trip and refuse corruption, and the candle forward/autograd path agrees with the native classifier.

use candle_core::{Device, Tensor};
use ndarray::{Array2, Axis};
use weightflow::classifier::{Activation, Mlp, Targets};
use weightflow::data::DatasetSpec;
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};
use weightflow::train::{
    train_base, train_base_task, train_runs, Backend, BatchedMlp, DeviceKind, OptimizerKind, TrainConfig, TrainData,
    TrajectorySet,
};

type R = Result<(), Box<dyn std::error::Error>>;

fn small_cfg(backend: Backend, optimizer: OptimizerKind) -> TrainConfig {
    TrainConfig {
        runs: 3,
        checkpoints: 3,
        epochs: 2,
        batch_size: 32,
        lr: 5e-3,
        weight_decay: 1e-3,
        l2: 1e-3,
        optimizer,
        backend,
        ..TrainConfig::default()
    }
}

/// UCI heart, standardised: (train x, train y, val x, val y).
type Heart = (Array2<f32>, Vec<usize>, Array2<f32>, Vec<usize>);

fn heart() -> Result<Heart, Box<dyn std::error::Error>> {
    let s = DatasetSpec::UciHeart.load(0)?;
    let st = weightflow::data::Standardizer::fit(&s.train.x)?;
    let (tr, va) = (st.transform(&s.train)?, st.transform(&s.val)?);
    Ok((tr.x, tr.y, va.x, va.y))
}

fn max_rel_diff(a: &ndarray::ArrayViewD<f32>, b: &ndarray::ArrayViewD<f32>) -> f32 {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn native_and_candle_engines_follow_the_same_trajectory() -> R {
    let (x, y, vx, vy) = heart()?;
    let layout = Layout::parse("9-16-16-2")?;
    for opt in [OptimizerKind::Adam, OptimizerKind::Sgd] {
        let run = |backend| {
            train_runs(
                &layout,
                &small_cfg(backend, opt),
                TrainData { x: x.view(), y: &y },
                TrainData { x: vx.view(), y: &vy },
                &Device::Cpu,
                &mut |_| {},
            )
        };
        let (a, b) = (run(Backend::Native)?, run(Backend::Candle)?);
        assert_eq!(a.checkpoint_steps, b.checkpoint_steps);
        // 22 steps of f32 arithmetic in two different orders: agreement to ~1e-4 of the weights' scale.
        let d = max_rel_diff(&a.thetas.view().into_dyn(), &b.thetas.view().into_dyn());
        assert!(d < 2e-4, "{opt:?}: engines differ by {d}");
        // The init is shared exactly.
        assert_eq!(a.thetas.index_axis(Axis(1), 0), b.thetas.index_axis(Axis(1), 0));
    }
    Ok(())
}

#[test]
fn runs_are_deterministic_and_independent_of_how_many_train_together() -> R {
    let (x, y, vx, vy) = heart()?;
    let layout = Layout::parse("9-8-2")?;
    let train = |runs: usize| {
        let cfg = TrainConfig { runs, ..small_cfg(Backend::Native, OptimizerKind::Adam) };
        train_runs(
            &layout,
            &cfg,
            TrainData { x: x.view(), y: &y },
            TrainData { x: vx.view(), y: &vy },
            &Device::Cpu,
            &mut |_| {},
        )
    };
    let (a, b, c) = (train(2)?, train(2)?, train(5)?);
    assert_eq!(a.thetas, b.thetas);
    assert_eq!(a.thetas, c.thetas.slice(ndarray::s![..2, .., ..]));
    // Runs differ from each other, and training moved them.
    assert_ne!(c.thetas.index_axis(Axis(0), 0), c.thetas.index_axis(Axis(0), 1));
    assert_ne!(c.thetas.index_axis(Axis(1), 0), c.thetas.index_axis(Axis(1), 3));
    Ok(())
}

#[test]
fn candle_forward_and_autograd_agree_with_the_native_classifier() -> R {
    // Random weights and inputs; the native path is checked against finite differences in tests/classifier.rs,
    // this closes the triangle with candle's autograd.
    for (arch, act) in [("9-16-16-2", Activation::Relu), ("6-12-5", Activation::Tanh), ("4-7-7-3", Activation::Silu)] {
        let layout = Layout::parse(arch)?;
        let mut r = rng::rng(9);
        let m = 4;
        let thetas = KaimingUniform.sample(&layout, m, &mut r);
        let x = Array2::from_shape_fn((10, layout.n_inputs()), |(i, j)| ((i * 7 + j * 3) as f32 * 0.37).sin() * 2.0);
        let labels: Vec<usize> = (0..10).map(|i| i % layout.n_outputs()).collect();
        let mlp = Mlp::new(layout.clone(), act);
        let native = mlp.logits(thetas.view(), x.view())?;

        let model = BatchedMlp::from_thetas(&layout, act, thetas.view(), &Device::Cpu)?;
        let xs: Vec<f32> = (0..m).flat_map(|_| x.iter().copied()).collect();
        let xt = Tensor::from_vec(xs, (m, 10, layout.n_inputs()), &Device::Cpu)?;
        let z = model.forward(&xt)?;
        let z: Vec<f32> = z.flatten_all()?.to_vec1()?;
        let zmax = native.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (a, b) in native.iter().zip(&z) {
            assert!((a - b).abs() <= 1e-5 * zmax.max(1.0), "{arch}: logits {a} vs {b}");
        }

        let yt: Vec<u32> = (0..m).flat_map(|_| labels.iter().map(|&l| l as u32)).collect();
        let yt = Tensor::from_vec(yt, (m, 10), &Device::Cpu)?;
        let loss = BatchedMlp::cross_entropy_sum(&model.forward(&xt)?, &yt)?;
        let grads = loss.backward()?;
        let (_, native_grad) = mlp.loss_and_grad(thetas.view(), x.view(), &Targets::cross_entropy(&labels))?;
        let vars = model.vars();
        for (i, spec) in layout.tensors().iter().enumerate() {
            let g: Vec<f32> = grads.get(&vars[i]).expect("every variable has a gradient").flatten_all()?.to_vec1()?;
            for run in 0..m {
                let ours = native_grad.row(run);
                let ours = &ours.as_slice().unwrap()[spec.range()];
                let theirs = &g[run * spec.len()..(run + 1) * spec.len()];
                for (a, b) in ours.iter().zip(theirs) {
                    assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{arch} {}: grad {a} vs {b}", spec.name);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn trajectory_sets_round_trip_and_refuse_corruption() -> R {
    let dir = tempfile::tempdir()?;
    let layout = Layout::parse("64-8-10")?;
    let cfg = TrainConfig { runs: 3, checkpoints: 2, epochs: 1, batch_size: 64, ..TrainConfig::default() };
    let mut set = train_base(&DatasetSpec::Digits, 0, &layout, &cfg, DeviceKind::Cpu, &mut |_| {})?;
    set.save(dir.path())?;
    let back = TrajectorySet::load(dir.path())?;
    assert_eq!(back.manifest, set.manifest);
    assert_eq!(back.tensors, set.tensors);
    assert_eq!(back.thetas().dim(), (3, 3, layout.dim()));
    assert_eq!(back.manifest.standardizer.n_features(), 64);

    // The writer is deterministic: a second save of the same set writes the same bytes.
    let tensors = std::fs::read(dir.path().join("trajectories.safetensors"))?;
    let dir2 = tempfile::tempdir()?;
    set.save(dir2.path())?;
    assert_eq!(std::fs::read(dir2.path().join("trajectories.safetensors"))?, tensors);

    // One flipped byte in the tensor file: the checksum catches it.
    let mut bad = tensors.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(dir2.path().join("trajectories.safetensors"), &bad)?;
    let e = TrajectorySet::load(dir2.path()).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch"), "{e}");

    // A future version is refused by name.
    let manifest = std::fs::read_to_string(dir.path().join("manifest.json"))?;
    std::fs::write(dir.path().join("manifest.json"), manifest.replace("\"version\": 1", "\"version\": 99"))?;
    let e = TrajectorySet::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("version Some(99)"), "{e}");

    // Not a trajectory set at all.
    std::fs::write(dir.path().join("manifest.json"), "{\"format\": \"something else\"}")?;
    let e = TrajectorySet::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a trajectory set"), "{e}");
    let e = TrajectorySet::load(&dir.path().join("missing")).unwrap_err().to_string();
    assert!(e.contains("manifest.json"), "{e}");
    Ok(())
}

#[test]
fn bad_training_settings_are_refused_with_a_reason() -> R {
    let layout = Layout::parse("9-4-2")?;
    for (cfg, needle) in [
        (TrainConfig { runs: 0, ..TrainConfig::default() }, "runs"),
        (TrainConfig { lr: f64::NAN, ..TrainConfig::default() }, "learning rate"),
        (TrainConfig { epochs: 1, batch_size: 400, checkpoints: 6, ..TrainConfig::default() }, "checkpoint"),
    ] {
        let e =
            train_base(&DatasetSpec::UciHeart, 0, &layout, &cfg, DeviceKind::Cpu, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let e = train_base(
        &DatasetSpec::UciHeart,
        0,
        &Layout::parse("5-4-2")?,
        &TrainConfig::default(),
        DeviceKind::Cpu,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("9 features") && e.contains("expects 5"), "{e}");
    let e = train_base(
        &DatasetSpec::Digits,
        0,
        &Layout::parse("64-4-2")?,
        &TrainConfig::default(),
        DeviceKind::Cpu,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("10 classes"), "{e}");
    Ok(())
}

/// A task set (`train_base_task`) records its task, and `EvalData::from_manifest` rebuilds exactly the rows its
/// runs were trained and tested on: each run's recorded accuracies recomputed from the rebuilt splits match, and
/// the task's rows are not the plain data set's (the same runs score lower on unrotated digits).
#[test]
fn task_sets_rebuild_their_rows_from_the_manifest() -> R {
    let layout = Layout::parse("64-8-10")?;
    let cfg = TrainConfig { runs: 3, checkpoints: 2, epochs: 4, batch_size: 64, ..TrainConfig::default() };
    let task: weightflow::data::Shift = "rotate:90".parse()?;
    let set = train_base_task(&DatasetSpec::Digits, Some(&task), 0, &layout, &cfg, DeviceKind::Cpu, &mut |_| {})?;
    assert_eq!(set.manifest.task.as_deref(), Some("rotate:90-90"));
    let data = weightflow::eval::EvalData::from_manifest(&set.manifest)?;
    let mlp = Mlp::new(layout.clone(), Activation::Relu);
    let finals = set.thetas().index_axis(Axis(1), 2).to_owned();
    let accuracy = |x: &Array2<f32>, y: &[usize]| -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        Ok(weightflow::eval::accuracy_stats(&mlp, finals.view(), x.view(), y)?.per_classifier)
    };
    let train = accuracy(&data.train.x, &data.train.y)?;
    let test = accuracy(&data.test.x, &data.test.y)?;
    let recorded_train = set.metric2("train_accuracy").expect("recorded").column(2).to_owned();
    let recorded_test = set.metric1("test_accuracy").expect("recorded").to_owned();
    for r in 0..3 {
        assert!((train[r] - recorded_train[r] as f64).abs() < 1e-6, "run {r}: {train:?} vs {recorded_train}");
        assert!((test[r] - recorded_test[r] as f64).abs() < 1e-6, "run {r}: {test:?} vs {recorded_test}");
    }
    let plain = weightflow::eval::EvalData::load(&DatasetSpec::Digits, 0, &set.manifest.standardizer)?;
    let unrotated = accuracy(&plain.test.x, &plain.test.y)?;
    assert!(unrotated.iter().zip(&test).all(|(u, t)| u + 0.1 < *t), "unrotated {unrotated:?} vs task {test:?}");
    Ok(())
}
