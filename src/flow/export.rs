//! [`MetaModel::to_onnx`]: the trained velocity field as an ONNX graph in θ space ([`crate::onnx::velocity`]).

use candle_core::Tensor;

use super::error::CandleContext;
use super::net::time_frequencies;
use super::{Error, MetaModel, Objective, Result, ENDPOINT_MIN_GAP};
use crate::onnx::{export_velocity, DenseLayer, EndpointStats, VelocitySpec};

impl MetaModel {
    /// The velocity field dθ/dt = s ⊙ v_z(θ/s, t) as serialised ONNX (`ModelProto` bytes): inputs
    /// [`crate::onnx::INPUT_X`] f32 `[B, D]`, [`crate::onnx::INPUT_T`] f64 `[B, 1]`, output
    /// [`crate::onnx::OUTPUT_V`] f32 `[B, D]`; equal to [`Self::velocity_at`] to float tolerance.
    /// CFM and MMFM models without conditioning only (JKO models step a potential's gradient).
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        Ok(export_velocity(&self.velocity_spec()?)?)
    }

    /// The plain-array description of the velocity network that the ONNX export consumes.
    pub fn velocity_spec(&self) -> Result<VelocitySpec> {
        let cfg = &self.config().net;
        if self.config().objective == Objective::Jko {
            return Err(Error::Config {
                field: "objective",
                reason: "JKO models have no velocity net to export".into(),
            });
        }
        if cfg.cond_dim != 0 {
            return Err(Error::Config {
                field: "cond_dim",
                reason: "conditioned velocity nets are not exported (no conditioning input in the graph)".into(),
            });
        }
        if self.latent().is_some() {
            return Err(Error::Config {
                field: "latent",
                reason: "latent-space models are not exported (the graph has no decoder): export a weight-space model"
                    .into(),
            });
        }
        let dim = self.layout().dim();
        let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t: &Tensor = self
                .weights()
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::Config { field: "weights", reason: format!("no tensor {name}") })?;
            Ok((t.dims().to_vec(), t.flatten_all().and_then(|f| f.to_vec1::<f32>()).op("export weights")?))
        };
        let layer = |prefix: &str| -> Result<DenseLayer> {
            let (dims, weight) = get(&format!("{prefix}.weight"))?;
            let (_, bias) = get(&format!("{prefix}.bias"))?;
            Ok(DenseLayer { out: dims[0], inp: dims[1], weight, bias })
        };
        let hidden = (0..cfg.hidden.len()).map(|i| layer(&format!("trunk.l{i}"))).collect::<Result<Vec<_>>>()?;
        let endpoint = if self.config().predicts_endpoint() {
            Some(EndpointStats {
                mu1: get("precond.mu1")?.1,
                var0: get("precond.var0")?.1,
                var1: get("precond.var1")?.1,
                min_gap: ENDPOINT_MIN_GAP,
            })
        } else {
            None
        };
        Ok(VelocitySpec {
            dim,
            scale: self.scaling().per_coordinate(self.layout())?,
            freqs: time_frequencies(cfg.time_dim),
            hidden,
            head: layer("head")?,
            endpoint,
        })
    }
}
