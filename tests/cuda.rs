//! The `cuda` feature: candle's CUDA backend reproduces the CPU's results to float tolerance, for base
//! training, meta-model training (CFM, MMFM, JKO, latent CFM) and generation.
//!
//! Compiled only with `--features cuda`, and it needs a CUDA device (CI has neither). Run it on a GPU machine:
//! `cargo test --release --features cuda --test cuda -- --nocapture` (each test prints the differences it
//! measured; docs/PERFORMANCE.md records them).
//!
//! Tolerances. The two devices sum in different orders (cuBLAS against the CPU's blocked GEMM), so a forward
//! pass agrees to float rounding; training compounds the rounding step by step, so its bounds are looser. On an
//! H200 (docs/PERFORMANCE.md, "GPU training") every difference measured here was at most 5e-7 of its scale:
//! the bounds, 1e-5 for single passes and 1e-4 after 30 training steps, leave a margin of 20 to 200 while
//! still failing on any real disagreement (a wrong kernel, a lost operand, a dropped step).
#![cfg(feature = "cuda")]

use candle_core::Device;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use weightflow::data::DatasetSpec;
use weightflow::flow::{
    train_autoencoder, train_meta, train_meta_latent, AutoencoderConfig, LrSchedule, MetaModel, MetaTrainConfig,
    NetConfig, Objective, Sampler,
};
use weightflow::space::{Layout, SourceKind};
use weightflow::train::{train_base, Backend, DeviceKind, OptimizerKind, TrainConfig};

type R = Result<(), Box<dyn std::error::Error>>;

fn cuda() -> Device {
    Device::new_cuda(0).expect("these tests need a CUDA device")
}

/// max |a − b| over max |a|.
fn rel_diff(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// A small real trajectory set: 48 UCI-heart runs of 9-16-2, 3 checkpoints, trained natively on the CPU.
fn heart_trajectories() -> Result<(Layout, Array3<f32>), Box<dyn std::error::Error>> {
    let layout = Layout::parse("9-16-2")?;
    let cfg = TrainConfig { runs: 48, checkpoints: 3, epochs: 4, ..TrainConfig::default() };
    let set = train_base(&DatasetSpec::UciHeart, 0, &layout, &cfg, DeviceKind::Cpu, &mut |_| {})?;
    Ok((layout, set.thetas().to_owned()))
}

fn meta_config(objective: Objective) -> MetaTrainConfig {
    MetaTrainConfig {
        objective,
        net: NetConfig { hidden: vec![128, 128], time_dim: 16, cond_dim: 0 },
        batch_size: 32,
        steps: 30,
        lr: 1e-3,
        schedule: LrSchedule::Cosine,
        ema_decay: Some(0.99),
        seed: 3,
        ..MetaTrainConfig::for_objective(objective)
    }
}

/// A training call on a device, reporting (step, total, loss) after each step.
type Trainer<'a> = dyn Fn(&Device, &mut dyn FnMut(usize, usize, f32)) -> weightflow::flow::Result<MetaModel> + 'a;

/// Trains on `device`, returning the model and its per-step losses.
fn train_on(device: &Device, train: &Trainer) -> Result<(MetaModel, Vec<f32>), Box<dyn std::error::Error>> {
    let mut losses = Vec::new();
    let model = train(device, &mut |_, _, loss| losses.push(loss))?;
    Ok((model, losses))
}

/// Largest relative difference of two loss curves, step by step.
fn loss_drift(cpu: &[f32], gpu: &[f32]) -> f32 {
    assert_eq!(cpu.len(), gpu.len());
    cpu.iter().zip(gpu).fold(0f32, |m, (a, b)| m.max((a - b).abs() / a.abs().max(1e-6)))
}

#[test]
fn base_training_with_the_candle_engine_matches_the_cpu() -> R {
    let layout = Layout::parse("9-16-16-2")?;
    let cfg = TrainConfig {
        runs: 4,
        checkpoints: 3,
        epochs: 3,
        batch_size: 32,
        optimizer: OptimizerKind::Adam,
        backend: Backend::Candle,
        ..TrainConfig::default()
    };
    let cpu = train_base(&DatasetSpec::UciHeart, 0, &layout, &cfg, DeviceKind::Cpu, &mut |_| {})?;
    let gpu = train_base(&DatasetSpec::UciHeart, 0, &layout, &cfg, DeviceKind::Cuda, &mut |_| {})?;
    // The inits are drawn on the host: equal exactly.
    assert_eq!(cpu.thetas().index_axis(Axis(1), 0), gpu.thetas().index_axis(Axis(1), 0));
    let (r, k, d) = cpu.thetas().dim();
    let flat = |t: ArrayView3<f32>| t.to_shape((r * k, d)).map(|v| v.to_owned());
    let diff = rel_diff(flat(cpu.thetas())?.view(), flat(gpu.thetas())?.view());
    println!("base training, 3 epochs of Adam: weights differ by {diff:.2e} of their scale");
    assert!(diff < 1e-5, "CPU and CUDA base training differ by {diff}");
    Ok(())
}

#[test]
fn meta_training_of_every_objective_matches_the_cpu() -> R {
    let (layout, traj) = heart_trajectories()?;
    for objective in [Objective::Cfm, Objective::Mmfm, Objective::Jko] {
        let cfg = meta_config(objective);
        let train = |dev: &Device, p: &mut dyn FnMut(usize, usize, f32)| train_meta(&layout, traj.view(), &cfg, dev, p);
        let (cpu, cpu_losses) = train_on(&Device::Cpu, &train)?;
        let (gpu, gpu_losses) = train_on(&cuda(), &train)?;
        let drift = loss_drift(&cpu_losses, &gpu_losses);
        let (a, b) = (cpu.generate(64, Sampler::Heun, 10, 5)?, gpu.generate(64, Sampler::Heun, 10, 5)?);
        let diff = rel_diff(a.view(), b.view());
        println!("{objective:?}: 30 steps, loss curves drift by {drift:.2e}; generated weights differ by {diff:.2e}");
        assert!(drift < 1e-4, "{objective:?}: loss curves drift by {drift}");
        assert!(diff < 1e-4, "{objective:?}: generated weights differ by {diff}");
    }
    Ok(())
}

#[test]
fn latent_training_and_decoding_match_the_cpu() -> R {
    let (layout, traj) = heart_trajectories()?;
    let ae_cfg = AutoencoderConfig {
        latent_dim: 8,
        hidden: vec![64],
        steps: 30,
        batch_size: 16,
        heldout: 8,
        ..Default::default()
    };
    let ae = |dev: &Device| train_autoencoder(&layout, traj.view(), &ae_cfg, None, dev, &mut |_, _, _| {});
    let (ae_cpu, ae_gpu) = (ae(&Device::Cpu)?, ae(&cuda())?);
    let finals: Array2<f32> = traj.index_axis(Axis(1), 2).to_owned();
    let (za, zb) = (ae_cpu.encode(finals.view())?, ae_gpu.encode(finals.view())?);
    let enc = rel_diff(za.view(), zb.view());
    let cfg = MetaTrainConfig { source: SourceKind::Gaussian, ..meta_config(Objective::Cfm) };
    let (cpu, cpu_losses) =
        train_on(&Device::Cpu, &|dev, p| train_meta_latent(&layout, traj.view(), &ae_cpu, &cfg, dev, p))?;
    let (gpu, gpu_losses) =
        train_on(&cuda(), &|dev, p| train_meta_latent(&layout, traj.view(), &ae_gpu, &cfg, dev, p))?;
    let drift = loss_drift(&cpu_losses, &gpu_losses);
    let (a, b) = (cpu.generate(64, Sampler::Euler, 10, 5)?, gpu.generate(64, Sampler::Euler, 10, 5)?);
    let diff = rel_diff(a.view(), b.view());
    println!("latent: encodings differ by {enc:.2e}; CFM loss drift {drift:.2e}; decoded weights differ by {diff:.2e}");
    assert!(enc < 1e-4, "the autoencoders' encodings differ by {enc}");
    assert!(drift < 1e-4, "latent CFM loss curves drift by {drift}");
    assert!(diff < 1e-4, "decoded weights differ by {diff}");
    Ok(())
}

#[test]
fn a_saved_model_generates_the_same_weights_on_either_device() -> R {
    let (layout, traj) = heart_trajectories()?;
    let model = train_meta(&layout, traj.view(), &meta_config(Objective::Cfm), &Device::Cpu, &mut |_, _, _| {})?;
    let dir = std::env::temp_dir().join(format!("wf-cuda-gen-{}", std::process::id()));
    model.save(&dir, "relu")?;
    let gpu = MetaModel::load(&dir, &cuda())?;
    std::fs::remove_dir_all(&dir)?;
    for sampler in [Sampler::Euler, Sampler::Heun, Sampler::Rk4] {
        let (a, b) = (model.generate(256, sampler, 50, 9)?, gpu.generate(256, sampler, 50, 9)?);
        let diff = rel_diff(a.view(), b.view());
        println!("generation, {sampler:?} 50 steps, 256 nets: {diff:.2e}");
        // Same weights, same source samples: only the order of f32 sums differs.
        assert!(diff < 1e-5, "{sampler:?}: CPU and CUDA generation differ by {diff}");
    }
    Ok(())
}
