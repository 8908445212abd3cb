//! The library end to end, small enough to run in seconds: train 64 digit classifiers as one batched
//! computation, learn a CFM meta-model of their weights, generate 32 new classifiers from fresh Kaiming
//! samples and compare their held-out accuracy with the trained ones'.
//!
//! `cargo run --release --example train_and_generate`

use candle_core::Device;
use ndarray::Axis;
use weightflow::classifier::Mlp;
use weightflow::data::DatasetSpec;
use weightflow::eval::{accuracy_stats, EvalData};
use weightflow::flow::{train_meta, MetaTrainConfig, NetConfig, Sampler};
use weightflow::space::Layout;
use weightflow::train::{train_base, DeviceKind, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layout = Layout::parse("64-32-10")?;
    let (_, defaults) = TrainConfig::for_dataset(&DatasetSpec::Digits);
    let cfg = TrainConfig { runs: 64, epochs: 20, ..defaults };
    let set = train_base(&DatasetSpec::Digits, 0, &layout, &cfg, DeviceKind::Cpu, &mut |_| {})?;
    println!("trained {} runs: held-out accuracy {:.3}", cfg.runs, set.manifest.final_summary.test_accuracy);

    let meta_cfg = MetaTrainConfig {
        steps: 300,
        batch_size: 64,
        net: NetConfig { hidden: vec![128, 128], ..NetConfig::default() },
        ..MetaTrainConfig::default()
    };
    let model = train_meta(&layout, set.thetas(), &meta_cfg, &Device::Cpu, &mut |_, _, _| {})?;
    let generated = model.generate(32, Sampler::Euler, 50, 1)?;

    let data = EvalData::from_manifest(&set.manifest)?;
    let mlp = Mlp::new(layout, set.manifest.activation);
    let trained = set.thetas().index_axis(Axis(1), cfg.checkpoints).to_owned();
    for (name, thetas) in [("trained", &trained), ("generated", &generated)] {
        let s = accuracy_stats(&mlp, thetas.view(), data.test.x.view(), &data.test.y)?.stats;
        println!("{name:>9}: held-out accuracy {:.3} [{:.3}, {:.3}]", s.mean, s.min, s.max);
    }
    Ok(())
}
