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
//!
//! JKO's steps get the same treatment ([`StepBaseline`]): step j from marginal j to marginal j + 1 is
//! B_j(x) − τ_j ∇F(x, t_{j+1}), where B_j(x) = m_{j+1} + (s_{j+1}/s_j)(x − m_j) is the per-coordinate map
//! between the two marginals' means m and standard deviations s (the optimal transport map between Gaussians
//! with diagonal covariances). B_j is the gradient of a convex quadratic, so a step is still an explicit step
//! of a potential, V = (½‖x‖² − Q_j(x))/τ_j + F with ∇Q_j = B_j; F = 0 already carries every marginal's mean
//! and spread, and the network learns only the correction. Without it, the raw potential must learn the
//! contraction from the wide Kaiming marginal onto the trained nets, and its explicit steps barely moved fresh
//! samples (docs/FLOW.md). Statistics: `precond.knot_mean` and `precond.knot_sd`, `[knots, D]`.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis, Zip};

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

/// JKO's baseline steps B_j between consecutive marginals (module documentation), on the device.
#[derive(Debug, Clone)]
pub(crate) struct StepBaseline {
    mean: Tensor,
    sd: Tensor,
}

impl StepBaseline {
    /// Declares `knot_mean` and `knot_sd` (each `[knots, D]`) under `vb`.
    pub(crate) fn new(knots: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let get = |name: &str| vb.get((knots, dim), name).op("build JKO baseline");
        Ok(Self { mean: get("knot_mean")?, sd: get("knot_sd")? })
    }

    /// B_j(x) for x `[B, D]`: marginal j's coordinates carried to marginal j + 1's mean and spread.
    pub(crate) fn step(&self, x: &Tensor, j: usize) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let row = |a: &Tensor, i: usize| a.narrow(0, i, 1);
            let ratio = row(&self.sd, j + 1)?.div(&row(&self.sd, j)?)?;
            x.broadcast_sub(&row(&self.mean, j)?)?.broadcast_mul(&ratio)?.broadcast_add(&row(&self.mean, j + 1)?)
        };
        run().op("JKO baseline step")
    }
}

/// Host copies of JKO's baseline statistics, for training (the residual is formed outside the graph, as for
/// [`PrecondStats`]).
#[derive(Debug, Clone)]
pub(crate) struct StepStats {
    /// Per marginal, the per-coordinate mean `[knots, D]`.
    pub mean: Array2<f32>,
    /// Per marginal, the per-coordinate standard deviation `[knots, D]`, floored at √[`MIN_VAR`].
    pub sd: Array2<f32>,
}

impl StepStats {
    /// The statistics of `marginals`, each `[rows, D]` (the same D).
    pub(crate) fn fit(marginals: &[ArrayView2<f32>]) -> Self {
        let d = marginals.first().map_or(0, |m| m.ncols());
        let mut mean = Array2::zeros((marginals.len(), d));
        let mut sd = Array2::zeros((marginals.len(), d));
        for (j, m) in marginals.iter().enumerate() {
            mean.row_mut(j).assign(&m.mean_axis(Axis(0)).expect("at least one row"));
            sd.row_mut(j).assign(&m.var_axis(Axis(0), 0.0).mapv(|v| v.max(MIN_VAR).sqrt()));
        }
        Self { mean, sd }
    }

    /// Writes B_j(x) into `out`.
    pub(crate) fn step(&self, x: ArrayView1<f32>, j: usize, mut out: ArrayViewMut1<f32>) {
        let (m0, m1, s0, s1) = (self.mean.row(j), self.mean.row(j + 1), self.sd.row(j), self.sd.row(j + 1));
        Zip::from(&mut out).and(&x).and(&m0).and(&m1).and(&s0).and(&s1).for_each(|o, &x, &m0, &m1, &s0, &s1| {
            *o = m1 + s1 / s0 * (x - m0);
        });
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

    #[test]
    fn step_baseline_carries_each_marginal_to_the_next_ones_moments_on_host_and_device() {
        // Three marginals of 5 rows in D = 3 with different means and spreads.
        let (n, d) = (5, 3);
        let marginals: Vec<Array2<f32>> = (0..3)
            .map(|j| {
                Array2::from_shape_fn((n, d), |(i, c)| {
                    (j as f32 - 1.0) * (c as f32 + 0.5) + ((i * d + c + 7 * j) as f32).sin() * (1.0 + j as f32)
                })
            })
            .collect();
        let views: Vec<_> = marginals.iter().map(|m| m.view()).collect();
        let stats = StepStats::fit(&views);
        let dev = Device::Cpu;
        let up =
            |a: &Array2<f32>| Tensor::from_slice(a.as_standard_layout().as_slice().unwrap(), a.dim(), &dev).unwrap();
        let map: HashMap<String, Tensor> =
            [("knot_mean".to_string(), up(&stats.mean)), ("knot_sd".to_string(), up(&stats.sd))].into_iter().collect();
        let baseline = StepBaseline::new(3, d, VarBuilder::from_tensors(map, DType::F32, &dev)).unwrap();
        for j in 0..2 {
            let mut host = Array2::<f32>::zeros((n, d));
            for (x, out) in marginals[j].rows().into_iter().zip(host.rows_mut()) {
                stats.step(x, j, out);
            }
            let device: Vec<Vec<f32>> = baseline.step(&up(&marginals[j]), j).unwrap().to_vec2().unwrap();
            for c in 0..d {
                // f64 moments of the mapped rows against those of marginal j + 1.
                let col = |a: &Array2<f32>| a.column(c).iter().map(|&v| v as f64).collect::<Vec<_>>();
                let moments = |v: &[f64]| {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt())
                };
                let (got, want) = (moments(&col(&host)), moments(&col(&marginals[j + 1])));
                assert!((got.0 - want.0).abs() < 1e-5 && (got.1 - want.1).abs() < 1e-5, "{got:?} vs {want:?}");
                for i in 0..n {
                    assert!(
                        (device[i][c] - host[[i, c]]).abs() < 1e-5,
                        "device {} vs host {}",
                        device[i][c],
                        host[[i, c]]
                    );
                }
            }
        }
    }
}
