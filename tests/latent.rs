//! Latent-space meta-models (`train_meta_latent`): CFM in a weight autoencoder's latent generates the
//! distribution of the training finals, saves and loads with its autoencoder, tunes through the decoder, and
//! refuses what it cannot do; the CLI trains, evaluates and generates one and refuses to export it.
#![cfg(feature = "train")]

use std::process::Command;

use candle_core::Device;
use ndarray::{s, Array1, Array2, Array3, ArrayView2, Axis};
use weightflow::flow::{
    train_autoencoder, train_meta, train_meta_latent, AutoencoderConfig, Coupling, Error, LrSchedule, MetaModel,
    MetaTrainConfig, NetConfig, Objective, Sampler, WeightAutoencoder, AUTOENCODER_WEIGHTS, META_MANIFEST,
};
use weightflow::space::{Layout, SourceKind};
use weightflow::tune::{AdjointConfig, AdjointMatching, LinearReward, Reward};

#[path = "support/subspace_runs.rs"]
mod subspace;
use subspace::subspace_runs;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn autoencoder(layout: &Layout, traj: &Array3<f32>, seed: u64) -> Result<WeightAutoencoder, Error> {
    let cfg = AutoencoderConfig {
        latent_dim: 4,
        hidden: vec![32],
        steps: 600,
        batch_size: 64,
        lr: 3e-3,
        heldout: 8,
        align: false,
        seed,
        ..AutoencoderConfig::default()
    };
    train_autoencoder(layout, traj.view(), &cfg, None, &Device::Cpu, &mut |_, _, _| {})
}

fn latent_config(steps: usize) -> MetaTrainConfig {
    MetaTrainConfig {
        net: NetConfig { hidden: vec![64, 64], time_dim: 16, cond_dim: 0 },
        source: SourceKind::Gaussian,
        batch_size: 128,
        steps,
        lr: 3e-3,
        schedule: LrSchedule::Cosine,
        ema_decay: Some(0.99),
        seed: 3,
        ..MetaTrainConfig::for_objective(Objective::Cfm)
    }
}

struct Fixture {
    layout: Layout,
    traj: Array3<f32>,
    model: MetaModel,
}

fn fixture() -> Result<Fixture, Error> {
    let layout = Layout::parse("2-3-2")?;
    let traj = subspace_runs(&layout, 512, 1);
    let ae = autoencoder(&layout, &traj, 5)?;
    let model = train_meta_latent(&layout, traj.view(), &ae, &latent_config(1500), &Device::Cpu, &mut |_, _, _| {})?;
    Ok(Fixture { layout, traj, model })
}

/// Per-coordinate mean and std of the rows of `x`.
fn column_moments(x: ArrayView2<f32>) -> (Array1<f64>, Array1<f64>) {
    let x = x.mapv(f64::from);
    (x.mean_axis(Axis(0)).expect("rows"), x.std_axis(Axis(0), 0.0))
}

#[test]
fn latent_cfm_generates_the_law_of_the_training_finals() -> TestResult {
    let f = fixture()?;
    assert_eq!(f.model.flow_dim(), 4);
    assert_eq!(f.model.latent().map(|ae| ae.latent_dim()), Some(4));
    let finals = f.traj.slice(s![.., 1, ..]);
    let generated = f.model.generate(4000, Sampler::Euler, 50, 11)?;
    assert_eq!(generated.dim(), (4000, f.layout.dim()));
    // Every coordinate's mean and spread match the finals' (an independent computation on the data), in
    // units of that coordinate's std.
    let (m_data, sd_data) = column_moments(finals);
    let (m_gen, sd_gen) = column_moments(generated.view());
    for j in 0..f.layout.dim() {
        let (dm, ratio) = ((m_gen[j] - m_data[j]).abs() / sd_data[j], sd_gen[j] / sd_data[j]);
        eprintln!("coordinate {j}: |Δmean|/sd {dm:.3}, sd ratio {ratio:.3}");
        assert!(dm < 0.15, "coordinate {j}: mean off by {dm:.3} sd");
        assert!((0.8..1.25).contains(&ratio), "coordinate {j}: sd ratio {ratio:.3}");
    }
    // Generated weights lie on the data's 3-dimensional subspace: the residual after projecting on the
    // finals' top three principal directions is as small as the finals' own (noise 0.01).
    let residual = |x: ArrayView2<f32>| -> f64 {
        let centred = x.mapv(f64::from) - &m_data;
        let data = finals.mapv(f64::from) - &m_data;
        let basis = top_directions(&data, 3);
        let proj = centred.dot(&basis.t()).dot(&basis);
        (&centred - &proj).mapv(|v| v * v).mean().expect("entries").sqrt()
    };
    let (r_gen, r_data) = (residual(generated.view()), residual(finals));
    eprintln!("off-subspace rms: generated {r_gen:.4}, finals {r_data:.4}");
    assert!(r_gen < 0.05, "generated weights leave the subspace: rms {r_gen:.4}");
    // Fresh seeds give fresh classifiers; the same seed the same ones.
    assert_eq!(generated, f.model.generate(4000, Sampler::Euler, 50, 11)?);
    assert_ne!(generated, f.model.generate(4000, Sampler::Euler, 50, 12)?);
    Ok(())
}

/// The top `k` right singular vectors of `x` `[N, D]` as rows `[k, D]`, by power iteration with deflation.
fn top_directions(x: &Array2<f64>, k: usize) -> Array2<f64> {
    let cov = x.t().dot(x);
    let d = cov.nrows();
    let mut out = Array2::<f64>::zeros((k, d));
    let mut c = cov.clone();
    for i in 0..k {
        let mut v = Array1::from_shape_fn(d, |j| 1.0 + j as f64 * 0.1);
        for _ in 0..500 {
            let w = c.dot(&v);
            v = &w / w.dot(&w).sqrt();
        }
        let lambda = v.dot(&c.dot(&v));
        let outer = v.view().insert_axis(Axis(1)).dot(&v.view().insert_axis(Axis(0)));
        c = c - outer * lambda;
        out.row_mut(i).assign(&v);
    }
    out
}

#[test]
fn latent_model_saves_with_its_autoencoder_and_refuses_another() -> TestResult {
    let f = fixture()?;
    let dir = tempfile::tempdir()?;
    f.model.save(dir.path(), "relu")?;
    let loaded = MetaModel::load(dir.path(), &Device::Cpu)?;
    assert_eq!(loaded.generate(64, Sampler::Heun, 20, 4)?, f.model.generate(64, Sampler::Heun, 20, 4)?);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(META_MANIFEST))?)?;
    assert_eq!(json["version"], 2);
    assert_eq!(json["latent"]["latent_dim"], 4);

    // Another autoencoder in its place (same shapes, other seed) is refused.
    let other = autoencoder(&f.layout, &f.traj, 6)?;
    other.save(dir.path(), "relu")?;
    let e = MetaModel::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Config { field: "latent", .. }), "{e}");
    // A missing one says which file.
    std::fs::remove_file(dir.path().join(AUTOENCODER_WEIGHTS))?;
    let e = MetaModel::load(dir.path(), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains(AUTOENCODER_WEIGHTS), "{e}");

    // A weight-space model is still written as version 1, which builds without latent models read.
    let ws_cfg = MetaTrainConfig { steps: 5, ..latent_config(5) };
    let ws = train_meta(&f.layout, f.traj.view(), &ws_cfg, &Device::Cpu, &mut |_, _, _| {})?;
    let dir = tempfile::tempdir()?;
    ws.save(dir.path(), "relu")?;
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(META_MANIFEST))?)?;
    assert_eq!(json["version"], 1);
    assert!(json.get("latent").is_none());
    Ok(())
}

#[test]
fn adjoint_matching_tilts_a_latent_model_through_the_decoder() -> TestResult {
    let f = fixture()?;
    // Reward the direction in which the finals vary most: the tilt can only follow it through the decoder.
    let finals = f.traj.slice(s![.., 1, ..]).mapv(f64::from);
    let (mean, _) = column_moments(f.traj.slice(s![.., 1, ..]));
    let a = top_directions(&(finals - &mean), 1).row(0).mapv(|v| v as f32);
    let reward = LinearReward { a: a.clone() };
    let cfg = AdjointConfig {
        iterations: 60,
        batch_size: 64,
        steps: 20,
        lambda: 2.0,
        lr: 1e-3,
        seed: 2,
        ..Default::default()
    };
    let mut am = AdjointMatching::new(&f.model, &reward, cfg)?;
    for _ in 0..60 {
        am.step()?;
    }
    let tuned = am.model()?;
    assert!(tuned.latent().is_some() && tuned.tuning().is_some());
    let score = |m: &MetaModel| -> Result<(f64, f64), Box<dyn std::error::Error>> {
        let r = reward.reward_and_grad(m.generate(2000, Sampler::Euler, 50, 9)?.view())?.0.mapv(f64::from);
        Ok((r.mean().expect("rows"), r.std(0.0)))
    };
    let ((base, sd), (after, _)) = (score(&f.model)?, score(&tuned)?);
    eprintln!("mean reward: base {base:.3} (sd {sd:.3}), tuned {after:.3}");
    assert!(after - base > 0.5 * sd, "the tilt did not raise the reward: {base:.3} → {after:.3} (sd {sd:.3})");
    Ok(())
}

#[test]
fn latent_training_refuses_what_it_cannot_do() -> TestResult {
    let layout = Layout::parse("2-3-2")?;
    let traj = subspace_runs(&layout, 64, 1);
    let ae = autoencoder(&layout, &traj, 5)?;
    let train = |cfg: MetaTrainConfig, layout: &Layout, traj: &Array3<f32>| {
        train_meta_latent(layout, traj.view(), &ae, &cfg, &Device::Cpu, &mut |_, _, _| {}).unwrap_err()
    };
    let field = |e: Error| match e {
        Error::Config { field, .. } => field,
        other => panic!("expected a config error, got {other}"),
    };
    let cfg = latent_config(5);
    assert_eq!(field(train(MetaTrainConfig { objective: Objective::Jko, ..cfg.clone() }, &layout, &traj)), "objective");
    assert_eq!(field(train(MetaTrainConfig { source: SourceKind::Kaiming, ..cfg.clone() }, &layout, &traj)), "source");
    assert_eq!(
        field(train(MetaTrainConfig { coupling: Coupling::Trajectory, ..cfg.clone() }, &layout, &traj)),
        "coupling"
    );
    let other = Layout::parse("2-4-2")?;
    assert_eq!(field(train(cfg.clone(), &other, &subspace_runs(&other, 16, 1))), "latent");

    // What a latent model has no weight-space form for.
    let model = train_meta_latent(&layout, traj.view(), &ae, &cfg, &Device::Cpu, &mut |_, _, _| {})?;
    let e = model.velocity_at(Array2::zeros((1, layout.dim())).view(), 0.5).unwrap_err();
    assert!(matches!(e, Error::Config { field: "latent", .. }), "{e}");
    let e = model.to_onnx().unwrap_err();
    assert!(matches!(e, Error::Config { field: "latent", .. }), "{e}");
    let e = model.generate_path_from(Array2::zeros((1, 4)).view(), Sampler::Euler, 4, 0).unwrap_err();
    assert!(e.to_string().contains("entries"), "{e}");
    Ok(())
}

#[test]
fn cli_trains_evaluates_and_generates_a_latent_model() -> TestResult {
    let run = |args: &[&str], paths: &[&std::path::Path]| -> Result<std::process::Output, std::io::Error> {
        let mut c = Command::new(env!("CARGO_BIN_EXE_weightflow"));
        c.args(args).args(paths);
        c.output()
    };
    let dir = tempfile::tempdir()?;
    let p = |name: &str| dir.path().join(name);
    let (traj, vae, meta) = (p("t"), p("v"), p("m"));
    let ok = |out: std::process::Output| -> Result<Vec<u8>, String> {
        match out.status.success() {
            true => Ok(out.stdout),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    };
    let base = ["train-base", "--dataset", "uci-heart", "--arch", "9-4-2", "--runs", "24", "--checkpoints", "2"];
    ok(run(&[&base[..], &["--epochs", "3", "--quiet", "--out"]].concat(), &[&traj])?)?;
    let vae_args = ["train-vae", "--latent-dim", "3", "--hidden", "16", "--steps", "20", "--heldout", "4", "--quiet"];
    ok(run(&[&vae_args[..], &["--trajectories"]].concat(), &[&traj, "--out".as_ref(), &vae])?)?;
    let flow = ["train-meta", "--hidden", "16", "--steps", "20", "--batch-size", "8", "--quiet", "--json"];
    let stdout = ok(run(
        &[&flow[..], &["--trajectories"]].concat(),
        &[&traj, "--latent".as_ref(), &vae, "--out".as_ref(), &meta],
    )?)?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!(v["latent_dim"], 3);
    assert_eq!(v["config"]["source"], "gaussian");
    assert!(meta.join("autoencoder.safetensors").exists());

    let eval = ["eval-gen", "-n", "6", "--steps", "6", "--init-n", "4", "--json", "--meta"];
    let stdout = ok(run(&eval, &[&meta, "--trajectories".as_ref(), &traj])?)?;
    let v: serde_json::Value = serde_json::from_slice(&stdout)?;
    assert_eq!(v["settings"]["latent_dim"], 3);
    let acc = v["generated"]["accuracy_mean"].as_f64().unwrap_or(-1.0);
    assert!((0.0..=1.0).contains(&acc), "{}", v["generated"]);

    let gen = ["generate", "-n", "5", "--steps", "4", "--meta"];
    ok(run(&gen, &[&meta, "--out".as_ref(), &p("g.safetensors")])?)?;
    assert!(p("g.safetensors").exists());

    // Kaiming uniform is no law over a latent; JKO has no latent form: clear errors, exit 1.
    for extra in [&["--source", "kaiming"][..], &["--objective", "jko"][..]] {
        let out = run(
            &[&flow[..], extra, &["--trajectories"]].concat(),
            &[&traj, "--latent".as_ref(), &vae, "--out".as_ref(), &p("bad")],
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            !stderr.contains("panicked") && (stderr.contains("source") || stderr.contains("objective")),
            "{stderr}"
        );
    }
    Ok(())
}
