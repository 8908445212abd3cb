//! Times what docs/PERFORMANCE.md reports for the runtime: opening a bundle (read + checks, candidate pool,
//! ensemble) as written (format 2: the pool stored) and the same bundle without its pool (generated at open
//! through onnxruntime, as format 1 did), and generating n classifiers through onnxruntime against candle's
//! `MetaModel::generate` (same seed, same sampler and steps), each `runs` times.
//!
//! ```sh
//! cargo run --release -- quickstart
//! cargo run --release -- export --meta runs/quickstart/meta --trajectories runs/quickstart/trajectories \
//!     --out runs/quickstart/detector.wfb
//! ORT_DYLIB_PATH=$(./scripts/setup-ort.sh) cargo run --release --example runtime_timing -- \
//!     runs/quickstart/detector.wfb runs/quickstart/meta 1000 5
//! ```

use std::path::PathBuf;
use std::time::Instant;

use weightflow::flow::MetaModel;
use weightflow::runtime::{Detector, OpenOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        return Err("usage: runtime_timing BUNDLE META_DIR N RUNS".into());
    }
    let (bundle, meta) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let (n, runs): (usize, usize) = (args[2].parse()?, args[3].parse()?);
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;

    let mut open = Vec::new();
    let mut det = None;
    for _ in 0..runs {
        let t = Instant::now();
        det = Some(Detector::open(&bundle, &OpenOptions::default())?);
        open.push(ms(t));
    }
    let det = det.expect("runs ≥ 1");
    let mut pool_free = det.bundle().clone();
    pool_free.pool = None;
    let dir = std::env::temp_dir().join(format!("runtime_timing_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let generated_path = dir.join("no_pool.wfb");
    pool_free.write(&generated_path)?;
    let mut open_generating = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let d = Detector::open(&generated_path, &OpenOptions::default())?;
        open_generating.push(ms(t));
        assert_eq!(d.info().ensemble_size, det.info().ensemble_size);
    }
    std::fs::remove_dir_all(&dir)?;
    let m = &det.bundle().manifest;
    let model = MetaModel::load(&meta, &candle_core::Device::Cpu)?;
    let (mut ort, mut candle) = (Vec::new(), Vec::new());
    let mut max_rel = 0f64;
    for run in 0..runs {
        let t = Instant::now();
        let a = det.generate(n, run as u64)?;
        ort.push(ms(t));
        let t = Instant::now();
        let b = model.generate(n, m.sampler, m.steps, run as u64)?;
        candle.push(ms(t));
        let num: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        max_rel = max_rel.max((num / den).sqrt());
    }
    let show = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    println!(
        "bundle {}: pool {} × {:?} {} steps, {} members vote",
        bundle.display(),
        m.pool.size,
        m.sampler,
        m.steps,
        det.info().ensemble_size
    );
    println!("open, pool stored (ms, {runs} runs): {}", show(&open));
    println!("open, pool generated at open (ms, {runs} runs): {}", show(&open_generating));
    println!("generate {n} via onnxruntime (ms, {runs} runs): {}", show(&ort));
    println!("generate {n} via candle (ms, {runs} runs): {}", show(&candle));
    println!("max relative difference onnxruntime vs candle: {max_rel:.2e}");
    Ok(())
}
