//! The base classifier's loss along a generation path (METHOD.md §2, the paper's Figure 2): at each recorded
//! time t of the ODE, the population x_t `[n, D]` is loaded into the classifier and scored on a labelled set,
//!
//!   loss(t) = (1/n) Σ_m (1/B) Σ_b CE(f_{x_{t,m}}(x_b), y_b),   accuracy(t) = (1/n) Σ_m acc_m(x_t).
//!
//! A flow that has learned the gradient flow descends this curve as training does; a collapsing one flattens
//! out at the loss of an "average network".

use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;

use super::Error;
use crate::classifier::{Mlp, Targets};

/// One point of the loss curve along a generation path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PathPoint {
    /// The ODE time t.
    pub t: f32,
    /// The mean over the population of each classifier's mean cross entropy.
    pub loss: f64,
    /// The mean over the population of each classifier's accuracy.
    pub accuracy: f64,
}

/// The mean cross entropy and mean accuracy on `x` `[B, d_in]`, `y` `[B]` at every state `(t, [n, D])` of a
/// generation path (as [`MetaModel::generate_path`](crate::flow::MetaModel::generate_path) returns it).
pub fn path_loss(
    mlp: &Mlp,
    path: &[(f32, Array2<f32>)],
    x: ArrayView2<'_, f32>,
    y: &[usize],
) -> Result<Vec<PathPoint>, Error> {
    let targets = Targets::cross_entropy(y);
    path.iter()
        .map(|(t, thetas)| {
            let (loss, accuracy) = loss_and_accuracy(mlp, thetas.view(), x, &targets, y)?;
            Ok(PathPoint { t: *t, loss, accuracy })
        })
        .collect()
}

/// Mean CE and mean accuracy of a population, from one forward pass.
fn loss_and_accuracy(
    mlp: &Mlp,
    thetas: ArrayView2<'_, f32>,
    x: ArrayView2<'_, f32>,
    targets: &Targets,
    y: &[usize],
) -> Result<(f64, f64), Error> {
    let logits = mlp.logits(thetas, x)?;
    let losses = targets.loss(logits.view())?;
    let correct = logits
        .axis_iter(Axis(0))
        .map(|z| {
            z.outer_iter()
                .zip(y)
                .filter(|(row, &label)| {
                    let argmax = row.iter().enumerate().fold(
                        (0, f32::NEG_INFINITY),
                        |b, (c, &v)| {
                            if v > b.1 {
                                (c, v)
                            } else {
                                b
                            }
                        },
                    );
                    argmax.0 == label
                })
                .count()
        })
        .sum::<usize>();
    let n = thetas.nrows() as f64;
    let loss = losses.iter().map(|&l| l as f64).sum::<f64>() / n;
    Ok((loss, correct as f64 / (n * y.len() as f64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::Activation;
    use crate::space::Layout;
    use ndarray::array;

    #[test]
    fn the_loss_falls_along_a_path_towards_a_good_classifier() {
        // 1-2 linear classifiers z = (w_0 x + b_0, w_1 x + b_1) on x = ±1 with y = [x > 0]. The path scales the
        // separating weights θ_t = t·(−1, 1, 0, 0): at t = 0 all logits are 0, CE = ln 2 and the tie predicts
        // class 0 (accuracy ½); at t = 1, CE = ln(1 + e^{−2}) and accuracy 1.
        let mlp = Mlp::new(Layout::parse("1-2").unwrap(), Activation::Relu);
        let x = array![[-1.0f32], [1.0]];
        let y = [0, 1];
        let theta = |t: f32| array![[-t, t, 0.0, 0.0], [-t, t, 0.0, 0.0]];
        let path = vec![(0.0, theta(0.0)), (0.5, theta(0.5)), (1.0, theta(1.0))];
        let curve = path_loss(&mlp, &path, x.view(), &y).unwrap();
        assert_eq!(curve.len(), 3);
        assert!((curve[0].loss - 2f64.ln()).abs() < 1e-6 && curve[0].accuracy == 0.5);
        assert!((curve[2].loss - (1.0 + (-2f64).exp()).ln()).abs() < 1e-6 && curve[2].accuracy == 1.0);
        assert!(curve[0].loss > curve[1].loss && curve[1].loss > curve[2].loss);
        assert_eq!(curve.iter().map(|p| p.t).collect::<Vec<_>>(), [0.0, 0.5, 1.0]);
    }
}
