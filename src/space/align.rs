//! Permutation alignment of hidden units (weight matching, as in Git Re-Basin).
//!
//! Permuting the units of a hidden layer — rows of the incoming weight and bias, columns of the outgoing
//! weight — leaves the function an MLP computes unchanged, so independent training runs end in different
//! permutation "modes" of one solution. A generative model regressing across runs would average those modes
//! into a shrunken, useless network; aligning every run to one reference first removes the symmetry.
//!
//! Weight matching maximises Σ_l ⟨W_l^ref, P_l W_l P_{l−1}^T⟩ (+ biases) over the permutations P_l by
//! coordinate ascent: with the other layers fixed, each P_l is a linear assignment problem.

use ndarray::{ArrayView1, ArrayView2};
use rand::seq::SliceRandom;

use super::assignment::linear_sum_assignment;
use super::{Error, Layout};
use crate::rng::Rng;

/// One permutation per hidden layer: `perms[l][i] = j` means unit `i` of hidden layer `l` in the aligned
/// network is unit `j` of the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenPermutation {
    /// Per hidden layer, in order.
    pub perms: Vec<Vec<usize>>,
}

impl HiddenPermutation {
    /// The identity for `layout`.
    pub fn identity(layout: &Layout) -> Self {
        let sizes = layout.sizes();
        Self { perms: sizes[1..sizes.len() - 1].iter().map(|&h| (0..h).collect()).collect() }
    }

    /// Output permutation of linear layer `i` (identity for the last layer).
    fn out_perm(&self, i: usize) -> Option<&[usize]> {
        self.perms.get(i).map(Vec::as_slice)
    }

    /// Input permutation of linear layer `i` (identity for the first layer).
    fn in_perm(&self, i: usize) -> Option<&[usize]> {
        i.checked_sub(1).and_then(|l| self.perms.get(l)).map(Vec::as_slice)
    }
}

/// Writes the aligned copy of `theta` into `out`: `out` computes the same function as `theta`.
pub fn permute(layout: &Layout, theta: &[f32], perm: &HiddenPermutation, out: &mut [f32]) -> Result<(), Error> {
    layout.check(theta)?;
    layout.check(out)?;
    for i in 0..layout.n_layers() {
        let (w, b) = layout.layer(i);
        let (rows, cols) = (w.shape[0], w.shape[1]);
        let op = perm.out_perm(i);
        let ip = perm.in_perm(i);
        for r in 0..rows {
            let sr = op.map_or(r, |p| p[r]);
            for c in 0..cols {
                let sc = ip.map_or(c, |p| p[c]);
                out[w.offset + r * cols + c] = theta[w.offset + sr * cols + sc];
            }
            out[b.offset + r] = theta[b.offset + sr];
        }
    }
    Ok(())
}

/// Settings of [`weight_matching`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchingConfig {
    /// Maximum passes over the hidden layers (each pass solves one assignment per layer).
    pub max_passes: usize,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self { max_passes: 50 }
    }
}

/// Finds the hidden-unit permutation of `other` that best matches `reference`.
///
/// Both are stacks `[S, D]` of weight vectors matched jointly (S = 1 for a single network; a whole trajectory
/// to match checkpoints together), summing the similarity over the stack. Layers are visited in a random
/// order drawn from `rng` each pass, until a pass changes nothing.
pub fn weight_matching(
    layout: &Layout,
    reference: ArrayView2<f32>,
    other: ArrayView2<f32>,
    cfg: MatchingConfig,
    rng: &mut Rng,
) -> Result<HiddenPermutation, Error> {
    for cols in [reference.ncols(), other.ncols()] {
        if cols != layout.dim() {
            return Err(Error::Dim { expected: layout.dim(), got: cols });
        }
    }
    if reference.nrows() != other.nrows() {
        return Err(Error::Dim { expected: reference.nrows(), got: other.nrows() });
    }
    let mut perm = HiddenPermutation::identity(layout);
    let hidden = perm.perms.len();
    let mut order: Vec<usize> = (0..hidden).collect();
    for _ in 0..cfg.max_passes {
        order.shuffle(rng);
        let mut changed = false;
        for &l in &order {
            let new = best_layer_perm(layout, reference, other, &perm, l);
            if new != perm.perms[l] {
                perm.perms[l] = new;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    Ok(perm)
}

/// The optimal permutation of hidden layer `l` with all other layers' permutations fixed.
fn best_layer_perm(
    layout: &Layout,
    reference: ArrayView2<f32>,
    other: ArrayView2<f32>,
    perm: &HiddenPermutation,
    l: usize,
) -> Vec<usize> {
    let (w_in, b_in) = layout.layer(l);
    let (w_out, _) = layout.layer(l + 1);
    let h = w_in.shape[0];
    let cols_in = w_in.shape[1];
    let rows_out = w_out.shape[0];
    let in_perm = perm.in_perm(l);
    let out_perm = perm.out_perm(l + 1);
    // sim[a][b]: how well unit b of `other` plays unit a of the reference.
    let mut sim = vec![0f64; h * h];
    for (rref, roth) in reference.rows().into_iter().zip(other.rows()) {
        let (rref, roth): (ArrayView1<f32>, ArrayView1<f32>) = (rref, roth);
        for a in 0..h {
            for bu in 0..h {
                let mut s = 0f64;
                for c in 0..cols_in {
                    let sc = in_perm.map_or(c, |p| p[c]);
                    s += rref[w_in.offset + a * cols_in + c] as f64 * roth[w_in.offset + bu * cols_in + sc] as f64;
                }
                s += rref[b_in.offset + a] as f64 * roth[b_in.offset + bu] as f64;
                for m in 0..rows_out {
                    let sm = out_perm.map_or(m, |p| p[m]);
                    s += rref[w_out.offset + m * h + a] as f64 * roth[w_out.offset + sm * h + bu] as f64;
                }
                sim[a * h + bu] += s;
            }
        }
    }
    let cost: Vec<f64> = sim.iter().map(|s| -s).collect();
    linear_sum_assignment(&cost, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use crate::space::{KaimingUniform, Source};
    use ndarray::Array2;

    /// An independent f64 forward (ReLU hidden layers) to check that permutation keeps the function.
    fn forward(layout: &Layout, theta: &[f32], x: &[f64]) -> Vec<f64> {
        let mut h: Vec<f64> = x.to_vec();
        for i in 0..layout.n_layers() {
            let (w, b) = layout.layer(i);
            let (rows, cols) = (w.shape[0], w.shape[1]);
            let mut next = vec![0f64; rows];
            for r in 0..rows {
                let mut s = theta[b.offset + r] as f64;
                for c in 0..cols {
                    s += theta[w.offset + r * cols + c] as f64 * h[c];
                }
                next[r] = if i + 1 < layout.n_layers() { s.max(0.0) } else { s };
            }
            h = next;
        }
        h
    }

    fn random_perm(layout: &Layout, rng: &mut Rng) -> HiddenPermutation {
        let mut p = HiddenPermutation::identity(layout);
        p.perms.iter_mut().for_each(|q| q.shuffle(rng));
        p
    }

    #[test]
    fn permuting_hidden_units_keeps_the_function() {
        let layout = Layout::parse("5-7-6-3").unwrap();
        let mut r = rng::rng(3);
        let theta = KaimingUniform.sample(&layout, 1, &mut r).row(0).to_vec();
        let perm = random_perm(&layout, &mut r);
        let mut out = vec![0f32; layout.dim()];
        permute(&layout, &theta, &perm, &mut out).unwrap();
        assert_ne!(out, theta);
        for k in 0..5 {
            let x: Vec<f64> = (0..5).map(|j| ((k * 5 + j) as f64).sin()).collect();
            let (a, b) = (forward(&layout, &theta, &x), forward(&layout, &out, &x));
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() < 1e-9, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn weight_matching_undoes_a_random_permutation() {
        let layout = Layout::parse("9-16-16-2").unwrap();
        let mut r = rng::rng(4);
        for _ in 0..5 {
            let theta = KaimingUniform.sample(&layout, 1, &mut r);
            let perm = random_perm(&layout, &mut r);
            let mut scrambled = Array2::zeros((1, layout.dim()));
            permute(&layout, theta.row(0).as_slice().unwrap(), &perm, scrambled.row_mut(0).into_slice().unwrap())
                .unwrap();
            let found =
                weight_matching(&layout, theta.view(), scrambled.view(), MatchingConfig::default(), &mut r).unwrap();
            let mut aligned = vec![0f32; layout.dim()];
            permute(&layout, scrambled.row(0).as_slice().unwrap(), &found, &mut aligned).unwrap();
            assert_eq!(aligned, theta.row(0).to_vec());
        }
    }

    #[test]
    fn weight_matching_does_not_increase_distance() {
        let layout = Layout::parse("4-12-12-3").unwrap();
        let mut r = rng::rng(5);
        let a = KaimingUniform.sample(&layout, 1, &mut r);
        let b = KaimingUniform.sample(&layout, 1, &mut r);
        let p = weight_matching(&layout, a.view(), b.view(), MatchingConfig::default(), &mut r).unwrap();
        let mut aligned = vec![0f32; layout.dim()];
        permute(&layout, b.row(0).as_slice().unwrap(), &p, &mut aligned).unwrap();
        let d = |x: &[f32]| x.iter().zip(a.row(0)).map(|(u, v)| ((u - v) as f64).powi(2)).sum::<f64>();
        assert!(d(&aligned) <= d(b.row(0).as_slice().unwrap()) + 1e-9);
    }
}
