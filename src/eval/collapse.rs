//! Collapse diagnostics (METHOD.md §2, "the failure to expect first"): a meta-model that regresses onto the
//! average of several permutation modes generates shrunken, near-identical, often constant classifiers.
//!
//! * [`constant_predictors`]: #{m : ŷ_{m,b} is the same class for every row b of the evaluation set};
//! * [`mean_weight_norm`]: (1/M) Σ_m ‖θ_m‖ (collapsed: 4.6 against 16.9 for trained nets on UCI heart);
//! * [`spread`]: the mean pairwise distance (2/(M(M−1))) Σ_{i<j} ‖θ_i − θ_j‖ (collapsed: 6 against 23), exact
//!   from one Gram matrix of the centred rows for M ≤ [`SPREAD_EXACT_MAX`]; beyond, the same statistic on
//!   [`SPREAD_EXACT_MAX`] rows drawn without replacement by a fixed seed — an unbiased, deterministic estimate.

use ndarray::{ArrayView2, Axis};

use super::distance::squared_distances;
use super::error::{check_finite, check_nonempty};
use super::Error;

/// The largest population whose [`spread`] is computed over all pairs (a 2,000 × 2,000 Gram matrix, 16 MB).
pub const SPREAD_EXACT_MAX: usize = 2000;

/// The seed of the row subsample of [`spread`] beyond [`SPREAD_EXACT_MAX`] rows.
const SPREAD_SEED: u64 = 0x5eed_5b7e;

/// The number of classifiers (rows of `preds` `[M, B]`) that predict one class on every row.
pub fn constant_predictors(preds: ArrayView2<'_, usize>) -> Result<usize, Error> {
    if preds.ncols() == 0 {
        return Err(Error::Empty { what: "predictions" });
    }
    Ok(preds.rows().into_iter().filter(|r| r.iter().all(|&c| c == r[0])).count())
}

/// The mean Euclidean norm of the rows of `thetas` `[M, D]`.
pub fn mean_weight_norm(thetas: ArrayView2<'_, f32>) -> Result<f64, Error> {
    check_nonempty("thetas", thetas)?;
    check_finite("thetas", thetas)?;
    let total: f64 = thetas.rows().into_iter().map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()).sum();
    Ok(total / thetas.nrows() as f64)
}

/// The mean pairwise Euclidean distance between the rows of `thetas` `[M, D]`, M ≥ 2 (see the module docs for
/// the subsample beyond [`SPREAD_EXACT_MAX`] rows).
pub fn spread(thetas: ArrayView2<'_, f32>) -> Result<f64, Error> {
    check_nonempty("thetas", thetas)?;
    check_finite("thetas", thetas)?;
    let m = thetas.nrows();
    if m < 2 {
        return Err(Error::Length { what: "thetas rows (at least)", expected: 2, got: m });
    }
    let d2 = if m > SPREAD_EXACT_MAX {
        let mut idx = rand::seq::index::sample(&mut crate::rng::rng(SPREAD_SEED), m, SPREAD_EXACT_MAX).into_vec();
        idx.sort_unstable();
        let subset = thetas.select(Axis(0), &idx);
        squared_distances(subset.view(), subset.view())
    } else {
        squared_distances(thetas, thetas)
    };
    let n = d2.nrows();
    let mut total = 0f64;
    for i in 0..n {
        for j in i + 1..n {
            total += (d2[[i, j]] as f64).sqrt();
        }
    }
    Ok(total / (n * (n - 1) / 2) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn spread_of_the_origin_and_two_unit_vectors() {
        // Pairs: ‖0 − e1‖ = ‖0 − e2‖ = 1, ‖e1 − e2‖ = √2 → (1 + 1 + √2)/3.
        let t = array![[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert!((spread(t.view()).unwrap() - (2.0 + 2f64.sqrt()) / 3.0).abs() < 1e-6);
        // Norms 0, 1, 1 → 2/3.
        assert!((mean_weight_norm(t.view()).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // A collapsed population far from the origin has spread exactly 0 (centring removes the cancellation).
        let same = ndarray::Array2::from_elem((5, 466), 17.0f32);
        assert_eq!(spread(same.view()).unwrap(), 0.0);
    }

    #[test]
    fn spread_subsamples_large_populations_deterministically() {
        // 2,500 points in two clusters ±5·e1 (alternating): over all pairs, 10 · 1250² / C(2500, 2) = 5.002; a
        // subsample of 2,000 rows with n_1 + n_2 = 2,000 gives 10 · n_1 n_2 / C(2000, 2) ≈ 5.0 as well.
        let t = ndarray::Array2::from_shape_fn((2500, 2), |(i, c)| {
            if c == 0 {
                if i % 2 == 0 {
                    5.0
                } else {
                    -5.0
                }
            } else {
                0.0
            }
        });
        let a = spread(t.view()).unwrap();
        assert_eq!(a, spread(t.view()).unwrap());
        assert!((a - 5.0).abs() < 0.1, "{a}");
    }

    #[test]
    fn constant_predictors_are_counted() {
        let p = array![[1usize, 1, 1], [0, 1, 0], [0, 0, 0], [2, 2, 1]];
        assert_eq!(constant_predictors(p.view()).unwrap(), 2);
        assert!(spread(array![[1.0f32]].view()).is_err());
    }
}
