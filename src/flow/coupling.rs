//! Couplings of two minibatches of points: minibatch optimal transport and its ablations.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::space::linear_sum_assignment;

/// How source samples (or the samples of one marginal) are paired with the samples of the next marginal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coupling {
    /// Minibatch optimal transport: the pairing of two equal-sized minibatches that minimises the total
    /// squared Euclidean distance (exact linear assignment). The default.
    #[default]
    Ot,
    /// Independent draws, paired in the order drawn.
    Independent,
    /// Each run's own checkpoints: its own init as the source sample (the ablation that memorises), and for
    /// MMFM all marginals from the same runs.
    Trajectory,
}

/// Squared Euclidean distances `[n, m]` between the rows of `a` `[n, D]` and `b` `[m, D]`.
pub fn squared_distances(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f64> {
    let a64 = a.mapv(f64::from);
    let b64 = b.mapv(f64::from);
    let na = a64.map_axis(Axis(1), |r| r.dot(&r));
    let nb = b64.map_axis(Axis(1), |r| r.dot(&r));
    let mut c = a64.dot(&b64.t());
    for ((i, j), v) in c.indexed_iter_mut() {
        *v = (na[i] + nb[j] - 2.0 * *v).max(0.0);
    }
    c
}

/// The minibatch-OT pairing of two equal-sized batches: `sigma[i] = j` pairs `a[i]` with `b[j]`, minimising
/// Σ_i ‖a_i − b_σ(i)‖².
///
/// # Panics
/// If the batches differ in size or dimension (callers draw both).
pub fn ot_pairing(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Vec<usize> {
    assert_eq!(a.dim(), b.dim(), "OT coupling needs two batches of the same shape");
    let n = a.nrows();
    let c = squared_distances(a, b);
    let cost: Vec<f64> = c.iter().copied().collect();
    linear_sum_assignment(&cost, n)
}

/// Rows of `x` in the order `idx`.
pub(crate) fn gather(x: ArrayView2<f32>, idx: &[usize]) -> Array2<f32> {
    x.select(Axis(0), idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use rand::Rng as _;

    fn total(a: ArrayView2<f32>, b: ArrayView2<f32>, sigma: &[usize]) -> f64 {
        let c = squared_distances(a, b);
        sigma.iter().enumerate().map(|(i, &j)| c[[i, j]]).sum()
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn ot_pairing_is_optimal_and_beats_the_independent_pairing() {
        let mut r = rng::rng(21);
        for n in 1..=6 {
            for _ in 0..10 {
                let a = Array2::from_shape_fn((n, 3), |_| r.random_range(-1.0f32..1.0));
                let b = Array2::from_shape_fn((n, 3), |_| r.random_range(-1.0f32..2.0));
                let sigma = ot_pairing(a.view(), b.view());
                let ot = total(a.view(), b.view(), &sigma);
                let identity: Vec<usize> = (0..n).collect();
                assert!(ot <= total(a.view(), b.view(), &identity) + 1e-9);
                let best = permutations(n).iter().map(|p| total(a.view(), b.view(), p)).fold(f64::INFINITY, f64::min);
                assert!((ot - best).abs() < 1e-9, "n={n}: {ot} vs brute force {best}");
            }
        }
    }

    #[test]
    fn squared_distances_match_the_definition() {
        let a = ndarray::arr2(&[[0.0f32, 1.0], [2.0, -1.0]]);
        let b = ndarray::arr2(&[[1.0f32, 1.0]]);
        let c = squared_distances(a.view(), b.view());
        assert!((c[[0, 0]] - 1.0).abs() < 1e-12 && (c[[1, 0]] - 5.0).abs() < 1e-12);
    }
}
