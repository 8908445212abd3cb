//! `weightflow detect`: one window of live inputs scored by a bundle, the command-line face of
//! `runtime::Detector::score` (what the C ABI's `wf_detector_score` returns).
//!
//! The window is a CSV of raw (unstandardised) feature rows, with or without a header line; its row count
//! must be a window size the bundle was calibrated for. Given a meta-model directory and its trajectory set
//! instead of a bundle (`--bundle-or-meta DIR --trajectories T`), the command builds the detector `export`
//! would write, calibrated for the window's size only, in memory, and scores with it: the same verdict as
//! `export` with the same settings followed by `detect` on the bundle, without a file in between.
//!
//! Exit code 0 whether or not the window is flagged: the verdict is data (`is_shift`), not a failure. JSON
//! (schema `detect/1`): `schema`, `bundle`, `window`, `rows`, `seed`, the score's fields (`p_value`,
//! `statistic`, `threshold`, `is_shift`, `disagreement`, `entropy_p`, `ensemble_size`), `alpha`, `open_ms`,
//! `score_ms`; with a meta-model also `meta` (true) and `trajectories`, and `open_ms` includes the build.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use weightflow::data::load_features_csv;
use weightflow::runtime::{Detector, ExecutionProvider, OpenOptions};

use crate::export::{build, BuildArgs};
use crate::output;

/// Where `--help` lists the options that only a meta-model directory uses.
const HEADING: &str = "With a meta-model directory instead of a bundle";

/// Command-line arguments of `detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle (`weightflow export`), or a meta-model directory (`train-meta --out`) with --trajectories.
    #[arg(long, visible_alias = "bundle-or-meta")]
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
    /// The trajectory set the meta-model was trained on (f, P and P* come from it, as in `export`).
    #[arg(long, help_heading = HEADING)]
    pub trajectories: Option<PathBuf>,
    /// Seed of the calibration windows (`export --seed`); only the window's size is calibrated.
    #[arg(long, default_value_t = 0, help_heading = HEADING)]
    pub calibration_seed: u64,
    /// How the detector is built, as `export` builds it.
    #[command(flatten, next_help_heading = HEADING)]
    pub build: BuildArgs,
}

/// Runs `detect`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let rows = load_features_csv(&args.window)?;
    let started = Instant::now();
    let provider = ExecutionProvider::from_cuda_device(args.cuda_device);
    let options = OpenOptions { onnxruntime: args.onnxruntime.clone(), provider, ..OpenOptions::default() };
    let meta = args.bundle.is_dir();
    let detector = match (meta, &args.trajectories) {
        (false, None) => Detector::open(&args.bundle, &options)?,
        (true, Some(trajectories)) => {
            let sizes = [rows.nrows()];
            let seed = args.calibration_seed;
            output::say(format_args!(
                "building a detector from {} over {}: {} candidates, {} null windows of {} rows …",
                args.bundle.display(),
                trajectories.display(),
                args.build.pool,
                args.build.null_windows,
                rows.nrows()
            ));
            let built = build(&args.bundle, trajectories, &args.build, &sizes, seed, args.onnxruntime.clone())?;
            Detector::from_bundle(built.bundle, &options)?
        }
        (true, None) => {
            return Err(format!(
                "{} is a directory: a meta-model needs --trajectories (the set it was trained on) to build a \
                 detector; or export a bundle first (weightflow export)",
                args.bundle.display()
            )
            .into())
        }
        (false, Some(_)) => {
            return Err(format!(
                "--trajectories is for a meta-model directory; {} is a bundle, which holds its own f and P",
                args.bundle.display()
            )
            .into())
        }
    };
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
         {:.1}% of the rows; {} in {open_ms:.1} ms, scored in {score_ms:.2} ms)",
        args.window.display(),
        if score.is_shift { "HARMFUL SHIFT" } else { "no harmful shift detected" },
        score.p_value,
        score.statistic,
        score.threshold,
        score.ensemble_size,
        100.0 * score.disagreement,
        if meta { "built and calibrated" } else { "opened" },
    ));
    if args.json {
        let mut v = json!({
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
        });
        if meta {
            v["meta"] = json!(true);
            v["trajectories"] = json!(args.trajectories);
        }
        output::json(&v)?;
    }
    Ok(())
}
