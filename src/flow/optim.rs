//! AdamW with an optional exponential moving average (EMA) of the weights.
//!
//! On the CPU the update is one fused, multi-threaded pass over each parameter. It reads θ, the gradient and
//! the two moments once, then writes θ, the moments and the EMA in place. candle-nn's `AdamW` does the same
//! mathematics as about fourteen element-wise tensor ops per parameter, each allocating a fresh buffer. For
//! the 13 M parameters of an MNIST-sized velocity net, that traffic cost more than the step's matmuls
//! (docs/PERFORMANCE.md). Other devices keep candle-nn's optimiser and a tensor EMA, which are also the
//! reference the fused pass is tested against. Both round the same way: every scalar is cast to f32 as
//! candle's `affine` casts it, and the operations run in the same order.

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Storage, Tensor, Var};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
use rayon::prelude::*;

use super::error::CandleContext;
use super::Result;

/// Elements per parallel work item: large enough to amortise scheduling, small enough to balance two cores.
const CHUNK: usize = 1 << 15;

/// AdamW over a fixed list of variables, with an optional EMA of their values (`decay` per step).
pub(crate) struct AdamWEma {
    vars: Vec<Var>,
    params: ParamsAdamW,
    ema_decay: Option<f64>,
    engine: Engine,
}

enum Engine {
    /// Host-side moments and EMA, one `Vec` per variable.
    Fused { step: i32, moments: Vec<Moments> },
    /// candle-nn's optimiser and an EMA kept as tensors.
    Candle { opt: AdamW, ema: Option<Vec<Tensor>> },
}

struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    ema: Option<Vec<f32>>,
}

impl AdamWEma {
    /// The fused CPU pass when every variable is a contiguous f32 CPU tensor, candle-nn's `AdamW` otherwise.
    pub(crate) fn new(vars: Vec<Var>, params: ParamsAdamW, ema_decay: Option<f64>) -> Result<Self> {
        let fusable = vars.iter().all(|v| v.device().is_cpu() && v.dtype() == DType::F32 && v.is_contiguous());
        if fusable {
            Self::fused(vars, params, ema_decay)
        } else {
            Self::candle(vars, params, ema_decay)
        }
    }

    fn fused(vars: Vec<Var>, params: ParamsAdamW, ema_decay: Option<f64>) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|var| {
                let n = var.elem_count();
                let ema = match ema_decay {
                    Some(_) => Some(var.flatten_all().and_then(|t| t.to_vec1::<f32>()).op("copy weights")?),
                    None => None,
                };
                Ok(Moments { m: vec![0.0; n], v: vec![0.0; n], ema })
            })
            .collect::<Result<_>>()?;
        Ok(Self { vars, params, ema_decay, engine: Engine::Fused { step: 0, moments } })
    }

    /// candle-nn's optimiser and a tensor EMA: the path for GPUs, and the reference for the fused pass.
    pub(crate) fn candle(vars: Vec<Var>, params: ParamsAdamW, ema_decay: Option<f64>) -> Result<Self> {
        let opt = AdamW::new(vars.clone(), params.clone()).op("create optimiser")?;
        let ema = match ema_decay {
            Some(_) => Some(
                vars.iter()
                    .map(|v| v.as_tensor().copy().map(|t| t.detach()))
                    .collect::<candle_core::Result<_>>()
                    .op("copy weights")?,
            ),
            None => None,
        };
        Ok(Self { vars, params, ema_decay, engine: Engine::Candle { opt, ema } })
    }

    pub(crate) fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
        if let Engine::Candle { opt, .. } = &mut self.engine {
            opt.set_learning_rate(lr);
        }
    }

    /// Back-propagates `loss` and applies one AdamW step, then one EMA update.
    pub(crate) fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward().op("backward pass")?;
        self.step(&grads)
    }

    /// One AdamW step with `grads` (a variable without a gradient keeps its value and moments, as in
    /// candle-nn), then one EMA update of every variable.
    pub(crate) fn step(&mut self, grads: &GradStore) -> Result<()> {
        match &mut self.engine {
            Engine::Fused { step, moments } => {
                *step += 1;
                let coeffs = Coefficients::new(&self.params, *step, self.ema_decay);
                for (var, state) in self.vars.iter().zip(moments.iter_mut()) {
                    let grad = grads.get(var.as_tensor()).map(|g| g.contiguous()).transpose().op("gradient")?;
                    let guard = grad.as_ref().map(|g| g.storage_and_layout());
                    let g = match &guard {
                        Some((storage, layout)) => Some(cpu_f32(storage, layout).op("gradient")?),
                        None => None,
                    };
                    let update = FusedUpdate { coeffs, grad: g, state: RefCell::new(state) };
                    var.as_tensor().inplace_op1(&update).op("AdamW step")?;
                }
            }
            Engine::Candle { opt, ema } => {
                opt.step(grads).op("optimiser step")?;
                if let (Some(ema), Some(decay)) = (ema.as_mut(), self.ema_decay) {
                    for (e, v) in ema.iter_mut().zip(&self.vars) {
                        *e = ((&*e * decay).and_then(|a| a + (v.as_tensor() * (1.0 - decay))?))
                            .op("ema update")?
                            .detach();
                    }
                }
            }
        }
        Ok(())
    }

    /// The weights to keep: the EMA when there is one, else the current values (copies, in `vars` order).
    pub(crate) fn weights(&self) -> Result<Vec<Tensor>> {
        match &self.engine {
            Engine::Fused { moments, .. } if self.ema_decay.is_some() => self
                .vars
                .iter()
                .zip(moments)
                .map(|(var, s)| {
                    let ema = s.ema.as_ref().expect("an EMA run keeps one per variable");
                    Tensor::from_slice(ema, var.shape(), var.device()).op("copy EMA weights")
                })
                .collect(),
            Engine::Candle { ema: Some(ema), .. } => Ok(ema.clone()),
            _ => self
                .vars
                .iter()
                .map(|v| v.as_tensor().copy().map(|t| t.detach()))
                .collect::<candle_core::Result<_>>()
                .op("copy weights"),
        }
    }
}

/// A contiguous CPU f32 tensor's elements.
fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("the fused optimiser needs contiguous f32 CPU gradients"),
    }
}

/// The step's scalars, each cast to f32 where candle's `affine` would cast it.
#[derive(Clone, Copy)]
struct Coefficients {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
    lr: f32,
    decay_factor: f32,
    ema: Option<(f32, f32)>,
}

impl Coefficients {
    fn new(p: &ParamsAdamW, step: i32, ema_decay: Option<f64>) -> Self {
        Self {
            beta1: p.beta1 as f32,
            one_minus_beta1: (1.0 - p.beta1) as f32,
            beta2: p.beta2 as f32,
            one_minus_beta2: (1.0 - p.beta2) as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(step))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(step))) as f32,
            eps: p.eps as f32,
            lr: p.lr as f32,
            decay_factor: (1.0 - p.lr * p.weight_decay) as f32,
            ema: ema_decay.map(|d| (d as f32, (1.0 - d) as f32)),
        }
    }

    /// AdamW on one chunk, as candle-nn computes it: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    /// θ ← (1 − lr·λ)θ − lr·m̂/(√v̂ + ε); then the EMA e ← d·e + (1−d)·θ.
    fn apply(&self, theta: &mut [f32], g: Option<&[f32]>, m: &mut [f32], v: &mut [f32], e: Option<&mut [f32]>) {
        if let Some(g) = g {
            for (((th, &g), m), v) in theta.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = *m * self.beta1 + g * self.one_minus_beta1;
                *v = *v * self.beta2 + (g * g) * self.one_minus_beta2;
                let m_hat = *m * self.scale_m;
                let v_hat = *v * self.scale_v;
                let adjusted = m_hat / (v_hat.sqrt() + self.eps);
                *th = *th * self.decay_factor - adjusted * self.lr;
            }
        }
        if let (Some(e), Some((d, one_minus_d))) = (e, self.ema) {
            for (e, &th) in e.iter_mut().zip(theta.iter()) {
                *e = *e * d + th * one_minus_d;
            }
        }
    }
}

/// One variable's fused update, run by candle on the variable's own storage (no copy of θ).
struct FusedUpdate<'a> {
    coeffs: Coefficients,
    grad: Option<&'a [f32]>,
    state: RefCell<&'a mut Moments>,
}

impl InplaceOp1 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("the fused optimiser needs a contiguous f32 variable")
        };
        let theta = &mut data[start..end];
        let mut state = self.state.borrow_mut();
        let Moments { m, v, ema } = &mut **state;
        if self.grad.is_some_and(|g| g.len() != theta.len()) {
            candle_core::bail!(
                "gradient of {} elements for a variable of {}",
                self.grad.map_or(0, |g| g.len()),
                theta.len()
            )
        }
        let n_chunks = theta.len().div_ceil(CHUNK);
        let grads: Vec<Option<&[f32]>> = match self.grad {
            Some(g) => g.chunks(CHUNK).map(Some).collect(),
            None => vec![None; n_chunks],
        };
        let emas: Vec<Option<&mut [f32]>> = match ema {
            Some(e) => e.chunks_mut(CHUNK).map(Some).collect(),
            None => (0..n_chunks).map(|_| None).collect(),
        };
        let c = self.coeffs;
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(grads.into_par_iter())
            .zip(emas.into_par_iter())
            .for_each(|((((th, m), v), g), e)| c.apply(th, g, m, v, e));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A small least-squares problem with two variables; returns the loss at `vars`.
    fn loss(vars: &[Var], x: &Tensor, y: &Tensor) -> Tensor {
        let h = x.matmul(vars[0].as_tensor()).unwrap().tanh().unwrap();
        let out = h.broadcast_add(vars[1].as_tensor()).unwrap();
        (out - y).unwrap().sqr().unwrap().mean_all().unwrap()
    }

    fn vars(dev: &Device) -> Vec<Var> {
        // 3 × 70,000 spans several parallel chunks, so chunk boundaries are exercised.
        let w = Tensor::randn(0f32, 0.3, (3, 70_000), dev).unwrap();
        let b = Tensor::randn(0f32, 0.3, (1, 70_000), dev).unwrap();
        vec![Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap()]
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn the_fused_pass_equals_candle_nn_adamw_and_a_tensor_ema() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (8, 3), &dev).unwrap();
        let y = Tensor::randn(0f32, 1.0, (8, 70_000), &dev).unwrap();
        let init = vars(&dev);
        let copy = |vs: &[Var]| -> Vec<Var> {
            vs.iter().map(|v| Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap()).collect()
        };
        let params = ParamsAdamW { lr: 3e-3, weight_decay: 0.05, ..ParamsAdamW::default() };
        for ema in [None, Some(0.9)] {
            let (fa, fb) = (copy(&init), copy(&init));
            let mut fused = AdamWEma::new(fa.clone(), params.clone(), ema).unwrap();
            let mut reference = AdamWEma::candle(fb.clone(), params.clone(), ema).unwrap();
            assert!(matches!(fused.engine, Engine::Fused { .. }) && matches!(reference.engine, Engine::Candle { .. }));
            for step in 0..12 {
                if step == 6 {
                    // A schedule changes the rate between steps.
                    fused.set_learning_rate(1e-3);
                    reference.set_learning_rate(1e-3);
                }
                fused.backward_step(&loss(&fa, &x, &y)).unwrap();
                reference.backward_step(&loss(&fb, &x, &y)).unwrap();
            }
            let moved = max_abs_diff(fa[0].as_tensor(), init[0].as_tensor());
            assert!(moved > 1e-3, "the weights moved ({moved})");
            for (a, b) in fused.weights().unwrap().iter().zip(reference.weights().unwrap().iter()) {
                let d = max_abs_diff(a, b);
                assert!(d <= 1e-6, "fused and candle-nn AdamW differ by {d} (ema {ema:?})");
            }
        }
    }

    #[test]
    fn a_variable_without_gradient_keeps_its_value_and_its_ema_follows_it() {
        let dev = Device::Cpu;
        let vs = vars(&dev);
        let before = vs[1].as_tensor().copy().unwrap();
        let mut opt = AdamWEma::new(vs.clone(), ParamsAdamW::default(), Some(0.5)).unwrap();
        // The loss reaches only the first variable.
        let l = vs[0].as_tensor().sqr().unwrap().mean_all().unwrap();
        opt.backward_step(&l).unwrap();
        assert_eq!(max_abs_diff(vs[1].as_tensor(), &before), 0.0);
        let w = opt.weights().unwrap();
        assert!(max_abs_diff(&w[1], &before) < 1e-7, "EMA of an unchanged variable stays put");
        assert!(max_abs_diff(&w[0], vs[0].as_tensor()) > 0.0, "EMA lags the moved variable");
    }
}
