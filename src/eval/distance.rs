//! Euclidean distances between rows of weight matrices, and the memorisation diagnostic built on them.
//!
//! Pairwise squared distances use one GEMM per block: ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b, clamped at 0. Both
//! operands are first centred on the reference's mean row (distances are translation invariant), which keeps
//! the norms, and so the f32 cancellation error, small when the rows cluster. The GEMM only *selects* (a
//! nearest neighbour, an assignment); reported distances are recomputed exactly, in f64, from the rows.
//!
//! Nearest-neighbour distances (METHOD.md §2, "memorised its training pairs"):
//! * [`nn_distance`]`(G, T)` = (1/M) Σ_i min_j ‖g_i − t_j‖ for generated rows G `[M, D]` and reference rows
//!   T `[N, D]`;
//! * [`nn_distance_loo`]`(T)` = (1/N) Σ_i min_{j≠i} ‖t_i − t_j‖, the same for a trained net against the
//!   *other* trained nets. Generated nets much closer to the trained ones than those are to each other are
//!   copies. If T stacks several checkpoints of one run, a row's nearest "other" row may be its own run's
//!   neighbouring checkpoint: pass final weights only for the run-to-run figure.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::error::{check_finite, check_len, check_nonempty};
use super::Error;

/// Floats per block of the query × reference product in [`nn_distance`] (16 MiB).
const BLOCK_FLOATS: usize = 1 << 22;

/// ‖a − b‖ in f64.
pub(crate) fn euclidean(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>().sqrt()
}

/// The reference's mean row, as f32.
fn mean_row(reference: ArrayView2<'_, f32>) -> Array1<f32> {
    let n = reference.nrows() as f64;
    reference.axis_iter(Axis(1)).map(|c| (c.iter().map(|&v| v as f64).sum::<f64>() / n) as f32).collect()
}

/// `a` minus `center` in every row, and the squared norms of the result (f64).
fn centred(a: ArrayView2<'_, f32>, center: &Array1<f32>) -> (Array2<f32>, Vec<f64>) {
    let c = &a - &center.view().insert_axis(Axis(0));
    let norms = c.rows().into_iter().map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum()).collect();
    (c, norms)
}

/// Squared Euclidean distances `[n_a, n_b]` between the rows of `a` and of `b` (same width), by GEMM on rows
/// centred on `b`'s mean, clamped at 0. For selection; recompute reported distances with [`euclidean`].
pub(crate) fn squared_distances(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    let center = mean_row(b);
    let (ac, an) = centred(a, &center);
    let (bc, bn) = centred(b, &center);
    let mut g = Array2::<f32>::zeros((a.nrows(), b.nrows()));
    general_mat_mul(1.0, &ac, &bc.t(), 0.0, &mut g);
    for ((i, j), v) in g.indexed_iter_mut() {
        *v = (an[i] + bn[j] - 2.0 * *v as f64).max(0.0) as f32;
    }
    g
}

/// For every row of `query`, the index of its nearest row of `reference` (skipping `j = i` with `loo`).
fn nearest(query: ArrayView2<'_, f32>, reference: ArrayView2<'_, f32>, loo: bool) -> Vec<usize> {
    let center = mean_row(reference);
    let (rc, rn) = centred(reference, &center);
    let n = reference.nrows();
    let block = (BLOCK_FLOATS / n.max(1)).clamp(1, query.nrows().max(1));
    let mut out = Vec::with_capacity(query.nrows());
    let mut g = Array2::<f32>::zeros((block, n));
    for start in (0..query.nrows()).step_by(block) {
        let end = (start + block).min(query.nrows());
        let (qc, qn) = centred(query.slice(s![start..end, ..]), &center);
        let mut gb = g.slice_mut(s![..end - start, ..]);
        general_mat_mul(1.0, &qc, &rc.t(), 0.0, &mut gb);
        for (r, row) in gb.rows().into_iter().enumerate() {
            let i = start + r;
            let best = row
                .iter()
                .enumerate()
                .filter(|&(j, _)| !(loo && j == i))
                .map(|(j, &dot)| (j, qn[r] + rn[j] - 2.0 * dot as f64))
                .fold((usize::MAX, f64::INFINITY), |b, c| if c.1 < b.1 { c } else { b });
            out.push(best.0);
        }
    }
    out
}

/// Mean over the rows of `generated` `[M, D]` of the Euclidean distance to the nearest row of `reference`
/// `[N, D]` (formula in the module docs).
pub fn nn_distance(generated: ArrayView2<'_, f32>, reference: ArrayView2<'_, f32>) -> Result<f64, Error> {
    check_nonempty("generated", generated)?;
    check_nonempty("reference", reference)?;
    check_len("generated columns", reference.ncols(), generated.ncols())?;
    check_finite("generated", generated)?;
    check_finite("reference", reference)?;
    let idx = nearest(generated, reference, false);
    let total: f64 = idx.iter().enumerate().map(|(i, &j)| euclidean(generated.row(i), reference.row(j))).sum();
    Ok(total / generated.nrows() as f64)
}

/// Leave-one-out: mean over the rows of `reference` `[N, D]` (N ≥ 2) of the distance to the nearest *other* row.
pub fn nn_distance_loo(reference: ArrayView2<'_, f32>) -> Result<f64, Error> {
    check_nonempty("reference", reference)?;
    if reference.nrows() < 2 {
        return Err(Error::Length { what: "reference rows (at least)", expected: 2, got: reference.nrows() });
    }
    check_finite("reference", reference)?;
    let idx = nearest(reference, reference, true);
    let total: f64 = idx.iter().enumerate().map(|(i, &j)| euclidean(reference.row(i), reference.row(j))).sum();
    Ok(total / reference.nrows() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn nearest_neighbours_on_a_grid() {
        // Reference: the integer grid {0,1,2}² (9 points). Queries (0.1, 0.2) → (0,0) at √0.05;
        // (1.5, 2.0) → (1,2) or (2,2) at 0.5; (3, 3) → (2,2) at √2; (1, 1) → itself at 0.
        let grid =
            ndarray::Array2::from_shape_fn((9, 2), |(i, c)| if c == 0 { (i / 3) as f32 } else { (i % 3) as f32 });
        let q = array![[0.1f32, 0.2], [1.5, 2.0], [3.0, 3.0], [1.0, 1.0]];
        let expected = (0.05f64.sqrt() + 0.5 + 2f64.sqrt() + 0.0) / 4.0;
        assert!((nn_distance(q.view(), grid.view()).unwrap() - expected).abs() < 1e-6);
        // Leave-one-out on the grid: every point's nearest other point is at distance 1.
        assert!((nn_distance_loo(grid.view()).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn blocks_and_large_offsets_do_not_change_the_answer() {
        // Far from the origin (norms ~1e4) f32 cancellation in ‖a‖² + ‖b‖² − 2a·b would swamp distances of 1e-2;
        // centring keeps them exact, and a copy of the reference is found at distance 0.
        let mut r = crate::rng::rng(5);
        let base = ndarray::Array2::from_shape_fn((300, 20), |_| 1e4 + rand::Rng::random_range(&mut r, 0.0..0.01f32));
        assert_eq!(nn_distance(base.view(), base.view()).unwrap(), 0.0);
        let loo = nn_distance_loo(base.view()).unwrap();
        let brute: f64 = (0..300)
            .map(|i| {
                (0..300).filter(|&j| j != i).map(|j| euclidean(base.row(i), base.row(j))).fold(f64::INFINITY, f64::min)
            })
            .sum::<f64>()
            / 300.0;
        assert!((loo - brute).abs() < 1e-3 * brute, "{loo} vs {brute}");
        let d2 = squared_distances(base.slice(s![..3, ..]), base.view());
        assert!((0..3).all(|i| d2[[i, i]] < 1e-9));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let a = array![[0.0f32, 1.0]];
        assert!(matches!(nn_distance_loo(a.view()).unwrap_err(), Error::Length { got: 1, .. }));
        let b = array![[0.0f32, 1.0, 2.0]];
        assert!(matches!(nn_distance(a.view(), b.view()).unwrap_err(), Error::Length { expected: 3, got: 2, .. }));
        let nan = array![[f32::NAN, 0.0]];
        assert!(matches!(nn_distance(nan.view(), a.view()).unwrap_err(), Error::NonFinite { row: 0, col: 0, .. }));
    }
}
