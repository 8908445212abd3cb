//! `weightflow export`: a meta-model, a deployed classifier and calibration tables as one bundle.
//!
//! What goes into the bundle is [`build`]'s, which `detect` also uses when given a meta-model instead of a
//! bundle. JSON (schema `export/1`): `schema`, `out`, `bytes`, `layout`, `window_sizes`, `ensemble_size`,
//! `pool`, `seconds`.

use std::path::{Path, PathBuf};

use serde_json::json;
use weightflow::bundle::{Bundle, Manifest, PoolSpec, FORMAT_VERSION};
use weightflow::classifier::{Activation, Mlp};
use weightflow::detect::{EnsembleConfig, EnsembleSize, StepRule};
use weightflow::eval::EvalData;
use weightflow::flow::{MetaModel, Sampler};
use weightflow::runtime::{Detector, OpenOptions};
use weightflow::train::{device, DeviceKind, TrajectorySet};

use crate::args::{kebab, widths};
use crate::output;

/// Command-line arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The meta-model directory (`train-meta --out`).
    #[arg(long)]
    pub meta: PathBuf,
    /// The trajectory set the meta-model was trained on: f, P and P* come from it.
    #[arg(long)]
    pub trajectories: PathBuf,
    /// Window sizes to calibrate, comma-separated.
    #[arg(long, default_value = "10,20,50")]
    pub calibrate_sizes: String,
    /// Seed of the calibration windows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub build: BuildArgs,
    /// The onnxruntime library (default: ORT_DYLIB_PATH).
    #[arg(long)]
    pub onnxruntime: Option<PathBuf>,
    /// Output bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How a detector is built from a meta-model and its trajectory set: `export` writes the result as a bundle,
/// `detect` given a meta-model scores with it in memory.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The base run whose final checkpoint is the deployed classifier f.
    #[arg(long, default_value_t = 0)]
    pub f_run: usize,
    /// Null windows B per size. The detector's realised false-positive rate varies around α by about
    /// √(α(1 − α)/B): ±0.022 at B = 100, ±0.007 at the default 1,000 (docs/DETECT.md, "Per-f windows").
    #[arg(long, default_value_t = 1000)]
    pub null_windows: usize,
    /// ODE steps of generation.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// ODE solver: euler, heun or rk4.
    #[arg(long, value_parser = kebab::<Sampler>, default_value = "euler")]
    pub sampler: Sampler,
    /// Candidates generated and stored in the bundle (members that pass the floor vote).
    #[arg(long, default_value_t = 256)]
    pub pool: usize,
    /// Seed of the candidates' source samples.
    #[arg(long, default_value_t = 0)]
    pub pool_seed: u64,
    /// Members that vote (the detector's ensemble size): M, or k/class for k per class of f's output.
    #[arg(long, default_value_t = EnsembleConfig::default().ensemble_size)]
    pub ensemble_size: EnsembleSize,
    /// Candidates the voters are chosen from: at most this many floor-passing members of the pool, in pool
    /// order (0: the whole pool).
    #[arg(long, default_value_t = EnsembleConfig::default().candidates.unwrap_or(0))]
    pub candidates: usize,
    /// Accuracy floor on P: least agreement with f a member needs to vote.
    #[arg(long, default_value_t = EnsembleConfig::default().floor)]
    pub floor: f64,
    /// ℓ_cdc refinement steps per window (0: the untilted ensemble).
    #[arg(long, default_value_t = EnsembleConfig::default().steps)]
    pub refine_steps: usize,
    /// How a refinement step moves the weights: calibrated (the default: per-layer steps sized on an
    /// in-distribution window), absolute (θ − lr·g), relative, layer-relative or sign (a fixed fraction lr of
    /// the weights' norm); docs/DETECT.md.
    #[arg(long, value_parser = kebab::<StepRule>, default_value_t = EnsembleConfig::default().step_rule)]
    pub refine_step_rule: StepRule,
    /// Step size of the refinement (default: the step rule's, StepRule::default_lr). An absolute step depends
    /// on the classifier family (2.0 suits UCI heart's 9-16-16-2, 0.2 the digits 64-32-10; too large a step
    /// inverts the test); a relative one is a fraction of the weights' norm.
    #[arg(long)]
    pub refine_lr: Option<f32>,
    /// With the calibrated rule: the least fraction of members that must survive the steps on in-distribution
    /// windows, else the step size backs off by √2 when the bundle is built and opened (0: never back off).
    #[arg(long, default_value_t = EnsembleConfig::default().step_keep.unwrap_or(0.0))]
    pub refine_step_keep: f64,
    /// Rows of P's reference sample the voters are checked and compared on: a fixed subsample of at most this
    /// many, drawn when the detector is built (0: all). The bundle stores all of them.
    #[arg(long, default_value_t = EnsembleConfig::default().vote_rows.unwrap_or(0))]
    pub vote_rows: usize,
}

impl Default for BuildArgs {
    /// The command line's defaults (parsed from no arguments, so that they cannot drift apart).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            build: BuildArgs,
        }
        <Defaults as clap::Parser>::parse_from(["defaults"]).build
    }
}

/// A calibrated bundle built in memory, with what the summaries report.
pub struct Built {
    pub bundle: Bundle,
    /// Members that vote (at most `--ensemble-size`: fewer when fewer candidates pass the floor).
    pub ensemble_size: usize,
    /// Rows of P*, the held-out split the null windows are drawn from.
    pub null_rows: usize,
}

/// Builds the detector of `meta` over `trajectories`: f is run `f_run`'s final checkpoint, P's reference sample
/// the set's training split and the null pool P* its held-out test split, both standardised as the runs saw
/// them. The candidate pool is generated through onnxruntime from the bundle itself (exactly what a detector
/// would generate at open), then calibrated against for each of `sizes` from `seed` and stored, so that
/// calibration and scoring see the same members and a detector opens without running the meta-model.
pub fn build(
    meta: &Path,
    trajectories: &Path,
    args: &BuildArgs,
    sizes: &[usize],
    seed: u64,
    onnxruntime: Option<PathBuf>,
) -> Result<Built, Box<dyn std::error::Error>> {
    let set = TrajectorySet::load(trajectories)?;
    let model = MetaModel::load(meta, &device(DeviceKind::Cpu)?)?;
    let m = &set.manifest;
    if model.layout() != &m.layout {
        return Err(
            format!("the meta-model is over {} but the trajectories are of {}", model.layout(), m.layout).into()
        );
    }
    let thetas = set.thetas();
    let (runs, k1, _) = thetas.dim();
    if args.f_run >= runs {
        return Err(format!("--f-run {} but the set has {runs} runs", args.f_run).into());
    }
    let activation: Activation = match model.activation() {
        Some(a) => a.parse()?,
        None => m.activation,
    };
    let mlp = Mlp::new(m.layout.clone(), activation);
    let f = thetas.slice(ndarray::s![args.f_run, k1 - 1, ..]).to_owned();
    let data = EvalData::from_manifest(m)?;
    let p_labels = mlp.predict(f.view().insert_axis(ndarray::Axis(0)), data.train.x.view())?;
    let config = EnsembleConfig {
        ensemble_size: args.ensemble_size,
        candidates: (args.candidates > 0).then_some(args.candidates),
        floor: args.floor,
        steps: args.refine_steps,
        step_rule: args.refine_step_rule,
        lr: args.refine_lr.unwrap_or(args.refine_step_rule.default_lr()),
        step_keep: (args.refine_step_keep > 0.0).then_some(args.refine_step_keep),
        vote_rows: (args.vote_rows > 0).then_some(args.vote_rows),
        ..EnsembleConfig::default()
    };
    let bundle = Bundle {
        manifest: Manifest {
            format_version: FORMAT_VERSION,
            producer: format!("weightflow {}", weightflow::VERSION),
            classifier: mlp,
            standardizer: m.standardizer.clone(),
            source: model.config().source,
            sampler: args.sampler,
            steps: args.steps,
            pool: PoolSpec { size: args.pool, seed: args.pool_seed },
            ensemble: config,
            calibration: Vec::new(),
            sections: Vec::new(),
        },
        onnx: model.to_onnx()?,
        f,
        p_ref: data.train.x.clone(),
        p_labels: p_labels.row(0).iter().map(|&c| c as u32).collect(),
        pool: None,
    };
    // Calibrate with exactly the members the runtime will hold: open the uncalibrated bundle and use its
    // ensemble.
    let options = OpenOptions { onnxruntime, ..OpenOptions::default() };
    let opened = Detector::from_bundle(bundle, &options)?;
    let detector = opened.ensemble();
    let calibration = detector.calibrate(data.test.x.view(), sizes, args.null_windows, seed)?;
    let mut bundle = opened.bundle().clone();
    bundle.pool = Some(opened.pool().clone());
    bundle.manifest.calibration = calibration;
    Ok(Built { bundle, ensemble_size: detector.ensemble_size(), null_rows: data.test.x.nrows() })
}

/// Runs `export`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let sizes =
        widths(&args.calibrate_sizes).map_err(|e| format!("--calibrate-sizes {:?}: {e}", args.calibrate_sizes))?;
    let built = build(&args.meta, &args.trajectories, &args.build, &sizes, args.seed, args.onnxruntime.clone())?;
    built.bundle.write(&args.out)?;
    let bytes = std::fs::metadata(&args.out)?.len();
    let seconds = started.elapsed().as_secs_f64();
    let layout = &built.bundle.manifest.classifier.layout;
    let b = &args.build;
    output::say(format_args!(
        "bundle {} ({bytes} bytes): {layout} f = run {}, {} of {} candidates vote, calibrated for {:?} \
         ({} null windows each from {} held-out rows) in {seconds:.1} s",
        args.out.display(),
        b.f_run,
        built.ensemble_size,
        b.pool,
        sizes,
        b.null_windows,
        built.null_rows,
    ));
    if args.json {
        output::json(&json!({
            "schema": "export/1",
            "out": args.out,
            "bytes": bytes,
            "layout": layout.arch(),
            "window_sizes": sizes,
            "ensemble_size": built.ensemble_size,
            "pool": b.pool,
            "seconds": seconds,
        }))?;
    }
    Ok(())
}
