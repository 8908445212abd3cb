//! The meta-model networks: a velocity field v(x, t [, c]) and a potential V(x, t [, c]).
//!
//! Both share one trunk: input [x (D), sinusoidal embedding of t (`time_dim`), c (`cond_dim`)] → Linear →
//! SiLU → … (one layer per `hidden` width). The velocity head maps to R^D, the potential head to R. Tensor
//! names (stable, through `VarBuilder::pp`): `trunk.l{i}.weight|bias`, `head.weight|bias`.
//!
//! Time embedding of t ∈ [0, 1]: [sin(ω_j t), cos(ω_j t)] for `time_dim / 2` frequencies ω_j geometrically
//! spaced from 1 to 1000.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Init, Linear, VarBuilder, VarMap};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::error::CandleContext;
use super::precond::{Precond, StepBaseline, PRECOND_PREFIX};
use super::{Error, Result, ENDPOINT_MIN_GAP};
use crate::rng::Rng;

/// Highest frequency of the time embedding.
const MAX_FREQ: f64 = 1000.0;

/// Architecture of the meta-model networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Widths of the hidden layers (each followed by SiLU).
    pub hidden: Vec<usize>,
    /// Size of the sinusoidal time embedding (even, ≥ 2).
    pub time_dim: usize,
    /// Size of the conditioning vector c concatenated to the input (0: none; module `context`).
    pub cond_dim: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self { hidden: vec![256, 256, 256], time_dim: 64, cond_dim: 0 }
    }
}

impl NetConfig {
    /// Checks the widths.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::Config {
                field: "hidden",
                reason: format!("need ≥ 1 hidden layer of width ≥ 1, got {:?}", self.hidden),
            });
        }
        if self.time_dim < 2 || !self.time_dim.is_multiple_of(2) {
            return Err(Error::Config {
                field: "time_dim",
                reason: format!("must be even and ≥ 2, got {}", self.time_dim),
            });
        }
        Ok(())
    }
}

/// A linear layer `[out, in]` whose parameters are created zero (cheap, no unseeded RNG) and set by
/// [`seeded_init`].
pub(crate) fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let w = vb.get_with_hints((d_out, d_in), "weight", Init::Const(0.0))?;
    let b = vb.get_with_hints(d_out, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// Initialises every `*.weight` `[out, in]` and `*.bias` `[out]` of `varmap` uniform in ±1/√in (PyTorch's
/// `Linear` default) from `rng`, visiting names in sorted order so the result depends on the seed only.
pub(crate) fn seeded_init(varmap: &VarMap, rng: &mut Rng) -> Result<()> {
    let data = varmap.data().lock().expect("var map lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let fan_in = if let Some(prefix) = name.strip_suffix(".bias") {
            let w = data
                .get(&format!("{prefix}.weight"))
                .ok_or_else(|| Error::Config { field: "network", reason: format!("bias {name} has no weight") })?;
            w.dims()[1]
        } else {
            *var.dims().last().unwrap_or(&1)
        };
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let vals: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-bound..bound)).collect();
        let t = Tensor::from_vec(vals, var.shape(), var.device()).op("init parameters")?;
        var.set(&t).op("init parameters")?;
    }
    Ok(())
}

/// The `time_dim / 2` frequencies ω_j of the time embedding, geometric from 1 to [`MAX_FREQ`].
pub(crate) fn time_frequencies(time_dim: usize) -> Vec<f32> {
    let half = time_dim / 2;
    (0..half).map(|j| if half == 1 { 1.0 } else { MAX_FREQ.powf(j as f64 / (half - 1) as f64) as f32 }).collect()
}

/// The sinusoidal time embedding `[B, dim]` of times `t` `[B]`.
fn time_embedding(t: &Tensor, freqs: &Tensor) -> candle_core::Result<Tensor> {
    let arg = t.unsqueeze(1)?.broadcast_mul(freqs)?;
    Tensor::cat(&[arg.sin()?, arg.cos()?], 1)
}

/// The shared trunk.
#[derive(Debug, Clone)]
struct Trunk {
    layers: Vec<Linear>,
    freqs: Tensor,
    dim: usize,
    cond_dim: usize,
}

impl Trunk {
    fn new(dim: usize, cfg: &NetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let half = cfg.time_dim / 2;
        let freqs = Tensor::from_vec(time_frequencies(cfg.time_dim), (1, half), vb.device()).op("time frequencies")?;
        let mut d_in = dim + cfg.time_dim + cfg.cond_dim;
        let mut layers = Vec::new();
        let vb = vb.pp("trunk");
        for (i, &h) in cfg.hidden.iter().enumerate() {
            layers.push(linear(d_in, h, vb.pp(format!("l{i}"))).op("build trunk")?);
            d_in = h;
        }
        Ok(Self { layers, freqs, dim, cond_dim: cfg.cond_dim })
    }

    fn width(&self) -> usize {
        self.layers.last().map_or(0, |l| l.weight().dims()[0])
    }

    fn input(&self, x: &Tensor, t: &Tensor, c: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let emb = time_embedding(&t.to_dtype(x.dtype())?, &self.freqs.to_dtype(x.dtype())?)?;
        match (c, self.cond_dim) {
            (None, 0) => Tensor::cat(&[x, &emb], 1),
            (Some(c), n) if n > 0 && c.dims2()?.1 == n => Tensor::cat(&[x, &emb, c], 1),
            (c, n) => candle_core::bail!(
                "conditioning vector of width {:?} given, the network takes {n}",
                c.map(|c| c.dims().to_vec())
            ),
        }
    }

    /// Hidden features, and every layer's pre-activation when `keep` is set.
    fn forward(
        &self,
        x: &Tensor,
        t: &Tensor,
        c: Option<&Tensor>,
        keep: bool,
    ) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let mut h = self.input(x, t, c)?;
        let mut pre = Vec::new();
        for l in &self.layers {
            let a = l.forward(&h)?;
            h = a.silu()?;
            if keep {
                pre.push(a);
            }
        }
        Ok((h, pre))
    }
}

/// The velocity field v_φ(x, t [, c]) ∈ R^D.
#[derive(Debug, Clone)]
pub struct VelocityNet {
    trunk: Trunk,
    head: Linear,
    precond: Precond,
}

impl VelocityNet {
    /// Builds the network for weight dimension `dim` from `vb` (names under `vb`'s prefix).
    pub fn new(dim: usize, cfg: &NetConfig, vb: VarBuilder) -> Result<Self> {
        let trunk = Trunk::new(dim, cfg, vb.clone())?;
        let head = linear(trunk.width(), dim, vb.pp("head")).op("build velocity head")?;
        let precond = Precond::new(dim, vb.pp(PRECOND_PREFIX.trim_end_matches('.')))?;
        Ok(Self { trunk, head, precond })
    }

    /// The preconditioned endpoint x̂_1 for inputs x `[B, D]`, times t `[B, 1]` and raw outputs f `[B, D]`.
    pub(crate) fn endpoint(&self, x: &Tensor, t: &Tensor, f: &Tensor) -> Result<Tensor> {
        self.precond.endpoint(x, t, f)
    }

    /// v(x, t, c) for x `[B, D]`, t `[B]`, c `[B, cond_dim]` (None when `cond_dim = 0`).
    pub fn forward(&self, x: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> { self.head.forward(&self.trunk.forward(x, t, c, false)?.0) };
        run().op("velocity forward")
    }
}

impl VelocityNet {
    /// The velocity the generation ODE integrates at x `[B, D]` and one shared time t: the network's output,
    /// or for an `endpoint` model (x̂_1(x, t) − x)/(1 − t) with the gap floored at [`ENDPOINT_MIN_GAP`]
    /// (Heun and RK4 evaluate at t = 1). Differentiable in x and in the parameters.
    pub(crate) fn velocity_at(&self, x: &Tensor, t: f64, endpoint: bool) -> Result<Tensor> {
        let f = self.forward_at(x, t)?;
        if !endpoint {
            return Ok(f);
        }
        let gap = (1.0 - t).max(ENDPOINT_MIN_GAP);
        let tt = Tensor::full(t as f32, (x.dim(0).op("batch size")?, 1), x.device()).op("time")?;
        let x1 = self.endpoint(x, &tt, &f)?;
        ((x1 - x).op("endpoint velocity")? / gap).op("endpoint velocity")
    }

    /// Like [`Self::velocity_at`] with one time per row, t `[B]` (the rows of several time steps at once).
    pub(crate) fn velocity_rows(&self, x: &Tensor, t: &Tensor, endpoint: bool) -> Result<Tensor> {
        self.velocity_rows_given(x, t, None, endpoint)
    }

    /// The velocity at x `[B, D]` and one shared time t given each row's conditioning vector c `[B, cond_dim]`
    /// (module `context`); [`Self::velocity_at`] when c is None.
    pub(crate) fn velocity_given(&self, x: &Tensor, t: f64, c: Option<&Tensor>, endpoint: bool) -> Result<Tensor> {
        match c {
            None => self.velocity_at(x, t, endpoint),
            Some(c) => {
                let tt = Tensor::full(t as f32, x.dim(0).op("batch size")?, x.device()).op("time")?;
                self.velocity_rows_given(x, &tt, Some(c), endpoint)
            }
        }
    }

    /// [`Self::velocity_rows`] with each row's conditioning vector c `[B, cond_dim]` (None: unconditioned).
    fn velocity_rows_given(&self, x: &Tensor, t: &Tensor, c: Option<&Tensor>, endpoint: bool) -> Result<Tensor> {
        let f = self.forward(x, t, c)?;
        if !endpoint {
            return Ok(f);
        }
        let tt = super::precond::column(t)?;
        let x1 = self.endpoint(x, &tt, &f)?;
        let gap = tt.affine(-1.0, 1.0).and_then(|g| g.maximum(ENDPOINT_MIN_GAP)).op("endpoint gap")?;
        (x1 - x).and_then(|d| d.broadcast_div(&gap)).op("endpoint velocity")
    }

    /// v(x, t) `[B, D]` for one time t shared by the batch (unconditioned nets): the time embedding's part of
    /// the first layer is one row computed once, so the input is never concatenated. Generation's path.
    pub(crate) fn forward_at(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let trunk = &self.trunk;
            if trunk.cond_dim != 0 {
                candle_core::bail!("a conditioned net needs its conditioning vector");
            }
            let freqs = trunk.freqs.flatten_all()?.to_vec1::<f32>()?;
            let emb: Vec<f32> = freqs
                .iter()
                .map(|&w| (t * w as f64).sin() as f32)
                .chain(freqs.iter().map(|&w| (t * w as f64).cos() as f32))
                .collect();
            let emb = Tensor::from_vec(emb, (1, 2 * freqs.len()), x.device())?.to_dtype(x.dtype())?;
            let first = &trunk.layers[0];
            let w = first.weight();
            let (wx, wt) =
                (gemm_operand(w.narrow(1, 0, trunk.dim)?)?, gemm_operand(w.narrow(1, trunk.dim, emb.dims2()?.1)?)?);
            let mut row = emb.matmul(&wt.t()?)?;
            if let Some(b) = first.bias() {
                row = row.broadcast_add(b)?;
            }
            let mut h = x.matmul(&wx.t()?)?.broadcast_add(&row)?.silu()?;
            for l in &trunk.layers[1..] {
                h = l.forward(&h)?.silu()?;
            }
            self.head.forward(&h)
        };
        run().op("velocity forward")
    }
}

/// A column slice of a weight matrix as a GEMM operand. candle's CUDA matmul (cuBLAS) takes only contiguous or
/// plainly transposed operands, so off the CPU the slice is copied (one small device copy per ODE step); the
/// CPU's strided GEMM reads it in place, which for MNIST's 256 × 25,450 input layer saves a 26 MB copy per step.
fn gemm_operand(t: Tensor) -> candle_core::Result<Tensor> {
    if t.device().is_cpu() {
        Ok(t)
    } else {
        t.contiguous()
    }
}

/// The potential V_φ(x, t [, c]) ∈ R of JKO: its negative gradient in x is the drift. With a baseline
/// (module `precond`), the network's potential is the correction F to the Gaussian step between marginals.
#[derive(Debug, Clone)]
pub struct PotentialNet {
    trunk: Trunk,
    head: Linear,
    baseline: Option<StepBaseline>,
}

impl PotentialNet {
    /// Builds the network for weight dimension `dim` from `vb`, with the baseline steps between `baseline_knots`
    /// marginals when given.
    pub fn new(dim: usize, cfg: &NetConfig, baseline_knots: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let trunk = Trunk::new(dim, cfg, vb.clone())?;
        let head = linear(trunk.width(), 1, vb.pp("head")).op("build potential head")?;
        let baseline = match baseline_knots {
            Some(n) => Some(StepBaseline::new(n, dim, vb.pp(PRECOND_PREFIX.trim_end_matches('.')))?),
            None => None,
        };
        Ok(Self { trunk, head, baseline })
    }

    /// Generation's explicit step j (marginal j at `x` `[B, D]` to marginal j + 1, a gap of `tau`, labelled by the
    /// arrival time `t_next` as in training): B_j(x) − τ ∇F(x, t_{j+1}) with a baseline, x − τ ∇V(x, t_{j+1})
    /// without.
    pub(crate) fn step(&self, x: &Tensor, j: usize, t_next: f64, tau: f64) -> Result<Tensor> {
        let rows = x.dim(0).op("batch size")?;
        let tt = Tensor::full(t_next as f32, rows, x.device()).op("generation time")?;
        let g = (self.grad_x_graph(x, &tt, None)? * tau).op("jko step")?;
        let from = match &self.baseline {
            Some(b) => b.step(x, j)?,
            None => x.clone(),
        };
        (from - g).op("jko step")
    }

    /// V(x, t, c) `[B]`.
    pub fn forward(&self, x: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        let run =
            || -> candle_core::Result<Tensor> { self.head.forward(&self.trunk.forward(x, t, c, false)?.0)?.squeeze(1) };
        run().op("potential forward")
    }

    /// ∇_x V(x, t, c) `[B, D]` by candle's autograd: x becomes a `Var`, Σ_b V(x_b) is back-propagated
    /// (rows are independent, so one backward pass gives every row's gradient). The result is detached:
    /// candle does not differentiate through a backward pass; training uses [`Self::grad_x_graph`].
    pub fn grad_x(&self, x: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        let xv = Var::from_tensor(&x.detach()).op("potential gradient")?;
        let v = self.forward(xv.as_tensor(), t, c)?;
        let grads = v.sum_all().and_then(|s| s.backward()).op("potential gradient")?;
        grads
            .get(xv.as_tensor())
            .cloned()
            .ok_or(Error::Config { field: "potential", reason: "the potential does not depend on x".into() })
    }

    /// ∇_x V(x, t, c) `[B, D]` written out as a graph of tensor ops (reverse-mode through the trunk by hand:
    /// g ← head weight; per layer, from the last, g ← (g ⊙ SiLU'(a)) W), so that a loss on the gradient can
    /// itself be back-propagated to the parameters. Equal to [`Self::grad_x`].
    pub fn grad_x_graph(&self, x: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let (_, pre) = self.trunk.forward(x, t, c, true)?;
            let b = x.dims2()?.0;
            let mut g = self.head.weight().broadcast_as((b, self.trunk.width()))?;
            for (layer, a) in self.trunk.layers.iter().zip(&pre).rev() {
                let sig = candle_nn::ops::sigmoid(a)?;
                let silu = a.silu()?;
                // SiLU'(a) = σ(a)(1 − SiLU(a)) + SiLU(a).
                let ds = ((&sig * (1.0 - &silu)?)? + &silu)?;
                g = (g * ds)?.matmul(layer.weight())?;
            }
            g.narrow(D::Minus1, 0, self.trunk.dim)
        };
        run().op("potential gradient graph")
    }
}

/// A fresh zero-initialised `VarMap` with the tensors of the network that `training` describes over trajectories
/// of `checkpoints` intervals (a velocity net, or a JKO potential with or without its baseline): the names and
/// shapes a weights file must hold.
/// A context-conditioned model also holds its encoder's tensors (`context`: the base layout and settings).
pub(crate) fn expected_tensors(
    dim: usize,
    training: &super::MetaTrainConfig,
    checkpoints: usize,
    context: Option<(&crate::space::Layout, &super::ContextConfig)>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = &training.net;
    if training.objective == super::Objective::Jko {
        PotentialNet::new(dim, cfg, training.jko_baseline_knots(checkpoints), vb.clone())?;
    } else {
        VelocityNet::new(dim, cfg, vb.clone())?;
    }
    if let Some((layout, c)) = context {
        super::ContextEncoder::new(layout, c, cfg.cond_dim, vb)?;
    }
    let data = varmap.data().lock().expect("var map lock poisoned");
    let mut out: Vec<(String, Vec<usize>)> = data.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    fn potential() -> (VarMap, PotentialNet) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = NetConfig { hidden: vec![8, 6], time_dim: 4, cond_dim: 0 };
        let net = PotentialNet::new(3, &cfg, None, vb).unwrap();
        seeded_init(&varmap, &mut rng::rng(2)).unwrap();
        (varmap, net)
    }

    #[test]
    fn analytic_potential_gradient_equals_autograd_and_finite_differences() {
        let (_, net) = potential();
        let x = Tensor::new(&[[0.3f32, -1.0, 2.0], [1.5, 0.2, -0.7]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[0.1f32, 0.8], &Device::Cpu).unwrap();
        let auto = net.grad_x(&x, &t, None).unwrap().to_vec2::<f32>().unwrap();
        let graph = net.grad_x_graph(&x, &t, None).unwrap().to_vec2::<f32>().unwrap();
        let xs = x.to_vec2::<f32>().unwrap();
        for b in 0..2 {
            for j in 0..3 {
                assert!((auto[b][j] - graph[b][j]).abs() < 1e-5, "{auto:?} vs {graph:?}");
                let e = 1e-2f32;
                let mut xp = xs.clone();
                xp[b][j] += e;
                let mut xm = xs.clone();
                xm[b][j] -= e;
                let f = |v: Vec<Vec<f32>>| {
                    let v = Tensor::new(v, &Device::Cpu).unwrap();
                    net.forward(&v, &t, None).unwrap().to_vec1::<f32>().unwrap()[b]
                };
                let fd = (f(xp) - f(xm)) / (2.0 * e);
                assert!((fd - graph[b][j]).abs() < 1e-3, "fd {fd} vs {}", graph[b][j]);
            }
        }
    }

    #[test]
    fn shared_time_forward_equals_the_batched_forward() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = NetConfig { hidden: vec![8, 5], time_dim: 6, cond_dim: 0 };
        let net = VelocityNet::new(3, &cfg, vb).unwrap();
        seeded_init(&varmap, &mut rng::rng(4)).unwrap();
        let x = Tensor::new(&[[0.3f32, -1.0, 2.0], [1.5, 0.2, -0.7]], &Device::Cpu).unwrap();
        for t in [0.0, 0.37, 1.0] {
            let tt = Tensor::new(&[t as f32, t as f32], &Device::Cpu).unwrap();
            let a = net.forward(&x, &tt, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = net.forward_at(&x, t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(a.iter().zip(&b).all(|(u, v)| (u - v).abs() < 1e-5), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn seeded_init_is_reproducible_and_names_are_stable() {
        let (a, _) = potential();
        let (b, _) = potential();
        let names = |m: &VarMap| {
            let mut v: Vec<String> = m.data().lock().unwrap().keys().cloned().collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&a),
            ["head.bias", "head.weight", "trunk.l0.bias", "trunk.l0.weight", "trunk.l1.bias", "trunk.l1.weight"]
        );
        for n in names(&a) {
            let ta = a.data().lock().unwrap()[&n].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let tb = b.data().lock().unwrap()[&n].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(ta, tb);
            assert!(ta.iter().any(|&v| v != 0.0));
        }
        let cfg = NetConfig { hidden: vec![8], time_dim: 3, cond_dim: 0 };
        assert!(cfg.validate().is_err());
    }
}
