//! Diversity of a population of classifiers, from their predictions `preds` `[M, B]` on one evaluation set.
//!
//! * Mean pairwise disagreement: δ = (1/C(M,2)) Σ_{i<j} (1/B) Σ_b 1[ŷ_{i,b} ≠ ŷ_{j,b}]. Computed in O(M·B)
//!   from the class counts n_{b,c} = #{m : ŷ_{m,b} = c} of each row: the pairs that disagree on row b number
//!   C(M,2) − Σ_c C(n_{b,c}, 2), so δ = (1/B) Σ_b (1 − Σ_c C(n_{b,c},2) / C(M,2)).
//! * Error-set IoU: with E_m = {b : ŷ_{m,b} ≠ y_b} the misclassified rows of classifier m,
//!   IoU = mean over pairs i < j with E_i ∪ E_j ≠ ∅ of |E_i ∩ E_j| / |E_i ∪ E_j|. Identical classifiers give 1;
//!   a collapsed population (METHOD.md §2: .70 against .48 for trained nets) gives values near 1. Pairs are
//!   compared on bit sets of the error rows (64 rows per word).
//!
//! Both are `None` when there is no pair to average (M < 2, or every pair has an empty error union).

use ndarray::ArrayView2;

use super::Error;

/// The mean over pairs of classifiers of the fraction of rows on which their predictions differ (formula in the
/// module docs); `None` when M < 2.
pub fn mean_pairwise_disagreement(preds: ArrayView2<'_, usize>) -> Result<Option<f64>, Error> {
    let (m, b) = preds.dim();
    if b == 0 {
        return Err(Error::Empty { what: "predictions" });
    }
    if m < 2 {
        return Ok(None);
    }
    let pairs = (m * (m - 1) / 2) as f64;
    let mut column_sorted = vec![0usize; m];
    let mut total = 0f64;
    for column in preds.columns() {
        // Class counts as the lengths of runs of equal labels in the sorted column (labels are not bounded).
        column_sorted.iter_mut().zip(column).for_each(|(s, &c)| *s = c);
        column_sorted.sort_unstable();
        let agreeing: usize = column_sorted.chunk_by(|a, b| a == b).map(|run| run.len() * (run.len() - 1) / 2).sum();
        total += 1.0 - agreeing as f64 / pairs;
    }
    Ok(Some(total / b as f64))
}

/// The mean over pairs of classifiers of the intersection over union of their error sets on labels `y` `[B]`
/// (formula in the module docs); pairs whose union is empty are skipped, `None` when all are.
pub fn error_iou(preds: ArrayView2<'_, usize>, y: &[usize]) -> Result<Option<f64>, Error> {
    let (m, b) = preds.dim();
    if b == 0 {
        return Err(Error::Empty { what: "predictions" });
    }
    super::error::check_len("labels", b, y.len())?;
    let words = b.div_ceil(64);
    let mut sets = vec![0u64; m * words];
    for (mi, row) in preds.rows().into_iter().enumerate() {
        for (bi, (&p, &label)) in row.iter().zip(y).enumerate() {
            if p != label {
                sets[mi * words + bi / 64] |= 1 << (bi % 64);
            }
        }
    }
    let (mut sum, mut counted) = (0f64, 0usize);
    for i in 0..m {
        let ei = &sets[i * words..(i + 1) * words];
        for j in i + 1..m {
            let ej = &sets[j * words..(j + 1) * words];
            let (mut inter, mut union) = (0u32, 0u32);
            for (a, b) in ei.iter().zip(ej) {
                inter += (a & b).count_ones();
                union += (a | b).count_ones();
            }
            if union > 0 {
                sum += inter as f64 / union as f64;
                counted += 1;
            }
        }
    }
    Ok((counted > 0).then(|| sum / counted as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn identical_classifiers_agree_and_share_their_errors() {
        let p = array![[0usize, 1, 1, 0], [0, 1, 1, 0]];
        assert_eq!(mean_pairwise_disagreement(p.view()).unwrap(), Some(0.0));
        assert_eq!(error_iou(p.view(), &[0, 0, 1, 1]).unwrap(), Some(1.0));
    }

    #[test]
    fn hand_computed_three_classifiers() {
        // Rows b = 0..3, y = (0, 1, 2, 0).
        //   m0 = (0, 1, 2, 0): E0 = {}        m1 = (1, 1, 2, 1): E1 = {0, 3}     m2 = (1, 0, 2, 0): E2 = {0, 1}
        // Disagreement: (0,1) differ on 2 of 4 rows, (0,2) on 2, (1,2) on 2 → 1/2.
        // IoU: (0,1) |{}|/|{0,3}| = 0, (0,2) 0, (1,2) |{0}|/|{0,1,3}| = 1/3 → mean 1/9.
        let p = array![[0usize, 1, 2, 0], [1, 1, 2, 1], [1, 0, 2, 0]];
        let y = [0, 1, 2, 0];
        assert!((mean_pairwise_disagreement(p.view()).unwrap().unwrap() - 0.5).abs() < 1e-12);
        assert!((error_iou(p.view(), &y).unwrap().unwrap() - 1.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn counting_formula_matches_pairwise_counting() {
        // Over 70 rows (two bit-set words) and 4 classes, against the definition's double loop.
        let mut r = crate::rng::rng(3);
        let p = ndarray::Array2::from_shape_fn((9, 70), |_| rand::Rng::random_range(&mut r, 0..4usize));
        let y: Vec<usize> = (0..70).map(|b| b % 4).collect();
        let (mut dis, mut iou, mut n_iou) = (0.0, 0.0, 0);
        for i in 0..9 {
            for j in i + 1..9 {
                dis += (0..70).filter(|&b| p[[i, b]] != p[[j, b]]).count() as f64 / 70.0;
                let ei = |m: usize, b: usize| p[[m, b]] != y[b];
                let inter = (0..70).filter(|&b| ei(i, b) && ei(j, b)).count();
                let union = (0..70).filter(|&b| ei(i, b) || ei(j, b)).count();
                if union > 0 {
                    iou += inter as f64 / union as f64;
                    n_iou += 1;
                }
            }
        }
        assert!((mean_pairwise_disagreement(p.view()).unwrap().unwrap() - dis / 36.0).abs() < 1e-12);
        assert!((error_iou(p.view(), &y).unwrap().unwrap() - iou / n_iou as f64).abs() < 1e-12);
    }

    #[test]
    fn no_pairs_give_none() {
        let one = array![[0usize, 1]];
        assert_eq!(mean_pairwise_disagreement(one.view()).unwrap(), None);
        assert_eq!(error_iou(one.view(), &[1, 0]).unwrap(), None);
        // Two perfect classifiers: every union is empty.
        let perfect = array![[1usize, 0], [1, 0]];
        assert_eq!(error_iou(perfect.view(), &[1, 0]).unwrap(), None);
        assert!(matches!(error_iou(perfect.view(), &[1]).unwrap_err(), Error::Length { .. }));
    }
}
