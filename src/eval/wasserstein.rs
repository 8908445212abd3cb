//! The Wasserstein-1 distance between two samples of weight space (METHOD.md §2: reference against generated
//! intermediate marginals p_{t_k}).
//!
//! * Exact, for equal sizes n: W1 = min_σ (1/n) Σ_i ‖a_i − b_σ(i)‖, the optimal matching of the two empirical
//!   measures (Birkhoff: an optimal coupling of two uniform n-point measures is a permutation), solved by
//!   [`linear_sum_assignment`] on the Euclidean cost matrix — O(n³).
//! * Sliced: SW1 = E_u W1(⟨u, a⟩, ⟨u, b⟩) over directions u uniform on the unit sphere S^{D−1}, estimated with
//!   `n_projections` directions (normalised Gaussian vectors from a seeded [`crate::rng`]). The 1-D distance
//!   between empirical measures of sizes n and m is ∫_0^1 |F_a^{-1}(q) − F_b^{-1}(q)| dq, evaluated on the merged
//!   breakpoints {i/n} ∪ {j/m} of the two quantile step functions; for n = m it is (1/n) Σ_i |a_(i) − b_(i)|.
//!   SW1 ≤ W1, and it is not W1: compare sliced values only with sliced values.
//!
//! Closed forms used by the tests: for b = a + v (a translated copy), W1 = ‖v‖ (the identity coupling costs ‖v‖,
//! and W1 ≥ ‖E[b] − E[a]‖ = ‖v‖ by Jensen), and every projection is translated by ⟨u, v⟩, so
//! SW1 = E|⟨u, v⟩| = ‖v‖ · Γ(D/2) / (√π · Γ((D+1)/2)): 2‖v‖/π for D = 2, ‖v‖/2 for D = 3.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::distance::{euclidean, squared_distances};
use super::error::{check_finite, check_len, check_nonempty};
use super::Error;
use crate::space::linear_sum_assignment;

/// How [`w1`] computes a distance: exactly while both samples have the same size n ≤ `exact_max`, else sliced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct W1Config {
    /// The largest equal sample size solved exactly (the assignment is O(n³): about a second at n = 512).
    pub exact_max: usize,
    /// Directions of the sliced estimate.
    pub n_projections: usize,
    /// Seed of the sliced estimate's directions.
    pub seed: u64,
}

impl Default for W1Config {
    fn default() -> Self {
        Self { exact_max: 512, n_projections: 256, seed: 0 }
    }
}

/// Which estimate a W1 value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum W1Method {
    /// [`w1_exact`].
    Exact,
    /// [`w1_sliced`].
    Sliced,
}

impl W1Config {
    /// The method used for samples of `n` and `m` rows.
    pub fn method(&self, n: usize, m: usize) -> W1Method {
        if n == m && n <= self.exact_max {
            W1Method::Exact
        } else {
            W1Method::Sliced
        }
    }
}

/// W1 between `a` `[n, D]` and `b` `[m, D]` by the method [`W1Config::method`] picks.
pub fn w1(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, cfg: &W1Config) -> Result<f64, Error> {
    match cfg.method(a.nrows(), b.nrows()) {
        W1Method::Exact => w1_exact(a, b),
        W1Method::Sliced => w1_sliced(a, b, cfg.n_projections, cfg.seed),
    }
}

fn check_pair(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Result<(), Error> {
    check_nonempty("first sample", a)?;
    check_nonempty("second sample", b)?;
    check_len("second sample columns", a.ncols(), b.ncols())?;
    check_finite("first sample", a)?;
    check_finite("second sample", b)
}

/// Exact W1 between two samples of equal size `[n, D]`: the mean distance of the optimal matching.
pub fn w1_exact(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Result<f64, Error> {
    check_pair(a, b)?;
    check_len("second sample rows", a.nrows(), b.nrows())?;
    let n = a.nrows();
    let cost: Vec<f64> = squared_distances(a, b).iter().map(|&d2| (d2 as f64).sqrt()).collect();
    let sigma = linear_sum_assignment(&cost, n);
    Ok(sigma.iter().enumerate().map(|(i, &j)| euclidean(a.row(i), b.row(j))).sum::<f64>() / n as f64)
}

/// Sliced W1 between `a` `[n, D]` and `b` `[m, D]` over `n_projections` seeded random directions.
pub fn w1_sliced(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    n_projections: usize,
    seed: u64,
) -> Result<f64, Error> {
    check_pair(a, b)?;
    if n_projections == 0 {
        return Err(Error::Config { name: "n_projections", value: "0".into(), reason: "must be at least 1" });
    }
    let d = a.ncols();
    let mut rng = crate::rng::rng(seed);
    let mut dirs = Array2::<f32>::zeros((d, n_projections));
    for mut u in dirs.columns_mut() {
        // A standard normal vector, normalised, is uniform on the sphere (redrawn if it is 0).
        loop {
            u.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut rng));
            let norm = u.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            if norm > 0.0 {
                u.mapv_inplace(|v| (v as f64 / norm) as f32);
                break;
            }
        }
    }
    let project = |x: ArrayView2<'_, f32>| {
        let mut p = Array2::<f32>::zeros((x.nrows(), n_projections));
        general_mat_mul(1.0, &x, &dirs, 0.0, &mut p);
        p
    };
    let (pa, pb) = (project(a), project(b));
    let total: f64 = pa
        .columns()
        .into_iter()
        .zip(pb.columns())
        .map(|(ca, cb)| w1_1d(ca.iter().map(|&v| v as f64).collect(), cb.iter().map(|&v| v as f64).collect()))
        .sum();
    Ok(total / n_projections as f64)
}

/// W1 between two 1-D empirical measures: ∫_0^1 |F_a^{-1}(q) − F_b^{-1}(q)| dq (module docs).
pub fn w1_1d(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let (n, m) = (a.len(), b.len());
    if n == m {
        return a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / n as f64;
    }
    // Walk the merged breakpoints i/n, j/m with integer arithmetic: the quantile level q is k/(n·m) with k
    // advancing to min((i+1)·m, (j+1)·n).
    let (mut i, mut j, mut k, mut total) = (0usize, 0usize, 0usize, 0f64);
    while i < n && j < m {
        let (next_a, next_b) = ((i + 1) * m, (j + 1) * n);
        let next = next_a.min(next_b);
        total += (next - k) as f64 * (a[i] - b[j]).abs();
        k = next;
        if next == next_a {
            i += 1;
        }
        if next == next_b {
            j += 1;
        }
    }
    total / (n * m) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1, Axis};

    fn sample(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut r = crate::rng::rng(seed);
        Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut r))
    }

    #[test]
    fn exact_w1_of_a_sample_with_itself_and_with_a_translated_copy() {
        let a = sample(40, 5, 1);
        assert!(w1_exact(a.view(), a.view()).unwrap() < 1e-12);
        // Rows in a different order are still the same measure.
        let rev = a.slice(ndarray::s![..;-1, ..]).to_owned();
        assert!(w1_exact(a.view(), rev.view()).unwrap() < 1e-12);
        // b = a + v: W1 = ‖v‖ = √(0.09 + 0.16 + 1.44) = 1.3.
        let v = Array1::from(vec![0.3f32, -0.4, 1.2, 0.0, 0.0]);
        let b = &a + &v.view().insert_axis(Axis(0));
        assert!((w1_exact(a.view(), b.view()).unwrap() - 1.3).abs() < 1e-5);
    }

    #[test]
    fn exact_w1_of_two_point_sets_by_hand() {
        // {0, 2} against {1, 4} on a line: matchings cost (1 + 2)/2 = 1.5 or (4 + 1)/2 = 2.5 → 1.5.
        let a = array![[0.0f32], [2.0]];
        let b = array![[4.0f32], [1.0]];
        assert!((w1_exact(a.view(), b.view()).unwrap() - 1.5).abs() < 1e-12);
        assert!(matches!(w1_exact(a.view(), b.slice(ndarray::s![..1, ..])).unwrap_err(), Error::Length { .. }));
    }

    #[test]
    fn sliced_w1_of_a_translation_matches_the_sphere_average() {
        // E_u |⟨u, v⟩| = ‖v‖ Γ(D/2)/(√π Γ((D+1)/2)): 2‖v‖/π for D = 2 and ‖v‖/2 for D = 3. The per-direction
        // standard deviation is below 0.31‖v‖, so 4,000 directions give a standard error under 0.005‖v‖.
        for (v, expected) in [(vec![3.0f32, 4.0], 2.0 * 5.0 / std::f64::consts::PI), (vec![1.0f32, 2.0, 2.0], 1.5)] {
            let a = sample(30, v.len(), 2);
            let b = &a + &Array1::from(v).view().insert_axis(Axis(0));
            let sw = w1_sliced(a.view(), b.view(), 4000, 9).unwrap();
            assert!((sw - expected).abs() < 0.02 * expected, "{sw} vs {expected}");
            assert!(sw <= w1_exact(a.view(), b.view()).unwrap() + 1e-9);
        }
    }

    #[test]
    fn one_dimensional_w1_with_unequal_sizes() {
        // {0, 1} (mass ½ each) against {0, 0, 3} (mass ⅓ each): the quantile functions agree on q ∈ (0, ½), differ
        // by |1 − 0| on (½, ⅔) and by |1 − 3| on (⅔, 1) → ⅙ · 1 + ⅓ · 2 = 5/6.
        assert!((w1_1d(vec![1.0, 0.0], vec![0.0, 3.0, 0.0]) - 5.0 / 6.0).abs() < 1e-12);
        // A point mass against itself repeated: 0.
        assert_eq!(w1_1d(vec![2.0], vec![2.0, 2.0, 2.0]), 0.0);
        assert!((w1_1d(vec![0.0, 1.0], vec![1.0, 2.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_config_picks_exact_for_small_equal_samples() {
        let cfg = W1Config::default();
        assert_eq!(cfg.method(100, 100), W1Method::Exact);
        assert_eq!(cfg.method(100, 99), W1Method::Sliced);
        assert_eq!(cfg.method(1000, 1000), W1Method::Sliced);
        let a = sample(10, 3, 4);
        assert_eq!(w1(a.view(), a.view(), &cfg).unwrap(), w1_exact(a.view(), a.view()).unwrap());
        assert!(w1_sliced(a.view(), a.view(), 0, 0).is_err());
    }
}
