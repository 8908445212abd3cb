//! Context conditioning (METHOD.md §2, "optional parts"; issue 4): a meta-model that generates classifiers
//! for the task a small labelled *context set* {(x_j, y_j)} comes from.
//!
//! * [`ContextEncoder`]: a DeepSets encoder, c = ρ(mean_j φ([x_j, onehot(y_j)])), with φ two SiLU layers and
//!   ρ linear. The mean makes c invariant to the order of the rows and keeps its scale independent of the set
//!   size. c is concatenated to the velocity network's input (`NetConfig::cond_dim`).
//! * Training (module `train`): every run belongs to a task ([`ContextTasks`]); each step draws one fresh
//!   context set of `set_size` rows per task from that task's training rows, encodes it, and gives it to every
//!   minibatch row of a run of that task. The encoder trains with the velocity network, end to end.
//! * Classifier-free guidance: with probability `drop_prob` a row's context is replaced by a learned null
//!   vector, so one network learns both v(x, t | c) and the unconditioned v(x, t | ∅). Sampling integrates
//!   v(x, t | ∅) + w (v(x, t | c) − v(x, t | ∅)): w = 1 is the conditional field, w = 0 the unconditioned
//!   one, w > 1 pushes further towards the context (for endpoint models the mix is linear too, so guiding
//!   endpoints and guiding velocities agree).
//!
//! Tensor names (under `context.`): `phi0.weight|bias`, `phi1.weight|bias`, `rho.weight|bias`, `null`.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Init, Linear, VarBuilder};
use ndarray::{Array2, ArrayView2};
use rand::seq::index::sample;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::error::CandleContext;
use super::net::linear;
use super::{Error, Result};
use crate::rng::Rng;
use crate::space::Layout;

/// The name prefix of the encoder's tensors.
pub(crate) const CONTEXT_PREFIX: &str = "context";

/// Settings of context conditioning (the conditioning vector's width is `NetConfig::cond_dim`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextConfig {
    /// Labelled rows m of a context set, in training and (by default) at sampling.
    pub set_size: usize,
    /// Width of the per-row encoder φ.
    pub width: usize,
    /// Probability that a training row's context is replaced by the null context (classifier-free guidance).
    pub drop_prob: f32,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self { set_size: 64, width: 128, drop_prob: 0.2 }
    }
}

impl ContextConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.set_size == 0 || self.width == 0 {
            return Err(Error::Config {
                field: "context",
                reason: format!("set size and width must be ≥ 1, got {} and {}", self.set_size, self.width),
            });
        }
        if !(0.0..1.0).contains(&self.drop_prob) {
            return Err(Error::Config {
                field: "context",
                reason: format!("the drop probability must lie in [0, 1), got {}", self.drop_prob),
            });
        }
        Ok(())
    }
}

/// A labelled set of standardised rows: a context set, or the pool context sets are drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSet {
    /// Features `[n, n_inputs]`, standardised as the base classifiers saw them.
    pub x: Array2<f32>,
    /// Labels, one per row.
    pub y: Vec<usize>,
}

impl ContextSet {
    /// Checks the rows against the base classifiers' `layout` (inputs, classes) and that there is at least one.
    pub fn check(&self, layout: &Layout, what: &str) -> Result<()> {
        let bad = |reason: String| Err(Error::Config { field: "context", reason: format!("{what}: {reason}") });
        if self.x.nrows() == 0 || self.x.nrows() != self.y.len() {
            return bad(format!(
                "need ≥ 1 row and one label per row, got {} rows, {} labels",
                self.x.nrows(),
                self.y.len()
            ));
        }
        if self.x.ncols() != layout.n_inputs() {
            return bad(format!("rows have {} features, the classifiers take {}", self.x.ncols(), layout.n_inputs()));
        }
        if let Some(&c) = self.y.iter().find(|&&c| c >= layout.n_outputs()) {
            return bad(format!("label {c} but the classifiers have {} outputs", layout.n_outputs()));
        }
        if let Some(v) = self.x.iter().find(|v| !v.is_finite()) {
            return bad(format!("non-finite feature {v}"));
        }
        Ok(())
    }

    /// `m` rows drawn without replacement (with replacement when the set has fewer than `m`).
    pub fn draw(&self, m: usize, rng: &mut Rng) -> ContextSet {
        let n = self.y.len();
        let idx: Vec<usize> =
            if n >= m { sample(rng, n, m).into_vec() } else { (0..m).map(|_| rng.random_range(0..n)).collect() };
        ContextSet { x: self.x.select(ndarray::Axis(0), &idx), y: idx.iter().map(|&i| self.y[i]).collect() }
    }

    /// The encoder's input `[n, n_inputs + n_classes]`: each row's features and its label one-hot.
    fn features(&self, n_classes: usize) -> Array2<f32> {
        let (n, f) = self.x.dim();
        let mut out = Array2::<f32>::zeros((n, f + n_classes));
        out.slice_mut(ndarray::s![.., ..f]).assign(&self.x);
        for (i, &c) in self.y.iter().enumerate() {
            out[[i, f + c]] = 1.0;
        }
        out
    }
}

/// The tasks a context-conditioned meta-model is trained on: each task's pool of labelled rows, and the task
/// of every training run.
#[derive(Debug, Clone)]
pub struct ContextTasks {
    /// One pool per task (its training split).
    pub pools: Vec<ContextSet>,
    /// For each run (in trajectory order), the index of its task in `pools`.
    pub run_task: Vec<usize>,
}

impl ContextTasks {
    /// Checks the pools against `layout` and the run → task map against `runs` runs.
    pub fn check(&self, layout: &Layout, runs: usize) -> Result<()> {
        if self.pools.is_empty() {
            return Err(Error::Config { field: "context", reason: "need at least one task's pool".into() });
        }
        for (i, p) in self.pools.iter().enumerate() {
            p.check(layout, &format!("task {i}'s pool"))?;
        }
        if self.run_task.len() != runs {
            return Err(Error::Config {
                field: "context",
                reason: format!("{} runs but a task for {}", runs, self.run_task.len()),
            });
        }
        if let Some(&t) = self.run_task.iter().find(|&&t| t >= self.pools.len()) {
            return Err(Error::Config {
                field: "context",
                reason: format!("a run of task {t}, but only {} pools", self.pools.len()),
            });
        }
        Ok(())
    }
}

/// The DeepSets context encoder (module documentation).
#[derive(Debug, Clone)]
pub struct ContextEncoder {
    phi0: Linear,
    phi1: Linear,
    rho: Linear,
    null: Tensor,
    n_classes: usize,
}

impl ContextEncoder {
    /// Builds the encoder of sets of `layout`'s rows into `cond_dim` numbers, under `vb`'s `context` prefix.
    pub fn new(layout: &Layout, cfg: &ContextConfig, cond_dim: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp(CONTEXT_PREFIX);
        let d_in = layout.n_inputs() + layout.n_outputs();
        let build = || -> candle_core::Result<Self> {
            Ok(Self {
                phi0: linear(d_in, cfg.width, vb.pp("phi0"))?,
                phi1: linear(cfg.width, cfg.width, vb.pp("phi1"))?,
                rho: linear(cfg.width, cond_dim, vb.pp("rho"))?,
                null: vb.get_with_hints(cond_dim, "null", Init::Const(0.0))?,
                n_classes: layout.n_outputs(),
            })
        };
        build().op("build context encoder")
    }

    /// The encodings `[T, cond_dim]` of `sets` (each a set of the same size m), computed as one batch.
    pub fn encode_sets(&self, sets: &[ContextSet], device: &Device) -> Result<Tensor> {
        let m = sets.first().map_or(0, |s| s.y.len());
        if m == 0 || sets.iter().any(|s| s.y.len() != m) {
            return Err(Error::Config {
                field: "context",
                reason: "context sets must be non-empty and of one size".into(),
            });
        }
        let feats: Vec<Array2<f32>> = sets.iter().map(|s| s.features(self.n_classes)).collect();
        let views: Vec<ArrayView2<f32>> = feats.iter().map(|f| f.view()).collect();
        let all = ndarray::concatenate(ndarray::Axis(0), &views).expect("same widths");
        let (rows, width) = all.dim();
        let run = || -> candle_core::Result<Tensor> {
            let x = Tensor::from_slice(all.as_slice().expect("fresh standard layout"), (rows, width), device)?;
            let h = self.phi1.forward(&self.phi0.forward(&x)?.silu()?)?.silu()?;
            let pooled = h.reshape((sets.len(), m, h.dim(D::Minus1)?))?.mean(1)?;
            self.rho.forward(&pooled)
        };
        run().op("encode context sets")
    }

    /// The learned null context `[cond_dim]` of classifier-free guidance.
    pub fn null(&self) -> &Tensor {
        &self.null
    }

    /// The rows' contexts `[B, cond_dim]`: row i gets `encodings[task[i]]`, or the null context where `drop[i]`.
    pub(crate) fn row_contexts(&self, encodings: &Tensor, task: &[usize], drop: &[bool]) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let device = encodings.device();
            let idx: Vec<u32> = task.iter().map(|&t| t as u32).collect();
            let c = encodings.index_select(&Tensor::new(idx.as_slice(), device)?, 0)?;
            let keep: Vec<f32> = drop.iter().map(|&d| if d { 0.0 } else { 1.0 }).collect();
            let keep = Tensor::from_vec(keep, (task.len(), 1), device)?.to_dtype(DType::F32)?;
            let null = self.null.unsqueeze(0)?;
            c.broadcast_mul(&keep)? + null.broadcast_mul(&keep.affine(-1.0, 1.0)?)?
        };
        run().op("row contexts")
    }
}

/// Per step of training: one fresh context set per task, drawn from its pool, and each row's CFG drop.
pub(crate) fn draw_step(
    tasks: &ContextTasks,
    cfg: &ContextConfig,
    rows: usize,
    rng: &mut Rng,
) -> (Vec<ContextSet>, Vec<bool>) {
    let sets = tasks.pools.iter().map(|p| p.draw(cfg.set_size, rng)).collect();
    let drop = (0..rows).map(|_| rng.random::<f32>() < cfg.drop_prob).collect();
    (sets, drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::net::seeded_init;
    use crate::rng;
    use candle_nn::VarMap;

    fn encoder() -> (VarMap, ContextEncoder, Layout) {
        let layout = Layout::parse("3-4-2").unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = ContextConfig { set_size: 5, width: 8, drop_prob: 0.1 };
        let enc = ContextEncoder::new(&layout, &cfg, 6, vb).unwrap();
        seeded_init(&varmap, &mut rng::rng(5)).unwrap();
        (varmap, enc, layout)
    }

    fn set(seed: u64, n: usize) -> ContextSet {
        let mut r = rng::rng(seed);
        ContextSet {
            x: Array2::from_shape_fn((n, 3), |_| r.random_range(-2.0..2.0)),
            y: (0..n).map(|_| r.random_range(0..2)).collect(),
        }
    }

    /// The encoding is a function of the set, not of its order, and equals a float64 recomputation.
    #[test]
    fn encoding_is_permutation_invariant_and_matches_a_float64_reference() {
        let (varmap, enc, _) = encoder();
        let a = set(1, 5);
        let order = [3usize, 0, 4, 1, 2];
        let b = ContextSet { x: a.x.select(ndarray::Axis(0), &order), y: order.iter().map(|&i| a.y[i]).collect() };
        let e = enc.encode_sets(&[a.clone(), b, set(2, 5)], &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert!(e[0].iter().zip(&e[1]).all(|(u, v)| (u - v).abs() < 1e-6), "{:?} vs {:?}", e[0], e[1]);
        assert!(e[0].iter().zip(&e[2]).any(|(u, v)| (u - v).abs() > 1e-4), "another set encodes the same");

        let data = varmap.data().lock().unwrap();
        let get = |n: &str| -> Vec<Vec<f64>> {
            let t = data[&format!("context.{n}")].as_tensor();
            let t = if t.rank() == 1 { t.unsqueeze(1).unwrap() } else { t.clone() };
            t.to_vec2::<f32>().unwrap().iter().map(|r| r.iter().map(|&v| v as f64).collect()).collect()
        };
        let lin = |w: &[Vec<f64>], b: &[Vec<f64>], x: &[f64]| -> Vec<f64> {
            w.iter().zip(b).map(|(row, b)| row.iter().zip(x).map(|(a, c)| a * c).sum::<f64>() + b[0]).collect()
        };
        let silu = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|a| a / (1.0 + (-a).exp())).collect() };
        let mut pooled = vec![0f64; 8];
        for (row, &y) in a.x.rows().into_iter().zip(&a.y) {
            let mut x: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            x.extend((0..2).map(|c| if c == y { 1.0 } else { 0.0 }));
            let h = silu(lin(
                &get("phi1.weight"),
                &get("phi1.bias"),
                &silu(lin(&get("phi0.weight"), &get("phi0.bias"), &x)),
            ));
            pooled.iter_mut().zip(h).for_each(|(p, v)| *p += v / 5.0);
        }
        let want = lin(&get("rho.weight"), &get("rho.bias"), &pooled);
        for (g, w) in e[0].iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{:?} vs {want:?}", e[0]);
        }
    }

    #[test]
    fn dropped_rows_get_the_null_context_and_bad_sets_are_refused() {
        let (_, enc, layout) = encoder();
        let e = enc.encode_sets(&[set(1, 5), set(2, 5)], &Device::Cpu).unwrap();
        let c = enc.row_contexts(&e, &[1, 0, 1], &[false, false, true]).unwrap().to_vec2::<f32>().unwrap();
        let e = e.to_vec2::<f32>().unwrap();
        let null = enc.null().to_vec1::<f32>().unwrap();
        assert_eq!(c[0], e[1]);
        assert_eq!(c[1], e[0]);
        assert_eq!(c[2], null);

        assert!(enc.encode_sets(&[set(1, 5), set(2, 4)], &Device::Cpu).is_err());
        let mut s = set(3, 4);
        s.y[2] = 2;
        assert!(s.check(&layout, "ctx").unwrap_err().to_string().contains("label 2"));
        let wide = ContextSet { x: Array2::zeros((2, 4)), y: vec![0, 1] };
        assert!(wide.check(&layout, "ctx").unwrap_err().to_string().contains("4 features"));
        let tasks = ContextTasks { pools: vec![set(1, 5)], run_task: vec![0, 1] };
        assert!(tasks.check(&layout, 2).unwrap_err().to_string().contains("only 1 pools"));
        assert!(tasks.check(&layout, 3).is_err());
    }

    #[test]
    fn draws_are_seeded_and_without_replacement_when_the_pool_allows() {
        let pool = set(4, 20);
        let a = pool.draw(20, &mut rng::rng(9));
        let mut ys: Vec<Vec<u32>> = a.x.rows().into_iter().map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();
        ys.sort();
        ys.dedup();
        assert_eq!(ys.len(), 20, "a full draw is a permutation");
        assert_eq!(pool.draw(7, &mut rng::rng(9)), pool.draw(7, &mut rng::rng(9)));
        assert_eq!(pool.draw(30, &mut rng::rng(1)).y.len(), 30);
    }
}
