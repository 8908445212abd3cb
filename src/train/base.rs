//! From a data set to a trajectory set: split, standardise, train R runs, evaluate, assemble the manifest.

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array1, Axis};

use super::runs::{evaluate, RunMetrics};
use super::trajectories::{SplitSizes, TRAJECTORY_FORMAT, TRAJECTORY_VERSION};
use super::{
    device, train_runs, CheckpointSummary, DeviceKind, Error, FinalSummary, Progress, TrainConfig, TrainData,
    TrajectoryManifest, TrajectorySet,
};
use crate::classifier::{metrics, Mlp};
use crate::data::{DatasetSpec, Shift, Standardizer};
use crate::space::Layout;

/// Trains `cfg.runs` base classifiers of `layout` on `dataset` (split with `split_seed`, standardised with
/// statistics of its training split) and returns the trajectory set, ready to [`TrajectorySet::save`].
pub fn train_base(
    dataset: &DatasetSpec,
    split_seed: u64,
    layout: &Layout,
    cfg: &TrainConfig,
    device_kind: DeviceKind,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrajectorySet, Error> {
    train_base_task(dataset, None, split_seed, layout, cfg, device_kind, progress)
}

/// Like [`train_base`] on a *task*: every split of `dataset` transformed by `task` (e.g. rotated digits,
/// [`DatasetSpec::load_task`]) before the standardiser is fitted, recorded in the manifest so evaluations and
/// context sets rebuild the same rows. Sets of several tasks train a context-conditioned meta-model.
pub fn train_base_task(
    dataset: &DatasetSpec,
    task: Option<&Shift>,
    split_seed: u64,
    layout: &Layout,
    cfg: &TrainConfig,
    device_kind: DeviceKind,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrajectorySet, Error> {
    let splits = dataset.load_task(split_seed, task)?;
    let standardizer = Standardizer::fit(&splits.train.x)?;
    let train = standardizer.transform(&splits.train)?;
    let val = standardizer.transform(&splits.val)?;
    let test = standardizer.transform(&splits.test)?;
    let n_classes = splits.train.n_classes;
    if n_classes > layout.n_outputs() {
        return Err(Error::Config(format!(
            "{dataset} has {n_classes} classes but the architecture {} has {} outputs",
            layout.arch(),
            layout.n_outputs()
        )));
    }
    let dev = device(device_kind)?;
    let started = Instant::now();
    let runs = train_runs(layout, cfg, as_data(&train), as_data(&val), &dev, progress)?;
    let train_seconds = started.elapsed().as_secs_f64();

    // The held-out split is scored on the final checkpoints only.
    let mlp = Mlp::new(layout.clone(), cfg.activation);
    let k_last = cfg.checkpoints;
    let finals = runs.thetas.index_axis(Axis(1), k_last).to_owned().insert_axis(Axis(1));
    let test_m = evaluate(&mlp, &finals, as_data(&test))?;
    let binary = n_classes == 2 && layout.n_outputs() == 2;
    let auroc = |d: &crate::data::Dataset| -> Result<Option<Array1<f32>>, Error> {
        if !binary {
            return Ok(None);
        }
        let logits = mlp.logits(finals.index_axis(Axis(1), 0), d.x.view())?;
        let mut per_run = Vec::with_capacity(logits.len_of(Axis(0)));
        for z in logits.outer_iter() {
            // Score = z_1 − z_0, a monotone function of P(y = 1).
            let s: Vec<f32> = z.rows().into_iter().map(|r| r[1] - r[0]).collect();
            match metrics::auroc(&s, &d.y)? {
                Some(a) => per_run.push(a as f32),
                None => return Ok(None),
            }
        }
        Ok(Some(Array1::from(per_run)))
    };
    let val_auroc = auroc(&val)?;
    let test_auroc = auroc(&test)?;

    let mean = |a: ndarray::ArrayView1<f32>| a.iter().map(|&v| v as f64).sum::<f64>() / a.len().max(1) as f64;
    let col_mean = |m: &RunMetrics, k: usize| (mean(m.loss.column(k)), mean(m.accuracy.column(k)));
    let checkpoints = runs
        .checkpoint_steps
        .iter()
        .enumerate()
        .map(|(k, &step)| {
            let (train_loss, train_accuracy) = col_mean(&runs.train, k);
            let (val_loss, val_accuracy) = col_mean(&runs.val, k);
            CheckpointSummary { t: k as f64 / k_last as f64, step, train_loss, train_accuracy, val_loss, val_accuracy }
        })
        .collect::<Vec<_>>();
    let last = checkpoints.last().expect("K+1 ≥ 2 checkpoints");
    let final_summary = FinalSummary {
        train_accuracy: last.train_accuracy,
        val_accuracy: last.val_accuracy,
        test_accuracy: mean(test_m.accuracy.column(0)),
        val_auroc: val_auroc.as_ref().map(|a| mean(a.view())),
        test_auroc: test_auroc.as_ref().map(|a| mean(a.view())),
    };

    let mut tensors = BTreeMap::new();
    tensors.insert("thetas".to_string(), runs.thetas.into_dyn());
    for (prefix, m) in [("train", runs.train), ("val", runs.val)] {
        tensors.insert(format!("{prefix}_loss"), m.loss.into_dyn());
        tensors.insert(format!("{prefix}_accuracy"), m.accuracy.into_dyn());
    }
    tensors.insert("test_loss".into(), test_m.loss.column(0).to_owned().into_dyn());
    tensors.insert("test_accuracy".into(), test_m.accuracy.column(0).to_owned().into_dyn());
    if let Some(a) = val_auroc {
        tensors.insert("val_auroc".into(), a.into_dyn());
    }
    if let Some(a) = test_auroc {
        tensors.insert("test_auroc".into(), a.into_dyn());
    }
    let manifest = TrajectoryManifest {
        format: TRAJECTORY_FORMAT.into(),
        version: TRAJECTORY_VERSION,
        writer: crate::VERSION.into(),
        layout: layout.clone(),
        activation: cfg.activation,
        n_classes,
        dataset: dataset.to_string(),
        split_seed,
        task: task.map(Shift::to_string),
        splits: SplitSizes {
            train: train.len(),
            val: val.len(),
            test: test.len(),
            shifted: splits.shifted.as_ref().map(|s| s.len()),
        },
        standardizer,
        train: cfg.clone(),
        device: device_kind,
        runs: cfg.runs,
        checkpoint_steps: runs.checkpoint_steps,
        checkpoints,
        final_summary,
        train_seconds,
        tensors_sha256: String::new(),
    };
    let set = TrajectorySet { manifest, tensors };
    set.check_shapes().map_err(Error::Config)?;
    Ok(set)
}

fn as_data(d: &crate::data::Dataset) -> TrainData<'_> {
    TrainData { x: d.x.view(), y: d.y.as_slice() }
}
