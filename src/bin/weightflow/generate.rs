//! `weightflow generate`: sample classifiers from a meta-model into a safetensors file.
//!
//! The file holds one tensor `thetas` `[n, D]` (flat layout of the classifier) and metadata `layout`
//! (e.g. `9-16-16-2`), `activation`, `sampler`, `steps`, `seed`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use weightflow::eval::EvalData;
use weightflow::flow::{MetaModel, Objective, Sampler};
use weightflow::train::{device, DeviceKind, TrajectorySet};

use crate::args::kebab;
use crate::output;
use crate::tasks::{context_pool, task_name};

/// Command-line arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A meta-model directory written by `train-meta`.
    #[arg(long)]
    pub meta: PathBuf,
    /// Number of classifiers.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub n: usize,
    /// ODE steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// ODE solver: euler, heun or rk4.
    #[arg(long, value_parser = kebab::<Sampler>, default_value = "euler")]
    pub sampler: Sampler,
    /// Sampling temperature τ: start from fresh source samples scaled by τ. Below 1 it trades the generated
    /// nets' spread for accuracy (docs/FLOW.md, "Sampling temperature"); 1 (default) is the flow as trained.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Seed of the source samples (and of the context set's rows).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Context-conditioned models: generate for the task of this trajectory set, conditioned on a context
    /// set drawn from its training split (without it, generation is unconditioned).
    #[arg(long)]
    pub context_from: Option<PathBuf>,
    /// Rows of that context set (default: the model's training set size).
    #[arg(long)]
    pub context_size: Option<usize>,
    /// Classifier-free guidance weight (1: the conditional field; 0: unconditioned; > 1: pushed further). The
    /// default 2 removed the tail of wrong-task classifiers that 1 leaves on rotated digits (docs/FLOW.md).
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
    /// Device: cpu, or cuda with the `cuda` feature.
    #[arg(long, value_parser = kebab::<DeviceKind>, default_value = "cpu")]
    pub device: DeviceKind,
    /// Output file (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `generate`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.n == 0 || args.steps == 0 {
        return Err("-n and --steps must be at least 1".into());
    }
    let model = MetaModel::load(&args.meta, &device(args.device)?)?.with_temperature(args.temperature)?;
    let context = match (&args.context_from, model.context_config()) {
        (Some(dir), Some(c)) => {
            let set = TrajectorySet::load(dir)?;
            let pool = context_pool(&EvalData::from_manifest(&set.manifest)?);
            let m = args.context_size.unwrap_or(c.set_size);
            if m == 0 {
                return Err("--context-size must be at least 1".into());
            }
            output::say(format_args!(
                "conditioned on {m} rows of {} (guidance {})",
                task_name(&set.manifest),
                args.guidance
            ));
            Some(pool.draw(m, &mut weightflow::rng::rng(args.seed)))
        }
        (Some(_), None) => return Err("--context-from: this meta-model was trained without --context".into()),
        (None, _) if args.context_size.is_some() => return Err("--context-size needs --context-from".into()),
        (None, _) => None,
    };
    let started = std::time::Instant::now();
    let thetas = match &context {
        Some(c) => model.generate_conditioned(args.n, args.sampler, args.steps, args.seed, c, args.guidance)?,
        None => model.generate(args.n, args.sampler, args.steps, args.seed)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    // A JKO model takes its own explicit steps between its marginals and ignores --sampler and --steps: record
    // what ran, not what was asked.
    let (sampler, steps) = match model.config().objective {
        Objective::Jko => ("jko".to_string(), model.marginal_times().len() - 1),
        _ => (serde_json::to_value(args.sampler)?.as_str().unwrap_or("?").to_string(), args.steps),
    };
    let metadata: HashMap<String, String> = [
        ("layout", model.layout().arch()),
        ("activation", model.activation().unwrap_or("relu").to_string()),
        ("sampler", sampler.clone()),
        ("steps", steps.to_string()),
        ("seed", args.seed.to_string()),
        ("temperature", args.temperature.to_string()),
        ("context", args.context_from.as_ref().map_or("none".into(), |p| p.display().to_string())),
        ("guidance", args.guidance.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes: Vec<u8> = thetas.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![thetas.nrows(), thetas.ncols()], &bytes)?;
    let out = safetensors::serialize([("thetas", view)], Some(metadata))?;
    let tmp = args.out.with_extension("tmp");
    std::fs::write(&tmp, out)
        .and_then(|_| std::fs::rename(&tmp, &args.out))
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    output::say(format_args!(
        "generated {} classifiers of {} in {:.3} s ({} {} steps) → {}",
        args.n,
        model.layout(),
        seconds,
        steps,
        sampler,
        args.out.display()
    ));
    if args.json {
        output::json(
            &json!({"schema": "generate/1", "n": args.n, "layout": model.layout().arch(), "seconds": seconds, "out": args.out}),
        )?;
    }
    Ok(())
}
