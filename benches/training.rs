//! Training: base trajectories (the native engine, as `weightflow train-base` runs it) and meta-model
//! optimiser steps (CFM through candle), each with its FLOP count as criterion throughput beside this
//! machine's SGEMM rates measured in the same run.
//!
//! `cargo bench --bench training`

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array3;
use weightflow::data::DatasetSpec;
use weightflow::flow::{train_meta, MetaTrainConfig};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};
use weightflow::train::{train_runs, DeviceKind, TrainConfig, TrainData};

#[path = "support/candle_gemm_rate.rs"]
mod candle_gemm_rate;
#[path = "support/gemm_rate.rs"]
mod gemm_rate;

/// 2 × multiply-adds of one classifier's forward pass on one row.
fn forward_flops(sizes: &[usize]) -> u64 {
    2 * sizes.windows(2).map(|w| (w[0] * w[1]) as u64).sum::<u64>()
}

/// UCI heart's runs, trained as `weightflow train-base --dataset uci-heart` trains them (its settings, fewer
/// runs and epochs): forward + backward per row and epoch ≈ 3 forwards less the first layer's ∂/∂x.
fn base_training(c: &mut Criterion) {
    let (arch, base) = TrainConfig::for_dataset(&DatasetSpec::UciHeart);
    let layout = Layout::parse(&arch.expect("uci-heart has an architecture")).expect("valid architecture");
    let splits = DatasetSpec::UciHeart.load(0).expect("the embedded UCI heart data");
    let train = TrainData { x: splits.train.x.view(), y: &splits.train.y };
    let val = TrainData { x: splits.val.x.view(), y: &splits.val.y };
    let dev = weightflow::train::device(DeviceKind::Cpu).expect("the CPU");
    let sizes = layout.sizes();
    let per_row = 3 * forward_flops(sizes) - 2 * (sizes[0] * sizes[1]) as u64;
    let mut group = c.benchmark_group("base_training_uci");
    group.sample_size(10);
    for runs in [256usize, 2048] {
        let cfg = TrainConfig { runs, epochs: 5, ..base.clone() };
        group.throughput(Throughput::Elements(runs as u64 * cfg.epochs as u64 * train.x.nrows() as u64 * per_row));
        group.bench_with_input(BenchmarkId::new("native_5_epochs", runs), &cfg, |b, cfg| {
            b.iter(|| train_runs(&layout, cfg, train, val, &dev, &mut |_| {}).expect("training"))
        });
    }
    group.finish();
}

/// CFM optimiser steps of the default velocity network (3×256 SiLU, time embedding 64) on UCI-sized weights
/// (D = 466): per sample ≈ 3 × the forward's 2·(530·256 + 2·256² + 256·466) FLOP.
fn meta_training(c: &mut Criterion) {
    let layout = Layout::parse("9-16-16-2").expect("valid architecture");
    let (runs, k1) = (256, 7);
    let flat = KaimingUniform.sample(&layout, runs * k1, &mut rng::rng(4));
    let traj = Array3::from_shape_vec((runs, k1, layout.dim()), flat.into_raw_vec_and_offset().0).expect("R·K·D");
    let mut group = c.benchmark_group("meta_training_uci_cfm");
    group.sample_size(10);
    let cfg = MetaTrainConfig { steps: 20, ..MetaTrainConfig::default() };
    let widths: Vec<usize> = std::iter::once(layout.dim() + cfg.net.time_dim)
        .chain(cfg.net.hidden.iter().copied())
        .chain(std::iter::once(layout.dim()))
        .collect();
    group.throughput(Throughput::Elements(cfg.steps as u64 * cfg.batch_size as u64 * 3 * forward_flops(&widths)));
    group.bench_function("20_steps_batch_256", |b| {
        b.iter(|| train_meta(&layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {}).expect("training"))
    });
    group.finish();
}

criterion_group!(benches, gemm_rate::sgemm, candle_gemm_rate::sgemm, base_training, meta_training);
criterion_main!(benches);
