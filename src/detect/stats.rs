//! Statistics of an ensemble on a window: disagreement with f's pseudo-labels, and the per-sample entropy of
//! the ensemble's mean softmax.
//!
//! * disagreement φ: [`disagreement_mean`] = (1/(M·N)) Σ_m Σ_q [argmax g_m(x_q) ≠ ŷ_q] (each member's rate,
//!   averaged), or [`disagreement_any`] = (1/N) Σ_q [∃m: argmax g_m(x_q) ≠ ŷ_q] (Detectron's count);
//! * entropy: H_q = −Σ_c p̄_{q,c} ln p̄_{q,c} with p̄_q the mean softmax over the members given (f included by
//!   the caller, METHOD.md §4), in nats, accumulated in f64.

use ndarray::{ArrayView2, ArrayView3};

use super::error::DetectError;

/// Per-row entropy (nats) of the mean over axis 0 of `probs` `[M, B, C]` (each `[B, C]` slice one member's
/// softmax). Errors when M or B is 0.
pub fn mean_softmax_entropy(probs: ArrayView3<'_, f32>) -> Result<Vec<f64>, DetectError> {
    mean_softmax_entropy_of(&[probs])
}

/// [`mean_softmax_entropy`] of the members of every part together, `parts` in order (as if concatenated along
/// axis 0, without the copy): the ensemble {f, g_1 … g_M} when f's softmax is kept apart from the members'.
pub(crate) fn mean_softmax_entropy_of(parts: &[ArrayView3<'_, f32>]) -> Result<Vec<f64>, DetectError> {
    let m: usize = parts.iter().map(|p| p.dim().0).sum();
    let (_, b, c) = parts.first().map_or((0, 0, 0), |p| p.dim());
    if m == 0 || b == 0 {
        return Err(DetectError::Empty { what: "ensemble probabilities" });
    }
    assert!(parts.iter().all(|p| p.dim().1 == b && p.dim().2 == c), "parts of equal row and class counts");
    // One accumulator for every row, summed member by member in order: the same sums as a member-axis
    // reduction, without a vector per row.
    let mut mean = vec![0f64; c];
    Ok((0..b)
        .map(|row| {
            mean.fill(0.0);
            for member in parts.iter().flat_map(|p| p.outer_iter()) {
                for (acc, &v) in mean.iter_mut().zip(member.row(row)) {
                    *acc += v as f64;
                }
            }
            -mean.iter().map(|&s| s / m as f64).filter(|&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>()
        })
        .collect())
}

/// Mean over members of each member's disagreement rate with `labels` on the window; `preds` `[M, N]`.
pub fn disagreement_mean(preds: ArrayView2<'_, usize>, labels: &[usize]) -> Result<f64, DetectError> {
    check(preds, labels)?;
    let differ = preds.outer_iter().map(|p| p.iter().zip(labels).filter(|(a, b)| a != b).count()).sum::<usize>();
    Ok(differ as f64 / preds.len() as f64)
}

/// Fraction of the window on which at least one member's prediction differs from `labels`; `preds` `[M, N]`.
pub fn disagreement_any(preds: ArrayView2<'_, usize>, labels: &[usize]) -> Result<f64, DetectError> {
    check(preds, labels)?;
    let differ = (0..labels.len()).filter(|&q| preds.column(q).iter().any(|&p| p != labels[q])).count();
    Ok(differ as f64 / labels.len() as f64)
}

fn check(preds: ArrayView2<'_, usize>, labels: &[usize]) -> Result<(), DetectError> {
    if preds.is_empty() {
        return Err(DetectError::Empty { what: "member predictions" });
    }
    if preds.ncols() != labels.len() {
        return Err(DetectError::Width { what: "member predictions", expected: labels.len(), got: preds.ncols() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn entropy_over_parts_is_that_of_their_concatenation_bit_for_bit() {
        let mut r = crate::rng::rng(3);
        let mut softmax = |m: usize| {
            let mut p = ndarray::Array3::from_shape_fn((m, 7, 3), |_| rand::Rng::random_range(&mut r, 0.01f32..1.0));
            for mut z in p.lanes_mut(ndarray::Axis(2)) {
                let sum = z.sum();
                z.mapv_inplace(|v| v / sum);
            }
            p
        };
        let (f, members) = (softmax(1), softmax(5));
        let all = ndarray::concatenate(ndarray::Axis(0), &[f.view(), members.view()]).unwrap();
        let h = mean_softmax_entropy(all.view()).unwrap();
        assert_eq!(mean_softmax_entropy_of(&[f.view(), members.view()]).unwrap(), h);
        // Against a float64 computation written out per row.
        for (row, &got) in h.iter().enumerate() {
            let mean: Vec<f64> = (0..3).map(|c| (0..6).map(|k| all[[k, row, c]] as f64).sum::<f64>() / 6.0).collect();
            let want = -mean.iter().map(|v| v * v.ln()).sum::<f64>();
            assert!((got - want).abs() < 1e-12, "row {row}: {got} vs {want}");
        }
        assert!(mean_softmax_entropy_of(&[]).is_err());
    }

    #[test]
    fn entropy_of_the_mean_softmax() {
        // Two members, two rows: row 0 members agree on (1, 0) → H = 0; row 1 (1, 0) and (0, 1) → mean
        // (½, ½) → ln 2. A single member (0.25, 0.75): H = −(¼ ln ¼ + ¾ ln ¾).
        let p = array![[[1.0f32, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]];
        let h = mean_softmax_entropy(p.view()).unwrap();
        assert!(h[0].abs() < 1e-12 && (h[1] - std::f64::consts::LN_2).abs() < 1e-12);
        let q = array![[[0.25f32, 0.75]]];
        let h = mean_softmax_entropy(q.view()).unwrap();
        assert!((h[0] + 0.25 * 0.25f64.ln() + 0.75 * 0.75f64.ln()).abs() < 1e-7);
    }

    #[test]
    fn disagreement_counts() {
        let preds = array![[0usize, 1, 1, 0], [0, 0, 1, 1]];
        let labels = [0, 0, 0, 0];
        // Member 0 differs on 2 of 4, member 1 on 2 of 4 → mean 0.5; rows 1, 2, 3 differ somewhere → 0.75.
        assert_eq!(disagreement_mean(preds.view(), &labels).unwrap(), 0.5);
        assert_eq!(disagreement_any(preds.view(), &labels).unwrap(), 0.75);
        assert!(matches!(disagreement_any(preds.view(), &[0, 0]), Err(DetectError::Width { .. })));
    }
}
