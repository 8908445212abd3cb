//! Meta-model generation through candle on the CPU: UCI-heart classifiers (D = 466) from fresh Kaiming
//! samples with Euler steps, against the number M generated, the number of steps and the velocity network's
//! width (issue: 1,000 classifiers with 50 steps under 1 s on the 2-core machine). The network's weights are
//! a seeded initialisation: generation costs the same whatever the weights are. FLOP counts are criterion's
//! throughput, beside candle's SGEMM rate measured in the same run.
//!
//! `cargo bench --bench generation`

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array3;
use weightflow::flow::{train_meta, MetaModel, MetaTrainConfig, NetConfig, Sampler};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};

#[path = "support/candle_gemm_rate.rs"]
mod candle_gemm_rate;

/// A meta-model with `hidden` widths after one optimiser step, and its velocity network's FLOP per sample.
fn model(layout: &Layout, hidden: Vec<usize>) -> (MetaModel, u64) {
    let x = KaimingUniform.sample(layout, 8, &mut rng::rng(1));
    let traj = Array3::from_shape_fn((4, 3, layout.dim()), |(r, k, j)| x[[r * 2 + k.min(1), j]]);
    let cfg = MetaTrainConfig {
        steps: 1,
        batch_size: 4,
        net: NetConfig { hidden, ..NetConfig::default() },
        ..MetaTrainConfig::default()
    };
    let widths: Vec<usize> = std::iter::once(layout.dim() + cfg.net.time_dim)
        .chain(cfg.net.hidden.iter().copied())
        .chain(std::iter::once(layout.dim()))
        .collect();
    let flops = 2 * widths.windows(2).map(|w| (w[0] * w[1]) as u64).sum::<u64>();
    let model = train_meta(layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {}).expect("tiny training");
    (model, flops)
}

fn generation(c: &mut Criterion) {
    let layout = Layout::parse("9-16-16-2").expect("valid architecture");
    let mut group = c.benchmark_group("generate_uci_euler");
    group.sample_size(10);
    for hidden in [vec![256; 3], vec![512; 3]] {
        let name = format!("{}x{}", hidden.len(), hidden[0]);
        let (model, flops) = model(&layout, hidden);
        // M at the default 50 steps; then the step count at M = 1,000 (default network only).
        let mut cases = vec![(1000usize, 50usize)];
        if name == "3x256" {
            cases = vec![(32, 50), (256, 50), (1000, 50), (1000, 10), (1000, 100)];
        }
        for (m, steps) in cases {
            group.throughput(Throughput::Elements(flops * (m * steps) as u64));
            group.bench_function(BenchmarkId::new(format!("{name}/m{m}"), format!("{steps}_steps")), |b| {
                b.iter(|| model.generate(m, Sampler::Euler, steps, 0).expect("generation"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, candle_gemm_rate::sgemm, generation);
criterion_main!(benches);
