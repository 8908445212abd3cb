//! How well reconstructed (e.g. autoencoded) classifiers keep the function of their originals: accuracy of
//! both populations, the per-classifier accuracy change, and how often the two predict the same class.

use ndarray::ArrayView2;
use serde::Serialize;

use super::{accuracy_of_predictions, Error, Stats};
use crate::classifier::Mlp;

/// Originals against their reconstructions on one labelled set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconstructionAccuracy {
    /// Accuracy of the original classifiers.
    pub original: Stats,
    /// Accuracy of their reconstructions.
    pub reconstructed: Stats,
    /// Mean over classifiers of |acc(reconstruction) − acc(original)|.
    pub mean_abs_change: f64,
    /// Largest |acc(reconstruction) − acc(original)|.
    pub max_abs_change: f64,
    /// Fraction of (classifier, row) pairs where a reconstruction predicts the same class as its original.
    pub agreement: f64,
}

/// Compares `original` `[M, D]` with `reconstructed` `[M, D]` (row m reconstructs row m) on `x` `[B, d_in]`
/// with labels `y`.
pub fn reconstruction_accuracy(
    mlp: &Mlp,
    original: ArrayView2<'_, f32>,
    reconstructed: ArrayView2<'_, f32>,
    x: ArrayView2<'_, f32>,
    y: &[usize],
) -> Result<ReconstructionAccuracy, Error> {
    super::error::check_len("reconstructed classifiers", original.nrows(), reconstructed.nrows())?;
    let (po, pr) = (mlp.predict(original, x)?, mlp.predict(reconstructed, x)?);
    let (ao, ar) = (accuracy_of_predictions(po.view(), y)?, accuracy_of_predictions(pr.view(), y)?);
    let changes: Vec<f64> = ao.per_classifier.iter().zip(&ar.per_classifier).map(|(a, b)| (b - a).abs()).collect();
    let same = po.iter().zip(pr.iter()).filter(|(a, b)| a == b).count();
    Ok(ReconstructionAccuracy {
        original: ao.stats,
        reconstructed: ar.stats,
        mean_abs_change: changes.iter().sum::<f64>() / changes.len() as f64,
        max_abs_change: changes.iter().copied().fold(0.0, f64::max),
        agreement: same as f64 / po.len() as f64,
    })
}
