//! Seeded random splits (no stratification): one permutation of the rows, cut into consecutive parts.

use rand::seq::SliceRandom;

use super::dataset::Dataset;
use super::error::{Error, Result};
use crate::rng::Rng;

/// The parts a model is trained and judged on.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    /// Rows to fit on.
    pub train: Dataset,
    /// Rows for early stopping and model selection.
    pub val: Dataset,
    /// Held-out rows from the training distribution (P).
    pub test: Dataset,
    /// Held-out rows from a shifted distribution (Q), where the data set has one (UCI heart's other hospitals).
    pub shifted: Option<Dataset>,
}

impl Splits {
    /// `data` split by [`split_indices`] with fractions `[train, val, test]`; no shifted part.
    pub fn random(data: &Dataset, fractions: [f64; 3], rng: &mut Rng) -> Result<Self> {
        let parts = split_indices(data.len(), &fractions, rng)?;
        Ok(Self::from_parts(data, &parts))
    }

    /// `data` split by [`split_sizes`] with sizes `[train, val, test]`; no shifted part.
    pub fn random_sizes(data: &Dataset, sizes: [usize; 3], rng: &mut Rng) -> Result<Self> {
        let parts = split_sizes(data.len(), &sizes, rng)?;
        Ok(Self::from_parts(data, &parts))
    }

    /// Every split transformed by `shift` (a *task*: base runs trained on rotated digits, say). Split j
    /// (train 0, val 1, test 2, shifted pool 3) draws its randomness from `seed + j`, so the same seed gives the
    /// same rows wherever the task is rebuilt (training, evaluation, context sets).
    pub fn shifted(&self, shift: &super::Shift, seed: u64) -> Result<Self> {
        let apply = |d: &Dataset, j: u64| shift.apply(d, seed.wrapping_add(j));
        Ok(Splits {
            train: apply(&self.train, 0)?,
            val: apply(&self.val, 1)?,
            test: apply(&self.test, 2)?,
            shifted: self.shifted.as_ref().map(|d| apply(d, 3)).transpose()?,
        })
    }

    fn from_parts(data: &Dataset, parts: &[Vec<usize>]) -> Self {
        Splits {
            train: data.select(&parts[0]),
            val: data.select(&parts[1]),
            test: data.select(&parts[2]),
            shifted: None,
        }
    }
}

/// A random permutation of `0..n` cut into parts of the given sizes (each sorted); the sizes must add up to
/// at most `n` (rows left over belong to no part).
pub fn split_sizes(n: usize, sizes: &[usize], rng: &mut Rng) -> Result<Vec<Vec<usize>>> {
    let total = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
    if total.is_none_or(|t| t > n) {
        return Err(Error::Split {
            n,
            expected: "sizes adding up to at most n",
            found: sizes.iter().map(|&s| s as f64).collect(),
        });
    }
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(rng);
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&s| {
            let mut part = perm[start..start + s].to_vec();
            part.sort_unstable();
            start += s;
            part
        })
        .collect())
}

/// A random permutation of `0..n` cut by `fractions` (non-negative, finite, summing to 1 within 10⁻⁹) into
/// parts that together cover every row once.
///
/// For fractions f_1…f_k part i gets the rows between cuts
/// `round(n · (f_1 + … + f_{i-1}))` and `round(n · (f_1 + … + f_i))` of the permutation, so the sizes add up to
/// n and differ from `n · f_i` by less than 1 (60/20/20 of 1797 rows: 1078/360/359). Each part's indices are
/// returned in ascending order, so a part is a subsequence of the file. The same seed gives the same split.
pub fn split_indices(n: usize, fractions: &[f64], rng: &mut Rng) -> Result<Vec<Vec<usize>>> {
    let sum: f64 = fractions.iter().sum();
    if fractions.is_empty() || fractions.iter().any(|f| !(f.is_finite() && *f >= 0.0)) || (sum - 1.0).abs() > 1e-9 {
        return Err(Error::Split { n, expected: "non-negative fractions summing to 1", found: fractions.to_vec() });
    }
    let mut cum = 0.0;
    let mut prev = 0usize;
    let mut sizes = Vec::with_capacity(fractions.len());
    for (i, f) in fractions.iter().enumerate() {
        cum += f;
        let cut = if i + 1 == fractions.len() { n } else { ((n as f64 * cum).round() as usize).clamp(prev, n) };
        sizes.push(cut - prev);
        prev = cut;
    }
    split_sizes(n, &sizes, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng;

    #[test]
    fn rounding_matches_the_docs() -> Result<()> {
        let parts = split_indices(1797, &[0.6, 0.2, 0.2], &mut rng(0))?;
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [1078, 360, 359]);
        let parts = split_indices(10, &[0.0, 1.0], &mut rng(0))?;
        assert_eq!(parts[1], (0..10).collect::<Vec<_>>());
        Ok(())
    }

    #[test]
    fn bad_fractions_and_sizes() {
        let err = split_indices(5, &[0.5, 0.6], &mut rng(0)).unwrap_err();
        assert_eq!(err.to_string(), "split of 5 rows: expected non-negative fractions summing to 1, found [0.5, 0.6]");
        assert!(split_indices(5, &[1.5, -0.5], &mut rng(0)).is_err());
        assert!(split_indices(5, &[], &mut rng(0)).is_err());
        let err = split_sizes(5, &[3, 3], &mut rng(0)).unwrap_err();
        assert_eq!(err.to_string(), "split of 5 rows: expected sizes adding up to at most n, found [3.0, 3.0]");
        assert!(split_sizes(5, &[usize::MAX, 2], &mut rng(0)).is_err());
    }
}
