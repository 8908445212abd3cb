//! The batched training loop.

use candle_core::Device;
use ndarray::{Array2, Array3, ArrayView2, Axis};
use rand::seq::SliceRandom;

use super::config::Backend;
use super::engine::{CandleEngine, Engine, NativeEngine};
use super::error::Error;
use super::TrainConfig;
use crate::classifier::{metrics, Mlp, Targets};
use crate::rng::{self, Rng};
use crate::space::{KaimingUniform, Layout, Source};

/// A labelled split, borrowed: rows `x: [n, d_in]` (already standardised) and labels `y`.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Features `[n, d_in]`.
    pub x: ArrayView2<'a, f32>,
    /// Labels, one per row.
    pub y: &'a [usize],
}

/// Where training stands, reported after every optimiser step.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub total_steps: usize,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Mean over runs of the minibatch cross entropy of this step.
    pub loss: f32,
}

/// Loss and accuracy of every run at every checkpoint on one split.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// Mean cross entropy, `[R, K+1]`.
    pub loss: Array2<f32>,
    /// Accuracy, `[R, K+1]`.
    pub accuracy: Array2<f32>,
}

/// The outcome of [`train_runs`].
#[derive(Debug, Clone)]
pub struct TrainedRuns {
    /// Checkpoints `[R, K+1, D]`: `thetas[r, k]` is run r at step `checkpoint_steps[k]`; k = 0 is the init.
    pub thetas: Array3<f32>,
    /// The optimiser step of each checkpoint.
    pub checkpoint_steps: Vec<usize>,
    /// Metrics on the training split.
    pub train: RunMetrics,
    /// Metrics on the validation split.
    pub val: RunMetrics,
}

/// The step index of checkpoint k = 0 … K: `round(k · total / K)`, so t_0 is the init and t_K the end.
pub(crate) fn checkpoint_steps(total_steps: usize, k: usize) -> Vec<usize> {
    (0..=k).map(|i| ((i as f64) * (total_steps as f64) / (k as f64)).round() as usize).collect()
}

/// Trains `cfg.runs` MLPs of `layout` on `train` as one batched computation and records their checkpoints,
/// with per-checkpoint metrics on `train` and `val`. Deterministic for `cfg.seed` and the backend; the
/// candle backend runs on `device` (the native backend always on the CPU).
pub fn train_runs(
    layout: &Layout,
    cfg: &TrainConfig,
    train: TrainData,
    val: TrainData,
    device: &Device,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrainedRuns, Error> {
    cfg.validate()?;
    let n = train.x.nrows();
    if n == 0 || n != train.y.len() {
        return Err(Error::Config(format!("training split has {n} rows and {} labels", train.y.len())));
    }
    if train.x.ncols() != layout.n_inputs() {
        return Err(Error::Config(format!(
            "the data have {} features but the architecture {} expects {}",
            train.x.ncols(),
            layout.arch(),
            layout.n_inputs()
        )));
    }
    if let Some(&bad) = train.y.iter().find(|&&y| y >= layout.n_outputs()) {
        return Err(Error::Config(format!(
            "label {bad} does not fit the architecture's {} outputs",
            layout.n_outputs()
        )));
    }
    let (runs, batch) = (cfg.runs, cfg.batch_size.min(n));
    // drop_last: every step sees a full batch in every run, so all runs share one shape.
    let steps_per_epoch = n / batch;
    let total_steps = steps_per_epoch * cfg.epochs;
    if total_steps < cfg.checkpoints {
        return Err(Error::Config(format!(
            "{total_steps} optimiser steps cannot hold {} checkpoint intervals: train longer or save fewer",
            cfg.checkpoints
        )));
    }
    let ckpt_steps = checkpoint_steps(total_steps, cfg.checkpoints);

    // Each run's init and minibatch order come from its own stream, independent of R.
    let mut rngs: Vec<Rng> = (0..runs as u64).map(|r| rng::stream(cfg.seed, r)).collect();
    let mut init = Array2::<f32>::zeros((runs, layout.dim()));
    for (mut row, rng) in init.rows_mut().into_iter().zip(rngs.iter_mut()) {
        KaimingUniform.sample_into(layout, rng, row.as_slice_mut().expect("contiguous row"));
    }
    let mut engine: Box<dyn Engine + '_> = match cfg.backend {
        Backend::Native => Box::new(NativeEngine::new(layout, cfg, init.clone(), train.x, train.y)),
        Backend::Candle => Box::new(CandleEngine::new(layout, cfg, &init, train.x, train.y, device)?),
    };

    let mut snapshots = vec![init];
    let mut perms: Vec<Vec<u32>> = vec![(0..n as u32).collect(); runs];
    let mut idx = vec![0u32; runs * batch];
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        for (perm, rng) in perms.iter_mut().zip(rngs.iter_mut()) {
            perm.shuffle(rng);
        }
        for s in 0..steps_per_epoch {
            for (r, perm) in perms.iter().enumerate() {
                idx[r * batch..(r + 1) * batch].copy_from_slice(&perm[s * batch..(s + 1) * batch]);
            }
            let loss = engine.step(&idx, batch)?;
            if !loss.is_finite() {
                return Err(Error::Diverged { step, loss });
            }
            step += 1;
            if ckpt_steps.contains(&step) {
                snapshots.push(engine.thetas()?);
            }
            progress(&Progress { step, total_steps, epoch, loss });
        }
    }
    debug_assert_eq!(snapshots.len(), cfg.checkpoints + 1);

    let views: Vec<_> = snapshots.iter().map(|s| s.view()).collect();
    let thetas = ndarray::stack(Axis(1), &views).expect("snapshots share one shape");
    let mlp = Mlp::new(layout.clone(), cfg.activation);
    let train_m = evaluate(&mlp, &thetas, train)?;
    let val_m = evaluate(&mlp, &thetas, val)?;
    Ok(TrainedRuns { thetas, checkpoint_steps: ckpt_steps, train: train_m, val: val_m })
}

/// Loss and accuracy of every checkpoint `[R, K+1, D]` on one split.
pub(crate) fn evaluate(mlp: &Mlp, thetas: &Array3<f32>, data: TrainData) -> Result<RunMetrics, Error> {
    let (runs, ck, _) = thetas.dim();
    let mut loss = Array2::zeros((runs, ck));
    let mut accuracy = Array2::zeros((runs, ck));
    if data.x.nrows() == 0 {
        return Ok(RunMetrics { loss, accuracy });
    }
    let targets = Targets::cross_entropy(data.y);
    for k in 0..ck {
        let th = thetas.index_axis(Axis(1), k);
        let losses = mlp.loss(th, data.x, &targets)?;
        let preds = mlp.predict(th, data.x)?;
        for r in 0..runs {
            loss[[r, k]] = losses[r];
            accuracy[[r, k]] = metrics::accuracy(preds.row(r).as_slice().expect("contiguous"), data.y)? as f32;
        }
    }
    Ok(RunMetrics { loss, accuracy })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_steps_span_init_to_end() {
        assert_eq!(checkpoint_steps(60, 6), [0, 10, 20, 30, 40, 50, 60]);
        assert_eq!(checkpoint_steps(7, 3), [0, 2, 5, 7]);
    }
}
