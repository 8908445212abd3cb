//! A trained meta-model and its generation of weight vectors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ndarray::{s, Array2, ArrayView2};

use super::error::CandleContext;
use super::net::{PotentialNet, VelocityNet};
use super::{MetaTrainConfig, Objective, Result, Sampler, Scaling, ENDPOINT_MIN_GAP};
use crate::ode::integrate;
use crate::rng;
use crate::space::Layout;

/// Rows integrated together during generation.
const GEN_BATCH: usize = 4096;

/// The learned field.
#[derive(Debug, Clone)]
enum Field {
    Velocity(VelocityNet),
    Potential(PotentialNet),
}

/// A trained meta-model: the network's sampling weights (the EMA copy when training kept one), the scaling
/// z = θ/s it works in, and what it was trained on.
#[derive(Debug, Clone)]
pub struct MetaModel {
    layout: Layout,
    config: MetaTrainConfig,
    checkpoints: usize,
    scaling: Scaling,
    weights: Vec<(String, Tensor)>,
    field: Field,
    device: Device,
    data_digest: String,
    train_seconds: f64,
    final_loss: f32,
    activation: Option<String>,
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
}

impl MetaModel {
    /// Builds the model from sorted, detached `weights` on `device`.
    pub(crate) fn from_parts(info: ModelInfo, weights: Vec<(String, Tensor)>, device: &Device) -> Result<Self> {
        let map: HashMap<String, Tensor> = weights.iter().cloned().collect();
        let vb = VarBuilder::from_tensors(map, DType::F32, device);
        let dim = info.layout.dim();
        let field = match info.config.objective {
            Objective::Jko => Field::Potential(PotentialNet::new(dim, &info.config.net, vb)?),
            Objective::Cfm | Objective::Mmfm => Field::Velocity(VelocityNet::new(dim, &info.config.net, vb)?),
        };
        info.scaling.per_coordinate(&info.layout)?;
        Ok(Self {
            layout: info.layout,
            config: info.config,
            checkpoints: info.checkpoints,
            scaling: info.scaling,
            weights,
            field,
            device: device.clone(),
            data_digest: info.data_digest,
            train_seconds: info.train_seconds,
            final_loss: info.final_loss,
            activation: info.activation,
        })
    }

    /// The base classifiers' layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The training configuration (objective, coupling, source, network, …).
    pub fn config(&self) -> &MetaTrainConfig {
        &self.config
    }

    /// The scaling z = θ / s.
    pub fn scaling(&self) -> &Scaling {
        &self.scaling
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
    pub fn generate(&self, n: usize, sampler: Sampler, steps: usize, seed: u64) -> Result<Array2<f32>> {
        let x0 = self.source_samples(n, seed);
        let mut path = self.flow_path(x0.view(), sampler, steps, &|i, last| i == last)?;
        Ok(path.pop().map(|(_, x)| x).expect("the final state is always recorded"))
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
        let x0 = self.source_samples(n, seed);
        self.generate_path_from(x0.view(), sampler, steps, record_every)
    }

    /// Like [`Self::generate_path`], from given starting weights `x0` `[n, D]` (θ space) — for tests and
    /// diagnostics; evaluate generation from fresh source samples.
    pub fn generate_path_from(
        &self,
        x0: ArrayView2<f32>,
        sampler: Sampler,
        steps: usize,
        record_every: usize,
    ) -> Result<Vec<(f32, Array2<f32>)>> {
        self.flow_path(x0, sampler, steps, &|i, last| {
            i == 0 || i == last || (record_every > 0 && i % record_every == 0)
        })
    }

    /// The flow-space velocity dz/dt at (z, t) for one time shared by the batch: the network's output, or,
    /// for endpoint prediction, v = (x̂_1 − z)/(1 − t) with the gap floored where Heun and RK4 evaluate at
    /// t = 1.
    fn velocity(&self, net: &VelocityNet, z: &Tensor, t: f64) -> Result<Tensor> {
        if !self.config.predicts_endpoint() {
            return net.forward_at(z, t);
        }
        let gap = (1.0 - t).max(ENDPOINT_MIN_GAP);
        let tt = Tensor::full(t as f32, (z.dim(0).op("batch size")?, 1), z.device()).op("time")?;
        let x1 = net.endpoint(z, &tt, &net.forward_at(z, t)?)?;
        ((x1 - z).op("endpoint velocity")? / gap).op("endpoint velocity")
    }

    /// dθ/dt `[n, D]` at weights `theta` `[n, D]` and time `t`, through candle: s ⊙ v_z(θ/s, t), the field
    /// [`Self::generate`] integrates (in z) and the exported ONNX graph computes (in θ). Velocity models
    /// only (CFM, MMFM).
    pub fn velocity_at(&self, theta: ArrayView2<f32>, t: f64) -> Result<Array2<f32>> {
        let Field::Velocity(net) = &self.field else {
            return Err(super::Error::Config {
                field: "objective",
                reason: "a JKO model has no velocity field".into(),
            });
        };
        let z = self.scaling.to_flow(&self.layout, theta)?;
        let (n, d) = z.dim();
        let z = Tensor::from_slice(z.as_slice().expect("fresh standard layout"), (n, d), &self.device)
            .op("velocity input")?;
        let v = self.velocity(net, &z, t)?.flatten_all().and_then(|f| f.to_vec1::<f32>()).op("velocity output")?;
        let vz = Array2::from_shape_vec((n, d), v).expect("n × D values");
        let s = self.scaling.per_coordinate(&self.layout)?;
        Ok(vz * ndarray::ArrayView1::from(&s))
    }

    fn source_samples(&self, n: usize, seed: u64) -> Array2<f32> {
        self.config.source.source().sample(&self.layout, n, &mut rng::rng(seed))
    }

    /// Integrates `x0` (θ space) and returns the states at the steps `record(i, last)` selects, unscaled.
    fn flow_path(
        &self,
        x0: ArrayView2<f32>,
        sampler: Sampler,
        steps: usize,
        record: &dyn Fn(usize, usize) -> bool,
    ) -> Result<Vec<(f32, Array2<f32>)>> {
        let (n, d) = x0.dim();
        if d != self.layout.dim() {
            return Err(crate::space::Error::Dim { expected: self.layout.dim(), got: d }.into());
        }
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
        let z0 = self.scaling.to_flow(&self.layout, x0)?;
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
                    integrate(sampler, last, x, |x, t| self.velocity(net, x, t), |i, _, x| store(i, x))?;
                }
                Field::Potential(net) => {
                    let mut x = x;
                    for j in 0..last {
                        // Explicit step with the potential of the step j → j+1, labelled by its arrival time
                        // t_{j+1} as in training (t_0 is never a training label).
                        let tau = times[j + 1] - times[j];
                        let tt = Tensor::full(times[j + 1] as f32, rows, &self.device).op("generation time")?;
                        let g = net.grad_x_graph(&x, &tt, None)?;
                        x = (&x - (g * tau).op("jko step")?).op("jko step")?;
                        store(j + 1, &x)?;
                    }
                }
            }
        }
        for (_, x) in &mut out {
            *x = self.scaling.from_flow(&self.layout, x.view())?;
        }
        Ok(out)
    }
}
