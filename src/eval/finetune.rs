//! Initialisation quality: how many optimiser steps a population of initial weights needs to reach a target
//! accuracy (METHOD.md §3, "better initialisation"; generated inits against Kaiming-uniform ones).
//!
//! All M classifiers are fine-tuned together with Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, no weight decay) on
//! the mean cross entropy of a shared batch — the whole training set, or `batch_size` rows drawn without
//! replacement from a seeded [`crate::rng`] each step, the same rows for every classifier:
//!
//!   m ← β₁ m + (1−β₁) g,   v ← β₂ v + (1−β₂) g²,   θ ← θ − lr · (m / (1−β₁^s)) / (√(v / (1−β₂^s)) + ε).
//!
//! The accuracy on the evaluation set is measured before the first step (step 0), every `eval_every` steps
//! and after the last; classifier m's result is the first measured step s with acc_m(s) ≥ target (so it is
//! exact to within `eval_every` steps), or `None` if it never gets there within `max_steps`. A classifier that
//! has reached the target stops training.

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::error::check_len;
use super::Error;
use crate::classifier::{Adam, Mlp, Targets};
use crate::data::Dataset;

/// A labelled set: inputs `x` `[B, d_in]` (standardised as the classifiers expect) and labels `y` `[B]`.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    /// Inputs `[B, d_in]`.
    pub x: ArrayView2<'a, f32>,
    /// Labels `[B]`.
    pub y: &'a [usize],
}

impl<'a> From<&'a Dataset> for Labelled<'a> {
    fn from(d: &'a Dataset) -> Self {
        Self { x: d.x.view(), y: &d.y }
    }
}

/// Settings of [`steps_to_accuracy`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    /// The accuracy on the evaluation set to reach, in [0, 1].
    pub target_accuracy: f64,
    /// The most optimiser steps per classifier.
    pub max_steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Rows per step; `None` = the whole training set (full batch).
    pub batch_size: Option<usize>,
    /// Steps between accuracy measurements (≥ 1).
    pub eval_every: usize,
    /// Seed of the minibatch draws (unused for full batches).
    pub seed: u64,
}

impl FinetuneConfig {
    /// Full-batch Adam at lr 1e-2 for up to 500 steps, measured every 5 steps, towards `target_accuracy`.
    pub fn new(target_accuracy: f64) -> Self {
        Self { target_accuracy, max_steps: 500, lr: 1e-2, batch_size: None, eval_every: 5, seed: 0 }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |name, value: String, reason| Err(Error::Config { name, value, reason });
        if !(0.0..=1.0).contains(&self.target_accuracy) {
            return bad("target_accuracy", self.target_accuracy.to_string(), "must lie in [0, 1]");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr.to_string(), "must be finite and positive");
        }
        if self.eval_every == 0 {
            return bad("eval_every", "0".into(), "must be at least 1");
        }
        if self.batch_size == Some(0) {
            return bad("batch_size", "0".into(), "must be at least 1");
        }
        Ok(())
    }
}

/// Per-classifier steps to the target accuracy, and their summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitSteps {
    /// The first measured step at which each classifier reached the target (0: already there), `None` if it did
    /// not within `max_steps`. Left out of the JSON.
    #[serde(skip)]
    pub per_classifier: Vec<Option<usize>>,
    /// The target accuracy.
    pub target_accuracy: f64,
    /// The step budget.
    pub max_steps: usize,
    /// How many classifiers reached the target.
    pub reached: usize,
    /// How many classifiers were fine-tuned.
    pub n: usize,
    /// The mean over all classifiers with `None` counted as `max_steps`: a lower bound, exact when all reach.
    pub mean: f64,
    /// The median over all classifiers with `None` counted as +∞; `None` when the median is infinite.
    pub median: Option<f64>,
}

impl InitSteps {
    /// The summary of per-classifier results.
    pub fn new(per_classifier: Vec<Option<usize>>, target_accuracy: f64, max_steps: usize) -> Self {
        let n = per_classifier.len();
        let reached = per_classifier.iter().flatten().count();
        let mean = per_classifier.iter().map(|s| s.unwrap_or(max_steps) as f64).sum::<f64>() / n.max(1) as f64;
        let mut sorted: Vec<f64> = per_classifier.iter().map(|s| s.map_or(f64::INFINITY, |s| s as f64)).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let median = match n {
            0 => None,
            _ if n % 2 == 1 => Some(sorted[n / 2]),
            _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
        }
        .filter(|m| m.is_finite());
        Self { per_classifier, target_accuracy, max_steps, reached, n, mean, median }
    }
}

/// Fine-tunes every row of `init` `[M, D]` on `train` and reports the steps each needs to reach
/// `cfg.target_accuracy` on `eval` (module docs).
pub fn steps_to_accuracy(
    mlp: &Mlp,
    init: ArrayView2<'_, f32>,
    train: Labelled<'_>,
    eval: Labelled<'_>,
    cfg: &FinetuneConfig,
) -> Result<InitSteps, Error> {
    cfg.validate()?;
    check_len("training labels", train.x.nrows(), train.y.len())?;
    check_len("evaluation labels", eval.x.nrows(), eval.y.len())?;
    if train.y.is_empty() {
        return Err(Error::Empty { what: "training set" });
    }
    let m = init.nrows();
    if m == 0 {
        return Err(Error::Empty { what: "initial weights" });
    }
    let mut thetas = init.to_owned();
    let mut adam = Adam::new(thetas.dim(), cfg.lr);
    let mut result = vec![None; m];
    let mut active: Vec<usize> = (0..m).collect();
    let mut rng = crate::rng::rng(cfg.seed);
    let full_targets = Targets::cross_entropy(train.y);
    let n_train = train.y.len();
    let mut step = 0;
    loop {
        if step % cfg.eval_every == 0 || step == cfg.max_steps {
            let preds = mlp.predict(thetas.select(Axis(0), &active).view(), eval.x)?;
            let mut still = Vec::with_capacity(active.len());
            for (p, &r) in preds.outer_iter().zip(&active) {
                let correct = p.iter().zip(eval.y).filter(|(p, y)| p == y).count();
                if correct as f64 >= cfg.target_accuracy * eval.y.len() as f64 - 1e-9 {
                    result[r] = Some(step);
                } else {
                    still.push(r);
                }
            }
            active = still;
        }
        if active.is_empty() || step >= cfg.max_steps {
            break;
        }
        let sub = thetas.select(Axis(0), &active);
        let grads = match cfg.batch_size {
            Some(b) if b < n_train => {
                let idx = rand::seq::index::sample(&mut rng, n_train, b).into_vec();
                let xb = train.x.select(Axis(0), &idx);
                let yb: Vec<usize> = idx.iter().map(|&i| train.y[i]).collect();
                mlp.loss_and_grad(sub.view(), xb.view(), &Targets::cross_entropy(&yb))?.1
            }
            _ => mlp.loss_and_grad(sub.view(), train.x, &full_targets)?.1,
        };
        adam.step(&mut thetas, &grads, &active);
        step += 1;
    }
    Ok(InitSteps::new(result, cfg.target_accuracy, cfg.max_steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_unreached_classifiers() {
        let s = InitSteps::new(vec![Some(0), Some(10), None], 0.9, 100);
        assert_eq!((s.reached, s.n), (2, 3));
        assert!((s.mean - 110.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.median, Some(10.0));
        assert_eq!(InitSteps::new(vec![Some(4), None], 0.9, 100).median, None);
        assert_eq!(InitSteps::new(vec![Some(4), Some(8)], 0.9, 100).median, Some(6.0));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut cfg = FinetuneConfig::new(1.5);
        assert!(matches!(cfg.validate(), Err(Error::Config { name: "target_accuracy", .. })));
        cfg = FinetuneConfig { eval_every: 0, ..FinetuneConfig::new(0.5) };
        assert!(matches!(cfg.validate(), Err(Error::Config { name: "eval_every", .. })));
        cfg = FinetuneConfig { lr: f64::NAN, ..FinetuneConfig::new(0.5) };
        assert!(matches!(cfg.validate(), Err(Error::Config { name: "lr", .. })));
    }
}
