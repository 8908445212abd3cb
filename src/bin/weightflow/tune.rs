//! `weightflow tune`: reward fine-tuning of a meta-model by adjoint matching (METHOD.md §3).
//!
//! Rewards (`--reward`), over the trajectory set's data set standardised as its base runs saw it:
//! * `task:SPEC` — r = −mean CE on one half of SPEC's shifted pool, split in halves with `--split-seed`; the
//!   other half measures. The shifted pool is SPEC's own shifted split (UCI heart: the other hospitals'
//!   `ood_test`), or, with `--shift` (the `data::Shift` forms of `eval-shift --shift`: `rotate:MIN-MAX`,
//!   `noise:SIGMA`, `classes:C1,C2,…`, `corners:K`), SPEC's *test* split — which the base runs never trained
//!   on — corrupted by that shift in raw units (seeded by `--split-seed`), e.g.
//!   `--reward task:digits --shift rotate:30` (every test image rotated by ±30°). With `--shift`, SPEC must be
//!   the trajectory set's own data set. Data sets without a shifted split (digits, MNIST) need `--shift`.
//! * `cdc:ood`, `cdc:iid`, `cdc:both` — r = −ℓ_cdc(θ; P, Q) (DCE weight `--q-weight`) with P = the train split, f = the final weights of
//!   trajectory run `--f-run`, Q = a window of `--window` rows of the shifted pool (ood; as for `task`, the
//!   data set's shifted split or, with `--shift`, its shifted test split) or of the iid test split; `both`
//!   tunes one model per window (`OUT/ood`, `OUT/iid`) and plots them side by side.
//!
//! Every `--eval-every` iterations (and before the first) `--eval-n` classifiers are generated with the ODE
//! sampler and measured: task — mean accuracy on the held-out half and on the iid test split; cdc — mean
//! agreement with f on P and disagreement with f on Q. The progress bar shows reward, loss and the accuracy
//! of the iteration's SDE samples on the tuning half (task) or their agreement on P (cdc).
//!
//! JSON (schema `tune/1`): `runs` — per tuned model `name`, `out`, `reward`, `target` (the rows the reward
//! sees, in words), `lambda`, `iterations`, `seconds`, `curve` (per evaluation: `iteration` and the metrics
//! above); `shift` (`--shift` as written, or null); `settings`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::{Array1, Array2};
use rand::Rng as _;
use serde_json::{json, Value};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::{sample_window, split_indices, Dataset, DatasetSpec, Shift, SHIFT_FORMS};
use weightflow::eval::{accuracy_stats, svg_line_plot, EvalData};
use weightflow::flow::{MetaModel, Sampler};
use weightflow::rng;
use weightflow::train::{device, DeviceKind, TrajectoryManifest, TrajectorySet};
use weightflow::tune::{AdjointConfig, AdjointMatching, CdcReward, Reward, TaskReward};

use crate::args::kebab;
use crate::output;

/// Command-line arguments of `tune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The base meta-model (a CFM or MMFM model written by `train-meta`).
    #[arg(long)]
    pub meta: PathBuf,
    /// The trajectory set the meta-model was trained on (data set, standardisation, f's weights).
    #[arg(long)]
    pub trajectories: PathBuf,
    /// task:SPEC, cdc:ood, cdc:iid or cdc:both.
    #[arg(long)]
    pub reward: String,
    /// Fine-tuning iterations.
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Tilt strength λ of p* ∝ p_base · exp(λ r).
    #[arg(long, default_value_t = 100.0)]
    pub lambda: f64,
    /// Trajectories per iteration.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Euler–Maruyama steps per trajectory.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Adam learning rate of the fine-tuned copy.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of the trajectories (source samples, noise, time subsets).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the task halves, of the CDC window and of --shift's corruption.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// The shifted target as a synthetic shift of the data set's held-out test split, in place of its own
    /// shifted split (needed for digits and MNIST, which have none): rotate:MIN-MAX (degrees, random sign;
    /// rotate:30 = ±30°), noise:SIGMA, classes:C1,C2,… or corners:K, as for eval-shift. The reward's and the
    /// ood window's rows come from it; iid accuracy stays measured on the unshifted test split.
    #[arg(long)]
    pub shift: Option<Shift>,
    /// CDC: rows in the window Q.
    #[arg(long, default_value_t = 20)]
    pub window: usize,
    /// CDC: the DCE weight λ_Q of ℓ_cdc (default 1/(|Q|+1), Detectron's; larger values let disagreement on Q
    /// outweigh agreement on P more).
    #[arg(long)]
    pub q_weight: Option<f32>,
    /// CDC: which trajectory run's final weights play the deployed classifier f.
    #[arg(long, default_value_t = 0)]
    pub f_run: usize,
    /// Measure generated classifiers every this many iterations.
    #[arg(long, default_value_t = 25)]
    pub eval_every: usize,
    /// Classifiers generated per measurement.
    #[arg(long, default_value_t = 256)]
    pub eval_n: usize,
    /// ODE steps of the measurements' generation.
    #[arg(long, default_value_t = 60)]
    pub gen_steps: usize,
    /// ODE solver of the measurements: euler, heun or rk4.
    #[arg(long, value_parser = kebab::<Sampler>, default_value = "euler")]
    pub sampler: Sampler,
    /// Write the curves as SVG into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// Device: cpu, or cuda with the `cuda` feature.
    #[arg(long, value_parser = kebab::<DeviceKind>, default_value = "cpu")]
    pub device: DeviceKind,
    /// Output directory of the tuned meta-model (for cdc:both, OUT/ood and OUT/iid).
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;
/// Named metrics of generated weights `[M, D]`.
type Measure = Box<dyn Fn(&Array2<f32>) -> CliResult<Vec<(&'static str, f64)>>>;

/// One tuning job: a reward, how to measure generated classifiers, and where the model goes.
struct Job {
    name: String,
    reward: Box<dyn Reward>,
    /// The rows the reward sees, in words.
    target: String,
    /// Metric names and their functions of generated weights `[M, D]`.
    /// The progress bar shows the first metric of the iteration's SDE samples.
    measure: Measure,
    /// Where the tuned model is saved.
    out: PathBuf,
}

/// Runs `tune`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.eval_every == 0 || args.eval_n == 0 || args.gen_steps == 0 {
        return Err("--eval-every, --eval-n and --gen-steps must be at least 1".into());
    }
    let dev = device(args.device)?;
    let set = TrajectorySet::load(&args.trajectories)?;
    let base = MetaModel::load(&args.meta, &dev)?;
    let m = &set.manifest;
    if base.layout() != &m.layout {
        return Err(format!("the meta-model is over {} but the trajectories are of {}", base.layout(), m.layout).into());
    }
    let activation: Activation = match base.activation() {
        Some(a) => a.parse()?,
        None => m.activation,
    };
    let mlp = Mlp::new(m.layout.clone(), activation);
    let data = EvalData::from_manifest(m)?;
    let jobs = jobs(&args, &set, &mlp, &data)?;
    let cfg = AdjointConfig {
        lambda: args.lambda,
        iterations: args.iters,
        batch_size: args.batch_size.unwrap_or(AdjointConfig::default().batch_size),
        steps: args.steps.unwrap_or(AdjointConfig::default().steps),
        lr: args.lr.unwrap_or(AdjointConfig::default().lr),
        seed: args.seed,
        ..AdjointConfig::default()
    };
    cfg.validate()?;
    let mut runs = Vec::new();
    for job in &jobs {
        runs.push(tune_one(&args, &base, job, &cfg, activation)?);
    }
    if let Some(dir) = &args.plots {
        write_plots(dir, &runs)?;
    }
    if args.json {
        let shift = args.shift.as_ref().map(Shift::to_string);
        output::json(&json!({ "schema": "tune/1", "runs": runs, "shift": shift, "settings": cfg }))?;
    }
    Ok(())
}

/// The jobs `--reward` asks for.
fn jobs(args: &Args, set: &TrajectorySet, mlp: &Mlp, data: &EvalData) -> Result<Vec<Job>, Box<dyn std::error::Error>> {
    let m = &set.manifest;
    let (kind, spec) = args.reward.split_once(':').ok_or("--reward must be task:SPEC or cdc:ood|iid|both")?;
    match kind {
        "task" => {
            let spec = DatasetSpec::from_str(spec)?;
            let (shifted, pool) = shifted_pool(args, &spec, m)?;
            let halves = split_indices(shifted.len(), &[0.5, 0.5], &mut rng::stream(args.split_seed, 0x4841_4c46))?;
            let (tune_half, held_out) = (shifted.select(&halves[0]), shifted.select(&halves[1]));
            let target = format!("{} rows of {pool}", tune_half.len());
            output::say(format_args!("task reward on {target}; measured on the other {}", held_out.len()));
            let reward = TaskReward::new(mlp.clone(), tune_half.x.clone(), &tune_half.y)?;
            let (mlp2, test) = (mlp.clone(), data.test.clone());
            let measure = move |th: &Array2<f32>| -> CliResult<Vec<(&'static str, f64)>> {
                Ok(vec![
                    ("held_out_shifted_accuracy", mean_accuracy(&mlp2, th, &held_out)?),
                    ("tuning_half_accuracy", mean_accuracy(&mlp2, th, &tune_half)?),
                    ("iid_test_accuracy", mean_accuracy(&mlp2, th, &test)?),
                ])
            };
            Ok(vec![Job {
                name: "task".into(),
                reward: Box::new(reward),
                target,
                measure: Box::new(measure),
                out: args.out.clone(),
            }])
        }
        "cdc" => {
            let windows: Vec<&str> = match spec {
                "both" => vec!["ood", "iid"],
                "ood" | "iid" => vec![spec],
                _ => return Err(format!("--reward cdc:{spec}: expected cdc:ood, cdc:iid or cdc:both").into()),
            };
            if args.f_run >= m.runs {
                return Err(format!("--f-run {} but the trajectory set has {} runs", args.f_run, m.runs).into());
            }
            let thetas = set.thetas();
            let f: Array1<f32> = thetas.slice(ndarray::s![args.f_run, thetas.dim().1 - 1, ..]).to_owned();
            let (shifted, shifted_name) = shifted_pool(args, &DatasetSpec::from_str(&m.dataset)?, m)?;
            windows
                .into_iter()
                .map(|w| {
                    let (pool, pool_name): (&Dataset, &str) =
                        if w == "ood" { (&shifted, &shifted_name) } else { (&data.test, "the iid test split") };
                    let target = format!("P = the train split, Q = {} rows of {pool_name}", args.window);
                    let q = sample_window(pool, args.window, &mut rng::stream(args.split_seed, 0x5749_4e44))?;
                    let reward = CdcReward::new(mlp.clone(), f.view(), data.train.x.view(), q.x.view(), args.q_weight)?;
                    let r2 = reward.clone();
                    let measure = move |th: &Array2<f32>| -> CliResult<Vec<(&'static str, f64)>> {
                        let (agree, disagree) = r2.agreement(th.view())?;
                        Ok(vec![
                            ("agreement_on_p", agree.mean().unwrap_or(0.0)),
                            ("disagreement_on_q", disagree.mean().unwrap_or(0.0)),
                        ])
                    };
                    let out = if spec == "both" { args.out.join(w) } else { args.out.clone() };
                    let name = format!("cdc:{w}");
                    Ok(Job { name, reward: Box::new(reward), target, measure: Box::new(measure), out })
                })
                .collect()
        }
        _ => Err(format!("--reward {}: expected task:SPEC or cdc:ood|iid|both", args.reward).into()),
    }
}

/// The shifted pool of `spec`, standardised as the base runs saw their data, and its name: `--shift` applied to
/// `spec`'s test split (held out from the base runs), else `spec`'s own shifted split.
fn shifted_pool(args: &Args, spec: &DatasetSpec, m: &TrajectoryManifest) -> CliResult<(Dataset, String)> {
    let splits = spec.load(m.split_seed)?;
    let (raw, name) = match &args.shift {
        Some(shift) => {
            let own = DatasetSpec::from_str(&m.dataset)?;
            if *spec != own {
                return Err(format!(
                    "--shift corrupts the test split of {spec}, which is held out only for the trajectory set's own data \
                     set ({own}): use task:{own}"
                )
                .into());
            }
            let seed = rng::stream(args.split_seed, 0x5348_4946).random();
            (shift.apply(&splits.test, seed)?, format!("the test split of {spec} shifted by {shift}"))
        }
        None => {
            let shifted = splits.shifted.ok_or_else(|| {
                format!("{spec} has no shifted split: name a shifted target with --shift ({SHIFT_FORMS}; e.g. --shift rotate:30)")
            })?;
            (shifted, format!("the shifted split of {spec}"))
        }
    };
    Ok((m.standardizer.transform(&raw)?, name))
}

fn mean_accuracy(mlp: &Mlp, thetas: &Array2<f32>, d: &Dataset) -> Result<f64, Box<dyn std::error::Error>> {
    Ok(accuracy_stats(mlp, thetas.view(), d.x.view(), &d.y)?.stats.mean)
}

/// Tunes one job, measuring on the way; saves the model and returns its JSON summary.
fn tune_one(
    args: &Args,
    base: &MetaModel,
    job: &Job,
    cfg: &AdjointConfig,
    activation: Activation,
) -> Result<Value, Box<dyn std::error::Error>> {
    output::say(format_args!(
        "tuning {} ({}), λ = {}, {} iterations",
        job.name,
        job.reward.describe(),
        cfg.lambda,
        cfg.iterations
    ));
    let mut am = AdjointMatching::new(base, job.reward.as_ref(), cfg.clone())?;
    let mut curve = Vec::new();
    let mut record = |it: usize, model: &MetaModel| -> Result<(), Box<dyn std::error::Error>> {
        let g = model.generate(args.eval_n, args.sampler, args.gen_steps, args.seed ^ 0x5eed)?;
        let metrics = (job.measure)(&g)?;
        let mut point = serde_json::Map::new();
        point.insert("iteration".into(), json!(it));
        for (k, v) in &metrics {
            point.insert((*k).into(), json!(v));
        }
        let line: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
        output::say(format_args!("  iteration {it:>4}: {}", line.join(", ")));
        curve.push(Value::Object(point));
        Ok(())
    };
    record(0, base)?;
    let bar = output::progress(cfg.iterations as u64, &job.name, args.quiet);
    for i in 0..cfg.iterations {
        let s = am.step()?;
        let running = (job.measure)(&am.last_samples().to_owned())?;
        bar.set_position(s.iteration as u64);
        bar.set_prefix(format!("reward {:.4} loss {:.3} {} {:.3}", s.reward, s.loss, running[0].0, running[0].1));
        if (i + 1) % args.eval_every == 0 || i + 1 == cfg.iterations {
            bar.suspend(|| record(i + 1, &am.model()?))?;
        }
    }
    bar.finish_and_clear();
    let tuned = am.model()?;
    tuned.save(&job.out, activation.name())?;
    let rec = tuned.tuning().expect("a tuned model records its tuning");
    output::say(format_args!("wrote {} ({:.1} s of tuning)", job.out.display(), rec.seconds));
    Ok(json!({
        "name": job.name, "out": job.out, "reward": rec.reward, "target": job.target, "lambda": rec.lambda,
        "iterations": rec.iterations, "seconds": rec.seconds, "curve": curve,
    }))
}

/// One SVG per metric, every run a series over the iterations.
fn write_plots(dir: &Path, runs: &[Value]) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let Some(first) = runs.first().and_then(|r| r["curve"].get(0)).and_then(|p| p.as_object()) else {
        return Ok(());
    };
    for metric in first.keys().filter(|k| k.as_str() != "iteration") {
        let series: Vec<(String, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|r| {
                let pts = r["curve"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| Some((p["iteration"].as_f64()?, p[metric].as_f64()?)))
                    .collect();
                (r["name"].as_str().unwrap_or("").to_string(), pts)
            })
            .collect();
        let svg = svg_line_plot(&format!("{metric} of generated classifiers"), "tuning iteration", metric, &series);
        std::fs::write(dir.join(format!("{metric}.svg")), svg)?;
    }
    Ok(())
}
