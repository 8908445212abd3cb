//! Adjoint Matching (Domingo-Enrich et al.; METHOD.md §3) for a flow meta-model.
//!
//! Everything happens in the flow's coordinates z = θ/s with the model's actual velocity v (for an endpoint
//! model v = (x̂_1 − z)/(1 − t)). One iteration:
//!
//! 1. B source samples, one ODE Euler step to t_0 = δ ≈ h = 1/N (jittered per iteration, see `time_grid`),
//!    then Euler–Maruyama with the fine-tuned velocity, no gradients:
//!    X_{k+1} = X_k + h (2 v^ft(X_k, t_k) − X_k/t_k) + √h σ(t_k) ε on t_k = δ + k h, h = (1 − δ)/(N − 1).
//! 2. Lean adjoint with the frozen base: ã_{N−1} = λ s ⊙ ∇_θ r(s ⊙ X_{N−1}) (the reward's gradient chained
//!    through θ = s ⊙ z), and ã_k = ã_{k+1} + h (2 J_v^base(X_{k+1}, t_{k+1})ᵀ ã_{k+1} − ã_{k+1}/t_{k+1}),
//!    the vector-Jacobian product by candle's autograd (backward of Σ v·ã with respect to X).
//! 3. Loss on the time subset (the last `last_fraction` of the grid before t = 1, where σ = 0, plus a random
//!    `random_fraction` of the rest): mean over trajectories and times of
//!    min(‖(2/σ)(v^ft − v^base) − σ ã‖², loss_clip); its gradient clipped to norm `grad_clip`; one AdamW step
//!    on the fine-tuned copy (the preconditioner's statistics stay fixed).

use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use ndarray::{Array1, Array2, ArrayView2};
use rand::seq::IndexedRandom;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use super::error::CandleContext;
use super::schedule::memoryless_sigma;
use super::{AdjointConfig, Error, Result, Reward};
use crate::flow::precond::PRECOND_PREFIX;
use crate::flow::space::FlowSource;
use crate::flow::{sorted_vars, MetaModel, Objective, TuningRecord, VelocityNet};
use crate::rng::{self, Rng};

/// What one iteration saw.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationStats {
    /// The iteration just done (1-based).
    pub iteration: usize,
    /// Mean reward of the iteration's terminal samples X_1 (drawn with the fine-tuned SDE before the step).
    pub reward: f64,
    /// The regression loss of the step (after per-term clipping).
    pub loss: f64,
    /// The gradient's L2 norm before clipping.
    pub grad_norm: f64,
}

/// Adjoint-matching fine-tuning of a velocity meta-model towards p* ∝ p_base · exp(λ r).
pub struct AdjointMatching<'a> {
    base: &'a MetaModel,
    base_net: &'a VelocityNet,
    reward: &'a dyn Reward,
    config: AdjointConfig,
    endpoint: bool,
    /// Per flow coordinate: the source variance v_0.
    var0: Vec<f32>,
    /// The source, sampled in flow coordinates (the base's weight space or latent).
    source: FlowSource,
    varmap: VarMap,
    tuned: VelocityNet,
    opt: AdamW,
    trained: Vec<Var>,
    rng: Rng,
    iteration: usize,
    started: Instant,
    base_sha: String,
    last_samples: Array2<f32>,
}

impl<'a> AdjointMatching<'a> {
    /// Prepares fine-tuning of `base` (a CFM or MMFM velocity model; a JKO potential has no velocity net to
    /// copy) towards `reward` with `config`; the fine-tuned copy starts equal to the base.
    pub fn new(base: &'a MetaModel, reward: &'a dyn Reward, config: AdjointConfig) -> Result<Self> {
        config.validate()?;
        if base.context_config().is_some() {
            return Err(Error::Unsupported {
                reason: "adjoint matching of a context-conditioned meta-model is not supported: its field takes a \
                         context the tilt would have to fix; tune an unconditioned model"
                    .into(),
            });
        }
        let base_net = match (base.config().objective, base.velocity_net()) {
            (Objective::Cfm | Objective::Mmfm, Some(net)) => net,
            _ => {
                return Err(Error::Unsupported {
                    reason: "adjoint matching needs a velocity field (CFM or MMFM); a JKO potential model has none"
                        .into(),
                })
            }
        };
        let source = base.flow_source()?;
        let var0 = source.variance();
        let device = base.device();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let tuned = VelocityNet::new(base.flow_dim(), &base.config().net, vb)?;
        {
            let data = varmap.data().lock().expect("var map lock poisoned");
            for (name, t) in base.weights() {
                let var = data.get(name).ok_or_else(|| Error::Unsupported {
                    reason: format!("the base model's tensor {name} is not a tensor of its velocity net"),
                })?;
                var.set(t).op("copy base weights")?;
            }
        }
        let trained: Vec<Var> =
            sorted_vars(&varmap).into_iter().filter(|(n, _)| !n.starts_with(PRECOND_PREFIX)).map(|(_, v)| v).collect();
        let params = ParamsAdamW { lr: config.lr, weight_decay: config.weight_decay, ..ParamsAdamW::default() };
        let opt = AdamW::new(trained.clone(), params).op("create optimiser")?;
        Ok(Self {
            base,
            base_net,
            reward,
            endpoint: base.config().predicts_endpoint(),
            var0,
            source,
            varmap,
            tuned,
            opt,
            trained,
            rng: rng::rng(config.seed),
            config,
            iteration: 0,
            started: Instant::now(),
            base_sha: base.weights_sha256()?,
            last_samples: Array2::zeros((0, base.layout().dim())),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AdjointConfig {
        &self.config
    }

    /// Iterations done so far.
    pub fn iterations_done(&self) -> usize {
        self.iteration
    }

    /// The terminal samples `[B, D]` (θ space) of the last iteration's fine-tuned SDE (empty before the
    /// first): a running sample of what the tuned model generates.
    pub fn last_samples(&self) -> ArrayView2<'_, f32> {
        self.last_samples.view()
    }

    /// One iteration: trajectories, lean adjoint, one optimiser step.
    pub fn step(&mut self) -> Result<IterationStats> {
        let it = self.iteration;
        let n = self.config.steps;
        let times = self.time_grid();
        let (states, z1, theta1) = self.trajectories(&times)?;
        let (rewards, grads) = self.reward.reward_and_grad(theta1.view())?;
        let b = self.config.batch_size;
        let d = self.base.layout().dim();
        if rewards.len() != b || grads.dim() != (b, d) {
            return Err(Error::Shape {
                what: "reward output",
                expected: format!("[{b}] and [{b}, {d}]"),
                got: format!("[{}] and {:?}", rewards.len(), grads.shape()),
            });
        }
        if let Some(v) = rewards.iter().chain(grads.iter()).find(|v| !v.is_finite()) {
            return Err(Error::Diverged { iteration: it, what: "the reward or its gradient", value: *v });
        }
        let reward = rewards.iter().map(|&r| r as f64).sum::<f64>() / b as f64;
        self.last_samples = theta1;
        let subset = self.time_subset(n - 1);
        let adjoints = self.lean_adjoint(&states, &times, self.base.pull_back(z1.view(), grads.view())?, &subset)?;
        let (loss, grad_norm) = self.optimise(&states, &times, &adjoints, &subset)?;
        if !loss.is_finite() {
            return Err(Error::Diverged { iteration: it, what: "the adjoint-matching loss", value: loss as f32 });
        }
        self.iteration += 1;
        Ok(IterationStats { iteration: self.iteration, reward, loss, grad_norm })
    }

    /// The fine-tuned model as it stands: the base's kind, layout, scaling and source with the tuned weights,
    /// and a [`TuningRecord`]; it saves, loads and generates like any meta-model.
    pub fn model(&self) -> Result<MetaModel> {
        let weights: Vec<(String, Tensor)> = sorted_vars(&self.varmap)
            .into_iter()
            .map(|(n, v)| v.as_tensor().copy().map(|t| (n, t.detach())))
            .collect::<candle_core::Result<_>>()
            .op("copy tuned weights")?;
        let mut info = self.base.info();
        info.tuning = Some(TuningRecord {
            method: "adjoint-matching".into(),
            reward: self.reward.describe(),
            lambda: self.config.lambda,
            iterations: self.iteration,
            base_weights_sha256: self.base_sha.clone(),
            settings: serde_json::to_value(&self.config).expect("the config serialises"),
            seconds: self.started.elapsed().as_secs_f64(),
        });
        Ok(MetaModel::from_parts(info, weights, self.base.device())?)
    }

    fn upload(&self, a: &Array2<f32>) -> Result<Tensor> {
        let a = a.as_standard_layout();
        Tensor::from_slice(a.as_slice().expect("standard layout"), a.dim(), self.base.device()).op("upload")
    }

    fn row(&self, v: &[f32]) -> Result<Tensor> {
        Tensor::from_slice(v, (1, v.len()), self.base.device()).op("upload")
    }

    /// Step 1: the states X_{t_k} `[B, d]` (flow coordinates) on `times`, and on the host X_1 and the weights
    /// θ it stands for.
    fn trajectories(&mut self, times: &[f64]) -> Result<(Vec<Tensor>, Array2<f32>, Array2<f32>)> {
        let (b, d) = (self.config.batch_size, self.var0.len());
        let x0 = self.source.sample(b, &mut self.rng);
        let x0 = self.upload(&x0)?;
        let v0 = self.tuned.velocity_at(&x0, 0.0, self.endpoint)?;
        let mut x = (&x0 + (v0 * times[0]).op("first step")?).op("first step")?;
        let h = times[1] - times[0];
        let mut states = Vec::with_capacity(times.len());
        for (k, &t) in times.iter().enumerate().take(times.len() - 1) {
            let v = self.tuned.velocity_at(&x, t, self.endpoint)?.detach();
            let drift = ((v * 2.0).op("drift")? - (&x / t).op("drift")?).op("drift")?;
            let eps: Vec<f32> = (0..b * d).map(|_| StandardNormal.sample(&mut self.rng)).collect();
            let eps = Tensor::from_vec(eps, (b, d), x.device()).op("noise")?;
            let sigma: Vec<f32> = memoryless_sigma(&self.var0, t).iter().map(|s| s * (h as f32).sqrt()).collect();
            let noise = eps.broadcast_mul(&self.row(&sigma)?).op("noise")?;
            let next = ((&x + (drift * h).op("euler–maruyama")?).op("euler–maruyama")? + noise).op("euler–maruyama")?;
            states.push(x);
            x = next;
            debug_assert_eq!(states.len(), k + 1);
        }
        states.push(x);
        let z1 = states.last().expect("at least one state").to_vec2::<f32>().op("read samples")?;
        let z1 = Array2::from_shape_vec((b, d), z1.into_iter().flatten().collect()).expect("B × D values");
        let theta1 = self.base.weights_of(z1.view())?;
        Ok((states, z1, theta1))
    }

    /// This iteration's grid of `steps` times t_0 = δ < … < t_{N−1} = 1, equally spaced, with δ drawn in
    /// [h/2, 3h/2) for h = 1/steps. A fixed grid would train the fine-tuned net at the same few times only, and
    /// the high frequencies of its time embedding let it change arbitrarily in between: the ODE sampler, which
    /// steps at other times, then misses part of the tilt (measured on the toy of docs/TUNE.md).
    fn time_grid(&mut self) -> Vec<f64> {
        let n = self.config.steps;
        let h = 1.0 / n as f64;
        let delta = h * (0.5 + self.rng.random::<f64>());
        (0..n).map(|k| if k + 1 == n { 1.0 } else { delta + k as f64 * (1.0 - delta) / (n - 1) as f64 }).collect()
    }

    /// Indices among 0 … `candidates` − 1 (the time points before t = 1) the loss uses this iteration: the last
    /// `last_fraction`, and a random `random_fraction` of the others.
    fn time_subset(&mut self, candidates: usize) -> Vec<usize> {
        let n_last = ((self.config.last_fraction * candidates as f64).ceil() as usize).min(candidates);
        let rest: Vec<usize> = (0..candidates - n_last).collect();
        let n_rand = (self.config.random_fraction * rest.len() as f64).round() as usize;
        let mut chosen: Vec<usize> = rest.choose_multiple(&mut self.rng, n_rand).copied().collect();
        chosen.extend(candidates - n_last..candidates);
        if chosen.is_empty() {
            chosen.push(candidates - 1);
        }
        chosen.sort_unstable();
        chosen
    }

    /// Step 2: ã at the `subset` indices, from ã_{N−1} = λ ∇_z r (`grad_z`: the reward's gradient pulled
    /// back to flow coordinates, s ⊙ ∇_θ r in weight space) backwards with the base's VJPs.
    fn lean_adjoint(
        &self,
        states: &[Tensor],
        times: &[f64],
        grad_z: Array2<f32>,
        subset: &[usize],
    ) -> Result<Vec<Tensor>> {
        let mut a = self.upload(&(grad_z * self.config.lambda as f32))?;
        let h = times[1] - times[0];
        let mut out = vec![None; times.len()];
        for k in (0..times.len() - 1).rev() {
            let (x, t) = (&states[k + 1], times[k + 1]);
            let xv = Var::from_tensor(&x.detach()).op("lean adjoint")?;
            let v = self.base_net.velocity_at(xv.as_tensor(), t, self.endpoint)?;
            let grads = (v * &a).and_then(|p| p.sum_all()).and_then(|s| s.backward()).op("base VJP")?;
            let vjp = match grads.get(xv.as_tensor()) {
                Some(g) => g.clone(),
                None => xv.as_tensor().zeros_like().op("base VJP")?,
            };
            let da = ((vjp * 2.0).op("lean adjoint")? - (&a / t).op("lean adjoint")?).op("lean adjoint")?;
            a = (&a + (da * h).op("lean adjoint")?).op("lean adjoint")?.detach();
            if subset.contains(&k) {
                out[k] = Some(a.clone());
            }
        }
        Ok(subset.iter().map(|&k| out[k].clone().expect("every subset index is before t = 1")).collect())
    }

    /// Step 3: the clipped regression loss on the subset, its clipped gradient, one optimiser step.
    fn optimise(
        &mut self,
        states: &[Tensor],
        times: &[f64],
        adjoints: &[Tensor],
        subset: &[usize],
    ) -> Result<(f64, f64)> {
        let b = self.config.batch_size;
        let x = Tensor::cat(&subset.iter().map(|&k| &states[k]).collect::<Vec<_>>(), 0).op("stack states")?;
        let a = Tensor::cat(adjoints, 0).op("stack adjoints")?;
        let t: Vec<f32> = subset.iter().flat_map(|&k| std::iter::repeat_n(times[k] as f32, b)).collect();
        let t = Tensor::from_vec(t, subset.len() * b, x.device()).op("upload times")?;
        let sigma: Vec<Tensor> = subset
            .iter()
            .map(|&k| self.row(&memoryless_sigma(&self.var0, times[k]))?.repeat((b, 1)).op("sigma rows"))
            .collect::<Result<_>>()?;
        let sigma = Tensor::cat(&sigma, 0).op("stack sigma")?;
        let v_base = self.base_net.velocity_rows(&x, &t, self.endpoint)?.detach();
        let v_ft = self.tuned.velocity_rows(&x, &t, self.endpoint)?;
        let run = || -> candle_core::Result<Tensor> {
            let control = ((v_ft - v_base)? * 2.0)?.div(&sigma)?;
            let resid = (control - sigma.mul(&a)?)?;
            resid.sqr()?.sum(1)?.minimum(self.config.loss_clip)?.mean_all()
        };
        let loss = run().op("adjoint-matching loss")?;
        let value = loss.to_scalar::<f32>().op("read loss")? as f64;
        let mut grads = loss.backward().op("loss gradient")?;
        let mut sq = 0f64;
        for v in &self.trained {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += g.sqr().and_then(|s| s.sum_all()).and_then(|s| s.to_scalar::<f32>()).op("gradient norm")? as f64;
            }
        }
        let norm = sq.sqrt();
        if norm.is_finite() && norm > self.config.grad_clip {
            let factor = self.config.grad_clip / norm;
            for v in &self.trained {
                if let Some(g) = grads.remove(v.as_tensor()) {
                    grads.insert(v.as_tensor(), (g * factor).op("clip gradient")?);
                }
            }
        }
        self.opt.step(&grads).op("optimiser step")?;
        Ok((value, norm))
    }
}

/// Mean and covariance (f64) of the rows of `x` `[N, D]`: the statistics the closed-form tilt checks compare.
pub fn mean_and_covariance(x: ArrayView2<f32>) -> (Array1<f64>, Array2<f64>) {
    let x = x.mapv(f64::from);
    let n = x.nrows() as f64;
    let mean = x.sum_axis(ndarray::Axis(0)) / n;
    let c = &x - &mean;
    let cov = c.t().dot(&c) / (n - 1.0);
    (mean, cov)
}
