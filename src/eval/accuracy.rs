//! Accuracy of a population of classifiers: acc_m = (1/B) Σ_b 1[argmax f_{θ_m}(x_b) = y_b], summarised by
//! its mean, minimum and maximum over the M classifiers.

use ndarray::{ArrayView2, Axis};
use serde::Serialize;

use super::Error;
use crate::classifier::Mlp;

/// Mean, minimum and maximum of a list of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// (1/n) Σ v_i.
    pub mean: f64,
    /// min v_i.
    pub min: f64,
    /// max v_i.
    pub max: f64,
}

impl Stats {
    /// The statistics of `values`; `None` when it is empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self { mean, min, max })
    }
}

/// The accuracies of M classifiers on one labelled set, and their [`Stats`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyStats {
    /// Mean, minimum and maximum over the classifiers.
    pub stats: Stats,
    /// acc_m for every classifier, in the order of the rows of `thetas`.
    pub per_classifier: Vec<f64>,
}

/// The accuracy of every classifier (rows of `thetas` `[M, D]`) on `x` `[B, d_in]` with labels `y` `[B]`.
pub fn accuracy_stats(
    mlp: &Mlp,
    thetas: ArrayView2<'_, f32>,
    x: ArrayView2<'_, f32>,
    y: &[usize],
) -> Result<AccuracyStats, Error> {
    let preds = mlp.predict(thetas, x)?;
    accuracy_of_predictions(preds.view(), y)
}

/// [`AccuracyStats`] from predicted classes `preds` `[M, B]` and labels `y` `[B]`.
pub fn accuracy_of_predictions(preds: ArrayView2<'_, usize>, y: &[usize]) -> Result<AccuracyStats, Error> {
    if preds.nrows() == 0 {
        return Err(Error::Empty { what: "predictions" });
    }
    if y.is_empty() {
        return Err(Error::Empty { what: "labels" });
    }
    super::error::check_len("labels", preds.ncols(), y.len())?;
    let per_classifier: Vec<f64> = preds
        .axis_iter(Axis(0))
        .map(|p| p.iter().zip(y).filter(|(p, y)| p == y).count() as f64 / y.len() as f64)
        .collect();
    let stats = Stats::of(&per_classifier).expect("at least one classifier");
    Ok(AccuracyStats { stats, per_classifier })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::Activation;
    use crate::space::Layout;
    use ndarray::array;

    #[test]
    fn stats_of_a_list() {
        assert_eq!(Stats::of(&[0.5, 1.0, 0.0]), Some(Stats { mean: 0.5, min: 0.0, max: 1.0 }));
        assert_eq!(Stats::of(&[]), None);
    }

    #[test]
    fn accuracy_of_two_linear_classifiers() {
        // 2-2 linear: θ = (W row-major, b). Classifier 0 predicts argmax(x) (W = I), classifier 1 argmin(x)
        // (W = −I). On x = (1, 0), (0, 1), (2, 1) with y = (0, 1, 1): classifier 0 gets 2/3, classifier 1 1/3.
        let mlp = Mlp::new(Layout::parse("2-2").unwrap(), Activation::Relu);
        let thetas = array![[1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, -1.0, 0.0, 0.0]];
        let x = array![[1.0f32, 0.0], [0.0, 1.0], [2.0, 1.0]];
        let a = accuracy_stats(&mlp, thetas.view(), x.view(), &[0, 1, 1]).unwrap();
        assert_eq!(a.per_classifier, [2.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(a.stats, Stats { mean: 0.5, min: 1.0 / 3.0, max: 2.0 / 3.0 });
        let e = accuracy_stats(&mlp, thetas.view(), x.view(), &[0, 1]).unwrap_err();
        assert!(matches!(e, Error::Length { what: "labels", expected: 3, got: 2 }), "{e}");
    }
}
