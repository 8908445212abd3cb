//! One UCI-heart window of N = 20 (from the other hospitals' rows) scored by every `eval-shift` method, on one
//! thread — the per-window latency of docs/PERFORMANCE.md.
//!
//! `cargo bench --bench detect`
//!
//! f and the ensembles' pool are natively trained 9-16-16-2 MLPs (uci-heart settings, seed 0: run 0 is f, runs
//! 1–256 the pool, the size `weightflow export` stores): trained nets stand in for the meta-model's samples, which need a trained meta-model on disk;
//! the cost per window depends on the member count and the rows, not on where the members came from. The
//! scoring is single-threaded by construction: `detect` and `classifier` spawn no threads (no rayon there) and
//! ndarray is built without its threading feature; only the setup's training uses candle's threads.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Axis;
use weightflow::classifier::Mlp;
use weightflow::data::{DatasetSpec, Standardizer};
use weightflow::detect::{DetectronConfig, EnsembleConfig, Method, MethodInputs};
use weightflow::space::Layout;
use weightflow::train::{train_runs, TrainConfig, TrainData};

/// Runs 0 (f) and 1..=POOL (the pool).
const POOL: usize = 256;

fn window_per_method(c: &mut Criterion) {
    let spec = DatasetSpec::UciHeart;
    let splits = spec.load(0).expect("embedded UCI heart");
    let standardizer = Standardizer::fit(&splits.train.x).expect("training rows");
    let train = standardizer.transform(&splits.train).expect("same width");
    let val = standardizer.transform(&splits.val).expect("same width");
    let shifted = standardizer.transform(&splits.shifted.expect("UCI heart has a shifted pool")).expect("same width");
    let (arch, mut cfg) = TrainConfig::for_dataset(&spec);
    let layout = Layout::parse(&arch.expect("built-in architecture")).expect("valid architecture");
    cfg.runs = POOL + 1;
    let trained =
        train_runs(&layout, &cfg, data(&train), data(&val), &candle_core::Device::Cpu, &mut |_| {}).expect("training");
    let nets = trained.thetas.index_axis(Axis(1), cfg.checkpoints).to_owned();
    let mlp = Mlp::new(layout, cfg.activation);
    let pool = nets.slice(ndarray::s![1.., ..]);
    let inputs = MethodInputs {
        mlp: &mlp,
        f: nets.row(0).to_owned(),
        p_ref: train.x.clone(),
        pool: Some(pool),
        refined: EnsembleConfig::default(),
        untilted: EnsembleConfig::untilted(),
        detectron: DetectronConfig::default(),
        mmd_permutations: 0,
        meta: None,
        adjoint: Default::default(),
    };
    let q = shifted.x.slice(ndarray::s![..20, ..]).to_owned();
    let mut group = c.benchmark_group("uci_window_n20");
    // The faithful path tunes a meta-model per window (seconds): it is timed by eval-shift, not here.
    for method in Method::ALL.into_iter().filter(|m| !m.needs_meta_model()) {
        let test = method.build(&inputs).expect("a valid detector");
        group.bench_with_input(BenchmarkId::from_parameter(method), &method, |b, _| {
            b.iter(|| test.statistic(q.view(), 7).expect("a statistic"))
        });
    }
    group.finish();
}

fn data(d: &weightflow::data::Dataset) -> TrainData<'_> {
    TrainData { x: d.x.view(), y: &d.y }
}

criterion_group!(benches, window_per_method);
criterion_main!(benches);
