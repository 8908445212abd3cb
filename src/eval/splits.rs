//! The labelled sets an evaluation scores classifiers on: the data set's train/val/test splits, standardised
//! exactly as the base runs saw them (the trajectory manifest's data set, split seed and standardiser).

use std::str::FromStr;

use super::Error;
use crate::data::{Dataset, DatasetSpec, Shift, Standardizer};
use crate::train::TrajectoryManifest;

/// Standardised train/val/test splits. In a [`GenerationReport`](super::GenerationReport): `train` is P (the
/// base runs' training data: best-of-k selection and fine-tuning), `val` scores the generation path and the
/// fine-tuning target, `test` is the held-out set of every accuracy and diversity figure.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// The training split P.
    pub train: Dataset,
    /// The validation split.
    pub val: Dataset,
    /// The held-out test split.
    pub test: Dataset,
}

impl EvalData {
    /// Loads `dataset` split with `split_seed` and applies `standardizer` to every split.
    pub fn load(dataset: &DatasetSpec, split_seed: u64, standardizer: &Standardizer) -> Result<Self, Error> {
        Self::load_task(dataset, None, split_seed, standardizer)
    }

    /// Like [`Self::load`] for the splits transformed by `task` ([`DatasetSpec::load_task`]).
    pub fn load_task(
        dataset: &DatasetSpec,
        task: Option<&Shift>,
        split_seed: u64,
        standardizer: &Standardizer,
    ) -> Result<Self, Error> {
        let splits = dataset.load_task(split_seed, task)?;
        Ok(Self {
            train: standardizer.transform(&splits.train)?,
            val: standardizer.transform(&splits.val)?,
            test: standardizer.transform(&splits.test)?,
        })
    }

    /// The splits a trajectory set was trained and scored on (its manifest's data set, task, split seed,
    /// standardiser).
    pub fn from_manifest(manifest: &TrajectoryManifest) -> Result<Self, Error> {
        let spec = DatasetSpec::from_str(&manifest.dataset)?;
        let task = manifest.task.as_deref().map(Shift::from_str).transpose()?;
        Self::load_task(&spec, task.as_ref(), manifest.split_seed, &manifest.standardizer)
    }
}
