//! A trained meta-model and its generation of weight vectors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ndarray::{s, Array2, ArrayView2};

use super::error::CandleContext;
use super::net::{PotentialNet, VelocityNet};
use super::{
    ContextEncoder, ContextSet, MetaTrainConfig, Objective, Result, Sampler, Scaling, TuningRecord, WeightAutoencoder,
};
use crate::ode::integrate;
use crate::rng;
use crate::space::Layout;

/// Classifier-free guidance towards an encoded context (module `context`).
struct Guide {
    /// The context's encoding `[1, cond_dim]`.
    context: Tensor,
    /// The guidance weight w.
    weight: f64,
}

/// Rows integrated together during generation.
const GEN_BATCH: usize = 4096;

/// The learned field.
#[derive(Debug, Clone)]
enum Field {
    Velocity(VelocityNet),
    Potential(PotentialNet),
}

/// A trained meta-model: the network's sampling weights (the EMA copy when training kept one), the space it
/// works in (z = θ/s, or an autoencoder's latent: module `space`), and what it was trained on.
#[derive(Debug, Clone)]
pub struct MetaModel {
    layout: Layout,
    config: MetaTrainConfig,
    checkpoints: usize,
    /// Weight space: one scale per layout tensor. Latent space: one scale for the whole latent.
    scaling: Scaling,
    /// The autoencoder whose latent the flow runs in (None: weight space).
    latent: Option<Box<WeightAutoencoder>>,
    weights: Vec<(String, Tensor)>,
    field: Field,
    /// The context encoder of a context-conditioned model (module `context`).
    context: Option<ContextEncoder>,
    device: Device,
    data_digest: String,
    train_seconds: f64,
    final_loss: f32,
    activation: Option<String>,
    tuning: Option<TuningRecord>,
    /// The sampling temperature τ: generation starts from τ·z₀ (1: the source the flow was trained from). A
    /// setting of this loaded model, not of the file ([`Self::with_temperature`]).
    temperature: f32,
}

/// What [`MetaModel::from_parts`] needs besides the weights.
#[derive(Debug, Clone)]
pub(crate) struct ModelInfo {
    pub layout: Layout,
    pub config: MetaTrainConfig,
    pub checkpoints: usize,
    pub scaling: Scaling,
    pub data_digest: String,
    pub train_seconds: f64,
    pub final_loss: f32,
    pub activation: Option<String>,
    pub tuning: Option<TuningRecord>,
    pub latent: Option<Box<WeightAutoencoder>>,
}

impl MetaModel {
    /// Builds the model from sorted, detached `weights` on `device`.
    pub(crate) fn from_parts(info: ModelInfo, weights: Vec<(String, Tensor)>, device: &Device) -> Result<Self> {
        let map: HashMap<String, Tensor> = weights.iter().cloned().collect();
        let vb = VarBuilder::from_tensors(map, DType::F32, device);
        let dim = match &info.latent {
            Some(ae) => {
                if ae.layout() != &info.layout || info.scaling.scales.len() != 1 {
                    return Err(super::Error::Config {
                        field: "latent",
                        reason: format!(
                            "a latent model needs an autoencoder over its layout {} and one latent scale, got {} \
                             and {} scales",
                            info.layout,
                            ae.layout(),
                            info.scaling.scales.len()
                        ),
                    });
                }
                ae.latent_dim()
            }
            None => {
                info.scaling.per_coordinate(&info.layout)?;
                info.layout.dim()
            }
        };
        let field = match info.config.objective {
            Objective::Jko => Field::Potential(PotentialNet::new(
                dim,
                &info.config.net,
                info.config.jko_baseline_knots(info.checkpoints),
                vb.clone(),
            )?),
            Objective::Cfm | Objective::Mmfm => Field::Velocity(VelocityNet::new(dim, &info.config.net, vb.clone())?),
        };
        let context = match &info.config.context {
            Some(c) => Some(ContextEncoder::new(&info.layout, c, info.config.net.cond_dim, vb)?),
            None => None,
        };
        Ok(Self {
            layout: info.layout,
            config: info.config,
            checkpoints: info.checkpoints,
            scaling: info.scaling,
            latent: info.latent,
            weights,
            field,
            context,
            device: device.clone(),
            data_digest: info.data_digest,
            train_seconds: info.train_seconds,
            final_loss: info.final_loss,
            activation: info.activation,
            tuning: info.tuning,
            temperature: 1.0,
        })
    }

    /// The same model sampling at temperature `tau`: every generation starts from fresh source samples scaled
    /// by τ (reduced-temperature sampling, as in Glow). τ < 1 draws from the centre of the source, which trades
    /// the generated nets' spread for accuracy (docs/FLOW.md, "sampling temperature"); τ = 1 is the flow as
    /// trained. Errors unless τ is finite and positive.
    pub fn with_temperature(mut self, tau: f32) -> Result<Self> {
        if !(tau.is_finite() && tau > 0.0) {
            return Err(super::Error::Config {
                field: "temperature",
                reason: format!("the sampling temperature must be finite and positive, got {tau}"),
            });
        }
        self.temperature = tau;
        Ok(self)
    }

    /// The sampling temperature τ ([`Self::with_temperature`]; 1 unless set).
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// The base classifiers' layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The training configuration (objective, coupling, source, network, …).
    pub fn config(&self) -> &MetaTrainConfig {
        &self.config
    }

    /// The scaling z = θ / s (weight space: one scale per layout tensor; latent space: one scale for the
    /// latent, z = latent / s).
    pub fn scaling(&self) -> &Scaling {
        &self.scaling
    }

    /// The autoencoder whose latent the flow runs in; None for a weight-space model.
    pub fn latent(&self) -> Option<&WeightAutoencoder> {
        self.latent.as_deref()
    }

    /// K: checkpoint intervals of the training trajectories.
    pub fn checkpoints(&self) -> usize {
        self.checkpoints
    }

    /// sha256 (hex) of the training trajectories' f32 bytes.
    pub fn data_digest(&self) -> &str {
        &self.data_digest
    }

    /// Wall-clock seconds of training.
    pub fn train_seconds(&self) -> f64 {
        self.train_seconds
    }

    /// Mean loss over the last (up to 100) training steps.
    pub fn final_loss(&self) -> f32 {
        self.final_loss
    }

    /// The base classifiers' activation as recorded in a saved model (None before saving).
    pub fn activation(&self) -> Option<&str> {
        self.activation.as_deref()
    }

    /// How the model was reward fine-tuned (None for a model trained by flow matching only).
    pub fn tuning(&self) -> Option<&TuningRecord> {
        self.tuning.as_ref()
    }

    /// Everything but the weights, to rebuild a model of the same kind with other weights.
    pub(crate) fn info(&self) -> ModelInfo {
        ModelInfo {
            layout: self.layout.clone(),
            config: self.config.clone(),
            checkpoints: self.checkpoints,
            scaling: self.scaling.clone(),
            data_digest: self.data_digest.clone(),
            train_seconds: self.train_seconds,
            final_loss: self.final_loss,
            activation: self.activation.clone(),
            tuning: self.tuning.clone(),
            latent: self.latent.clone(),
        }
    }

    /// The velocity network (None for a JKO potential model).
    pub(crate) fn velocity_net(&self) -> Option<&VelocityNet> {
        match &self.field {
            Field::Velocity(net) => Some(net),
            Field::Potential(_) => None,
        }
    }

    /// The device the weights live on.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// Fresh source samples `[n, D]` in θ space, drawn from `seed` (times the temperature): where
    /// [`Self::generate`] starts (a latent
    /// model starts from N(0, I) in its latent, so these are their decodings).
    pub fn source_samples(&self, n: usize, seed: u64) -> Result<Array2<f32>> {
        self.weights_of(self.flow_source_samples(n, seed)?.view())
    }

    /// Fresh source samples `[n, flow_dim]` in flow coordinates, drawn from `seed`, times the temperature.
    fn flow_source_samples(&self, n: usize, seed: u64) -> Result<Array2<f32>> {
        let z0 = self.flow_source()?.sample(n, &mut rng::rng(seed));
        Ok(if self.temperature == 1.0 { z0 } else { z0 * self.temperature })
    }

    /// Times t_k of the marginals a JKO model steps through (0, intermediates, 1).
    pub fn marginal_times(&self) -> Vec<f64> {
        self.config.knots(self.checkpoints).iter().map(|&k| k as f64 / self.checkpoints as f64).collect()
    }

    pub(crate) fn weights(&self) -> &[(String, Tensor)] {
        &self.weights
    }

    /// `n` weight vectors `[n, D]` in θ space: fresh source samples (drawn from `seed`) carried to t = 1 by
    /// the ODE dx/dt = v(x, t) with `steps` steps of `sampler` (JKO models take their own explicit steps and
    /// ignore both).
    /// A context-conditioned model generates unconditioned (its null context; see
    /// [`Self::generate_conditioned`]).
    pub fn generate(&self, n: usize, sampler: Sampler, steps: usize, seed: u64) -> Result<Array2<f32>> {
        let z0 = self.flow_source_samples(n, seed)?;
        let mut path = self.flow_path(z0, sampler, steps, None, &|i, last| i == last)?;
        Ok(path.pop().map(|(_, x)| x).expect("the final state is always recorded"))
    }

    /// Like [`Self::generate`] for the task `context` comes from (a labelled set of standardised rows, module
    /// `context`), with classifier-free guidance weight `guidance` (1: the conditional field; 0: the
    /// unconditioned one; > 1: pushed further towards the context). Context-conditioned models only.
    pub fn generate_conditioned(
        &self,
        n: usize,
        sampler: Sampler,
        steps: usize,
        seed: u64,
        context: &ContextSet,
        guidance: f64,
    ) -> Result<Array2<f32>> {
        let Some(encoder) = &self.context else {
            return Err(super::Error::Config {
                field: "context",
                reason: "this meta-model was trained without context conditioning".into(),
            });
        };
        context.check(&self.layout, "the context set")?;
        if !guidance.is_finite() {
            return Err(super::Error::Config {
                field: "guidance",
                reason: format!("the guidance weight must be finite, got {guidance}"),
            });
        }
        let c = encoder.encode_sets(std::slice::from_ref(context), &self.device)?;
        let z0 = self.flow_source_samples(n, seed)?;
        let guide = Guide { context: c, weight: guidance };
        let mut path = self.flow_path(z0, sampler, steps, Some(&guide), &|i, last| i == last)?;
        Ok(path.pop().map(|(_, x)| x).expect("the final state is always recorded"))
    }

    /// The context settings of a context-conditioned model (None: unconditioned).
    pub fn context_config(&self) -> Option<&super::ContextConfig> {
        self.config.context.as_ref()
    }

    /// The generation path from fresh source samples: `(t, [n, D])` at t = 0, after every `record_every`
    /// steps (0: none in between), and at t = 1.
    pub fn generate_path(
        &self,
        n: usize,
        sampler: Sampler,
        steps: usize,
        seed: u64,
        record_every: usize,
    ) -> Result<Vec<(f32, Array2<f32>)>> {
        let z0 = self.flow_source_samples(n, seed)?;
        self.flow_path(z0, sampler, steps, None, &Self::every(record_every))
    }

    /// Like [`Self::generate_path`], from given starting weights `x0` `[n, D]` (θ space; a latent model
    /// starts from their encodings) — for tests and diagnostics; evaluate generation from fresh source samples.
    pub fn generate_path_from(
        &self,
        x0: ArrayView2<f32>,
        sampler: Sampler,
        steps: usize,
        record_every: usize,
    ) -> Result<Vec<(f32, Array2<f32>)>> {
        if x0.ncols() != self.layout.dim() {
            return Err(crate::space::Error::Dim { expected: self.layout.dim(), got: x0.ncols() }.into());
        }
        self.flow_path(self.flow_coords(x0)?, sampler, steps, None, &Self::every(record_every))
    }

    /// The steps a path records: both ends and every `record_every`-th step (0: none in between).
    fn every(record_every: usize) -> impl Fn(usize, usize) -> bool {
        move |i, last| i == 0 || i == last || (record_every > 0 && i % record_every == 0)
    }

    /// dθ/dt `[n, D]` at weights `theta` `[n, D]` and time `t`, through candle: s ⊙ v_z(θ/s, t), the field
    /// [`Self::generate`] integrates (in z) and the exported ONNX graph computes (in θ). Velocity models
    /// only (CFM, MMFM) in weight space: a latent model's field lives in its latent.
    pub fn velocity_at(&self, theta: ArrayView2<f32>, t: f64) -> Result<Array2<f32>> {
        let Field::Velocity(net) = &self.field else {
            return Err(super::Error::Config {
                field: "objective",
                reason: "a JKO model has no velocity field".into(),
            });
        };
        if self.latent.is_some() {
            return Err(super::Error::Config {
                field: "latent",
                reason: "a latent-space model has no velocity field in weight space".into(),
            });
        }
        let z = self.scaling.to_flow(&self.layout, theta)?;
        let (n, d) = z.dim();
        let z = Tensor::from_slice(z.as_slice().expect("fresh standard layout"), (n, d), &self.device)
            .op("velocity input")?;
        let v = net
            .velocity_at(&z, t, self.config.predicts_endpoint())?
            .flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .op("velocity output")?;
        let vz = Array2::from_shape_vec((n, d), v).expect("n × D values");
        let s = self.scaling.per_coordinate(&self.layout)?;
        Ok(vz * ndarray::ArrayView1::from(&s))
    }

    /// Integrates `z0` (flow coordinates) and returns the states at the steps `record(i, last)` selects, in
    /// θ space.
    /// A context-conditioned model follows `guide`, or its null context when there is none.
    fn flow_path(
        &self,
        z0: Array2<f32>,
        sampler: Sampler,
        steps: usize,
        guide: Option<&Guide>,
        record: &dyn Fn(usize, usize) -> bool,
    ) -> Result<Vec<(f32, Array2<f32>)>> {
        let (n, d) = z0.dim();
        let times = self.marginal_times();
        let last = match self.field {
            Field::Velocity(_) => steps.max(1),
            Field::Potential(_) => times.len() - 1,
        };
        let step_time = |i: usize| match self.field {
            Field::Velocity(_) => i as f64 / last as f64,
            Field::Potential(_) => times[i],
        };
        let recorded: Vec<usize> = (0..=last).filter(|&i| record(i, last)).collect();
        let mut out: Vec<(f32, Array2<f32>)> =
            recorded.iter().map(|&i| (step_time(i) as f32, Array2::zeros((n, d)))).collect();
        for start in (0..n).step_by(GEN_BATCH) {
            let rows = GEN_BATCH.min(n - start);
            let chunk = z0.slice(s![start..start + rows, ..]);
            let chunk = chunk.as_standard_layout();
            let x = Tensor::from_slice(chunk.as_slice().expect("standard layout"), (rows, d), &self.device)
                .op("generation input")?;
            let mut store = |i: usize, x: &Tensor| -> Result<()> {
                if let Some(slot) = recorded.iter().position(|&r| r == i) {
                    let v = x.flatten_all().and_then(|f| f.to_vec1::<f32>()).op("generation output")?;
                    let v = ArrayView2::from_shape((rows, d), &v).expect("rows × D values");
                    out[slot].1.slice_mut(s![start..start + rows, ..]).assign(&v);
                }
                Ok(())
            };
            store(0, &x)?;
            match &self.field {
                Field::Velocity(net) => {
                    let endpoint = self.config.predicts_endpoint();
                    let rows_of = |c: &Tensor| c.broadcast_as((rows, c.dim(1)?))?.contiguous();
                    let null = match &self.context {
                        Some(enc) => Some(enc.null().unsqueeze(0).and_then(|n| rows_of(&n)).op("null context")?),
                        None => None,
                    };
                    let cond = match guide {
                        Some(g) => Some(rows_of(&g.context).op("context")?),
                        None => None,
                    };
                    let field = |x: &Tensor, t: f64| -> Result<Tensor> {
                        match (guide, &cond) {
                            (Some(g), Some(c)) if g.weight == 1.0 => net.velocity_given(x, t, Some(c), endpoint),
                            (Some(g), Some(c)) => {
                                let v_c = net.velocity_given(x, t, Some(c), endpoint)?;
                                let v_null = net.velocity_given(x, t, null.as_ref(), endpoint)?;
                                // v(∅) + w (v(c) − v(∅)).
                                ((&v_c - &v_null).and_then(|d| d * g.weight).and_then(|d| d + &v_null))
                                    .op("guided velocity")
                            }
                            _ => net.velocity_given(x, t, null.as_ref(), endpoint),
                        }
                    };
                    integrate(sampler, last, x, field, |i, _, x| store(i, x))?;
                }
                Field::Potential(net) => {
                    let mut x = x;
                    for j in 0..last {
                        // Explicit step with the potential of the step j → j+1, labelled by its arrival time
                        // t_{j+1} as in training (t_0 is never a training label).
                        x = net.step(&x, j, times[j + 1], times[j + 1] - times[j])?;
                        store(j + 1, &x)?;
                    }
                }
            }
        }
        for (_, x) in &mut out {
            *x = self.weights_of(x.view())?;
        }
        Ok(out)
    }
}
