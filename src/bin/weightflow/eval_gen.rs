//! `weightflow eval-gen`: how good, varied and novel are a meta-model's classifiers (METHOD.md §2).
//!
//! JSON (schema `eval-gen/1`): the [`GenerationReport`] of `weightflow::eval` — `generated`, `trained`,
//! `w1`, `nn_distance`, `error_iou`, `init_steps`, `constant_predictors`, `weight_norm`, `spread`,
//! `disagreement`, `best_of_k`, `path_loss` — plus `schema`, `meta`, `settings`, and for a context-conditioned
//! model `context` (`task`, `set_size`, `unconditioned` and per `--guidance` weight `conditioned`: accuracy
//! mean/min/max; the main figures of such a model are its unconditioned ones). Accuracies are on the
//! held-out split of the trajectories' data set; every generated classifier comes from fresh source samples.

use std::path::PathBuf;

use ndarray::s;
use serde_json::json;
use weightflow::classifier::{Activation, Mlp};
use weightflow::eval::{
    accuracy_stats, evaluate_generation, w1_per_marginal, EvalData, GenerationConfig, GenerationInputs,
    GenerationReport, InitTarget, Stats,
};
use weightflow::flow::{MetaModel, Sampler};
use weightflow::train::{device, DeviceKind, TrajectorySet};

use crate::args::kebab;
use crate::output;
use crate::plot_gen::{write_curves, Curves};
use crate::tasks::{context_pool, task_name};

/// Command-line arguments of `eval-gen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The meta-model to evaluate.
    #[arg(long)]
    pub meta: PathBuf,
    /// The trajectory set it was trained on (its runs are the "trained" reference).
    #[arg(long)]
    pub trajectories: PathBuf,
    /// A second meta-model with a Gaussian source, for the W1 comparison (optional).
    #[arg(long)]
    pub gaussian_meta: Option<PathBuf>,
    /// Generated classifiers M (best-of-k draws k·M).
    #[arg(short = 'n', long, default_value_t = 256)]
    pub n: usize,
    /// k of the best-of-k filter on the training split.
    #[arg(long, default_value_t = 4)]
    pub best_of_k: usize,
    /// ODE steps (the path is recorded at every step; W1 uses the states at t_k = k/K, so a multiple of K).
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    /// ODE solver: euler, heun or rk4.
    #[arg(long, value_parser = kebab::<Sampler>, default_value = "euler")]
    pub sampler: Sampler,
    /// Initialisations fine-tuned per population for `init_steps` (0 skips that figure).
    #[arg(long, default_value_t = 64)]
    pub init_n: usize,
    /// Sampling temperature τ: start from fresh source samples scaled by τ. Below 1 it trades the generated
    /// nets' spread for accuracy (docs/FLOW.md, "Sampling temperature"); 1 (default) is the flow as trained.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Seed of the source samples.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Context-conditioned models: guidance weights w of the conditioned figures, comma-separated (1: the
    /// conditional field, 0: unconditioned, > 1: pushed further towards the context).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub guidance: Vec<f64>,
    /// Write path_loss.svg and w1.svg into this directory (`plot-gen` draws several reports on one pair).
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Device: cpu, or cuda with the `cuda` feature.
    #[arg(long, value_parser = kebab::<DeviceKind>, default_value = "cpu")]
    pub device: DeviceKind,
    /// The report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `eval-gen`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.n < 2 || args.best_of_k == 0 || args.steps == 0 {
        return Err("-n must be at least 2, --best-of-k and --steps at least 1".into());
    }
    let dev = device(args.device)?;
    let set = TrajectorySet::load(&args.trajectories)?;
    let model = MetaModel::load(&args.meta, &dev)?.with_temperature(args.temperature)?;
    let m = &set.manifest;
    if model.layout() != &m.layout {
        return Err(
            format!("the meta-model is over {} but the trajectories are of {}", model.layout(), m.layout).into()
        );
    }
    let activation: Activation = match model.activation() {
        Some(a) => a.parse()?,
        None => m.activation,
    };
    let mlp = Mlp::new(m.layout.clone(), activation);
    let data = EvalData::from_manifest(m)?;
    let trajectories = model.prepared_trajectories(set.thetas())?;
    // The path is recorded at every step: keep its memory bounded (n_path · D · (steps + 1) floats).
    let n_path = args.n.min((64_000_000 / (m.layout.dim() * (args.steps + 1))).max(16));
    output::say(format_args!("generating {} classifiers (+ a path of {n_path}) …", args.n * args.best_of_k));
    if model.context_config().is_some() {
        output::say("(a context-conditioned model: the main figures are unconditioned, from its null context)");
    }
    let generated = model.generate(args.n * args.best_of_k, args.sampler, args.steps, args.seed)?;
    let path = model.generate_path(n_path, args.sampler, args.steps, args.seed, 1)?;
    let cfg = GenerationConfig {
        best_of_k: args.best_of_k,
        init_n: args.init_n,
        init_target: InitTarget::RelativeToTrained(0.99),
        ..GenerationConfig::default()
    };
    output::say("scoring …");
    let inputs = GenerationInputs {
        mlp: &mlp,
        generated: generated.view(),
        path: &path,
        trajectories: trajectories.view(),
        data: &data,
    };
    let mut report = evaluate_generation(&inputs, &cfg)?;
    if let Some(g) = &args.gaussian_meta {
        let gm = MetaModel::load(g, &dev)?.with_temperature(args.temperature)?;
        let gpath = gm.generate_path(n_path, args.sampler, args.steps, args.seed, 1)?;
        let gtraj = gm.prepared_trajectories(set.thetas())?;
        report.w1.gaussian_source = Some(w1_per_marginal(&gpath, gtraj.view(), &cfg.w1, cfg.time_tolerance)?.values);
    }
    let context = match model.context_config() {
        Some(c) => Some(context_report(&model, &mlp, &data, &args, c.set_size, generated.slice(s![..args.n, ..]))?),
        None => None,
    };
    if let Some(dir) = &args.plots {
        write_plots(dir, &report)?;
    }
    print_report(&report);
    if let Some(c) = &context {
        print_context(c, &task_name(m));
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["schema"] = json!("eval-gen/1");
        v["meta"] = json!(args.meta);
        v["settings"] = json!({"n": args.n, "steps": args.steps, "sampler": args.sampler, "seed": args.seed,
            "temperature": args.temperature, "n_path": n_path, "objective": model.config().objective, "source": model.config().source,
            "latent_dim": model.latent().map(|ae| ae.latent_dim())});
        if let Some(c) = &context {
            v["context"] = serde_json::to_value(c)?;
            v["context"]["task"] = json!(task_name(m));
        }
        output::json(&v)?;
    }
    Ok(())
}

fn write_plots(dir: &std::path::Path, r: &GenerationReport) -> Result<(), Box<dyn std::error::Error>> {
    let series = |vals: &[Option<f64>]| -> Vec<(f64, f64)> {
        r.w1.t.iter().zip(vals).filter_map(|(&t, v)| v.map(|v| (t, v))).collect()
    };
    let curves = Curves {
        label: "generated".into(),
        path_loss: r.path_loss.iter().map(|p| (p.t as f64, p.loss)).collect(),
        w1: series(&r.w1.generated),
        w1_gaussian: r.w1.gaussian_source.as_deref().map(series),
    };
    let files = write_curves(dir, "", &[curves])?;
    output::say(format_args!("wrote {} and {}", files[0].display(), files[1].display()));
    Ok(())
}

fn print_report(r: &GenerationReport) {
    let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    output::say(format_args!(
        "accuracy (held-out)   generated {:.3} [{:.3}, {:.3}]   trained {:.3} [{:.3}, {:.3}]   best-of-{} {:.3}",
        r.generated.accuracy_mean,
        r.generated.accuracy_min,
        r.generated.accuracy_max,
        r.trained.accuracy_mean,
        r.trained.accuracy_min,
        r.trained.accuracy_max,
        r.best_of_k.k,
        r.best_of_k.accuracy_mean
    ));
    output::say(format_args!(
        "constant predictors   generated {}   trained {}",
        r.constant_predictors.generated, r.constant_predictors.trained
    ));
    output::say(format_args!(
        "weight norm           generated {:.3}   trained {:.3}   (ratio {:.3})",
        r.weight_norm.generated,
        r.weight_norm.trained,
        r.weight_norm.generated / r.weight_norm.trained
    ));
    output::say(format_args!(
        "spread                generated {:.3}   trained {:.3}",
        r.spread.generated, r.spread.trained
    ));
    output::say(format_args!(
        "nn distance           generated {:.3}   trained {:.3}",
        r.nn_distance.generated, r.nn_distance.trained
    ));
    output::say(format_args!(
        "disagreement          generated {}   trained {}",
        opt(r.disagreement.generated),
        opt(r.disagreement.trained)
    ));
    output::say(format_args!(
        "error-set IoU         generated {}   trained {}",
        opt(r.error_iou.generated),
        opt(r.error_iou.trained)
    ));
    let w1: Vec<String> = r.w1.generated.iter().map(|v| opt(*v)).collect();
    output::say(format_args!("W1 per marginal ({:?}, n = {})  {}", r.w1.method, r.w1.n, w1.join(" ")));
    if let Some(i) = &r.init_steps {
        output::say(format_args!(
            "fine-tune steps to {:.3}   generated mean {:.1} ({}/{} reached)   kaiming mean {:.1} ({}/{} reached)",
            i.generated.target_accuracy,
            i.generated.mean,
            i.generated.reached,
            i.generated.n,
            i.kaiming.mean,
            i.kaiming.reached,
            i.kaiming.n
        ));
    }
}

/// Held-out accuracy of a context-conditioned model's classifiers for the evaluated set's task: conditioned on
/// a context set drawn from its training split, at each guidance weight, beside the unconditioned ones.
#[derive(Debug, serde::Serialize)]
struct ContextReport {
    /// Rows of the context set.
    set_size: usize,
    /// Unconditioned (null context) generation.
    unconditioned: Stats,
    /// Conditioned generation, one entry per guidance weight.
    conditioned: Vec<Guided>,
}

#[derive(Debug, serde::Serialize)]
struct Guided {
    guidance: f64,
    #[serde(flatten)]
    accuracy: Stats,
}

fn context_report(
    model: &MetaModel,
    mlp: &Mlp,
    data: &EvalData,
    args: &Args,
    set_size: usize,
    unconditioned: ndarray::ArrayView2<f32>,
) -> Result<ContextReport, Box<dyn std::error::Error>> {
    let context = context_pool(data).draw(set_size, &mut weightflow::rng::rng(args.seed));
    let test = |thetas: ndarray::ArrayView2<f32>| accuracy_stats(mlp, thetas, data.test.x.view(), &data.test.y);
    let mut conditioned = Vec::new();
    for &w in &args.guidance {
        let g = model.generate_conditioned(args.n, args.sampler, args.steps, args.seed, &context, w)?;
        conditioned.push(Guided { guidance: w, accuracy: test(g.view())?.stats });
    }
    Ok(ContextReport { set_size, unconditioned: test(unconditioned)?.stats, conditioned })
}

fn print_context(c: &ContextReport, task: &str) {
    let line = |what: &str, s: &Stats| {
        output::say(format_args!("{what:<28} mean {:.4}  min {:.4}  max {:.4}", s.mean, s.min, s.max));
    };
    output::say(format_args!("context ({task}, sets of {} rows), held-out accuracy:", c.set_size));
    line("  unconditioned", &c.unconditioned);
    for g in &c.conditioned {
        line(&format!("  conditioned, guidance {}", g.guidance), &g.accuracy);
    }
}
