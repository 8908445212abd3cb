//! Meta-model generation: 1,000 UCI-heart classifiers (D = 466) with 50 Euler steps, for the velocity
//! networks the project uses (issue: under 1 s on the 2-core machine). The network's weights are a seeded
//! initialisation: generation costs the same whatever the weights are.
//!
//! `cargo bench --bench generation`

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array3;
use weightflow::flow::{train_meta, MetaTrainConfig, NetConfig, Sampler};
use weightflow::rng;
use weightflow::space::{KaimingUniform, Layout, Source};

fn generation(c: &mut Criterion) {
    let layout = Layout::parse("9-16-16-2").expect("valid architecture");
    let x = KaimingUniform.sample(&layout, 8, &mut rng::rng(1));
    let traj = Array3::from_shape_fn((4, 3, layout.dim()), |(r, k, j)| x[[r * 2 + k.min(1), j]]);
    let mut group = c.benchmark_group("generate_1000_uci_50_euler");
    group.sample_size(10);
    for hidden in [vec![256; 3], vec![512; 3]] {
        let cfg = MetaTrainConfig {
            steps: 1,
            batch_size: 4,
            net: NetConfig { hidden: hidden.clone(), ..NetConfig::default() },
            ..MetaTrainConfig::default()
        };
        let model = train_meta(&layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {}).expect("tiny training");
        let name = format!("{}x{}", hidden.len(), hidden[0]);
        group.bench_function(name, |b| b.iter(|| model.generate(1000, Sampler::Euler, 50, 0).expect("generation")));
    }
    group.finish();
}

criterion_group!(benches, generation);
criterion_main!(benches);
