//! The batched classifier: logits of M MLPs on a shared batch (the fused pass for small classifiers, the GEMM
//! pass for MNIST-sized ones) and one loss-and-gradient pass — the kernels an ensemble's scoring and a CDC
//! reward run on. Throughput is reported in FLOP/s (criterion's elements/s) beside this machine's SGEMM rate,
//! measured in the same run.
//!
//! `cargo bench --bench classifier`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use weightflow::classifier::{Activation, Mlp, Targets};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};

#[path = "support/gemm_rate.rs"]
mod gemm_rate;

/// Multiply-adds ×2 of one forward pass of one classifier on one row (biases and activations not counted).
fn forward_flops(layout: &Layout) -> u64 {
    2 * layout.sizes().windows(2).map(|w| (w[0] * w[1]) as u64).sum::<u64>()
}

fn ensemble(c: &mut Criterion) {
    let cases = [("9-16-16-2", 478, [64usize, 1024]), ("784-32-10", 1000, [16, 64])];
    for (arch, rows, ms) in cases {
        let layout = Layout::parse(arch).expect("valid architecture");
        let mlp = Mlp::new(layout.clone(), Activation::Relu);
        let mut r = rng::rng(3);
        // UCI heart's train + val (478 rows) or a 1,000-image MNIST batch, standardised-looking features.
        let d_in = layout.n_inputs();
        let x = ndarray::Array2::from_shape_fn((rows, d_in), |(i, j)| (((i * d_in + j) as f32) * 0.618).sin() * 1.5);
        let y: Vec<usize> = (0..rows).map(|i| i % layout.n_outputs()).collect();
        let targets = Targets::cross_entropy(&y);
        let mut group = c.benchmark_group(format!("ensemble_{arch}_{rows}_rows"));
        for m in ms {
            let thetas = KaimingUniform.sample(&layout, m, &mut r);
            let fwd = forward_flops(&layout) * (m * rows) as u64;
            group.throughput(Throughput::Elements(fwd));
            group.bench_with_input(BenchmarkId::new("logits", m), &m, |b, _| {
                b.iter(|| mlp.logits(thetas.view(), x.view()).expect("forward"))
            });
            // Backward: ∂/∂W of every layer (the forward's multiply-adds again) and ∂/∂a of every layer but the
            // first (no gradient with respect to x).
            let first = 2 * (layout.sizes()[0] * layout.sizes()[1]) as u64 * (m * rows) as u64;
            group.throughput(Throughput::Elements(3 * fwd - first));
            group.bench_with_input(BenchmarkId::new("loss_and_grad", m), &m, |b, _| {
                b.iter(|| mlp.loss_and_grad(thetas.view(), x.view(), &targets).expect("backward"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, gemm_rate::sgemm, ensemble);
criterion_main!(benches);
