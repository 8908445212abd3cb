//! The inference-only forward pass of M classifiers, fused: one classifier and one block of [`LANES`] rows at a
//! time, every layer of that block computed in two small buffers that stay in L1.
//!
//! Why: the batched GEMM pass ([`super::forward`]) writes each layer's `[M·h, B]` activations to memory and
//! reads them back; for the small MLPs this crate generates (9-16-16-2: 466 weights) those tensors are far
//! larger than the weights and the pass is bound by memory traffic and per-GEMM packing, not by arithmetic.
//! Here a block's activations `[h, LANES]` never leave L1, and the inner loop is a broadcast weight times
//! LANES rows accumulated in registers, which the compiler turns into vector FMAs (AVX2 + FMA chosen at run
//! time on x86-64; a portable build otherwise).
//!
//! Results equal the GEMM pass's up to the order of the sums (tested against it and against an f64 reference).

use ndarray::{ArrayView2, ArrayViewMut3};

use super::forward::row;
use super::Activation;
use crate::space::Layout;

/// Rows per block: the lane count of the accumulators (4 AVX2 registers of 8 floats).
const LANES: usize = 32;

/// Writes the logits of the M classifiers (rows of standard-layout `thetas`) on `x` into `out` `[M, B, C]`.
/// Shapes must have been checked.
pub(crate) fn logits(
    layout: &Layout,
    act: Activation,
    thetas: &ArrayView2<'_, f32>,
    x: &ArrayView2<'_, f32>,
    out: &mut ArrayViewMut3<'_, f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has both features the function is compiled for (checked just above).
        unsafe { logits_avx2_fma(layout, act, thetas, x, out) };
        return;
    }
    run::<false>(layout, act, thetas, x, out);
}

/// [`run`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn logits_avx2_fma(
    layout: &Layout,
    act: Activation,
    thetas: &ArrayView2<'_, f32>,
    x: &ArrayView2<'_, f32>,
    out: &mut ArrayViewMut3<'_, f32>,
) {
    run::<true>(layout, act, thetas, x, out);
}

#[inline(always)]
fn run<const FMA: bool>(
    layout: &Layout,
    act: Activation,
    thetas: &ArrayView2<'_, f32>,
    x: &ArrayView2<'_, f32>,
    out: &mut ArrayViewMut3<'_, f32>,
) {
    let (batch, d_in) = x.dim();
    let n_layers = layout.n_layers();
    let n_blocks = batch.div_ceil(LANES);
    // x transposed block by block, [block][feature][lane], zero-padded to whole blocks: shared by every
    // classifier, so it is built once.
    let mut xt = vec![0f32; n_blocks * d_in * LANES];
    for (r, xr) in x.outer_iter().enumerate() {
        let block = &mut xt[(r / LANES) * d_in * LANES..][..d_in * LANES];
        for (k, &v) in xr.iter().enumerate() {
            block[k * LANES + r % LANES] = v;
        }
    }
    let widest = layout.sizes()[1..].iter().copied().max().unwrap_or(0);
    let (mut cur, mut next) = (vec![0f32; widest * LANES], vec![0f32; widest * LANES]);
    for mi in 0..thetas.nrows() {
        let theta = row(thetas, mi);
        for blk in 0..n_blocks {
            let mut src: &[f32] = &xt[blk * d_in * LANES..][..d_in * LANES];
            for l in 0..n_layers {
                let (w, b) = layout.layer(l);
                let (n_out, n_in) = (w.shape[0], w.shape[1]);
                let dst = &mut next[..n_out * LANES];
                dense::<FMA>(&theta[w.range()], &theta[b.range()], n_in, src, dst);
                if l + 1 < n_layers {
                    activate(act, dst);
                }
                std::mem::swap(&mut cur, &mut next);
                src = &cur[..n_out * LANES];
            }
            // `cur` holds the logits [C][LANES]; rows past the batch are padding.
            let rows = LANES.min(batch - blk * LANES);
            for (c, lane) in src.chunks_exact(LANES).enumerate() {
                for (r, &v) in lane[..rows].iter().enumerate() {
                    out[[mi, blk * LANES + r, c]] = v;
                }
            }
        }
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
                // mul_add is one instruction with FMA and a slow library call without it.
                *acc = if FMA { wk.mul_add(a, *acc) } else { *acc + wk * a };
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// σ in place over one block's pre-activations.
#[inline(always)]
fn activate(act: Activation, z: &mut [f32]) {
    match act {
        // Spelled out so the loop vectorises (a max per lane).
        Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
        other => z.iter_mut().for_each(|v| *v = other.eval(*v)),
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
                logits(&layout, act, &thetas.view(), &x.view(), &mut fused.view_mut());
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
    fn the_portable_and_the_vector_build_agree() {
        let layout = Layout::parse("9-16-16-2").unwrap();
        let thetas = KaimingUniform.sample(&layout, 3, &mut crate::rng::rng(2));
        let x = Array2::from_shape_fn((41, 9), |(i, j)| ((i + 2 * j) as f32 * 0.21).cos());
        let mut portable = Array3::zeros((3, 41, 2));
        run::<false>(&layout, Activation::Relu, &thetas.view(), &x.view(), &mut portable.view_mut());
        let mut dispatched = Array3::zeros((3, 41, 2));
        logits(&layout, Activation::Relu, &thetas.view(), &x.view(), &mut dispatched.view_mut());
        for (p, d) in portable.iter().zip(&dispatched) {
            assert!((p - d).abs() <= 1e-5 * p.abs().max(1.0), "portable {p} vs dispatched {d}");
        }
    }
}
