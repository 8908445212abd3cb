//! Losses on logits: cross entropy, disagreement cross entropy and the CDC loss ℓ_cdc, as one weighted sum.
//!
//! For logits z ∈ R^N and a label y (METHOD.md §4):
//!
//! * cross entropy CE(z, y) = logsumexp(z) − z_y;
//! * disagreement cross entropy DCE(z, ŷ) = logsumexp(z) − (1/(N−1)) Σ_{c≠ŷ} z_c, the cross entropy against
//!   the uniform distribution over the classes other than ŷ (for N = 2, CE with the label flipped).
//!
//! Both are logsumexp(z) − ⟨t, z⟩ for a target distribution t (one-hot e_y, or uniform off ŷ), so their
//! gradient is ∂ℓ/∂z = softmax(z) − t. A [`Targets`] gives every row b of a batch a label y_b, a
//! [`LossKind`] and a weight w_b, and the loss of classifier m is L_m = Σ_b w_b ℓ_b(z_{m,b}). Thus:
//!
//! * mean CE: [`Targets::cross_entropy`], w_b = 1/B;
//! * ℓ_cdc(g; P, Q) = (Σ_P CE(g(x), ŷ(x)) + λ Σ_Q DCE(g(x), ŷ(x))) / (|P| + |Q|): [`Targets::cdc`] on the
//!   rows [P; Q], λ = 1/(|Q|+1) by default, so that disagreeing on all of Q never outweighs one disagreement
//!   on P;
//! * any other weighted mix: [`Targets::new`].
//!
//! Row losses are computed in f64 from f32 logits, with the maximum subtracted before exponentiation.

use ndarray::{Array1, ArrayView1, ArrayView3, ArrayViewMut1};
use serde::{Deserialize, Serialize};

use super::Error;

/// Which loss a row contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LossKind {
    /// Cross entropy against the label: agree with it.
    #[default]
    Ce,
    /// Disagreement cross entropy against the label: predict any other class.
    Dce,
}

/// The target of one row: label, loss kind and weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The class label (for ℓ_cdc, the deployed model's pseudo-label ŷ).
    pub label: usize,
    /// Cross entropy or disagreement cross entropy.
    pub kind: LossKind,
    /// The row's weight w_b in L = Σ_b w_b ℓ_b; must be finite.
    pub weight: f32,
}

/// Per-row targets of a batch; the loss of a classifier is Σ_b w_b ℓ_b (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Targets {
    rows: Vec<Target>,
}

impl Targets {
    /// Targets from explicit rows (a weighted mix of CE and DCE).
    pub fn new(rows: Vec<Target>) -> Self {
        Self { rows }
    }

    /// Mean cross entropy: every row CE with weight 1/B.
    pub fn cross_entropy(labels: &[usize]) -> Self {
        Self::uniform(labels, LossKind::Ce)
    }

    /// Mean disagreement cross entropy: every row DCE with weight 1/B.
    pub fn disagreement(labels: &[usize]) -> Self {
        Self::uniform(labels, LossKind::Dce)
    }

    /// ℓ_cdc for the rows [P; Q] (P's rows first, then Q's): CE on P with weight 1/(|P|+|Q|), DCE on Q with
    /// weight λ/(|P|+|Q|); `lambda` defaults to [`Targets::default_lambda`]`(|Q|)` = 1/(|Q|+1).
    pub fn cdc(p_labels: &[usize], q_labels: &[usize], lambda: Option<f32>) -> Self {
        let lambda = lambda.unwrap_or_else(|| Self::default_lambda(q_labels.len()));
        let n = (p_labels.len() + q_labels.len()) as f32;
        let p = p_labels.iter().map(|&label| Target { label, kind: LossKind::Ce, weight: 1.0 / n });
        let q = q_labels.iter().map(|&label| Target { label, kind: LossKind::Dce, weight: lambda / n });
        Self { rows: p.chain(q).collect() }
    }

    /// The default DCE weight of ℓ_cdc for a window of `n_q` rows: λ = 1/(n_q + 1).
    pub fn default_lambda(n_q: usize) -> f32 {
        1.0 / (n_q as f32 + 1.0)
    }

    /// The rows.
    pub fn rows(&self) -> &[Target] {
        &self.rows
    }

    /// Number of rows B.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The loss L_m = Σ_b w_b ℓ_b(z_{m,b}) of each classifier, from logits `[M, B, N]`.
    pub fn loss(&self, logits: ArrayView3<'_, f32>) -> Result<Array1<f32>, Error> {
        let (m, b, n) = logits.dim();
        if m == 0 {
            return Err(Error::Empty { what: "logits" });
        }
        self.check(b, n)?;
        for (mi, z) in logits.outer_iter().enumerate() {
            super::error::check_finite("logits", z).map_err(|e| match e {
                // Report the classifier index as the row, the sample as the column.
                Error::NonFinite { what, row, value, .. } => Error::NonFinite { what, row: mi, col: row, value },
                e => e,
            })?;
        }
        Ok(logits
            .outer_iter()
            .map(|z| {
                z.outer_iter().zip(&self.rows).map(|(z, t)| t.weight as f64 * row_loss(z, t, None)).sum::<f64>() as f32
            })
            .collect())
    }

    /// Checks the targets against a batch of `batch` rows and `n_classes` classes.
    pub(crate) fn check(&self, batch: usize, n_classes: usize) -> Result<(), Error> {
        if self.rows.is_empty() {
            return Err(Error::Empty { what: "targets" });
        }
        if self.rows.len() != batch {
            return Err(Error::Length { what: "targets", expected: batch, got: self.rows.len() });
        }
        for (row, t) in self.rows.iter().enumerate() {
            if t.label >= n_classes {
                return Err(Error::Label { row, label: t.label, n_classes });
            }
            if t.kind == LossKind::Dce && n_classes < 2 {
                return Err(Error::TooFewClasses { n_classes });
            }
            if !t.weight.is_finite() {
                return Err(Error::NonFinite { what: "target weights", row: 0, col: row, value: t.weight });
            }
        }
        Ok(())
    }

    fn uniform(labels: &[usize], kind: LossKind) -> Self {
        let weight = 1.0 / labels.len() as f32;
        Self { rows: labels.iter().map(|&label| Target { label, kind, weight }).collect() }
    }
}

impl FromIterator<Target> for Targets {
    fn from_iter<I: IntoIterator<Item = Target>>(iter: I) -> Self {
        Self { rows: iter.into_iter().collect() }
    }
}

/// logsumexp(z) = max z + ln Σ_c exp(z_c − max z), in f64.
pub fn log_sum_exp(z: &[f32]) -> f64 {
    lse(ArrayView1::from(z))
}

/// CE(z, y) = logsumexp(z) − z_y.
pub fn cross_entropy(z: &[f32], label: usize) -> Result<f64, Error> {
    single(z, Target { label, kind: LossKind::Ce, weight: 1.0 })
}

/// DCE(z, ŷ) = logsumexp(z) − (1/(N−1)) Σ_{c≠ŷ} z_c; needs N ≥ 2.
pub fn disagreement_cross_entropy(z: &[f32], label: usize) -> Result<f64, Error> {
    single(z, Target { label, kind: LossKind::Dce, weight: 1.0 })
}

fn single(z: &[f32], t: Target) -> Result<f64, Error> {
    Targets::new(vec![t]).check(1, z.len())?;
    if let Some((col, &value)) = z.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { what: "logits", row: 0, col, value });
    }
    Ok(row_loss(ArrayView1::from(z), &t, None))
}

fn lse(z: ArrayView1<'_, f32>) -> f64 {
    let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln()
}

/// The row loss ℓ = logsumexp(z) − ⟨t, z⟩ (unweighted), and, with `grad`, writes w·(softmax(z) − t) there.
/// Labels and class counts must have been checked.
pub(crate) fn row_loss(z: ArrayView1<'_, f32>, t: &Target, grad: Option<ArrayViewMut1<'_, f32>>) -> f64 {
    let n = z.len();
    let Some(mut g) = grad else {
        return loss_from_lse(z, t, lse(z));
    };
    // exp(z_c − max z) once per class serves both the log-sum-exp and the softmax (this head runs once per row
    // and member in every refinement step, where the exponentials were a tenth of a window's time).
    let max = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let mut on_stack = [0f64; STACK_CLASSES];
    let mut on_heap = Vec::new();
    let e: &mut [f64] = if n <= STACK_CLASSES {
        &mut on_stack[..n]
    } else {
        on_heap.resize(n, 0.0);
        &mut on_heap
    };
    for (e, &v) in e.iter_mut().zip(z) {
        *e = (v as f64 - max).exp();
    }
    let sum: f64 = e.iter().sum();
    let off = match t.kind {
        LossKind::Ce => 0.0,
        LossKind::Dce => 1.0 / (n - 1) as f64,
    };
    let w = t.weight as f64;
    for (c, (g, &e)) in g.iter_mut().zip(e.iter()).enumerate() {
        let target = match t.kind {
            LossKind::Ce => (c == t.label) as u8 as f64,
            LossKind::Dce if c == t.label => 0.0,
            LossKind::Dce => off,
        };
        *g = (w * (e / sum - target)) as f32;
    }
    loss_from_lse(z, t, max + sum.ln())
}

/// Classes whose exponentials [`row_loss`] keeps on the stack (more go to the heap).
const STACK_CLASSES: usize = 16;

/// ℓ = lse − ⟨t, z⟩ for the row's log-sum-exp `lse`.
fn loss_from_lse(z: ArrayView1<'_, f32>, t: &Target, lse: f64) -> f64 {
    let n = z.len();
    let zy = z[t.label] as f64;
    match t.kind {
        LossKind::Ce => lse - zy,
        LossKind::Dce => lse - (z.iter().map(|&v| v as f64).sum::<f64>() - zy) / (n - 1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array3};

    #[test]
    fn ce_and_dce_match_their_formulas() {
        let z = [1.0f32, -0.5, 2.0];
        let lse = (1f64.exp() + (-0.5f64).exp() + 2f64.exp()).ln();
        assert!((log_sum_exp(&z) - lse).abs() < 1e-12);
        assert!((cross_entropy(&z, 1).unwrap() - (lse + 0.5)).abs() < 1e-7);
        // DCE(z, 2) = lse − (z_0 + z_1)/2.
        assert!((disagreement_cross_entropy(&z, 2).unwrap() - (lse - 0.25)).abs() < 1e-7);
    }

    #[test]
    fn dce_with_two_classes_is_ce_with_the_label_flipped() {
        for z in [[0.3f32, -1.2], [5.0, 5.0], [-40.0, 12.0]] {
            for y in 0..2 {
                let dce = disagreement_cross_entropy(&z, y).unwrap();
                let ce = cross_entropy(&z, 1 - y).unwrap();
                assert!((dce - ce).abs() < 1e-9, "{z:?} {y}: {dce} vs {ce}");
            }
        }
    }

    #[test]
    fn cdc_weights_follow_the_definition() {
        assert_eq!(Targets::default_lambda(20), 1.0 / 21.0);
        let t = Targets::cdc(&[0, 1], &[1, 1, 0], None);
        assert_eq!(t.len(), 5);
        let kinds: Vec<_> = t.rows().iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [LossKind::Ce, LossKind::Ce, LossKind::Dce, LossKind::Dce, LossKind::Dce]);
        assert_eq!(t.rows()[0].weight, 1.0 / 5.0);
        assert_eq!(t.rows()[4].weight, 0.25 / 5.0);
        assert_eq!(Targets::cdc(&[0], &[1], Some(2.0)).rows()[1].weight, 1.0);
        assert!(Targets::cross_entropy(&[0, 1, 2, 1]).rows().iter().all(|r| r.weight == 0.25));
    }

    #[test]
    fn cdc_loss_on_a_tiny_case_by_hand() {
        // One classifier, N = 2; P = {z=(2,0), ŷ=0}, Q = {z=(1,3), ŷ=1}; λ = 1/(1+1) = 1/2.
        // CE((2,0), 0) = ln(1 + e^-2); DCE((1,3), 1) = CE((1,3), 0) = ln(e + e^3) − 1.
        // ℓ_cdc = (ln(1 + e^-2) + ½(ln(e + e^3) − 1)) / 2.
        let logits = Array3::from_shape_vec((1, 2, 2), vec![2.0f32, 0.0, 1.0, 3.0]).unwrap();
        let expected = ((1.0 + (-2f64).exp()).ln() + 0.5 * ((1f64.exp() + 3f64.exp()).ln() - 1.0)) / 2.0;
        let l = Targets::cdc(&[0], &[1], None).loss(logits.view()).unwrap();
        assert!((l[0] as f64 - expected).abs() < 1e-6, "{l} vs {expected}");
    }

    #[test]
    fn the_gradient_is_the_float64_softmax_minus_target_for_few_and_many_classes() {
        // 3 classes keep the exponentials on the stack, 40 on the heap; both against a float64 softmax written
        // out, and the loss is the same with or without the gradient.
        for n in [3usize, STACK_CLASSES, STACK_CLASSES + 1, 40] {
            let z = Array1::from_shape_fn(n, |c| ((c * 37 % 11) as f32 - 5.0) * 0.7);
            for kind in [LossKind::Ce, LossKind::Dce] {
                let t = Target { label: n / 2, kind, weight: 0.25 };
                let mut g = Array1::zeros(n);
                let with = row_loss(z.view(), &t, Some(g.view_mut()));
                assert_eq!(with, row_loss(z.view(), &t, None), "n={n} {kind:?}");
                let sum: f64 = z.iter().map(|&v| (v as f64).exp()).sum();
                for c in 0..n {
                    let target = match kind {
                        LossKind::Ce => (c == t.label) as u8 as f64,
                        LossKind::Dce if c == t.label => 0.0,
                        LossKind::Dce => 1.0 / (n - 1) as f64,
                    };
                    let want = 0.25 * ((z[c] as f64).exp() / sum - target);
                    assert!(
                        (g[c] as f64 - want).abs() <= 1e-7 * want.abs().max(1e-3),
                        "n={n} c={c}: {} vs {want}",
                        g[c]
                    );
                }
            }
        }
    }

    #[test]
    fn row_gradient_is_weighted_softmax_minus_target() {
        let z = Array1::from(vec![0.5f32, -1.0, 2.0, 0.0]);
        for kind in [LossKind::Ce, LossKind::Dce] {
            let t = Target { label: 2, kind, weight: 0.5 };
            let mut g = Array1::zeros(4);
            row_loss(z.view(), &t, Some(g.view_mut()));
            for c in 0..4 {
                let h = 1e-3f32;
                let (mut zp, mut zm) = (z.clone(), z.clone());
                zp[c] += h;
                zm[c] -= h;
                let fd = 0.5 * (row_loss(zp.view(), &t, None) - row_loss(zm.view(), &t, None)) / (2.0 * h as f64);
                assert!((g[c] as f64 - fd).abs() < 1e-4, "{kind:?} c={c}: {} vs {fd}", g[c]);
            }
        }
    }

    #[test]
    fn bad_targets_and_logits_are_refused() {
        assert_eq!(cross_entropy(&[0.0, 1.0], 2).unwrap_err(), Error::Label { row: 0, label: 2, n_classes: 2 });
        assert_eq!(disagreement_cross_entropy(&[0.0], 0).unwrap_err(), Error::TooFewClasses { n_classes: 1 });
        let e = cross_entropy(&[0.0, f32::NAN], 0).unwrap_err();
        assert!(matches!(e, Error::NonFinite { what: "logits", row: 0, col: 1, .. }), "{e}");
        let logits = Array3::<f32>::zeros((2, 3, 2));
        let e = Targets::cross_entropy(&[0, 1]).loss(logits.view()).unwrap_err();
        assert_eq!(e, Error::Length { what: "targets", expected: 3, got: 2 });
        assert_eq!(e.to_string(), "targets has length 2, expected 3");
        let e = Targets::new(vec![]).loss(Array3::zeros((1, 0, 2)).view()).unwrap_err();
        assert_eq!(e, Error::Empty { what: "targets" });
        let w = Target { label: 0, kind: LossKind::Ce, weight: f32::INFINITY };
        let e = Targets::new(vec![w; 3]).loss(logits.view()).unwrap_err();
        assert!(matches!(e, Error::NonFinite { what: "target weights", col: 0, .. }), "{e}");
        let mut bad = logits.clone();
        bad[[1, 2, 0]] = f32::NEG_INFINITY;
        let e = Targets::cross_entropy(&[0, 1, 1]).loss(bad.view()).unwrap_err();
        assert!(matches!(e, Error::NonFinite { what: "logits", row: 1, col: 2, .. }), "{e}");
    }

    #[test]
    fn targets_serialise_as_a_list_of_rows() {
        let t = Targets::cdc(&[1], &[0], Some(0.5));
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, r#"[{"label":1,"kind":"ce","weight":0.5},{"label":0,"kind":"dce","weight":0.25}]"#);
        assert_eq!(serde_json::from_str::<Targets>(&s).unwrap(), t);
    }
}
