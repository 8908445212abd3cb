//! The ONNX graph of a meta-model's velocity field in θ space (weight space, unscaled).
//!
//! Inputs `x` f32 `[B, D]` (weights θ) and `t` f64 `[B, 1]` (time; f64 so the time embedding is computed in
//! double precision, as the candle sampler does); output `v` f32 `[B, D]` = dθ/dt:
//!
//! ```text
//! z = x / s                                          per-coordinate scale s (the flow's Scaling)
//! e = [sin(t ω), cos(t ω)]  (in f64, then f32)       ω: the time frequencies
//! h = SiLU(W_i h + b_i) from h = [z, e];  F = W_head h + b_head
//! velocity nets:  v_z = F
//! endpoint nets:  x̂_1 = μ_1 + c_skip (z − t μ_1) + c_out F,   v_z = (x̂_1 − z) / max(1 − t, gap_min)
//!                 c_skip = t v_1 / V_t,  c_out = √(v_0 v_1)(1 − t)/√V_t,  V_t = (1 − t)² v_0 + t² v_1
//! v = s ⊙ v_z
//! ```
//!
//! Integrating dθ/dt = v from θ_0 is integrating the flow in z = θ/s and unscaling at the end: the step is
//! linear, so both give the same θ_1.

use super::graph::{Dim, Elem, GraphBuilder};
use super::OnnxError;

/// Name of the weights input `[B, D]` (f32).
pub const INPUT_X: &str = "x";
/// Name of the time input `[B, 1]` (f64).
pub const INPUT_T: &str = "t";
/// Name of the velocity output `[B, D]` (f32).
pub const OUTPUT_V: &str = "v";

/// A dense layer: `weight` row-major `[out, in]`, `bias` `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
    /// Row-major `[out, in]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// The statistics of endpoint preconditioning (each `[D]`, in z space).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStats {
    /// Mean of the targets μ_1.
    pub mu1: Vec<f32>,
    /// Source variance v_0.
    pub var0: Vec<f32>,
    /// Target variance v_1.
    pub var1: Vec<f32>,
    /// Floor of 1 − t in the endpoint → velocity conversion.
    pub min_gap: f64,
}

/// Everything the velocity graph needs, as plain arrays (no candle types).
#[derive(Debug, Clone, PartialEq)]
pub struct VelocitySpec {
    /// Weight dimension D.
    pub dim: usize,
    /// Per-coordinate scale s `[D]` (z = θ / s).
    pub scale: Vec<f32>,
    /// Time frequencies ω (`time_dim / 2` of them).
    pub freqs: Vec<f32>,
    /// Hidden layers, each followed by SiLU; the first takes `[z, e]` (D + 2·|ω| inputs).
    pub hidden: Vec<DenseLayer>,
    /// The output layer (to D).
    pub head: DenseLayer,
    /// Present when the network predicts the preconditioned endpoint instead of the velocity.
    pub endpoint: Option<EndpointStats>,
}

impl VelocitySpec {
    fn validate(&self) -> Result<(), OnnxError> {
        let d = self.dim;
        let check = |what: String, expected: Vec<usize>, got: Vec<usize>| {
            if expected == got {
                Ok(())
            } else {
                Err(OnnxError::Shape { what, expected, got })
            }
        };
        if self.hidden.is_empty() || self.freqs.is_empty() || d == 0 {
            return Err(OnnxError::Unsupported("need D ≥ 1, ≥ 1 time frequency and ≥ 1 hidden layer".into()));
        }
        check("scale".into(), vec![d], vec![self.scale.len()])?;
        let mut width = d + 2 * self.freqs.len();
        for (i, l) in self.hidden.iter().chain(std::iter::once(&self.head)).enumerate() {
            check(format!("layer {i} input"), vec![width], vec![l.inp])?;
            check(format!("layer {i} weight"), vec![l.out * l.inp], vec![l.weight.len()])?;
            check(format!("layer {i} bias"), vec![l.out], vec![l.bias.len()])?;
            width = l.out;
        }
        check("head output".into(), vec![d], vec![self.head.out])?;
        if let Some(e) = &self.endpoint {
            for (what, v) in [("mu1", &e.mu1), ("var0", &e.var0), ("var1", &e.var1)] {
                check(what.into(), vec![d], vec![v.len()])?;
            }
        }
        Ok(())
    }
}

/// The serialised ONNX model (`ModelProto` bytes) of `spec`'s velocity field.
pub fn export_velocity(spec: &VelocitySpec) -> Result<Vec<u8>, OnnxError> {
    spec.validate()?;
    let d = spec.dim;
    let mut g = GraphBuilder::default();
    let x = g.input(INPUT_X, Elem::F32, &[Dim::Named("batch"), Dim::Fixed(d)]);
    let t = g.input(INPUT_T, Elem::F64, &[Dim::Named("batch"), Dim::Fixed(1)]);

    let scale = g.f32_tensor("scale", &[d], &spec.scale);
    let z = g.bin("Div", &x, &scale);

    // The time embedding in f64, like the candle sampler's (t ω in double, then sin/cos, then f32).
    let freqs: Vec<f64> = spec.freqs.iter().map(|&w| w as f64).collect();
    let omega = g.f64_tensor("freqs", &[1, freqs.len()], &freqs);
    let arg = g.bin("Mul", &t, &omega);
    let sin = g.op("Sin", &[&arg], &[]);
    let cos = g.op("Cos", &[&arg], &[]);
    let (sin, cos) = (g.cast(&sin, Elem::F32), g.cast(&cos, Elem::F32));
    let mut h = g.op("Concat", &[&z, &sin, &cos], &[("axis", 1)]);

    for l in &spec.hidden {
        let a = dense(&mut g, &h, l);
        let sig = g.op("Sigmoid", &[&a], &[]);
        h = g.bin("Mul", &a, &sig);
    }
    let f = dense(&mut g, &h, &spec.head);

    let vz = match &spec.endpoint {
        None => f,
        Some(e) => endpoint_velocity(&mut g, &z, &t, &f, e),
    };
    let v = g.bin("Mul", &vz, &scale);
    g.output(&v, OUTPUT_V, Elem::F32, &[Dim::Named("batch"), Dim::Fixed(d)]);
    Ok(g.finish("weightflow_velocity", "weightflow"))
}

/// `W h + b` as a Gemm with the weight stored `[out, in]` (transB).
fn dense(g: &mut GraphBuilder, h: &str, l: &DenseLayer) -> String {
    let w = g.f32_tensor("weight", &[l.out, l.inp], &l.weight);
    let b = g.f32_tensor("bias", &[l.out], &l.bias);
    g.op("Gemm", &[h, &w, &b], &[("transB", 1)])
}

/// (x̂_1 − z) / max(1 − t, gap_min) with the preconditioned endpoint x̂_1 (flow::precond's formula, in f32
/// like candle; the floored gap's reciprocal in f64, as candle's division by an f64 scalar).
fn endpoint_velocity(g: &mut GraphBuilder, z: &str, t64: &str, f: &str, e: &EndpointStats) -> String {
    let mu1 = g.f32_tensor("mu1", &[e.mu1.len()], &e.mu1);
    let var0 = g.f32_tensor("var0", &[e.var0.len()], &e.var0);
    let var1 = g.f32_tensor("var1", &[e.var1.len()], &e.var1);
    let sd01: Vec<f32> = e.var0.iter().zip(&e.var1).map(|(a, b)| (a * b).sqrt()).collect();
    let sd01 = g.f32_tensor("sd01", &[sd01.len()], &sd01);
    let one = g.f32_tensor("one", &[], &[1.0]);

    let t = g.cast(t64, Elem::F32);
    let gap = g.bin("Sub", &one, &t);
    let gap2 = g.bin("Mul", &gap, &gap);
    let t2 = g.bin("Mul", &t, &t);
    let a = g.bin("Mul", &gap2, &var0);
    let b = g.bin("Mul", &t2, &var1);
    let var_t = g.bin("Add", &a, &b);
    let tv1 = g.bin("Mul", &t, &var1);
    let c_skip = g.bin("Div", &tv1, &var_t);
    let sd_gap = g.bin("Mul", &sd01, &gap);
    let sd_t = g.op("Sqrt", &[&var_t], &[]);
    let c_out = g.bin("Div", &sd_gap, &sd_t);
    let t_mu1 = g.bin("Mul", &t, &mu1);
    let centred = g.bin("Sub", z, &t_mu1);
    let skip = g.bin("Mul", &c_skip, &centred);
    let out = g.bin("Mul", &c_out, f);
    let x1 = g.bin("Add", &mu1, &skip);
    let x1 = g.bin("Add", &x1, &out);

    let one64 = g.f64_tensor("one", &[], &[1.0]);
    let min_gap = g.f64_tensor("min_gap", &[], &[e.min_gap]);
    let gap64 = g.bin("Sub", &one64, t64);
    let gap64 = g.bin("Max", &gap64, &min_gap);
    let inv = g.op("Reciprocal", &[&gap64], &[]);
    let inv = g.cast(&inv, Elem::F32);
    let diff = g.bin("Sub", &x1, z);
    g.bin("Mul", &diff, &inv)
}
