//! The fused passes of M small classifiers: logits, and losses with their gradients. One classifier and one
//! block of [`LANES`] rows at a time, every layer of that block computed in per-layer buffers that stay in L1.
//!
//! Why: the batched GEMM pass ([`super::forward`]) writes each layer's `[M·h, B]` activations to memory and
//! reads them back; for the small MLPs this crate generates (9-16-16-2: 466 weights) those tensors are far
//! larger than the weights and the pass is bound by memory traffic and per-GEMM packing, not by arithmetic.
//! Here a block's activations `[h, LANES]` never leave L1, and the inner loop is a broadcast weight times
//! LANES rows accumulated in registers, which the compiler turns into vector FMAs (AVX2 + FMA chosen at run
//! time on x86-64; a portable build otherwise).
//!
//! Results equal the GEMM pass's up to the order of the sums (tested against it and against an f64 reference).

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3};

use super::forward::row;
use super::loss::row_loss;
use super::{Activation, Targets};
use crate::space::Layout;

/// Rows per block: the lane count of the accumulators (4 AVX2 registers of 8 floats).
const LANES: usize = 32;

/// A fused pass, compiled twice: with FMA (`run::<true>`, inside a function built for AVX2 + FMA) and
/// portable (`run::<false>`); [`dispatch`] picks one at run time.
trait Kernel {
    fn run<const FMA: bool>(self);
}

/// Runs `kernel` with AVX2 + FMA where the CPU has them (x86-64), portably otherwise.
fn dispatch(kernel: impl Kernel) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has both features the function is compiled for (checked just above).
        unsafe { run_avx2_fma(kernel) };
        return;
    }
    kernel.run::<false>();
}

/// `kernel` compiled with AVX2 and FMA (its `run` is `#[inline(always)]`, so it is built for them here).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma(kernel: impl Kernel) {
    kernel.run::<true>();
}

/// What every fused pass reads: the classifier family, M classifiers (rows of standard-layout `thetas`) and
/// the shared rows `x`, whose shapes have been checked.
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    pub layout: &'a Layout,
    pub act: Activation,
    pub thetas: ArrayView2<'a, f32>,
    pub x: ArrayView2<'a, f32>,
}

/// Writes the logits of the M classifiers on `x` into `out` `[M, B, C]`.
pub(crate) fn logits(inputs: Inputs<'_>, out: ArrayViewMut3<'_, f32>) {
    dispatch(Logits { inputs, out });
}

/// Per-row losses and their gradients with respect to the weights: `losses` `[M]` and `grads` `[M, D]`
/// (zeroed by the caller) receive what `Mlp::loss_and_grad` returns. Targets must have been checked.
pub(crate) fn loss_and_grad(inputs: Inputs<'_>, targets: &Targets, losses: &mut [f32], grads: ArrayViewMut2<'_, f32>) {
    dispatch(Train { inputs, targets, losses, grads });
}

/// x transposed block by block, `[block][feature][lane]`, zero-padded to whole blocks; shared by every
/// classifier, so it is built once per call. Returns the blocks and their count.
fn transpose_blocks(x: &ArrayView2<'_, f32>) -> (Vec<f32>, usize) {
    let (batch, d_in) = x.dim();
    let n_blocks = batch.div_ceil(LANES);
    let mut xt = vec![0f32; n_blocks * d_in * LANES];
    for (r, xr) in x.outer_iter().enumerate() {
        let block = &mut xt[(r / LANES) * d_in * LANES..][..d_in * LANES];
        for (k, &v) in xr.iter().enumerate() {
            block[k * LANES + r % LANES] = v;
        }
    }
    (xt, n_blocks)
}

/// One block buffer `[h][LANES]` per layer output (`z`: every layer's pre-activations, the last being the
/// logits) and per hidden activation (`a`).
fn block_buffers(layout: &Layout) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let widths = &layout.sizes()[1..];
    let z = widths.iter().map(|&h| vec![0f32; h * LANES]).collect();
    let a = widths[..widths.len() - 1].iter().map(|&h| vec![0f32; h * LANES]).collect();
    (z, a)
}

struct Logits<'a, 'o> {
    inputs: Inputs<'a>,
    out: ArrayViewMut3<'o, f32>,
}

impl Kernel for Logits<'_, '_> {
    #[inline(always)]
    fn run<const FMA: bool>(mut self) {
        let Inputs { layout, act, thetas, x } = self.inputs;
        let (batch, d_in) = x.dim();
        let (xt, n_blocks) = transpose_blocks(&x);
        let (mut z, mut a) = block_buffers(layout);
        for mi in 0..thetas.nrows() {
            let theta = row(&thetas, mi);
            for blk in 0..n_blocks {
                let input = &xt[blk * d_in * LANES..][..d_in * LANES];
                forward_block::<FMA>(layout, act, theta, input, &mut z, &mut a);
                // Rows past the batch are padding.
                let rows = LANES.min(batch - blk * LANES);
                let logits = z.last().expect("a layout has at least one layer");
                for (c, lane) in logits.chunks_exact(LANES).enumerate() {
                    for (r, &v) in lane[..rows].iter().enumerate() {
                        self.out[[mi, blk * LANES + r, c]] = v;
                    }
                }
            }
        }
    }
}

/// One classifier's forward pass over one block: `z[l]` = W_l a_{l−1} + b_l, `a[l]` = σ(z[l]), a_{−1} = input.
#[inline(always)]
fn forward_block<const FMA: bool>(
    layout: &Layout,
    act: Activation,
    theta: &[f32],
    input: &[f32],
    z: &mut [Vec<f32>],
    a: &mut [Vec<f32>],
) {
    for l in 0..layout.n_layers() {
        let (w, b) = layout.layer(l);
        let (done, rest) = a.split_at_mut(l.min(a.len()));
        let src: &[f32] = if l == 0 { input } else { &done[l - 1] };
        dense::<FMA>(&theta[w.range()], &theta[b.range()], w.shape[1], src, &mut z[l]);
        if let Some(al) = rest.first_mut() {
            activate(act, &z[l], al);
        }
    }
}

/// Gradient accumulators hold SUB partial sums per parameter (one vector register), summed once per classifier,
/// so the per-block weight gradients need no horizontal reduction.
const SUB: usize = 8;

struct Train<'a, 't, 'l, 'g> {
    inputs: Inputs<'a>,
    targets: &'t Targets,
    losses: &'l mut [f32],
    grads: ArrayViewMut2<'g, f32>,
}

impl Kernel for Train<'_, '_, '_, '_> {
    #[inline(always)]
    fn run<const FMA: bool>(mut self) {
        let Inputs { layout, act, thetas, x } = self.inputs;
        let (batch, d_in) = x.dim();
        let (xt, n_blocks) = transpose_blocks(&x);
        let (mut z, mut a) = block_buffers(layout);
        // ∂L/∂z of every layer for one block, same shapes as z.
        let (mut dz, _) = block_buffers(layout);
        let c = layout.n_outputs();
        let (mut zrow, mut grow) = (vec![0f32; c], vec![0f32; c]);
        let mut partial = vec![0f32; layout.dim() * SUB];
        for (mi, loss_m) in self.losses.iter_mut().enumerate() {
            let theta = row(&thetas, mi);
            partial.fill(0.0);
            let mut loss = 0f64;
            for blk in 0..n_blocks {
                let input = &xt[blk * d_in * LANES..][..d_in * LANES];
                forward_block::<FMA>(layout, act, theta, input, &mut z, &mut a);
                // The loss head, row by row; padding rows get a zero gradient.
                let top = dz.last_mut().expect("a layout has at least one layer");
                top.fill(0.0);
                let logits = z.last().expect("a layout has at least one layer");
                for r in 0..LANES.min(batch - blk * LANES) {
                    for k in 0..c {
                        zrow[k] = logits[k * LANES + r];
                    }
                    let t = &self.targets.rows()[blk * LANES + r];
                    loss += t.weight as f64
                        * row_loss(ArrayView1::from(&zrow[..]), t, Some(ArrayViewMut1::from(&mut grow[..])));
                    for k in 0..c {
                        top[k * LANES + r] = grow[k];
                    }
                }
                backward_block::<FMA>(layout, act, theta, input, &z, &a, &mut dz, &mut partial);
            }
            *loss_m = loss as f32;
            for (g, p) in self.grads.row_mut(mi).iter_mut().zip(partial.chunks_exact(SUB)) {
                *g = p.iter().sum();
            }
        }
    }
}

/// Backpropagates one block from `dz.last()` = ∂L/∂logits, adding ∂L/∂θ to `partial` (`[D][SUB]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_block<const FMA: bool>(
    layout: &Layout,
    act: Activation,
    theta: &[f32],
    input: &[f32],
    z: &[Vec<f32>],
    a: &[Vec<f32>],
    dz: &mut [Vec<f32>],
    partial: &mut [f32],
) {
    for l in (0..layout.n_layers()).rev() {
        let (w, b) = layout.layer(l);
        let (n_out, n_in) = (w.shape[0], w.shape[1]);
        let (below, here) = dz.split_at_mut(l);
        let g = &here[0];
        let prev: &[f32] = if l == 0 { input } else { &a[l - 1] };
        // ∂L/∂W[j, k] += Σ_r g[j][r]·prev[k][r] and ∂L/∂b[j] += Σ_r g[j][r], in SUB lane-wise partial sums.
        for (j, gj) in g.chunks_exact(LANES).enumerate() {
            for (k, pk) in prev.chunks_exact(LANES).enumerate() {
                // A local accumulator: LLVM keeps it in a register and vectorises; accumulating straight into
                // `partial` compiled to scalar FMAs (it could not rule out aliasing).
                let mut sum = [0f32; SUB];
                for (gc, pc) in gj.chunks_exact(SUB).zip(pk.chunks_exact(SUB)) {
                    for ((s, &gv), &pv) in sum.iter_mut().zip(gc).zip(pc) {
                        *s = fma::<FMA>(gv, pv, *s);
                    }
                }
                let acc = &mut partial[(w.offset + j * n_in + k) * SUB..][..SUB];
                acc.iter_mut().zip(sum).for_each(|(a, s)| *a += s);
            }
            let acc = &mut partial[(b.offset + j) * SUB..][..SUB];
            for gc in gj.chunks_exact(SUB) {
                for (acc, &gv) in acc.iter_mut().zip(gc) {
                    *acc += gv;
                }
            }
        }
        if l == 0 {
            break;
        }
        // ∂L/∂z_{l−1} = (W_l^T g) ⊙ σ'(z_{l−1}).
        let wl = &theta[w.range()];
        let (zp, ap) = (&z[l - 1], &a[l - 1]);
        let out = &mut below[l - 1];
        for k in 0..n_in {
            let mut acc = [0f32; LANES];
            for (j, gj) in g.chunks_exact(LANES).enumerate() {
                let wjk = wl[j * n_in + k];
                for (acc, &gv) in acc.iter_mut().zip(gj) {
                    *acc = fma::<FMA>(wjk, gv, *acc);
                }
            }
            let lanes = k * LANES..(k + 1) * LANES;
            let (out, zk, ak) = (&mut out[lanes.clone()], &zp[lanes.clone()], &ap[lanes]);
            match act {
                // Spelled out so the loop vectorises (a select per lane).
                Activation::Relu => {
                    for ((o, &v), &z) in out.iter_mut().zip(&acc).zip(zk) {
                        *o = if z <= 0.0 { 0.0 } else { v };
                    }
                }
                other => {
                    for (((o, &v), &z), &a) in out.iter_mut().zip(&acc).zip(zk).zip(ak) {
                        *o = other.backprop_one(v, z, a);
                    }
                }
            }
        }
        debug_assert_eq!(n_out * LANES, g.len());
    }
}

/// dst[j] = W[j, :] · src + b[j] for one block: `w` `[n_out, n_in]` row-major, `src` `[n_in][LANES]`, `dst`
/// `[n_out][LANES]`.
#[inline(always)]
fn dense<const FMA: bool>(w: &[f32], bias: &[f32], n_in: usize, src: &[f32], dst: &mut [f32]) {
    for ((wj, &bj), out) in w.chunks_exact(n_in).zip(bias).zip(dst.chunks_exact_mut(LANES)) {
        let mut acc = [bj; LANES];
        for (&wk, a) in wj.iter().zip(src.chunks_exact(LANES)) {
            for (acc, &a) in acc.iter_mut().zip(a) {
                *acc = fma::<FMA>(wk, a, *acc);
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// a·b + c: one instruction with FMA; without it, mul_add would be a slow library call, so a multiply and an add.
#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        c + a * b
    }
}

/// a = σ(z) over one block.
#[inline(always)]
fn activate(act: Activation, z: &[f32], a: &mut [f32]) {
    match act {
        // Spelled out so the loop vectorises (a max per lane).
        Activation::Relu => a.iter_mut().zip(z).for_each(|(a, &z)| *a = z.max(0.0)),
        other => a.iter_mut().zip(z).for_each(|(a, &z)| *a = other.eval(z)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::forward::{forward, standard};
    use crate::space::{KaimingUniform, Source};
    use ndarray::{Array2, Array3};

    /// The logits in f64, one classifier and one row at a time (an independent reference).
    fn reference(layout: &Layout, act: Activation, thetas: &Array2<f32>, x: &Array2<f32>) -> Array3<f64> {
        let c = layout.n_outputs();
        let mut out = Array3::zeros((thetas.nrows(), x.nrows(), c));
        for (mi, theta) in thetas.outer_iter().enumerate() {
            for (r, xr) in x.outer_iter().enumerate() {
                let mut a: Vec<f64> = xr.iter().map(|&v| v as f64).collect();
                for l in 0..layout.n_layers() {
                    let (w, b) = layout.layer(l);
                    let (n_out, n_in) = (w.shape[0], w.shape[1]);
                    let mut z: Vec<f64> = (0..n_out)
                        .map(|j| {
                            let dot: f64 = (0..n_in).map(|k| theta[w.offset + j * n_in + k] as f64 * a[k]).sum();
                            dot + theta[b.offset + j] as f64
                        })
                        .collect();
                    if l + 1 < layout.n_layers() {
                        z.iter_mut().for_each(|v| *v = act.eval(*v as f32) as f64);
                    }
                    a = z;
                }
                for (k, v) in a.into_iter().enumerate() {
                    out[[mi, r, k]] = v;
                }
            }
        }
        out
    }

    #[test]
    fn equals_the_gemm_pass_and_an_f64_reference() {
        let mut rng = crate::rng::rng(11);
        // Batches that are not whole blocks (padding), one row, and several blocks; every activation.
        for (arch, m, b) in [("9-16-16-2", 5, 70), ("3-4-2", 3, 1), ("64-32-10", 4, 33), ("5-7-3-4", 2, 32)] {
            let layout = Layout::parse(arch).unwrap();
            for act in Activation::ALL {
                let thetas = KaimingUniform.sample(&layout, m, &mut rng);
                let x = Array2::from_shape_fn((b, layout.n_inputs()), |(i, j)| ((i * 7 + j * 3) as f32 * 0.37).sin());
                let mut fused = Array3::zeros((m, b, layout.n_outputs()));
                let inputs = Inputs { layout: &layout, act, thetas: thetas.view(), x: x.view() };
                logits(inputs, fused.view_mut());
                let th = standard(thetas.view());
                let gemm = forward(&layout, act, &th.view(), &x.view(), false).logits_mbc(m);
                let exact = reference(&layout, act, &thetas, &x);
                let scale = exact.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
                for ((f, g), e) in fused.iter().zip(&gemm).zip(&exact) {
                    assert!((*f as f64 - e).abs() <= 1e-5 * scale, "{arch} {act}: fused {f} vs f64 {e}");
                    assert!((f - g).abs() as f64 <= 1e-5 * scale, "{arch} {act}: fused {f} vs GEMM {g}");
                }
            }
        }
    }

    #[test]
    fn loss_and_grad_equal_the_gemm_pass() {
        use crate::classifier::backward::backward;
        use crate::classifier::{LossKind, Target};
        let mut rng = crate::rng::rng(5);
        for (arch, m, b) in [("9-16-16-2", 4, 70), ("3-4-2", 2, 1), ("64-32-10", 3, 40), ("5-7-3-4", 2, 64)] {
            let layout = Layout::parse(arch).unwrap();
            let c = layout.n_outputs();
            // A weighted mix of CE and DCE rows, as ℓ_cdc uses.
            let targets = Targets::new(
                (0..b)
                    .map(|i| Target {
                        label: (i * 7) % c,
                        kind: if i % 3 == 0 { LossKind::Dce } else { LossKind::Ce },
                        weight: 0.25 + (i % 5) as f32 * 0.5,
                    })
                    .collect(),
            );
            for act in Activation::ALL {
                let thetas = KaimingUniform.sample(&layout, m, &mut rng);
                let x = Array2::from_shape_fn((b, layout.n_inputs()), |(i, j)| ((i * 5 + j * 3) as f32 * 0.29).sin());
                let (mut loss, mut grad) = (vec![0f32; m], Array2::zeros((m, layout.dim())));
                let inputs = Inputs { layout: &layout, act, thetas: thetas.view(), x: x.view() };
                loss_and_grad(inputs, &targets, &mut loss, grad.view_mut());

                let th = standard(thetas.view());
                let pass = forward(&layout, act, &th.view(), &x.view(), true);
                let logits = pass.logits();
                let mut g = Array2::zeros(logits.raw_dim());
                for (mi, &got) in loss.iter().enumerate() {
                    let mut want = 0f64;
                    for (r, t) in targets.rows().iter().enumerate() {
                        let rows = mi * c..(mi + 1) * c;
                        let z = logits.slice(ndarray::s![rows.clone(), r]);
                        let gz = g.slice_mut(ndarray::s![rows, r]);
                        want += t.weight as f64 * row_loss(z, t, Some(gz));
                    }
                    assert!((got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0), "{arch} {act}: loss");
                }
                let want = backward(&layout, act, &th.view(), &x.view(), &pass, g);
                let scale = want.iter().fold(1e-3f32, |a, v| a.max(v.abs()));
                for (f, w) in grad.iter().zip(&want) {
                    assert!((f - w).abs() <= 2e-5 * scale, "{arch} {act}: fused gradient {f} vs GEMM {w}");
                }
            }
        }
    }

    #[test]
    fn the_portable_and_the_vector_build_agree() {
        let layout = Layout::parse("9-16-16-2").unwrap();
        let thetas = KaimingUniform.sample(&layout, 3, &mut crate::rng::rng(2));
        let x = Array2::from_shape_fn((41, 9), |(i, j)| ((i + 2 * j) as f32 * 0.21).cos());
        let mut portable = Array3::zeros((3, 41, 2));
        let inputs = Inputs { layout: &layout, act: Activation::Relu, thetas: thetas.view(), x: x.view() };
        Logits { inputs, out: portable.view_mut() }.run::<false>();
        let mut dispatched = Array3::zeros((3, 41, 2));
        logits(inputs, dispatched.view_mut());
        for (p, d) in portable.iter().zip(&dispatched) {
            assert!((p - d).abs() <= 1e-5 * p.abs().max(1.0), "portable {p} vs dispatched {d}");
        }
        let targets = Targets::cross_entropy(&(0..41).map(|i| i % 2).collect::<Vec<_>>());
        let run_train = |portable: bool| {
            let (mut loss, mut grad) = (vec![0f32; 3], Array2::zeros((3, layout.dim())));
            if portable {
                Train { inputs, targets: &targets, losses: &mut loss, grads: grad.view_mut() }.run::<false>();
            } else {
                loss_and_grad(inputs, &targets, &mut loss, grad.view_mut());
            }
            (loss, grad)
        };
        let ((lp, gp), (ld, gd)) = (run_train(true), run_train(false));
        for (p, d) in lp.iter().zip(&ld).chain(gp.iter().zip(&gd)) {
            assert!((p - d).abs() <= 1e-5 * p.abs().max(1.0), "portable {p} vs dispatched {d}");
        }
    }
}
