//! `weightflow eval-shift`: the shift-detection protocol (METHOD.md §4–5, issue 5) for every method on the
//! same windows.
//!
//! K deployed classifiers f are trained natively on P (seeds fixed). For each f, method and window size N:
//! `--runs` null windows from P* calibrate the test, `--runs` *fresh* null windows (other draws from P*)
//! measure the false-positive rate, and `--runs` windows from the shifted pool measure the power. All methods
//! see the same windows. Each f draws its own windows, so the mean over the K f's averages K independent
//! calibrations: with one shared set (`--shared-windows`, how docs/DETECT.md's older figures were measured), one
//! unlucky draw of B null windows moves every f's threshold together, and the mean FPR then varies by the
//! calibration's own ≈ √(α(1 − α)/B) whatever K is. A window is flagged when its calibrated p-value
//! (1 + k)/(1 + B) ≤ α.
//!
//! Shift scenarios: the data set's own shifted pool (UCI heart's other hospitals, `--shifted` of a CSV), or
//! one per `--shift` (METHOD.md §4): a shifted window is a window drawn from P* *corrupted* by
//! `data::Shift::apply` in raw units with the window's own seed, then standardised as every pool is; a class
//! subset draws its windows from the pool's rows of those classes. Null and fresh windows are shared by all
//! scenarios, so FPR is repeated in each scenario's block.
//!
//! JSON (schema `eval-shift/2`): `{"results": [{"shift", "method", "n", "tpr", "tpr_se", "tpr_sd_f", "auroc",
//! "fpr_fresh", "fpr_se", "fpr_sd_f", "ms_median", "ms_p90", "tpr_per_f", "fpr_per_f", "auroc_per_f"}],
//! "settings": {…}}`. `tpr`, `auroc` and `fpr_fresh` are means over the K f's; `tpr_sd_f` is the standard
//! deviation of TPR across the f's; `tpr_se` = √(Σ_k tpr_k(1 − tpr_k)/runs)/K, the binomial standard error of
//! the mean over the windows (`fpr_se` likewise; `fpr_sd_f` is FPR's spread across the f's, which with per-f windows includes each
//! f's calibration draw); AUROC separates the calibration null windows from the shifted ones; times are wall
//! milliseconds per window (one statistic on one thread), median and 90th percentile over all windows;
//! `step_lr_per_f` (methods that refine members) each f's step size after any back-off.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ndarray::{Array2, Axis};
use rand::Rng as _;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use weightflow::classifier::{auroc, Activation, Mlp};
use weightflow::data::{load_csv, CsvHeader, CsvOptions, Dataset, DatasetSpec, LabelColumn, Shift, Standardizer};
use weightflow::detect::{
    p_value, AdjointDetectorConfig, DetectronConfig, EnsembleConfig, EnsembleSize, Method, MethodInputs, Selection,
    Statistic, StepRule,
};
use weightflow::flow::{MetaModel, Sampler};
use weightflow::rng::stream;
use weightflow::space::Layout;
use weightflow::train::{train_runs, TrainConfig, TrainData};

use crate::args::kebab;
use crate::output;

/// Command-line arguments of `eval-shift`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// uci-heart, digits, mnist, or csv (with --train, --iid, --shifted, --label-column).
    #[arg(long)]
    pub dataset: String,
    /// CSV of P (training rows of f), with a header.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// CSV of P* (held-out in-distribution rows: the null pool).
    #[arg(long)]
    pub iid: Option<PathBuf>,
    /// CSV of the shifted pool Q.
    #[arg(long)]
    pub shifted: Option<PathBuf>,
    /// Synthetic image shifts of P* (rotate:MIN-MAX, noise:SIGMA, classes:C1,C2,…, corners:K), one table block
    /// each; repeat the flag or list them space-separated. They replace the data set's own shifted pool.
    #[arg(long, num_args = 1..)]
    pub shift: Vec<Shift>,
    /// The label column's name in the CSVs (every other column is a numeric feature).
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Comma-separated methods.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "meta-detectron,untilted,detectron,detectron-disagreement,bbsd,f-entropy,mmd"
    )]
    pub methods: Vec<Method>,
    /// Comma-separated window sizes N.
    #[arg(long, value_delimiter = ',', default_value = "10,20,50")]
    pub sizes: Vec<usize>,
    /// Windows of each kind (calibration null, fresh null, shifted) per size and f.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Calibration null windows B per size and f, if not --runs (each f's realised false-positive rate varies
    /// around α by about √(α(1 − α)/B)).
    #[arg(long)]
    pub calibration_runs: Option<usize>,
    /// Decision level α.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Independently trained deployed classifiers K.
    #[arg(long, default_value_t = 10)]
    pub base_models: usize,
    /// The meta-model that generates the members of untilted and meta-detectron.
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// Generated pool size (the voters are --ensemble-size of the candidates that pass the floor).
    #[arg(long, default_value_t = 256)]
    pub pool: usize,
    /// ODE steps of the generation.
    #[arg(long, default_value_t = 60)]
    pub ode_steps: usize,
    /// Voting members M of the ensembles: M, or k/class for k per class of f's output (meta-detectron's
    /// default: 2/class; the untilted ensemble's: 32).
    #[arg(long)]
    pub ensemble_size: Option<EnsembleSize>,
    /// Meta-detectron's candidates: at most this many floor-passing pool members, in pool order (default 64; 0:
    /// the whole pool).
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Accuracy floor on P (agreement with f).
    #[arg(long)]
    pub floor: Option<f64>,
    /// How meta-detectron chooses its voters per window: disagreeing (default) or first.
    #[arg(long, value_parser = kebab::<Selection>)]
    pub selection: Option<Selection>,
    /// Refinement steps of meta-detectron.
    #[arg(long)]
    pub steps: Option<usize>,
    /// How meta-detectron's refinement steps move the weights: calibrated, absolute, relative, layer-relative
    /// or sign (default: the library's, EnsembleConfig::default(), calibrated; docs/DETECT.md).
    #[arg(long, value_parser = kebab::<StepRule>)]
    pub step_rule: Option<StepRule>,
    /// Refinement step size of meta-detectron (a fraction of the weights' norm with the relative rules; default:
    /// the step rule's own, StepRule::default_lr).
    #[arg(long)]
    pub lr: Option<f32>,
    /// With the calibrated rule: the least fraction of members that must survive the steps on in-distribution
    /// windows, else the step size backs off by √2 (0: never back off; default: the library's, 0.5).
    #[arg(long)]
    pub step_keep: Option<f64>,
    /// DCE weight λ of the refinement (0 or less: 1/(N+1)).
    #[arg(long)]
    pub lambda: Option<f32>,
    /// Cap λ at this many rows' worth of weight, λ ≤ R/N (0: no cap).
    #[arg(long)]
    pub lambda_rows: Option<usize>,
    /// Reference rows per refinement (0 = all).
    #[arg(long)]
    pub refine_rows: Option<usize>,
    /// Rows of P_ref the voters are checked and compared on, a fixed subsample (0 = all; default: the
    /// library's, 2,048).
    #[arg(long)]
    pub vote_rows: Option<usize>,
    /// meta-detectron-adjoint (the faithful path): adjoint-matching iterations per window.
    #[arg(long)]
    pub adjoint_iters: Option<usize>,
    /// meta-detectron-adjoint: Adam learning rate of the per-window tuning.
    #[arg(long)]
    pub adjoint_lr: Option<f64>,
    /// meta-detectron-adjoint: tilt strength λ of p_base · exp(λ r).
    #[arg(long)]
    pub adjoint_lambda: Option<f64>,
    /// meta-detectron-adjoint: the DCE weight λ_Q of the reward's ℓ_cdc (0 or less: 1/(N+1)).
    #[arg(long)]
    pub adjoint_q_weight: Option<f32>,
    /// The ensembles' deciding statistic: entropy or disagreement.
    #[arg(long, value_parser = kebab::<Statistic>)]
    pub statistic: Option<Statistic>,
    /// Master seed (f's training, windows, pool).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Every f sees the same windows (once the only way: reproduces docs/DETECT.md's older figures).
    #[arg(long)]
    pub shared_windows: bool,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// The report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The pools of the protocol, standardised with P's statistics.
struct Pools {
    train: Dataset,
    iid: Dataset,
    scenarios: Vec<Scenario>,
    layout: Layout,
    train_cfg: TrainConfig,
}

/// Where one scenario's shifted windows come from.
enum ShiftedWindows {
    /// Drawn from a standardised shifted pool.
    Pool(Dataset),
    /// Drawn from the raw P* pool, corrupted, then standardised.
    Corrupted { raw_iid: Dataset, shift: Shift, standardizer: Standardizer },
}

/// One shift scenario: its name in the report and its windows.
struct Scenario {
    name: String,
    windows: ShiftedWindows,
}

impl Scenario {
    /// Rows a window can be drawn from.
    fn len(&self) -> usize {
        match &self.windows {
            ShiftedWindows::Pool(d) => d.len(),
            ShiftedWindows::Corrupted { raw_iid, .. } => raw_iid.len(),
        }
    }

    /// Shifted window `w` of size `n` (standardised rows).
    fn window(&self, seed: u64, n: usize, w: usize) -> Result<Array2<f32>, String> {
        let idx = window(seed, SHIFTED, n, w, self.len());
        match &self.windows {
            ShiftedWindows::Pool(d) => Ok(d.x.select(Axis(0), &idx)),
            ShiftedWindows::Corrupted { raw_iid, shift, standardizer } => {
                // The corruption's own seed, derived from the window's so each window is shifted differently.
                let shift_seed = stream(seed, window_key(CORRUPTION, n, w)).random();
                let shifted = shift.apply(&raw_iid.select(&idx), shift_seed).map_err(|e| e.to_string())?;
                Ok(standardizer.transform(&shifted).map_err(|e| e.to_string())?.x)
            }
        }
    }
}

/// The scenarios: one per `--shift` on the raw P* pool `raw_iid`, else the data set's own shifted pool.
fn scenarios(
    args: &Args,
    raw_iid: &Dataset,
    own: Option<Dataset>,
    standardizer: &Standardizer,
) -> Result<Vec<Scenario>, Box<dyn std::error::Error>> {
    if args.shift.is_empty() {
        let Some(pool) = own else {
            return Err(format!("{} has no shifted pool: give --shift (e.g. rotate:30-60)", args.dataset).into());
        };
        return Ok(vec![Scenario {
            name: "shifted pool".into(),
            windows: ShiftedWindows::Pool(standardizer.transform(&pool)?),
        }]);
    }
    let mut out = Vec::with_capacity(args.shift.len());
    for shift in &args.shift {
        let windows = match shift {
            // A label shift: the subset is a pool of its own (Shift::apply keeps whole rows).
            Shift::ClassSubset { .. } => {
                ShiftedWindows::Pool(standardizer.transform(&shift.apply(raw_iid, args.seed)?)?)
            }
            _ => {
                // Fail now, not inside the worker threads, on shifts the images cannot take.
                shift.apply(&raw_iid.select(&[0]), 0)?;
                ShiftedWindows::Corrupted {
                    raw_iid: raw_iid.clone(),
                    shift: shift.clone(),
                    standardizer: standardizer.clone(),
                }
            }
        };
        out.push(Scenario { name: shift.to_string(), windows });
    }
    Ok(out)
}

fn load_pools(args: &Args) -> Result<Pools, Box<dyn std::error::Error>> {
    if args.shifted.is_some() && !args.shift.is_empty() {
        return Err("--shifted and --shift are exclusive: a scenario is either a pool or a synthetic shift".into());
    }
    let (train, iid, shifted, spec) = if args.dataset == "csv" {
        let (Some(t), Some(i)) = (&args.train, &args.iid) else {
            return Err("--dataset csv needs --train, --iid and --shifted (or --shift)".into());
        };
        let options =
            CsvOptions { header: CsvHeader::Named, label_column: LabelColumn::Name(args.label_column.clone()) };
        let spec = DatasetSpec::Csv { path: t.clone(), label_column: Some(args.label_column.clone()) };
        let shifted = args.shifted.as_ref().map(|s| load_csv(s, &options)).transpose()?;
        (load_csv(t, &options)?, load_csv(i, &options)?, shifted, spec)
    } else {
        let spec: DatasetSpec = args.dataset.parse()?;
        let splits = spec.load(args.seed)?;
        (splits.train, splits.test, splits.shifted, spec)
    };
    let standardizer = Standardizer::fit(&train.x)?;
    let scenarios = scenarios(args, &iid, shifted, &standardizer)?;
    let classes = scenarios.iter().fold(train.n_classes.max(iid.n_classes).max(2), |c, s| match &s.windows {
        ShiftedWindows::Pool(d) => c.max(d.n_classes),
        ShiftedWindows::Corrupted { .. } => c,
    });
    let (arch, mut train_cfg) = TrainConfig::for_dataset(&spec);
    let layout = Layout::parse(&arch.unwrap_or_else(|| format!("{}-32-{classes}", train.n_features())))?;
    train_cfg.runs = args.base_models;
    train_cfg.seed = args.seed;
    Ok(Pools {
        train: standardizer.transform(&train)?,
        iid: standardizer.transform(&iid)?,
        scenarios,
        layout,
        train_cfg,
    })
}

/// One row of the report.
#[derive(Debug, Serialize)]
struct Row {
    shift: String,
    method: String,
    n: usize,
    tpr: f64,
    tpr_se: f64,
    tpr_sd_f: f64,
    auroc: f64,
    fpr_fresh: f64,
    fpr_se: f64,
    fpr_sd_f: f64,
    ms_median: f64,
    ms_p90: f64,
    tpr_per_f: Vec<f64>,
    fpr_per_f: Vec<f64>,
    auroc_per_f: Vec<f64>,
    /// Each f's refinement step size after any back-off (methods that take steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    step_lr_per_f: Option<Vec<f32>>,
}

/// One f's figures for one method and size.
struct Cell {
    tpr: f64,
    fpr: f64,
    auroc: f64,
    ms: Vec<f64>,
    step_lr: Option<f32>,
}

/// The stream key of f #k's window seed (above every window key: kinds are below 2^8).
const PER_F: u64 = 1 << 56;

/// The seed of f #`k`'s windows: the master seed itself when the windows are shared.
fn window_seed(args: &Args, k: usize) -> u64 {
    if args.shared_windows {
        args.seed
    } else {
        stream(args.seed, PER_F | k as u64).random()
    }
}

/// Window kinds, part of each window's seed so the three sets never coincide.
const CALIBRATION: u64 = 1;
const FRESH: u64 = 2;
const SHIFTED: u64 = 3;
/// The seeds of the corruptions of shifted windows.
const CORRUPTION: u64 = 4;

/// The row indices of window `w` of `kind` and size `n` from a pool of `len` rows (the same for every method
/// and every f).
fn window(seed: u64, kind: u64, n: usize, w: usize, len: usize) -> Vec<usize> {
    rand::seq::index::sample(&mut stream(seed, window_key(kind, n, w)), len, n).into_vec()
}

/// The stream key of window `w` of `kind` and size `n`.
fn window_key(kind: u64, n: usize, w: usize) -> u64 {
    kind << 48 | (n as u64) << 24 | w as u64
}

/// Runs `eval-shift`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.runs == 0 || args.base_models == 0 || args.sizes.is_empty() || args.methods.is_empty() {
        return Err("--runs, --base-models, --sizes and --methods must be non-empty".into());
    }
    let calibration_runs = args.calibration_runs.unwrap_or(args.runs);
    if calibration_runs == 0 {
        return Err("--calibration-runs must be at least 1".into());
    }
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global()?;
    }
    let needs_meta = args.methods.iter().any(|m| m.needs_pool() || m.needs_meta_model());
    if args.meta.is_none() && needs_meta {
        return Err("the ensemble methods (meta-detectron, selected, meta-detectron-steps, meta-detectron-adjoint, untilted) need --meta DIR (a trained meta-model)".into());
    }
    let pools = load_pools(&args)?;
    let smallest = pools.scenarios.iter().map(Scenario::len).fold(pools.iid.len(), usize::min);
    for &n in &args.sizes {
        if n == 0 || n > smallest {
            return Err(format!("window size {n} must be in 1..={smallest}").into());
        }
    }
    let mut refined = EnsembleConfig { alpha: args.alpha, ..EnsembleConfig::default() };
    let set = |c: &mut EnsembleConfig| {
        c.ensemble_size = args.ensemble_size.unwrap_or(c.ensemble_size);
        c.floor = args.floor.unwrap_or(c.floor);
        c.statistic = args.statistic.unwrap_or(c.statistic);
        if let Some(r) = args.vote_rows {
            c.vote_rows = (r > 0).then_some(r);
        }
    };
    set(&mut refined);
    refined.steps = args.steps.unwrap_or(refined.steps);
    refined.selection = args.selection.unwrap_or(refined.selection);
    if let Some(rule) = args.step_rule {
        refined.step_rule = rule;
        refined.lr = rule.default_lr();
    }
    refined.lr = args.lr.unwrap_or(refined.lr);
    if let Some(k) = args.step_keep {
        refined.step_keep = (k > 0.0).then_some(k);
    }
    refined.refine_rows = args.refine_rows.unwrap_or(refined.refine_rows);
    if let Some(c) = args.candidates {
        refined.candidates = (c > 0).then_some(c);
    }
    if let Some(l) = args.lambda {
        refined.lambda = (l > 0.0).then_some(l);
    }
    if let Some(r) = args.lambda_rows {
        refined.lambda_rows = (r > 0).then_some(r);
    }
    let mut untilted = EnsembleConfig { alpha: args.alpha, ..EnsembleConfig::untilted() };
    set(&mut untilted);
    let mut adjoint =
        AdjointDetectorConfig { floor: refined.floor, statistic: refined.statistic, ..Default::default() };
    if let Some(size) = args.ensemble_size {
        adjoint.ensemble_size = match size {
            EnsembleSize::Fixed(m) => m,
            EnsembleSize::PerClass { .. } => return Err("the faithful path takes a fixed --ensemble-size M".into()),
        };
    }
    adjoint.tuning.iterations = args.adjoint_iters.unwrap_or(adjoint.tuning.iterations);
    adjoint.tuning.lr = args.adjoint_lr.unwrap_or(adjoint.tuning.lr);
    adjoint.tuning.lambda = args.adjoint_lambda.unwrap_or(adjoint.tuning.lambda);
    if let Some(w) = args.adjoint_q_weight {
        adjoint.q_weight = (w > 0.0).then_some(w);
    }
    refined.validate()?;
    untilted.validate()?;
    adjoint.validate()?;

    output::say(format_args!(
        "training {} deployed classifiers {} on {} rows …",
        args.base_models,
        pools.layout.arch(),
        pools.train.len()
    ));
    fn data(d: &Dataset) -> TrainData<'_> {
        TrainData { x: d.x.view(), y: &d.y }
    }
    let trained = train_runs(
        &pools.layout,
        &pools.train_cfg,
        data(&pools.train),
        data(&pools.iid),
        &candle_core::Device::Cpu,
        &mut |_| {},
    )?;
    let fs: Array2<f32> = trained.thetas.index_axis(Axis(1), pools.train_cfg.checkpoints).to_owned();
    let mut activation: Activation = pools.train_cfg.activation;
    let model = match (&args.meta, needs_meta) {
        (Some(dir), true) => {
            let model = MetaModel::load(dir, &candle_core::Device::Cpu)?;
            if model.layout() != &pools.layout {
                return Err(format!("the meta-model is over {} but f is {}", model.layout(), pools.layout).into());
            }
            if let Some(a) = model.activation() {
                activation = a.parse()?;
            }
            Some(model)
        }
        _ => None,
    };
    let pool = match (&model, args.methods.iter().any(|m| m.needs_pool())) {
        (Some(model), true) => {
            output::say(format_args!("generating a pool of {} members …", args.pool));
            Some(model.generate(args.pool, Sampler::Euler, args.ode_steps, args.seed)?)
        }
        _ => None,
    };
    let mlp = Mlp::new(pools.layout.clone(), activation);

    let mut jobs: Vec<(usize, Method, usize)> = Vec::new();
    for k in 0..args.base_models {
        for &m in &args.methods {
            jobs.extend(args.sizes.iter().map(|&n| (k, m, n)));
        }
    }
    let windows_per_job = calibration_runs + (1 + pools.scenarios.len()) * args.runs;
    let bar = output::progress((jobs.len() * windows_per_job) as u64, "windows", false);
    let done = AtomicUsize::new(0);
    // One Vec of cells per job, one cell per scenario.
    let cells: Vec<Vec<Cell>> = jobs
        .par_iter()
        .map(|&(k, method, n)| -> Result<Vec<Cell>, String> {
            let inputs = MethodInputs {
                mlp: &mlp,
                f: fs.row(k).to_owned(),
                p_ref: pools.train.x.clone(),
                pool: pool.as_ref().map(|p| p.view()),
                refined: refined.clone(),
                untilted: untilted.clone(),
                detectron: DetectronConfig::default(),
                mmd_permutations: 0,
                meta: model.as_ref(),
                adjoint: adjoint.clone(),
            };
            let test = method.build(&inputs).map_err(|e| format!("{method}, f #{k}: {e}"))?;
            // Times each statistic (not the drawing or corruption of its window).
            let stats = |ms: &mut Vec<f64>, count: usize, draw: &dyn Fn(usize) -> Result<Array2<f32>, String>| {
                (0..count)
                    .map(|w| {
                        let q = draw(w)?;
                        let started = Instant::now();
                        let s = test.statistic(q.view(), w as u64).map_err(|e| format!("{method}, N = {n}: {e}"));
                        ms.push(started.elapsed().as_secs_f64() * 1e3);
                        bar.set_position(done.fetch_add(1, Ordering::Relaxed) as u64 + 1);
                        s
                    })
                    .collect::<Result<Vec<f64>, String>>()
            };
            let iid = &pools.iid;
            let seed = window_seed(&args, k);
            let null_window =
                |kind: u64| move |w: usize| Ok(iid.x.select(Axis(0), &window(seed, kind, n, w, iid.len())));
            let mut null_ms = Vec::with_capacity(calibration_runs + args.runs);
            let null = stats(&mut null_ms, calibration_runs, &null_window(CALIBRATION))?;
            let fresh = stats(&mut null_ms, args.runs, &null_window(FRESH))?;
            let rate =
                |s: &[f64]| s.iter().filter(|&&v| p_value(&null, v) <= args.alpha).count() as f64 / s.len() as f64;
            let labels: Vec<usize> =
                (0..calibration_runs + args.runs).map(|i| usize::from(i >= calibration_runs)).collect();
            pools
                .scenarios
                .iter()
                .map(|scenario| {
                    let mut ms = null_ms.clone();
                    let shifted = stats(&mut ms, args.runs, &|w| scenario.window(seed, n, w))?;
                    let scores: Vec<f32> = null.iter().chain(&shifted).map(|&v| v as f32).collect();
                    let auroc = auroc(&scores, &labels).map_err(|e| e.to_string())?.unwrap_or(f64::NAN);
                    Ok(Cell { tpr: rate(&shifted), fpr: rate(&fresh), auroc, ms, step_lr: test.step_lr() })
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();

    let mut rows = Vec::new();
    for (i, scenario) in pools.scenarios.iter().enumerate() {
        let mine: Vec<&Cell> = cells.iter().map(|c| &c[i]).collect();
        let block = summarise(&args, &scenario.name, &jobs, &mine);
        print_table(&scenario.name, &block);
        rows.extend(block);
    }
    if args.json {
        let settings = json!({"dataset": args.dataset, "sizes": args.sizes, "runs": args.runs,
            "calibration_runs": calibration_runs, "alpha": args.alpha, "base_models": args.base_models,
            "seed": args.seed, "windows": if args.shared_windows { "shared" } else { "per-f" },
            "arch": pools.layout.arch(),
            "pool": args.pool, "meta": args.meta, "meta_detectron": refined, "untilted": untilted, "meta_detectron_adjoint": adjoint,
            "detectron": DetectronConfig::default(),
            "pools": {"train": pools.train.len(), "iid": pools.iid.len(),
                "shifted": pools.scenarios.iter().map(|s| json!({"shift": s.name, "rows": s.len()})).collect::<Vec<_>>()}});
        output::json(&json!({"schema": "eval-shift/2", "results": rows, "settings": settings}))?;
    }
    Ok(())
}

fn summarise(args: &Args, shift: &str, jobs: &[(usize, Method, usize)], cells: &[&Cell]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &method in &args.methods {
        for &n in &args.sizes {
            let mine: Vec<&Cell> =
                jobs.iter().zip(cells).filter(|((_, m, s), _)| *m == method && *s == n).map(|(_, c)| *c).collect();
            let k = mine.len() as f64;
            let mean = |f: &dyn Fn(&Cell) -> f64| mine.iter().map(|c| f(c)).sum::<f64>() / k;
            let tpr = mean(&|c| c.tpr);
            let fpr = mean(&|c| c.fpr);
            let binom = |f: &dyn Fn(&Cell) -> f64| {
                (mine.iter().map(|c| f(c) * (1.0 - f(c)) / args.runs as f64).sum::<f64>()).sqrt() / k
            };
            let sd = |f: &dyn Fn(&Cell) -> f64, m: f64| {
                (mine.iter().map(|c| (f(c) - m).powi(2)).sum::<f64>() / (k - 1.0).max(1.0)).sqrt()
            };
            let mut ms: Vec<f64> = mine.iter().flat_map(|c| c.ms.iter().copied()).collect();
            ms.sort_unstable_by(f64::total_cmp);
            let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
            rows.push(Row {
                shift: shift.to_string(),
                method: method.to_string(),
                n,
                tpr,
                tpr_se: binom(&|c| c.tpr),
                tpr_sd_f: sd(&|c| c.tpr, tpr),
                auroc: mean(&|c| c.auroc),
                fpr_fresh: fpr,
                fpr_se: binom(&|c| c.fpr),
                fpr_sd_f: sd(&|c| c.fpr, fpr),
                ms_median: q(0.5),
                ms_p90: q(0.9),
                tpr_per_f: mine.iter().map(|c| c.tpr).collect(),
                fpr_per_f: mine.iter().map(|c| c.fpr).collect(),
                auroc_per_f: mine.iter().map(|c| c.auroc).collect(),
                step_lr_per_f: mine.iter().map(|c| c.step_lr).collect(),
            });
        }
    }
    rows
}

fn print_table(shift: &str, rows: &[Row]) {
    output::say(format_args!("\nshift: {shift}"));
    output::say(format_args!(
        "{:<24}{:>4}  {:>12}  {:>8}  {:>6}  {:>12}  {:>9}  {:>9}",
        "method", "N", "TPR ± s.e.", "sd(f)", "AUROC", "FPR fresh", "ms med", "ms p90"
    ));
    for r in rows {
        output::say(format_args!(
            "{:<24}{:>4}  {:>5.3} ± {:.3}  {:>8.3}  {:>6.3}  {:>5.3} ± {:.3}  {:>9.2}  {:>9.2}",
            r.method, r.n, r.tpr, r.tpr_se, r.tpr_sd_f, r.auroc, r.fpr_fresh, r.fpr_se, r.ms_median, r.ms_p90
        ));
    }
}
