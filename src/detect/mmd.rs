//! The MMD two-sample test with an RBF kernel and a permutation null.
//!
//! For samples X (the window, n rows) and Y (the reference, m rows) and k(a, b) = exp(−‖a − b‖² / (2σ²)),
//! the biased estimate MMD² = mean k(X, X) + mean k(Y, Y) − 2 mean k(X, Y) (V-statistic, diagonals
//! included). The bandwidth σ is the median heuristic: the median of the pairwise distances ‖a − b‖ (a ≠ b
//! rows) of the pooled sample. The permutation p-value is (1 + #{π : MMD²_π ≥ MMD²}) / (1 + B) over B random
//! relabellings of the pooled rows into sizes n and m. As a [`WindowTest`] the statistic is MMD² itself
//! (calibrated on null windows like every other test); [`Mmd::permutation_p_value`] is the self-contained
//! test.

use ndarray::{concatenate, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;

use super::error::{check_rows, DetectError};
use super::method::WindowTest;
use crate::rng::{rng, Rng};

/// The MMD test against a fixed reference sample.
#[derive(Debug, Clone)]
pub struct Mmd {
    reference: Array2<f32>,
    permutations: usize,
}

impl Mmd {
    /// The test against `reference` (standardised rows), with `permutations` relabellings for the
    /// permutation p-value.
    pub fn new(reference: Array2<f32>, permutations: usize) -> Result<Self, DetectError> {
        check_rows("reference sample", reference.view(), reference.ncols())?;
        Ok(Self { reference, permutations })
    }

    /// MMD² of window `q` against the reference, with the median-heuristic bandwidth of the pooled sample.
    pub fn mmd2(&self, q: ArrayView2<'_, f32>) -> Result<f64, DetectError> {
        let (k, n) = self.kernel(q)?;
        let idx: Vec<usize> = (0..k.nrows()).collect();
        Ok(mmd2_of_split(&k, &idx, n))
    }

    /// The permutation p-value of window `q` (module docs); `seed` draws the permutations.
    pub fn permutation_p_value(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<f64, DetectError> {
        let (k, n) = self.kernel(q)?;
        let mut idx: Vec<usize> = (0..k.nrows()).collect();
        let observed = mmd2_of_split(&k, &idx, n);
        let mut rng: Rng = rng(seed);
        let mut at_least = 0;
        for _ in 0..self.permutations {
            idx.shuffle(&mut rng);
            at_least += usize::from(mmd2_of_split(&k, &idx, n) >= observed - 1e-12);
        }
        Ok((1 + at_least) as f64 / (1 + self.permutations) as f64)
    }

    /// The pooled kernel matrix [Q; reference] and n = |Q|.
    fn kernel(&self, q: ArrayView2<'_, f32>) -> Result<(Array2<f64>, usize), DetectError> {
        check_rows("window", q, self.reference.ncols())?;
        let pooled = concatenate(Axis(0), &[q.view(), self.reference.view()]).expect("equal widths");
        let t = pooled.nrows();
        let mut d2 = Array2::<f64>::zeros((t, t));
        let mut dists = Vec::with_capacity(t * (t - 1) / 2);
        for i in 0..t {
            for j in i + 1..t {
                let s: f64 =
                    pooled.row(i).iter().zip(pooled.row(j)).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
                d2[[i, j]] = s;
                d2[[j, i]] = s;
                dists.push(s.sqrt());
            }
        }
        let sigma = median(&mut dists).filter(|&s| s > 0.0).unwrap_or(1.0);
        Ok((d2.mapv(|v| (-v / (2.0 * sigma * sigma)).exp()), q.nrows()))
    }
}

impl WindowTest for Mmd {
    fn statistic(&self, q: ArrayView2<'_, f32>, _seed: u64) -> Result<f64, DetectError> {
        self.mmd2(q)
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// MMD² when the pooled rows `idx[..n]` form X and `idx[n..]` form Y.
fn mmd2_of_split(k: &Array2<f64>, idx: &[usize], n: usize) -> f64 {
    let (x, y) = idx.split_at(n);
    let mean = |a: &[usize], b: &[usize]| {
        a.iter().map(|&i| b.iter().map(|&j| k[[i, j]]).sum::<f64>()).sum::<f64>() / (a.len() * b.len()) as f64
    };
    mean(x, x) + mean(y, y) - 2.0 * mean(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn a_hand_computed_mmd() {
        // X = {0}, Y = {1, 3} in one dimension. Pairwise distances 1, 3, 2 → median σ = 2, 2σ² = 8.
        // k(0,1) = e^{−1/8}, k(0,3) = e^{−9/8}, k(1,3) = e^{−4/8}.
        // MMD² = 1 + (2 + 2e^{−1/2})/4 − 2(e^{−1/8} + e^{−9/8})/2.
        let mmd = Mmd::new(array![[1.0f32], [3.0]], 10).unwrap();
        let expected = 1.0 + (2.0 + 2.0 * (-0.5f64).exp()) / 4.0 - ((-0.125f64).exp() + (-1.125f64).exp());
        assert!((mmd.mmd2(array![[0.0f32]].view()).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn permutation_p_values_separate_same_and_shifted_samples() {
        let reference = Array2::from_shape_fn((40, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0);
        let mmd = Mmd::new(reference.clone(), 200).unwrap();
        // The reference's own rows: the observed split is an ordinary one.
        assert!(mmd.permutation_p_value(reference.slice(ndarray::s![..10, ..]), 1).unwrap() > 0.2);
        let far = reference.slice(ndarray::s![..10, ..]).mapv(|v| v + 4.0);
        assert!(mmd.permutation_p_value(far.view(), 1).unwrap() < 0.01);
        assert!(matches!(mmd.mmd2(array![[f32::NAN, 0.0]].view()), Err(DetectError::NonFinite { .. })));
    }
}
