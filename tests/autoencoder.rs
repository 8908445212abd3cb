//! The weight autoencoder: decoded UCI-heart classifiers keep their accuracy, save/load round-trips and
//! refuses corruption, the decoder's VJP matches finite differences, bad input is refused, the functional term
//! keeps decoded classifiers closer to their originals, and the mix term makes latents between runs decode to
//! the mixture of the two runs' predictions.
#![cfg(feature = "train")]

use candle_core::Device;
use ndarray::{s, Array2, Array3};
use rand::Rng as _;
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::{Dataset, DatasetSpec, Standardizer};
use weightflow::eval::reconstruction_accuracy;
use weightflow::flow::{
    autoencoder_inputs, train_autoencoder, AutoencoderConfig, Error, FunctionData, WeightAutoencoder,
    AUTOENCODER_MANIFEST, AUTOENCODER_WEIGHTS,
};
use weightflow::rng;
use weightflow::space::Layout;
use weightflow::train::{train_runs, TrainConfig, TrainData, TrainedRuns};

#[path = "support/subspace_runs.rs"]
mod subspace;
use subspace::subspace_runs;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn small_config(steps: usize) -> AutoencoderConfig {
    AutoencoderConfig {
        latent_dim: 4,
        hidden: vec![32],
        steps,
        batch_size: 32,
        lr: 3e-3,
        heldout: 8,
        align: false,
        seed: 5,
        ..AutoencoderConfig::default()
    }
}

fn tiny() -> Result<(Layout, Array3<f32>, WeightAutoencoder), Error> {
    let layout = Layout::parse("2-3-2")?;
    let traj = subspace_runs(&layout, 64, 1);
    let ae = train_autoencoder(&layout, traj.view(), &small_config(300), None, &Device::Cpu, &mut |_, _, _| {})?;
    Ok((layout, traj, ae))
}

/// `cfg.runs` base runs of `arch` on `spec`'s train split (validated on its val split), standardised as
/// `train-base` does, with the standardised train and test splits.
fn base_runs(
    spec: DatasetSpec,
    arch: &str,
    cfg: &TrainConfig,
) -> Result<(Layout, TrainedRuns, Dataset, Dataset), Box<dyn std::error::Error>> {
    let s = spec.load(0)?;
    let st = Standardizer::fit(&s.train.x)?;
    let (train, val, test) = (st.transform(&s.train)?, st.transform(&s.val)?, st.transform(&s.test)?);
    let layout = Layout::parse(arch)?;
    let runs = train_runs(
        &layout,
        cfg,
        TrainData { x: train.x.view(), y: &train.y },
        TrainData { x: val.x.view(), y: &val.y },
        &Device::Cpu,
        &mut |_| {},
    )?;
    Ok((layout, runs, train, test))
}

#[test]
fn decoded_heart_classifiers_keep_the_originals_accuracy() -> TestResult {
    let cfg = TrainConfig {
        runs: 512,
        checkpoints: 2,
        epochs: 30,
        batch_size: 32,
        lr: 3e-3,
        l2: 3e-2,
        ..TrainConfig::default()
    };
    let (layout, runs, _, test) = base_runs(DatasetSpec::UciHeart, "9-8-2", &cfg)?;
    let ae_cfg = AutoencoderConfig {
        latent_dim: 24,
        hidden: vec![128],
        steps: 1500,
        batch_size: 64,
        lr: 2e-3,
        heldout: 64,
        align: true,
        seed: 0,
        ..AutoencoderConfig::default()
    };
    let ae = train_autoencoder(&layout, runs.thetas.view(), &ae_cfg, None, &Device::Cpu, &mut |_, _, _| {})?;
    let finals = autoencoder_inputs(&layout, runs.thetas.view(), &ae_cfg)?;
    let held = finals.slice(s![512 - 64.., ..]);
    let decoded = ae.reconstruct(held)?;
    let mlp = Mlp::new(layout.clone(), Activation::Relu);
    let r = reconstruction_accuracy(&mlp, held, decoded.view(), test.x.view(), &test.y)?;
    eprintln!("held-out runs: {r:?}; held-out loss {:?}", ae.heldout_loss());
    // The originals are real classifiers (well above chance), and unseen ones decode to the same accuracy.
    assert!(r.original.mean > 0.75, "{r:?}");
    assert!((r.reconstructed.mean - r.original.mean).abs() <= 0.01, "{r:?}");
    assert!(r.agreement > 0.95, "{r:?}");
    // Alignment preserves function: the aligned finals score like the raw ones.
    let raw = runs.thetas.slice(s![512 - 64.., 2, ..]);
    let raw_acc = reconstruction_accuracy(&mlp, raw, raw, test.x.view(), &test.y)?;
    assert!((raw_acc.original.mean - r.original.mean).abs() < 1e-12);
    // The latent holds most of the runs' variation: less than half the squared error of the trivial decoder that
    // returns the training runs' mean network.
    let mean = finals.slice(s![..448, ..]).mean_axis(ndarray::Axis(0)).expect("rows");
    let squared_error = |a: &Array2<f32>| -> f64 {
        let diff = a - &held;
        diff.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
    };
    let trivial = Array2::from_shape_fn(held.dim(), |(_, j)| mean[j]);
    eprintln!("squared error: decoded {} vs mean network {}", squared_error(&decoded), squared_error(&trivial));
    assert!(
        squared_error(&decoded) < 0.5 * squared_error(&trivial),
        "{} vs {}",
        squared_error(&decoded),
        squared_error(&trivial)
    );
    Ok(())
}

#[test]
fn decoder_vjp_matches_finite_differences() -> TestResult {
    let (layout, _, ae) = tiny()?;
    let d = layout.dim();
    let mut r = rng::rng(9);
    let h = Array2::from_shape_fn((3, 4), |_| r.random_range(-0.8f32..0.8));
    let g = Array2::from_shape_fn((3, d), |_| r.random_range(-1.0f32..1.0));
    let vjp = ae.decode_vjp(h.view(), g.view())?;
    // f(h) = Σ_i ⟨g_i, decode(h_i)⟩, summed in f64; central differences with step ε.
    let f = |h: &Array2<f32>| -> Result<f64, Error> {
        let th = ae.decode(h.view())?;
        Ok(th.iter().zip(g.iter()).map(|(a, b)| *a as f64 * *b as f64).sum())
    };
    let eps = 1e-2f32;
    let scale = vjp.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    assert!(scale > 1e-3, "a VJP of zero checks nothing");
    for i in 0..3 {
        for k in 0..4 {
            let (mut hp, mut hm) = (h.clone(), h.clone());
            hp[[i, k]] += eps;
            hm[[i, k]] -= eps;
            let fd = (f(&hp)? - f(&hm)?) / (2.0 * eps as f64);
            let err = (fd - vjp[[i, k]] as f64).abs();
            assert!(err < 1e-2 * scale, "row {i} latent {k}: vjp {} vs fd {fd}", vjp[[i, k]]);
        }
    }
    Ok(())
}

#[test]
fn save_load_round_trip_and_refusals() -> TestResult {
    let (layout, traj, ae) = tiny()?;
    // Same seed, same model.
    let again = train_autoencoder(&layout, traj.view(), &small_config(300), None, &Device::Cpu, &mut |_, _, _| {})?;
    let thetas = traj.slice(s![.., 1, ..]).to_owned();
    assert_eq!(ae.reconstruct(thetas.view())?, again.reconstruct(thetas.view())?);
    // The latents stay in (−1, 1) and the synthetic finals reconstruct closely.
    let z = ae.encode(thetas.view())?;
    assert!(z.iter().all(|v| v.abs() < 1.0));

    let dir = tempfile::tempdir()?;
    ae.save(dir.path(), "relu")?;
    let loaded = WeightAutoencoder::load(dir.path(), &Device::Cpu)?;
    assert_eq!(loaded.encode(thetas.view())?, z);
    assert_eq!(loaded.decode(z.view())?, ae.decode(z.view())?);
    assert_eq!(loaded.config(), ae.config());
    assert_eq!(loaded.scaling(), ae.scaling());
    assert_eq!(loaded.heldout_loss(), ae.heldout_loss());
    assert_eq!(loaded.activation(), Some("relu"));

    let manifest = dir.path().join(AUTOENCODER_MANIFEST);
    let json = std::fs::read_to_string(&manifest)?;
    // A manifest whose network does not match the weights file (checksum still right).
    std::fs::write(&manifest, json.replace("\"latent_dim\": 4", "\"latent_dim\": 5"))?;
    let e = WeightAutoencoder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Tensor { .. }), "{e}");
    std::fs::write(&manifest, json.replace("\"version\": 1", "\"version\": 2"))?;
    let e = WeightAutoencoder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Version { got: 2, .. }), "{e}");
    std::fs::write(&manifest, json.replace("weightflow.autoencoder", "weightflow.meta"))?;
    let e = WeightAutoencoder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    std::fs::write(&manifest, &json)?;
    let weights = dir.path().join(AUTOENCODER_WEIGHTS);
    let mut bytes = std::fs::read(&weights)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, &bytes)?;
    let e = WeightAutoencoder::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Checksum { .. }), "{e}");
    Ok(())
}

#[test]
fn bad_input_is_refused_with_clear_errors() -> TestResult {
    let (layout, traj, ae) = tiny()?;
    let d = layout.dim();
    let e = ae.encode(Array2::zeros((2, d + 1)).view()).unwrap_err();
    assert!(matches!(e, Error::Shape { what: "weights", .. }), "{e}");
    let e = ae.decode(Array2::zeros((2, 3)).view()).unwrap_err();
    assert!(matches!(e, Error::Shape { what: "latents", .. }), "{e}");
    let e = ae.decode_vjp(Array2::zeros((2, 4)).view(), Array2::zeros((3, d)).view()).unwrap_err();
    assert!(matches!(e, Error::Shape { what: "cotangent", .. }), "{e}");
    let e = ae.decode_vjp(Array2::zeros((2, 4)).view(), Array2::zeros((2, d - 1)).view()).unwrap_err();
    assert!(matches!(e, Error::Shape { what: "cotangent", .. }), "{e}");

    let train = |cfg: &AutoencoderConfig, traj: &Array3<f32>| {
        train_autoencoder(&layout, traj.view(), cfg, None, &Device::Cpu, &mut |_, _, _| {}).unwrap_err()
    };
    let e = train(&AutoencoderConfig { latent_dim: 0, ..small_config(10) }, &traj);
    assert!(matches!(e, Error::Config { field: "latent_dim", .. }), "{e}");
    let e = train(&AutoencoderConfig { heldout: 64, ..small_config(10) }, &traj);
    assert!(matches!(e, Error::Config { field: "heldout", .. }), "{e}");
    let e = train(&AutoencoderConfig { lr: f64::NAN, ..small_config(10) }, &traj);
    assert!(matches!(e, Error::Config { field: "lr", .. }), "{e}");
    let e = train(&small_config(10), &Array3::zeros((8, 2, d + 1)));
    assert!(matches!(e, Error::Shape { what: "trajectories", .. }), "{e}");
    let e = train(&AutoencoderConfig { lr: 1e30, ..small_config(10) }, &traj);
    assert!(matches!(e, Error::Diverged { .. }), "{e}");
    Ok(())
}

/// (layout, runs, standardised train and test splits, autoencoder settings).
type DigitRuns = (Layout, TrainedRuns, Dataset, Dataset, AutoencoderConfig);

/// 96 digit classifiers 64-16-10 (the last 32 held out of autoencoder training) and a small autoencoder
/// configuration for them: a 4-dimensional latent cannot hold 64 digit classifiers exactly, so reconstruction
/// must trade, and the functional terms decide what for (docs/FLOW.md measures the same on the full digits set).
fn digit_runs() -> Result<DigitRuns, Box<dyn std::error::Error>> {
    let cfg = TrainConfig {
        runs: 96,
        checkpoints: 1,
        epochs: 15,
        batch_size: 64,
        lr: 3e-3,
        l2: 1e-3,
        ..TrainConfig::default()
    };
    let (layout, runs, train, test) = base_runs(DatasetSpec::Digits, "64-16-10", &cfg)?;
    let base = AutoencoderConfig {
        latent_dim: 4,
        hidden: vec![64],
        steps: 400,
        batch_size: 32,
        lr: 3e-3,
        heldout: 32,
        seed: 1,
        ..AutoencoderConfig::default()
    };
    Ok((layout, runs, train, test, base))
}

#[test]
fn the_functional_term_keeps_decoded_classifiers_closer_to_their_originals() -> TestResult {
    let (layout, runs, train, test, base) = digit_runs()?;
    let function = FunctionData { activation: Activation::Relu, x: train.x.view() };
    let finals = autoencoder_inputs(&layout, runs.thetas.view(), &base)?;
    let seen = finals.slice(s![..64, ..]);
    let mlp = Mlp::new(layout.clone(), Activation::Relu);
    let agreement = |w: f64| -> Result<f64, Box<dyn std::error::Error>> {
        let cfg = AutoencoderConfig { function_weight: w, ..base.clone() };
        let ae = train_autoencoder(&layout, runs.thetas.view(), &cfg, Some(function), &Device::Cpu, &mut |_, _, _| {})?;
        Ok(reconstruction_accuracy(&mlp, seen, ae.reconstruct(seen)?.view(), test.x.view(), &test.y)?.agreement)
    };
    let (plain, functional) = (agreement(0.0)?, agreement(1.0)?);
    eprintln!("agreement of decoded with original classifiers: weights only {plain:.4}, with the functional term {functional:.4}");
    assert!(functional > plain + 0.02, "{plain:.4} → {functional:.4}");

    // The term needs data of the classifiers' input width.
    let cfg = AutoencoderConfig { function_weight: 1.0, steps: 1, ..base.clone() };
    for f in [None, Some(FunctionData { activation: Activation::Relu, x: test.x.slice(s![.., ..3]) })] {
        let e = train_autoencoder(&layout, runs.thetas.view(), &cfg, f, &Device::Cpu, &mut |_, _, _| {}).unwrap_err();
        assert!(matches!(e, Error::Config { field: "function_weight", .. }), "{e}");
    }
    let e = train_autoencoder(
        &layout,
        runs.thetas.view(),
        &AutoencoderConfig { function_weight: -1.0, ..cfg },
        None,
        &Device::Cpu,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config { field: "function_weight", .. }), "{e}");
    Ok(())
}

#[test]
fn the_mix_term_makes_latents_between_runs_decode_to_the_mixture_of_their_runs() -> TestResult {
    let (layout, runs, train, test, base) = digit_runs()?;
    let function = FunctionData { activation: Activation::Relu, x: train.x.view() };
    let finals = autoencoder_inputs(&layout, runs.thetas.view(), &base)?;
    let seen = finals.slice(s![..64, ..]);
    let mlp = Mlp::new(layout.clone(), Activation::Relu);
    // The originals' predictive distributions on test, and for the 63 pairs of seen runs (i, i + 1) the
    // equal mixture the decoded latent midpoint should predict like.
    let p = mlp.probabilities(seen, test.x.view())?;
    let mixture = (&p.slice(s![..63, .., ..]) + &p.slice(s![1.., .., ..])).mapv(|v| 0.5 * v as f64);
    // (mean KL from the mixture to the decoded midpoints, their mean test accuracy)
    let midpoints = |mix: f64| -> Result<(f64, f64), Box<dyn std::error::Error>> {
        let cfg = AutoencoderConfig { function_weight: 1.0, mix_weight: mix, ..base.clone() };
        let ae = train_autoencoder(&layout, runs.thetas.view(), &cfg, Some(function), &Device::Cpu, &mut |_, _, _| {})?;
        let h = ae.encode(seen)?;
        let decoded = ae.decode(((&h.slice(s![..63, ..]) + &h.slice(s![1.., ..])) * 0.5).view())?;
        let q = mlp.probabilities(decoded.view(), test.x.view())?;
        let kl = mixture
            .iter()
            .zip(q.iter())
            .map(|(&t, &q)| t * (t.max(1e-30).ln() - (q as f64).max(1e-30).ln()))
            .sum::<f64>()
            / (63 * test.x.nrows()) as f64;
        Ok((kl, weightflow::eval::accuracy_stats(&mlp, decoded.view(), test.x.view(), &test.y)?.stats.mean))
    };
    let ((kl_plain, acc_plain), (kl_mix, acc_mix)) = (midpoints(0.0)?, midpoints(5.0)?);
    eprintln!(
        "decoded latent midpoints: KL from the mixture {kl_plain:.4} → {kl_mix:.4} with the mix term, \
         test accuracy {acc_plain:.4} → {acc_mix:.4}"
    );
    assert!(kl_mix < 0.85 * kl_plain, "KL {kl_plain:.4} → {kl_mix:.4}");
    assert!(acc_mix > acc_plain, "accuracy {acc_plain:.4} → {acc_mix:.4}");

    let e = train_autoencoder(
        &layout,
        runs.thetas.view(),
        &AutoencoderConfig { mix_weight: f64::NAN, steps: 1, ..base },
        Some(function),
        &Device::Cpu,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config { field: "mix_weight", .. }), "{e}");
    Ok(())
}
