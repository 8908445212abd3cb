//! Preconditioning of endpoint prediction: the network learns only what the best *linear* (Gaussian)
//! denoiser misses.
//!
//! Per coordinate, with the source centred (μ_0 = 0, variance v_0) and the targets x_1 of mean μ_1 and
//! variance v_1, the path x_t = (1 − t) x_0 + t x_1 has mean t μ_1 and variance V_t = (1 − t)² v_0 + t² v_1.
//! For independent Gaussian x_0, x_1 the posterior mean and standard deviation of x_1 given x_t are
//!
//! ```text
//! E[x_1 | x_t]  = μ_1 + c_skip(t) (x_t − t μ_1),   c_skip(t) = t v_1 / V_t
//! sd[x_1 | x_t] = c_out(t) = √(v_0 v_1) (1 − t) / √V_t
//! ```
//!
//! so the endpoint is parameterised as x̂_1 = μ_1 + c_skip (x_t − t μ_1) + c_out F(x_t, t): F = 0 is already
//! the exact answer for Gaussian data, F has unit scale, and neither the identity near t = 1 (which an MLP
//! learns poorly: generated nets then come out blurred) nor the constant μ_1 near t = 0 (learned alone, it
//! collapses every sample onto the mean network) has to be learned by the MLP.
//!
//! MMFM's endpoint is the point its spline's tangent at t reaches at t = 1, y = x_t + (1 − t) u_t
//! ([`PrecondStats::residual_terms`] takes u_t). The same straight-path baseline serves it: exact for CFM, a
//! first guess for a spline, whose curvature the network learns. A spline-aware baseline would need the spline's
//! basis in t inside the exported ONNX graph too; the straight one already removed the velocity network's blur
//! (docs/FLOW.md).
//!
//! The statistics are stored with the network's weights (`precond.mu1`, `precond.var0`, `precond.var1`) and
//! are never trained.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use ndarray::{Array2, ArrayView2, Zip};

use super::error::CandleContext;
use super::Result;

/// Prefix of the preconditioner's tensors; the optimiser skips them.
pub(crate) const PRECOND_PREFIX: &str = "precond.";
/// Floor of a variance, so that a coordinate constant across runs cannot divide by zero.
pub(crate) const MIN_VAR: f32 = 1e-6;

/// The per-coordinate statistics of the endpoint parameterisation.
#[derive(Debug, Clone)]
pub(crate) struct Precond {
    mu1: Tensor,
    var0: Tensor,
    var1: Tensor,
}

impl Precond {
    /// Declares `mu1`, `var0`, `var1` (each `[D]`) under `vb`.
    pub(crate) fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let get = |name: &str| vb.get(dim, name).op("build preconditioner");
        Ok(Self { mu1: get("mu1")?, var0: get("var0")?, var1: get("var1")? })
    }

    /// x̂_1 for inputs x `[B, D]`, times t `[B, 1]` and network outputs f `[B, D]`.
    pub(crate) fn endpoint(&self, x: &Tensor, t: &Tensor, f: &Tensor) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let (mu1, var0, var1) = (self.mu1.unsqueeze(0)?, self.var0.unsqueeze(0)?, self.var1.unsqueeze(0)?);
            let gap = t.affine(-1.0, 1.0)?; // 1 − t
            let var_t = gap.sqr()?.broadcast_mul(&var0)?.broadcast_add(&t.sqr()?.broadcast_mul(&var1)?)?;
            let c_skip = t.broadcast_mul(&var1)?.div(&var_t)?;
            let c_out = (var0.broadcast_mul(&var1)?.sqrt()?.broadcast_mul(&gap)?).div(&var_t.sqrt()?)?;
            let centred = x.sub(&t.broadcast_mul(&mu1)?)?;
            mu1.broadcast_add(&c_skip.mul(&centred)?)?.add(&c_out.mul(f)?)
        };
        run().op("endpoint preconditioning")
    }
}

/// Host copies of the statistics, for training: there the endpoint's residual is formed outside the autograd
/// graph ([`PrecondStats::residual_terms`]).
#[derive(Debug, Clone)]
pub(crate) struct PrecondStats {
    pub mu1: Vec<f32>,
    pub var0: Vec<f32>,
    pub var1: Vec<f32>,
}

impl PrecondStats {
    /// The endpoint loss's residual x̂_1 − y, with y = x + (1 − t) u the endpoint of the straight path through
    /// x with velocity u, is affine in the network's output F: `c_out ⊙ F + offset`, where
    /// offset = μ_1 + c_skip (x − t μ_1) − y. Returns (c_out, offset), both `[B, D]`, for inputs x, times t
    /// and velocity targets u.
    ///
    /// Why here and not in candle: candle's backward pass differentiates every operand of every op on a path
    /// to a variable, trained or not. Built from tensors, these dozen `[B, D]` products would cost as much
    /// again in the backward pass. Built here, the graph holds two ops.
    pub(crate) fn residual_terms(
        &self,
        x: ArrayView2<f32>,
        t: &[f32],
        u: ArrayView2<f32>,
    ) -> (Array2<f32>, Array2<f32>) {
        let mut c_out = Array2::<f32>::zeros(x.raw_dim());
        let mut offset = Array2::<f32>::zeros(x.raw_dim());
        Zip::from(c_out.rows_mut()).and(offset.rows_mut()).and(x.rows()).and(u.rows()).and(t).par_for_each(
            |mut c_row, mut o_row, x_row, u_row, &t| {
                let gap = 1.0 - t;
                for j in 0..x_row.len() {
                    let (mu1, var0, var1) = (self.mu1[j], self.var0[j], self.var1[j]);
                    let var_t = gap * gap * var0 + t * t * var1;
                    let c_skip = t * var1 / var_t;
                    c_row[j] = (var0 * var1).sqrt() * gap / var_t.sqrt();
                    let y = x_row[j] + u_row[j] * gap;
                    o_row[j] = mu1 + c_skip * (x_row[j] - t * mu1) - y;
                }
            },
        );
        (c_out, offset)
    }
}

/// `t` as a column `[B, 1]`, from a batch's times `[B]`.
pub(crate) fn column(t: &Tensor) -> Result<Tensor> {
    t.unsqueeze(D::Minus1).op("time column")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn precond(mu1: f32, v0: f32, v1: f32) -> Precond {
        let dev = Device::Cpu;
        let map: HashMap<String, Tensor> = [("mu1", mu1), ("var0", v0), ("var1", v1)]
            .into_iter()
            .map(|(n, v)| (n.to_string(), Tensor::full(v, 2, &dev).unwrap()))
            .collect();
        Precond::new(2, VarBuilder::from_tensors(map, DType::F32, &dev)).unwrap()
    }

    #[test]
    fn f_zero_gives_the_gaussian_posterior_mean_and_the_ends_are_exact() {
        let p = precond(3.0, 4.0, 0.25);
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f32, -2.0], [1.0, -2.0], [1.0, -2.0]], &dev).unwrap();
        let t = Tensor::new(&[[0.0f32], [0.5], [1.0]], &dev).unwrap();
        let f = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
        let got: Vec<Vec<f32>> = p.endpoint(&x, &t, &f).unwrap().to_vec2().unwrap();
        // t = 0: the target mean. t = 1: x itself.
        assert_eq!(got[0], [3.0, 3.0]);
        assert!((got[2][0] - 1.0).abs() < 1e-6 && (got[2][1] + 2.0).abs() < 1e-6);
        // t = 1/2: V = 0.25·4 + 0.25·0.25 = 1.0625, c_skip = 0.5·0.25/1.0625; closed form in f64.
        let c = 0.5 * 0.25 / 1.0625;
        for (j, &xj) in [1.0f64, -2.0].iter().enumerate() {
            let want = 3.0 + c * (xj - 1.5);
            assert!((got[1][j] as f64 - want).abs() < 1e-6, "{} vs {want}", got[1][j]);
        }
        // c_out scales f by the posterior standard deviation √(v0 v1)(1 − t)/√V.
        let f1 = Tensor::ones((3, 2), DType::F32, &dev).unwrap();
        let with_f: Vec<Vec<f32>> = p.endpoint(&x, &t, &f1).unwrap().to_vec2().unwrap();
        let c_out = (4.0f64 * 0.25).sqrt() * 0.5 / 1.0625f64.sqrt();
        assert!(((with_f[1][0] - got[1][0]) as f64 - c_out).abs() < 1e-6);
        assert!((with_f[2][0] - got[2][0]).abs() < 1e-6, "no correction at t = 1");
    }

    #[test]
    fn host_residual_terms_equal_the_tensor_endpoint_minus_the_target() {
        use ndarray::Array2;
        let (b, d) = (5, 7);
        let coord = |j: usize, a: f32| a + 0.3 * j as f32;
        let stats = PrecondStats {
            mu1: (0..d).map(|j| coord(j, -0.4)).collect(),
            var0: (0..d).map(|j| coord(j, 0.5)).collect(),
            var1: (0..d).map(|j| coord(j, 0.02)).collect(),
        };
        let dev = Device::Cpu;
        let map: HashMap<String, Tensor> = [("mu1", &stats.mu1), ("var0", &stats.var0), ("var1", &stats.var1)]
            .into_iter()
            .map(|(n, v)| (n.to_string(), Tensor::from_slice(v, d, &dev).unwrap()))
            .collect();
        let p = Precond::new(d, VarBuilder::from_tensors(map, DType::F32, &dev)).unwrap();
        let x = Array2::from_shape_fn((b, d), |(i, j)| ((i * d + j) as f32 * 0.37).sin());
        let u = Array2::from_shape_fn((b, d), |(i, j)| ((i + 2 * j) as f32 * 0.61).cos());
        let f = Array2::from_shape_fn((b, d), |(i, j)| ((3 * i + j) as f32 * 0.23).sin());
        let t = [0.0f32, 0.2, 0.5, 0.9, 1.0];
        let (c_out, offset) = stats.residual_terms(x.view(), &t, u.view());
        let up = |a: &Array2<f32>| Tensor::from_slice(a.as_slice().unwrap(), (b, d), &dev).unwrap();
        let tt = Tensor::from_slice(&t, (b, 1), &dev).unwrap();
        let x1: Vec<Vec<f32>> = p.endpoint(&up(&x), &tt, &up(&f)).unwrap().to_vec2().unwrap();
        for i in 0..b {
            for j in 0..d {
                let y = x[[i, j]] as f64 + (1.0 - t[i] as f64) * u[[i, j]] as f64;
                let want = x1[i][j] as f64 - y;
                let got = c_out[[i, j]] as f64 * f[[i, j]] as f64 + offset[[i, j]] as f64;
                assert!((got - want).abs() < 1e-5, "row {i} col {j}: {got} vs {want}");
            }
        }
    }
}
