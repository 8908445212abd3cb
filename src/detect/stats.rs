//! Statistics of an ensemble on a window: disagreement with f's pseudo-labels, and the per-sample entropy of
//! the ensemble's mean softmax.
//!
//! * disagreement φ: [`disagreement_mean`] = (1/(M·N)) Σ_m Σ_q [argmax g_m(x_q) ≠ ŷ_q] (each member's rate,
//!   averaged), or [`disagreement_any`] = (1/N) Σ_q [∃m: argmax g_m(x_q) ≠ ŷ_q] (Detectron's count);
//! * entropy: H_q = −Σ_c p̄_{q,c} ln p̄_{q,c} with p̄_q the mean softmax over the members given (f included by
//!   the caller, METHOD.md §4), in nats, accumulated in f64.

use ndarray::{ArrayView2, ArrayView3, Axis};

use super::error::DetectError;

/// Per-row entropy (nats) of the mean over axis 0 of `probs` `[M, B, C]` (each `[B, C]` slice one member's
/// softmax). Errors when M or B is 0.
pub fn mean_softmax_entropy(probs: ArrayView3<'_, f32>) -> Result<Vec<f64>, DetectError> {
    let (m, b, _) = probs.dim();
    if m == 0 || b == 0 {
        return Err(DetectError::Empty { what: "ensemble probabilities" });
    }
    Ok((0..b)
        .map(|row| {
            let p = probs.index_axis(Axis(1), row);
            let mean = p.map_axis(Axis(0), |col| col.iter().map(|&v| v as f64).sum::<f64>() / m as f64);
            -mean.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>()
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
