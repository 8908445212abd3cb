//! The generation report: every figure of METHOD.md §2 for one meta-model's samples against the trained runs,
//! as one serialisable value with a stable JSON shape:
//!
//! ```text
//! { "generated":  {"accuracy_mean", "accuracy_min", "accuracy_max"},     held-out (test) accuracy, first M samples
//!   "trained":    {"accuracy_mean", "accuracy_min", "accuracy_max"},     the R trained final weights
//!   "w1":         {"method", "n", "t": [t_k], "generated": [W1 per marginal | null],
//!                  "gaussian_source": [per marginal | null] | null},     filled by the caller from a second model
//!   "nn_distance":         {"generated", "trained"},   generated → nearest trained; trained → nearest other trained
//!   "error_iou":           {"generated", "trained"},   on test; null when no pair has an error
//!   "init_steps":          {"generated", "kaiming"} | null,   see `InitSteps`
//!   "constant_predictors": {"generated", "trained"},   counts on test
//!   "weight_norm":         {"generated", "trained"},
//!   "spread":              {"generated", "trained"},
//!   "disagreement":        {"generated", "trained"},   on test
//!   "best_of_k":           {"k", "accuracy_mean", "accuracy_min", "accuracy_max"},
//!   "path_loss":           [{"t", "loss", "accuracy"}] }                on val, along the generation path
//! ```
//!
//! With `k` = [`GenerationConfig::best_of_k`] and N generated rows, M = ⌊N / k⌋: the unfiltered figures use the
//! first M rows (fresh source samples, as METHOD.md insists: never training inits); best-of-k keeps the M of all
//! N rows with the highest accuracy on P (the training split; ties by row order) and reports their test accuracy.
//! W1 marginal k compares the path state at t_k = k/K (within [`GenerationConfig::time_tolerance`]; `null`
//! where the path has none, e.g. a JKO model with fewer knots) with checkpoint k of the runs, the first n rows of
//! each, n = min(path rows, R).

use ndarray::{s, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::Error;
use super::{
    accuracy_stats, constant_predictors, error_iou, mean_pairwise_disagreement, mean_weight_norm, nn_distance,
    nn_distance_loo, path_loss, spread, steps_to_accuracy, w1, EvalData, FinetuneConfig, InitSteps, PathPoint, Stats,
    W1Config, W1Method,
};
use crate::classifier::Mlp;
use crate::space::{KaimingUniform, Source as _};

/// Accuracy statistics under the report's key names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccuracySummary {
    /// Mean accuracy.
    pub accuracy_mean: f64,
    /// Lowest accuracy.
    pub accuracy_min: f64,
    /// Highest accuracy.
    pub accuracy_max: f64,
}

impl From<Stats> for AccuracySummary {
    fn from(s: Stats) -> Self {
        Self { accuracy_mean: s.mean, accuracy_min: s.min, accuracy_max: s.max }
    }
}

/// One figure for the generated and for the trained population.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair<T> {
    /// The generated population's value.
    pub generated: T,
    /// The trained population's value.
    pub trained: T,
}

/// W1 between generated and trained marginals, per checkpoint time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct W1Marginals {
    /// Exact or sliced (one method for every marginal).
    pub method: W1Method,
    /// Rows compared on each side.
    pub n: usize,
    /// The marginal times t_k = k/K.
    pub t: Vec<f64>,
    /// W1 at each t_k; `None` where the path has no state at t_k.
    pub values: Vec<Option<f64>>,
}

/// The report's W1 section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct W1Report {
    /// Exact or sliced.
    pub method: W1Method,
    /// Rows compared on each side.
    pub n: usize,
    /// The marginal times t_k.
    pub t: Vec<f64>,
    /// The evaluated meta-model's W1 per marginal.
    pub generated: Vec<Option<f64>>,
    /// The same for a Gaussian-source meta-model, filled by the caller with [`w1_per_marginal`].
    pub gaussian_source: Option<Vec<Option<f64>>>,
}

/// Fine-tuning steps to the target from generated and from Kaiming-uniform initialisations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitStepsReport {
    /// From the first `init_n` generated rows.
    pub generated: InitSteps,
    /// From `init_n` fresh Kaiming-uniform samples.
    pub kaiming: InitSteps,
}

/// Best-of-k accuracy (held-out) of the M generated classifiers most accurate on P.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BestOfK {
    /// k: M were kept out of k·M.
    pub k: usize,
    /// Mean test accuracy of the kept classifiers.
    pub accuracy_mean: f64,
    /// Lowest.
    pub accuracy_min: f64,
    /// Highest.
    pub accuracy_max: f64,
}

/// Every figure of a generation's evaluation (JSON shape in the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationReport {
    /// Test accuracy of the first M generated classifiers.
    pub generated: AccuracySummary,
    /// Test accuracy of the trained final weights.
    pub trained: AccuracySummary,
    /// W1 per marginal.
    pub w1: W1Report,
    /// Mean nearest-neighbour distances ([`nn_distance`], [`nn_distance_loo`]) to the trained finals.
    pub nn_distance: Pair<f64>,
    /// Error-set IoU on test.
    pub error_iou: Pair<Option<f64>>,
    /// Steps to the fine-tuning target; `None` when `init_n` is 0.
    pub init_steps: Option<InitStepsReport>,
    /// Constant predictors on test.
    pub constant_predictors: Pair<usize>,
    /// Mean weight norm.
    pub weight_norm: Pair<f64>,
    /// Mean pairwise distance.
    pub spread: Pair<f64>,
    /// Mean pairwise disagreement on test.
    pub disagreement: Pair<Option<f64>>,
    /// Best-of-k accuracy.
    pub best_of_k: BestOfK,
    /// Validation loss and accuracy along the generation path.
    pub path_loss: Vec<PathPoint>,
}

/// The fine-tuning target accuracy of the init-quality figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitTarget {
    /// This accuracy on the validation split.
    Absolute(f64),
    /// This fraction of the trained finals' mean validation accuracy.
    RelativeToTrained(f64),
}

/// Settings of [`evaluate_generation`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// k of best-of-k (≥ 1): the generated rows number k·M.
    pub best_of_k: usize,
    /// How W1 is computed.
    pub w1: W1Config,
    /// How far (in t) a path state may be from t_k to stand for marginal k.
    pub time_tolerance: f64,
    /// Initialisations fine-tuned per population for `init_steps` (0: skip that figure).
    pub init_n: usize,
    /// The fine-tuning target.
    pub init_target: InitTarget,
    /// Fine-tuning settings; its `target_accuracy` is replaced by `init_target`.
    pub finetune: FinetuneConfig,
    /// Seed of the Kaiming-uniform initialisations of the baseline.
    pub kaiming_seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            best_of_k: 1,
            w1: W1Config::default(),
            time_tolerance: 1e-4,
            init_n: 64,
            init_target: InitTarget::RelativeToTrained(0.95),
            finetune: FinetuneConfig::new(0.0),
            kaiming_seed: 0,
        }
    }
}

/// What [`evaluate_generation`] scores.
#[derive(Debug, Clone, Copy)]
pub struct GenerationInputs<'a> {
    /// The base classifier family.
    pub mlp: &'a Mlp,
    /// Generated weights `[k·M, D]` from fresh source samples.
    pub generated: ArrayView2<'a, f32>,
    /// A generation path `(t, [n, D])` from fresh source samples (W1 per marginal, path loss).
    pub path: &'a [(f32, ndarray::Array2<f32>)],
    /// The trained runs' checkpoints `[R, K+1, D]` (checkpoint K the final weights), as the meta-model saw them:
    /// aligned if it was trained on aligned runs (W1 and nearest-neighbour distances are not permutation
    /// invariant; accuracy and diversity are).
    pub trajectories: ArrayView3<'a, f32>,
    /// The standardised splits.
    pub data: &'a EvalData,
}

/// W1 between the path's state at every t_k = k/K and trained checkpoint k (module docs), for the caller to
/// fill [`W1Report::gaussian_source`] from a second meta-model's path with the same settings.
pub fn w1_per_marginal(
    path: &[(f32, ndarray::Array2<f32>)],
    trajectories: ArrayView3<'_, f32>,
    cfg: &W1Config,
    time_tolerance: f64,
) -> Result<W1Marginals, Error> {
    let (r, k1, _) = trajectories.dim();
    if r == 0 || k1 < 2 {
        return Err(Error::Empty { what: "trajectories (need runs and at least 2 checkpoints)" });
    }
    let path_rows = path.iter().map(|(_, x)| x.nrows()).min().ok_or(Error::Empty { what: "path" })?;
    if path_rows == 0 {
        return Err(Error::Empty { what: "path states" });
    }
    let n = path_rows.min(r);
    let t: Vec<f64> = (0..k1).map(|k| k as f64 / (k1 - 1) as f64).collect();
    let values = t
        .iter()
        .enumerate()
        .map(|(k, &tk)| {
            let nearest = path.iter().min_by(|a, b| (a.0 as f64 - tk).abs().total_cmp(&(b.0 as f64 - tk).abs()));
            match nearest {
                Some((tp, x)) if (*tp as f64 - tk).abs() <= time_tolerance => {
                    let trained = trajectories.slice(s![..n, k, ..]);
                    w1(x.slice(s![..n, ..]), trained, cfg).map(Some)
                }
                _ => Ok(None),
            }
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(W1Marginals { method: cfg.method(n, n), n, t, values })
}

/// Fills a [`GenerationReport`] (module docs); `w1.gaussian_source` is left `None` for the caller.
pub fn evaluate_generation(inputs: &GenerationInputs<'_>, cfg: &GenerationConfig) -> Result<GenerationReport, Error> {
    let GenerationInputs { mlp, generated, path, trajectories, data } = *inputs;
    if cfg.best_of_k == 0 {
        return Err(Error::Config { name: "best_of_k", value: "0".into(), reason: "must be at least 1" });
    }
    let m = generated.nrows() / cfg.best_of_k;
    if m < 2 {
        return Err(Error::Length { what: "generated rows / k (at least)", expected: 2, got: m });
    }
    let (r, k1, _) = trajectories.dim();
    if k1 == 0 {
        return Err(Error::Empty { what: "trajectories" });
    }
    let gen = generated.slice(s![..m, ..]);
    let trained = trajectories.index_axis(Axis(1), k1 - 1);
    if r < 2 {
        return Err(Error::Length { what: "trained runs (at least)", expected: 2, got: r });
    }
    let test = &data.test;

    let gen_pred = mlp.predict(gen, test.x.view())?;
    let tr_pred = mlp.predict(trained, test.x.view())?;
    let gen_acc = super::accuracy_of_predictions(gen_pred.view(), &test.y)?;
    let tr_acc = super::accuracy_of_predictions(tr_pred.view(), &test.y)?;

    // Best of k: rank all generated rows by accuracy on P, keep the top M, score them on test.
    let on_p = accuracy_stats(mlp, generated, data.train.x.view(), &data.train.y)?.per_classifier;
    let mut order: Vec<usize> = (0..generated.nrows()).collect();
    order.sort_by(|&a, &b| on_p[b].total_cmp(&on_p[a]));
    let best = generated.select(Axis(0), &order[..m]);
    let best_acc = accuracy_stats(mlp, best.view(), test.x.view(), &test.y)?.stats;

    let w1m = w1_per_marginal(path, trajectories, &cfg.w1, cfg.time_tolerance)?;

    let init_steps = if cfg.init_n == 0 {
        None
    } else {
        let target = match cfg.init_target {
            InitTarget::Absolute(a) => a,
            InitTarget::RelativeToTrained(f) => {
                f * accuracy_stats(mlp, trained, data.val.x.view(), &data.val.y)?.stats.mean
            }
        };
        let ft = FinetuneConfig { target_accuracy: target, ..cfg.finetune };
        let n = cfg.init_n.min(m);
        let kaiming = KaimingUniform.sample(&mlp.layout, n, &mut crate::rng::rng(cfg.kaiming_seed));
        let (train, val) = ((&data.train).into(), (&data.val).into());
        Some(InitStepsReport {
            generated: steps_to_accuracy(mlp, gen.slice(s![..n, ..]), train, val, &ft)?,
            kaiming: steps_to_accuracy(mlp, kaiming.view(), train, val, &ft)?,
        })
    };

    Ok(GenerationReport {
        generated: gen_acc.stats.into(),
        trained: tr_acc.stats.into(),
        w1: W1Report { method: w1m.method, n: w1m.n, t: w1m.t, generated: w1m.values, gaussian_source: None },
        nn_distance: Pair { generated: nn_distance(gen, trained)?, trained: nn_distance_loo(trained)? },
        error_iou: Pair {
            generated: error_iou(gen_pred.view(), &test.y)?,
            trained: error_iou(tr_pred.view(), &test.y)?,
        },
        init_steps,
        constant_predictors: Pair {
            generated: constant_predictors(gen_pred.view())?,
            trained: constant_predictors(tr_pred.view())?,
        },
        weight_norm: Pair { generated: mean_weight_norm(gen)?, trained: mean_weight_norm(trained)? },
        spread: Pair { generated: spread(gen)?, trained: spread(trained)? },
        disagreement: Pair {
            generated: mean_pairwise_disagreement(gen_pred.view())?,
            trained: mean_pairwise_disagreement(tr_pred.view())?,
        },
        best_of_k: BestOfK {
            k: cfg.best_of_k,
            accuracy_mean: best_acc.mean,
            accuracy_min: best_acc.min,
            accuracy_max: best_acc.max,
        },
        path_loss: path_loss(mlp, path, data.val.x.view(), &data.val.y)?,
    })
}
