//! Several trajectory sets read as one: the runs of every task (`train-base --task`), for `train-vae` and
//! `train-meta` (which conditions on the task with `--context`).

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayView3, Axis};
use weightflow::eval::EvalData;
use weightflow::flow::{ContextSet, ContextTasks};
use weightflow::train::{TrajectoryManifest, TrajectorySet};

/// The sets, their runs stacked in the order given, and each run's task (its set's index).
pub struct TaskSets {
    /// The sets, in the order given.
    pub sets: Vec<TrajectorySet>,
    /// The stacked checkpoints when there are several sets (one set is read in place).
    stacked: Option<Array3<f32>>,
    /// For each stacked run, the index of its set.
    pub run_task: Vec<usize>,
}

impl TaskSets {
    /// Loads `paths` (at least one) and checks that they are runs of one architecture, activation and
    /// checkpoint count.
    pub fn load(paths: &[PathBuf]) -> Result<Self, Box<dyn std::error::Error>> {
        let Some(first) = paths.first() else {
            return Err("give at least one --trajectories directory".into());
        };
        let sets = paths.iter().map(|p| TrajectorySet::load(p)).collect::<Result<Vec<_>, _>>()?;
        let m0 = &sets[0].manifest;
        for (p, s) in paths.iter().zip(&sets).skip(1) {
            let m = &s.manifest;
            if m.layout != m0.layout || m.activation != m0.activation || s.thetas().dim().1 != sets[0].thetas().dim().1
            {
                return Err(format!(
                    "{}: runs of {} ({:?}, {} checkpoints) cannot join {} ({} of {}, {:?}, {} checkpoints)",
                    p.display(),
                    m.layout,
                    m.activation,
                    s.thetas().dim().1,
                    first.display(),
                    m0.runs,
                    m0.layout,
                    m0.activation,
                    sets[0].thetas().dim().1
                )
                .into());
            }
        }
        let run_task = sets.iter().enumerate().flat_map(|(i, s)| std::iter::repeat_n(i, s.thetas().dim().0)).collect();
        let stacked = (sets.len() > 1).then(|| {
            let views: Vec<ArrayView3<f32>> = sets.iter().map(|s| s.thetas()).collect();
            ndarray::concatenate(Axis(0), &views).expect("checked: same checkpoints and width")
        });
        Ok(Self { sets, stacked, run_task })
    }

    /// Checkpoints `[R, K+1, D]` of every run, set after set.
    pub fn thetas(&self) -> ArrayView3<'_, f32> {
        match &self.stacked {
            Some(a) => a.view(),
            None => self.sets[0].thetas(),
        }
    }

    /// The first set's manifest (layout, activation and checkpoints are the same in all).
    pub fn manifest(&self) -> &TrajectoryManifest {
        &self.sets[0].manifest
    }

    /// Each set's task, in words: its data set and `--task`.
    pub fn names(&self) -> Vec<String> {
        self.sets.iter().map(|s| task_name(&s.manifest)).collect()
    }

    /// Each set's standardised splits, in order.
    pub fn data(&self) -> Result<Vec<EvalData>, Box<dyn std::error::Error>> {
        Ok(self.sets.iter().map(|s| EvalData::from_manifest(&s.manifest)).collect::<Result<_, _>>()?)
    }

    /// The context pools (each set's training split) and every run's task, for `train_meta_conditioned`.
    pub fn context_tasks(&self) -> Result<ContextTasks, Box<dyn std::error::Error>> {
        let pools = self.data()?.into_iter().map(|d| context_pool(&d)).collect();
        Ok(ContextTasks { pools, run_task: self.run_task.clone() })
    }
}

/// A set's task in words, e.g. `digits` or `digits rotate:90-90`.
pub fn task_name(m: &TrajectoryManifest) -> String {
    match &m.task {
        Some(t) => format!("{} {t}", m.dataset),
        None => m.dataset.clone(),
    }
}

/// The training split of `data` as a pool of labelled context rows.
pub fn context_pool(data: &EvalData) -> ContextSet {
    ContextSet { x: data.train.x.clone(), y: data.train.y.clone() }
}

/// `paths` in words for messages.
pub fn describe(paths: &[PathBuf]) -> String {
    paths.iter().map(|p: &PathBuf| Path::display(p).to_string()).collect::<Vec<_>>().join(", ")
}

/// The training rows of every task's `data`, one after another (standardised as the base runs saw them): the
/// rows on which the functional terms of `train-vae` and `train-meta` compare predictions.
pub fn training_rows(data: &[EvalData]) -> Result<ndarray::Array2<f32>, ndarray::ShapeError> {
    let views: Vec<_> = data.iter().map(|d| d.train.x.view()).collect();
    ndarray::concatenate(ndarray::Axis(0), &views)
}
