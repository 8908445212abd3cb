//! The memoryless noise schedule in the flow's coordinates.
//!
//! For the linear path x_t = t x_1 + (1 − t) x_0 with a Gaussian source x_0 ~ N(0, v_0) per coordinate,
//! E[x_0 | x_t] = x_t − t v(x_t, t), so the score is −(x − t v)/((1 − t) v_0). The SDE
//! dX = (v + ½σ² ∇log p_t) dt + σ dB has the flow's marginals for any σ(t); with
//! σ(t)² = 2 v_0 (1 − t)/t its drift is 2v − x/t and X_0 is independent of X_1 ("memoryless"), which is what
//! makes the adjoint-matching regression target the tilted distribution. METHOD.md writes v_0 = 1; the flow
//! works on z = θ/s, where the source's variance is v_0 = Var(x_0)/s², so the schedule carries it per
//! coordinate. For a non-Gaussian source (Kaiming uniform) the score identity, and thus the tilt, is only
//! approximate: docs/TUNE.md measures by how much.

use crate::flow::space::FlowSource;
use crate::flow::Scaling;
use crate::space::{Layout, SourceKind};

use super::Result;

/// Per coordinate of z = θ/s, the variance v_0 of the source: Kaiming uniform ±1/√fan_in has b²/3 = 1/(3 fan_in),
/// the unit Gaussian 1; both divided by s².
pub fn source_variance(layout: &Layout, source: SourceKind, scaling: &Scaling) -> Result<Vec<f32>> {
    Ok(FlowSource::weights(layout, source, scaling)?.variance())
}

/// σ(t) = √(2 v_0 (1 − t)/t) per coordinate, for t ∈ (0, 1].
pub fn memoryless_sigma(var0: &[f32], t: f64) -> Vec<f32> {
    let c = 2.0 * (1.0 - t).max(0.0) / t;
    var0.iter().map(|&v| (c * v as f64).sqrt() as f32).collect()
}
