//! `weightflow detect`: one window of live inputs scored by a bundle, the command-line face of
//! `runtime::Detector::score` (what the C ABI's `wf_detector_score` returns).
//!
//! The window is a CSV of raw (unstandardised) feature rows, with or without a header line; its row count
//! must be a window size the bundle was calibrated for. Exit code 0 whether or not the window is flagged:
//! the verdict is data (`is_shift`), not a failure. JSON (schema `detect/1`): `schema`, `bundle`, `window`,
//! `rows`, `seed`, the score's fields (`p_value`, `statistic`, `threshold`, `is_shift`, `disagreement`,
//! `entropy_p`, `ensemble_size`), `alpha`, `open_ms`, `score_ms`.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use weightflow::data::load_features_csv;
use weightflow::runtime::{Detector, ExecutionProvider, OpenOptions};

use crate::output;

/// Command-line arguments of `detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle (`weightflow export`).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The window: a CSV of raw feature rows (a header line is optional), one of the calibrated sizes.
    #[arg(long)]
    pub window: PathBuf,
    /// Seed of the window's random choices: the same window and seed give the same verdict.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The onnxruntime library (default: ORT_DYLIB_PATH).
    #[arg(long)]
    pub onnxruntime: Option<PathBuf>,
    /// Run the meta-model on onnxruntime's CUDA provider on this GPU (needs an onnxruntime with it, e.g. the
    /// onnxruntime-gpu wheel). Only a bundle without a stored pool runs the meta-model, at open; scoring runs on
    /// the CPU.
    #[arg(long)]
    pub cuda_device: Option<u32>,
    /// Print the verdict as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `detect`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let rows = load_features_csv(&args.window)?;
    let started = Instant::now();
    let provider = ExecutionProvider::from_cuda_device(args.cuda_device);
    let options = OpenOptions { onnxruntime: args.onnxruntime.clone(), provider, ..OpenOptions::default() };
    let detector = Detector::open(&args.bundle, &options)?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let info = detector.info();
    if !info.window_sizes.contains(&rows.nrows()) {
        return Err(format!(
            "{} has {} rows; the bundle is calibrated for windows of {:?} rows",
            args.window.display(),
            rows.nrows(),
            info.window_sizes
        )
        .into());
    }
    let started = Instant::now();
    let score = detector.score(rows.view(), args.seed)?;
    let score_ms = started.elapsed().as_secs_f64() * 1e3;
    let alpha = detector.bundle().manifest.ensemble.alpha;
    output::say(format_args!(
        "{}: {} at α = {alpha} (p = {:.4}, statistic {:.3} vs threshold {:.3}; {} members disagree with f on \
         {:.1}% of the rows; opened in {open_ms:.1} ms, scored in {score_ms:.2} ms)",
        args.window.display(),
        if score.is_shift { "HARMFUL SHIFT" } else { "no harmful shift detected" },
        score.p_value,
        score.statistic,
        score.threshold,
        score.ensemble_size,
        100.0 * score.disagreement,
    ));
    if args.json {
        output::json(&json!({
            "schema": "detect/1",
            "bundle": args.bundle,
            "window": args.window,
            "rows": rows.nrows(),
            "seed": args.seed,
            "p_value": score.p_value,
            "statistic": score.statistic,
            "threshold": score.threshold,
            "is_shift": score.is_shift,
            "disagreement": score.disagreement,
            "entropy_p": score.entropy_p,
            "ensemble_size": score.ensemble_size,
            "alpha": alpha,
            "open_ms": open_ms,
            "score_ms": score_ms,
        }))?;
    }
    Ok(())
}
