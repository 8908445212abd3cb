//! Evaluation metrics on plain slices, accumulated in f64.
//!
//! * accuracy = (1/n) Σ_i 1[pred_i = y_i];
//! * AUROC for binary labels = U / (n_1 n_0), with the Mann–Whitney U = R_1 − n_1(n_1+1)/2 and R_1 the sum of
//!   the positives' ranks among all scores, tied scores sharing their mean rank (midranks); it equals
//!   P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) over positive/negative pairs;
//! * mean log loss = −(1/n) Σ_i ln max(p_{i,y_i}, 1e-15) (probabilities clipped as in scikit-learn).

use super::Error;

/// The fraction of `pred` equal to `y`.
pub fn accuracy(pred: &[usize], y: &[usize]) -> Result<f64, Error> {
    lengths("predictions", pred.len(), y.len())?;
    Ok(pred.iter().zip(y).filter(|(p, y)| p == y).count() as f64 / y.len() as f64)
}

/// The area under the ROC curve of `scores` (higher = class 1) for labels `y` ∈ {0, 1}, ties by midranks;
/// `None` when one class is absent.
pub fn auroc(scores: &[f32], y: &[usize]) -> Result<Option<f64>, Error> {
    lengths("scores", scores.len(), y.len())?;
    finite("scores", scores)?;
    if let Some((row, &label)) = y.iter().enumerate().find(|(_, &l)| l > 1) {
        return Err(Error::Label { row, label, n_classes: 2 });
    }
    let n1 = y.iter().filter(|&&l| l == 1).count();
    let n0 = y.len() - n1;
    if n1 == 0 || n0 == 0 {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Walk runs of equal scores; a run at 0-based positions i..j gets the midrank (i + 1 + j) / 2.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let midrank = (i + 1 + j) as f64 / 2.0;
        rank_sum += midrank * order[i..j].iter().filter(|&&k| y[k] == 1).count() as f64;
        i = j;
    }
    let (n1, n0) = (n1 as f64, n0 as f64);
    Ok(Some((rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n0)))
}

/// The mean negative log-likelihood of labels `y` under row-major probabilities `probs` `[n, n_classes]`.
pub fn mean_log_loss(probs: &[f32], n_classes: usize, y: &[usize]) -> Result<f64, Error> {
    if y.is_empty() {
        return Err(Error::Empty { what: "labels" });
    }
    lengths("probabilities", probs.len(), y.len() * n_classes)?;
    finite("probabilities", probs)?;
    let mut sum = 0f64;
    for (row, &label) in y.iter().enumerate() {
        if label >= n_classes {
            return Err(Error::Label { row, label, n_classes });
        }
        sum -= (probs[row * n_classes + label] as f64).max(1e-15).ln();
    }
    Ok(sum / y.len() as f64)
}

fn lengths(what: &'static str, got: usize, expected: usize) -> Result<(), Error> {
    if expected == 0 {
        return Err(Error::Empty { what: "labels" });
    }
    if got != expected {
        return Err(Error::Length { what, expected, got });
    }
    Ok(())
}

fn finite(what: &'static str, v: &[f32]) -> Result<(), Error> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(col) => Err(Error::NonFinite { what, row: 0, col, value: v[col] }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_handles_ties_by_midranks() {
        // Pairs (pos, neg): (0.35,0.1) win, (0.35,0.4) loss, (0.8,·) two wins → 3/4.
        assert_eq!(auroc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]).unwrap(), Some(0.75));
        // All tied: every pair counts ½.
        assert_eq!(auroc(&[1.0; 5], &[0, 1, 0, 1, 1]).unwrap(), Some(0.5));
        // One tie between classes among wins: (3 wins + ½) / 4.
        assert_eq!(auroc(&[0.2, 0.5, 0.5, 0.9], &[0, 0, 1, 1]).unwrap(), Some(0.875));
        assert_eq!(auroc(&[0.3, 0.2], &[1, 1]).unwrap(), None);
    }

    #[test]
    fn accuracy_and_log_loss() {
        assert_eq!(accuracy(&[0, 1, 2, 1], &[0, 1, 1, 1]).unwrap(), 0.75);
        // −(ln 0.5 + ln 0.25)/2.
        let l = mean_log_loss(&[0.5, 0.5, 0.75, 0.25], 2, &[0, 1]).unwrap();
        assert!((l - (2f64.ln() + 4f64.ln()) / 2.0).abs() < 1e-12);
        assert!((mean_log_loss(&[0.0, 1.0], 2, &[0]).unwrap() - 1e-15f64.ln().abs()).abs() < 1e-9);
    }

    #[test]
    fn bad_metric_inputs_are_refused() {
        assert_eq!(accuracy(&[0], &[0, 1]).unwrap_err(), Error::Length { what: "predictions", expected: 2, got: 1 });
        assert_eq!(accuracy(&[], &[]).unwrap_err(), Error::Empty { what: "labels" });
        assert_eq!(auroc(&[0.1, 0.2], &[0, 2]).unwrap_err(), Error::Label { row: 1, label: 2, n_classes: 2 });
        let e = auroc(&[0.1, f32::NAN], &[0, 1]).unwrap_err();
        assert!(matches!(e, Error::NonFinite { what: "scores", col: 1, .. }), "{e}");
        assert_eq!(
            mean_log_loss(&[0.5; 3], 2, &[0, 1]).unwrap_err(),
            Error::Length { what: "probabilities", expected: 4, got: 3 }
        );
        assert_eq!(mean_log_loss(&[0.5; 4], 2, &[0, 3]).unwrap_err(), Error::Label { row: 1, label: 3, n_classes: 2 });
        assert_eq!(mean_log_loss(&[], 2, &[]).unwrap_err(), Error::Empty { what: "labels" });
    }
}
