//! The batched classifier: logits of M UCI-heart MLPs (9-16-16-2) on a shared batch, and one loss-and-gradient
//! pass — the kernels an ensemble's scoring and a CDC reward run on.
//!
//! `cargo bench --bench classifier`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use weightflow::classifier::{Activation, Mlp, Targets};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};

fn ensemble(c: &mut Criterion) {
    let layout = Layout::parse("9-16-16-2").expect("valid architecture");
    let mlp = Mlp::new(layout.clone(), Activation::Relu);
    let mut r = rng::rng(3);
    // 478 rows (UCI heart's train + val) of 9 standardised-looking features.
    let x = ndarray::Array2::from_shape_fn((478, 9), |(i, j)| (((i * 9 + j) as f32) * 0.618).sin() * 1.5);
    let y: Vec<usize> = (0..478).map(|i| i % 2).collect();
    let mut group = c.benchmark_group("uci_ensemble_478_rows");
    for m in [64usize, 1024] {
        let thetas = KaimingUniform.sample(&layout, m, &mut r);
        group.bench_with_input(BenchmarkId::new("logits", m), &m, |b, _| {
            b.iter(|| mlp.logits(thetas.view(), x.view()).expect("forward"))
        });
        let targets = Targets::cross_entropy(&y);
        group.bench_with_input(BenchmarkId::new("loss_and_grad", m), &m, |b, _| {
            b.iter(|| mlp.loss_and_grad(thetas.view(), x.view(), &targets).expect("backward"))
        });
    }
    group.finish();
}

criterion_group!(benches, ensemble);
criterion_main!(benches);
