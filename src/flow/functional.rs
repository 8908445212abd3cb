//! The functional term of weight-space CFM and MMFM ([`FunctionalConfig`], `train-meta --function-weight`).
//!
//! CFM with the preconditioned endpoint regresses x̂_1(x_t, t) on the run x_1 the row was paired with, in weight
//! space: every coordinate counts the same, whether it moves the classifier's predictions or not. (MMFM
//! regresses the endpoint x_t + (1 − t)·u_t of the spline's tangent, and x_1 is its chain's last knot, a trained
//! run: the tangent's endpoint nears x_1 only as t → 1, so with MMFM the term belongs near t = 1
//! ([`FunctionalConfig::time_power`]); weighted alike at every t it pulls the tangents off the spline, which
//! on digits broke the model: 0.548 held-out accuracy, against 0.927 with P = 8, docs/FLOW.md.) On digits and
//! MNIST that gives generated nets whose weight statistics are right (norm, spread, nearest-checkpoint distance
//! within a few per cent) and whose function is not (docs/FLOW.md: 0.80 against 0.97 on digits). The term adds
//! w · KL(p_{x_1}(·|x) ‖ p_{x̂_1}(·|x)), mean over the batch's rows and a minibatch of data rows x: the predicted
//! endpoint must predict like the trained net it was regressed on.
//!
//! Why KL to the run's own predictions rather than cross entropy on labels: it keeps the target the trained
//! family (its errors and its spread included), so the term cannot pull every sample towards one best net.
//! Where the posterior over x_1 is wide (small t), its minimiser is a net that predicts like the posterior's
//! mixture of predictions, a working classifier, where the weight-space loss alone asks for the posterior's
//! mean weights.

use candle_core::{Device, Tensor, D};
use candle_nn::ops::log_softmax;
use ndarray::{Array2, Axis};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::error::CandleContext;
use super::train::to_tensor;
use super::{Error, FunctionData, Result};
use crate::rng::Rng;
use crate::space::Layout;
use crate::train::BatchedMlp;

/// Settings of the functional term (module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FunctionalConfig {
    /// Weight w of the KL term against the weight-space loss (per-row squared error summed over coordinates).
    pub weight: f64,
    /// Data rows drawn (with replacement) per step.
    pub rows: usize,
    /// P of the weighting along the path: a row at time t counts (P + 1)·t^P times (the same total weight over
    /// t ~ U(0, 1), moved towards t = 1, where the posterior over runs is narrow and the term asks less of the
    /// weights). 0 (the default, and absent from files): every t alike.
    #[serde(skip_serializing_if = "is_zero")]
    pub time_power: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for FunctionalConfig {
    fn default() -> Self {
        Self { weight: 1.0, rows: 256, time_power: 0.0 }
    }
}

impl FunctionalConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.weight.is_finite() && self.weight > 0.0) || self.rows == 0 {
            return Err(Error::Config {
                field: "functional",
                reason: format!("need a finite weight > 0 and ≥ 1 row, got {} and {}", self.weight, self.rows),
            });
        }
        if !(self.time_power.is_finite() && self.time_power >= 0.0) {
            return Err(Error::Config {
                field: "functional",
                reason: format!("the time power must be finite and ≥ 0, got {}", self.time_power),
            });
        }
        Ok(())
    }
}

/// Mean over classifiers and rows of KL(p ‖ q), from log-probabilities `log_p` and logits `q_logits`
/// `[M, B, C]`.
pub(crate) fn kl_mean(log_p: &Tensor, q_logits: &Tensor) -> candle_core::Result<Tensor> {
    kl_rows(log_p, q_logits)?.mean_all()
}

/// KL(p ‖ q) per classifier and row `[M, B]`.
fn kl_rows(log_p: &Tensor, q_logits: &Tensor) -> candle_core::Result<Tensor> {
    let log_q = log_softmax(q_logits, D::Minus1)?;
    (log_p.exp()? * (log_p - log_q)?)?.sum(D::Minus1)
}

/// The term during one training run: the data, the scale back from flow coordinates to weights, a row RNG.
pub(crate) struct FunctionalTerm<'a> {
    layout: Layout,
    data: FunctionData<'a>,
    cfg: FunctionalConfig,
    /// Per-coordinate scale `[1, D]`: θ = s ⊙ z.
    scale: Tensor,
    rng: Rng,
}

impl<'a> FunctionalTerm<'a> {
    /// Checks that `data` fits `layout` and uploads the per-coordinate `scale`.
    pub(crate) fn new(
        layout: &Layout,
        data: FunctionData<'a>,
        cfg: &FunctionalConfig,
        scale: &[f32],
        rng: Rng,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        if data.x.ncols() != layout.n_inputs() || data.x.nrows() == 0 || scale.len() != layout.dim() {
            return Err(Error::Config {
                field: "functional",
                reason: format!(
                    "the functional term needs data rows of width {} for {layout}, got {:?}",
                    layout.n_inputs(),
                    data.x.shape()
                ),
            });
        }
        let scale = Tensor::from_slice(scale, (1, scale.len()), device).op("upload scale")?;
        Ok(Self { layout: layout.clone(), data, cfg: cfg.clone(), scale, rng })
    }

    /// w · KL(p_{x_1} ‖ p_{x̂_1}) for predicted endpoints `x_hat` `[B, D]` (a tensor on the graph) and the runs'
    /// endpoints `x1` `[B, D]`, both in flow coordinates, at the rows' times `t` `[B]` (which weigh them when
    /// [`FunctionalConfig::time_power`] is not 0).
    pub(crate) fn term(&mut self, x_hat: &Tensor, x1: &Array2<f32>, t: &[f32]) -> Result<Tensor> {
        let device = x_hat.device();
        let n = self.data.x.nrows();
        let rows: Vec<usize> = (0..self.cfg.rows).map(|_| self.rng.random_range(0..n)).collect();
        let xb = to_tensor(&self.data.x.select(Axis(0), &rows), device)?;
        let logits = |z: &Tensor| -> Result<Tensor> {
            let theta = z.broadcast_mul(&self.scale).op("unscale")?;
            Ok(BatchedMlp::logits_of_flat(&self.layout, self.data.activation, &theta, &xb)?)
        };
        let x1 = to_tensor(x1, device)?;
        let log_p = log_softmax(&logits(&x1)?.detach(), D::Minus1).op("functional term")?;
        let p = self.cfg.time_power;
        // Uniform in t: the arithmetic of the term before the weighting existed, so such models train as before.
        let kl = if p == 0.0 {
            kl_mean(&log_p, &logits(x_hat)?)
        } else {
            let by: Vec<f32> = t.iter().map(|&t| ((p + 1.0) * (t as f64).powf(p)) as f32).collect();
            let by = Tensor::from_slice(&by, (by.len(), 1), device).op("upload time weights")?;
            let per_classifier = kl_rows(&log_p, &logits(x_hat)?).and_then(|kl| kl.mean_keepdim(D::Minus1));
            per_classifier.and_then(|kl| kl.broadcast_mul(&by)?.mean_all())
        }
        .op("functional term")?;
        (kl * self.cfg.weight).op("functional term")
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Var;
    use ndarray::{Array2, Array3};

    use super::*;
    use crate::classifier::{Activation, Mlp};
    use crate::rng;

    /// w · mean over classifiers m of by_m · (mean over rows of KL(p_ref ‖ p_cand)), in float64 from the
    /// native forward pass.
    fn reference(
        layout: &Layout,
        w: f64,
        by: &[f64],
        x: &Array2<f32>,
        reference: &Array2<f32>,
        cand: &Array2<f32>,
    ) -> f64 {
        let mlp = Mlp::new(layout.clone(), Activation::Tanh);
        let logp = |logits: Array3<f32>| {
            logits.map_axis(ndarray::Axis(2), |row| {
                let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                row.iter().map(|v| v - lse).collect::<Vec<f64>>()
            })
        };
        let p = logp(mlp.logits(reference.view(), x.view()).unwrap());
        let q = logp(mlp.logits(cand.view(), x.view()).unwrap());
        let kl = |a: &Vec<f64>, b: &Vec<f64>| a.iter().zip(b).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
        let per: Vec<f64> = p
            .outer_iter()
            .zip(q.outer_iter())
            .map(|(p, q)| p.iter().zip(q.iter()).map(|(a, b)| kl(a, b)).sum::<f64>() / p.len() as f64)
            .collect();
        w * per.iter().zip(by).map(|(k, b)| k * b).sum::<f64>() / per.len() as f64
    }

    /// The term's value, and its gradient with respect to the predicted endpoints, against a float64 forward
    /// pass and central differences of it: uniform in t, and weighted by (P + 1)·t^P.
    #[test]
    fn the_term_and_its_gradient_match_a_float64_reference() {
        let layout = Layout::parse("4-5-3").unwrap();
        let mut r = rng::rng(3);
        let data = Array2::from_shape_fn((7, 4), |_| r.random_range(-1.5f32..1.5));
        let scale: Vec<f32> = (0..layout.dim()).map(|i| 0.5 + 0.1 * (i % 4) as f32).collect();
        let x1 = Array2::from_shape_fn((3, layout.dim()), |_| r.random_range(-1.0f32..1.0));
        let x_hat = Array2::from_shape_fn((3, layout.dim()), |_| r.random_range(-1.0f32..1.0));
        let t = [0.1f32, 0.5, 0.95];
        for time_power in [0.0, 1.5] {
            let cfg = FunctionalConfig { weight: 2.5, rows: 5, time_power };
            let by: Vec<f64> = t.iter().map(|&t| (time_power + 1.0) * (t as f64).powf(time_power)).collect();
            let rows_rng = rng::rng(11);
            // The rows the term draws, replayed from the same RNG.
            let mut replay = rows_rng.clone();
            let picked: Vec<usize> = (0..cfg.rows).map(|_| replay.random_range(0..data.nrows())).collect();
            let xb = data.select(ndarray::Axis(0), &picked);
            let unscale = |z: &Array2<f32>| {
                let mut t = z.clone();
                t.rows_mut().into_iter().for_each(|mut row| row.iter_mut().zip(&scale).for_each(|(v, s)| *v *= s));
                t
            };
            let want_at = |cand: &Array2<f32>| reference(&layout, cfg.weight, &by, &xb, &unscale(&x1), &unscale(cand));
            let function = FunctionData { activation: Activation::Tanh, x: data.view() };
            let mut term = FunctionalTerm::new(&layout, function, &cfg, &scale, rows_rng, &Device::Cpu).unwrap();
            let var = Var::from_slice(x_hat.as_slice().unwrap(), x_hat.dim(), &Device::Cpu).unwrap();
            let value = term.term(var.as_tensor(), &x1, &t).unwrap();
            let (got, want) = (value.to_scalar::<f32>().unwrap() as f64, want_at(&x_hat));
            assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "P = {time_power}: {got} vs {want}");

            let grads = value.backward().unwrap();
            let g = grads.get(var.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
            let h = 1e-3;
            for (i, j) in [(0, 0), (1, 7), (2, 20), (0, layout.dim() - 1)] {
                let mut plus = x_hat.clone();
                plus[[i, j]] += h;
                let mut minus = x_hat.clone();
                minus[[i, j]] -= h;
                let fd = (want_at(&plus) - want_at(&minus)) / (2.0 * h as f64);
                let gij = g[i][j] as f64;
                assert!((gij - fd).abs() <= 1e-3 * (1.0 + fd.abs()), "P = {time_power}, [{i},{j}]: {gij} vs {fd}");
            }
        }
    }

    #[test]
    fn bad_settings_and_data_are_refused() {
        let layout = Layout::parse("4-5-3").unwrap();
        let data = Array2::<f32>::zeros((3, 2));
        let scale = vec![1.0; layout.dim()];
        let function = FunctionData { activation: Activation::Relu, x: data.view() };
        let cfg = FunctionalConfig::default();
        let err = FunctionalTerm::new(&layout, function, &cfg, &scale, rng::rng(0), &Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("width 4"), "{err}");
        for bad in [
            FunctionalConfig { weight: 0.0, rows: 8, ..Default::default() },
            FunctionalConfig { weight: f64::NAN, rows: 8, ..Default::default() },
            FunctionalConfig { weight: 1.0, rows: 0, ..Default::default() },
            FunctionalConfig { time_power: -1.0, ..Default::default() },
            FunctionalConfig { time_power: f64::INFINITY, ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
