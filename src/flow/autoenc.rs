//! A weight autoencoder: an MLP encoder/decoder between flattened classifier weights and a small latent space
//! (issue 4), saved as `DIR/autoencoder.safetensors` + `DIR/autoencoder.json`.
//!
//! Inputs are normalised per tensor with the [`Scaling`] z = θ / s fitted on the training runs' finals, then
//! centred on their per-coordinate mean μ: u = z − μ. Encoder: u → Linear → SiLU → … → Linear → tanh, so
//! every latent lies in (−1, 1). Decoder: h → Linear → SiLU → … → Linear, ẑ = μ + dec(h), θ̂ = s ẑ.
//!
//! Why a tanh-bounded deterministic latent rather than a KL-regularised (VAE) one: the decoded classifiers
//! must keep their accuracy within a point of the originals, and a VAE's posterior noise and KL pull trade
//! reconstruction for a Gaussian latent — a flow in latent space does not need that Gaussian, only a latent
//! of known, small range, which tanh gives for free.
//!
//! The loss is the reconstruction error in normalised weight space, mean over coordinates of (ẑ − z)², plus,
//! with `function_weight` w > 0, a functional term: w times the mean over the batch's classifiers and a
//! minibatch of data rows of KL(p_θ(·|x) ‖ p_θ̂(·|x)), the divergence of the reconstruction's predictive
//! distribution from the original's. Why KL to the original rather than cross entropy on labels: the goal is
//! a decoded classifier that behaves like *its* original (docs/FLOW.md measures agreement), not a better one;
//! and weight-space error alone spends capacity evenly on coordinates that barely move the function, which
//! is what cost digits 3–4 points of decoded accuracy.
//!
//! With `mix_weight` m > 0, a second functional term asks the same of the latent *between* runs: for each
//! classifier i of the batch, a partner j (the next row of the shuffled batch) and λ ~ U(0, 1), the decoding of
//! λ h_i + (1 − λ) h_j must predict like the mixture λ p_θi + (1 − λ) p_θj, at weight m (KL from the mixture).
//! Why: a latent flow's samples lie between the encodings of the training runs, and without the term those
//! points decode to weaker nets (docs/FLOW.md, "why the latent trades accuracy for spread"); a mixture of two
//! good classifiers' predictions is itself a good predictor.
//!
//! Training uses the final checkpoints of every run but the last `heldout` ones (runs are i.i.d. seeds, so the
//! last ones are a random sample); those are kept back to measure reconstruction of unseen classifiers.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::ops::log_softmax;
use candle_nn::{Linear, ParamsAdamW, VarBuilder, VarMap};
use ndarray::{s, Array2, ArrayView2, ArrayView3, Axis};
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::error::CandleContext;
use super::functional::kl_mean;
use super::io::{read_checked_manifest, read_checked_tensors, safetensors_bytes, save_pair};
use super::net::{linear, seeded_init};
use super::optim::AdamWEma;
use super::{data_digest, prepared_trajectories, sorted_vars, Error, MetaTrainConfig, Result, Scaling};
use crate::classifier::Activation;
use crate::rng;
use crate::space::Layout;
use crate::train::BatchedMlp;
use sha2::Digest as _;

/// The manifest's `format` field.
pub const AUTOENCODER_FORMAT: &str = "weightflow.autoencoder";
/// The manifest version this build writes and reads.
pub const AUTOENCODER_VERSION: u32 = 1;
/// The weights file in an autoencoder directory.
pub const AUTOENCODER_WEIGHTS: &str = "autoencoder.safetensors";
/// The manifest file in an autoencoder directory.
pub const AUTOENCODER_MANIFEST: &str = "autoencoder.json";

/// Name of the per-coordinate mean μ (normalised units) in the weights file; data, not a parameter.
const MEAN: &str = "norm.mean";
/// RNG streams of a training seed.
const STREAM_INIT: u64 = 0;
const STREAM_BATCH: u64 = 1;
/// Data rows of the functional term (its own stream, so a weight of 0 trains exactly as before it existed).
const STREAM_FUNCTION: u64 = 2;
/// Mixing coefficients and partners of the mix term (its own stream, as above).
const STREAM_MIX: u64 = 3;
/// Steps averaged into [`WeightAutoencoder::final_loss`].
const FINAL_LOSS_WINDOW: usize = 100;

/// Settings of [`train_autoencoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderConfig {
    /// Width of the latent.
    pub latent_dim: usize,
    /// Hidden widths of the encoder (each followed by SiLU); the decoder uses them in reverse.
    pub hidden: Vec<usize>,
    /// Optimiser steps.
    pub steps: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Peak AdamW learning rate (cosine decay to 0).
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Runs (the last ones) kept out of training to measure reconstruction of unseen classifiers.
    pub heldout: usize,
    /// Align every run to run 0 by weight matching first, exactly as `train_meta` does with the same seed.
    pub align: bool,
    /// Seed of initialisation, minibatches and alignment.
    pub seed: u64,
    /// Weight w of the functional term (module documentation); 0 trains on reconstruction error alone.
    pub function_weight: f64,
    /// Data rows per step in the functional term.
    pub function_rows: usize,
    /// Weight m of the mix term (module documentation); 0 leaves latents between runs unconstrained.
    pub mix_weight: f64,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            latent_dim: 64,
            hidden: vec![512, 256],
            steps: 4000,
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 0.0,
            heldout: 128,
            align: true,
            seed: 0,
            function_weight: 0.0,
            function_rows: 256,
            mix_weight: 0.0,
        }
    }
}

/// What the functional term needs: the base classifiers' hidden activation and data rows, standardised as
/// the base runs saw them, on which a reconstruction must predict like its original.
#[derive(Debug, Clone, Copy)]
pub struct FunctionData<'a> {
    /// The base classifiers' hidden activation.
    pub activation: Activation,
    /// Input rows `[N, d_in]`.
    pub x: ArrayView2<'a, f32>,
}

impl AutoencoderConfig {
    /// Checks the settings for `runs` training runs.
    pub fn validate(&self, runs: usize) -> Result<()> {
        let bad = |field, reason: String| Err(Error::Config { field, reason });
        if self.latent_dim == 0 {
            return bad("latent_dim", "must be ≥ 1".into());
        }
        if self.hidden.contains(&0) {
            return bad("hidden", format!("widths must be ≥ 1, got {:?}", self.hidden));
        }
        if self.steps == 0 || self.batch_size == 0 {
            return bad(
                "steps",
                format!("steps and batch size must be ≥ 1, got {} and {}", self.steps, self.batch_size),
            );
        }
        let lr_ok = self.lr.is_finite() && self.lr > 0.0;
        if !(lr_ok && self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("lr", format!("need lr > 0 and weight decay ≥ 0, got {} and {}", self.lr, self.weight_decay));
        }
        if self.heldout >= runs {
            return bad("heldout", format!("{} held-out runs leave none of the {runs} to train on", self.heldout));
        }
        if !(self.function_weight.is_finite() && self.function_weight >= 0.0) || self.function_rows == 0 {
            return bad(
                "function_weight",
                format!(
                    "need a finite weight ≥ 0 and ≥ 1 row, got {} and {}",
                    self.function_weight, self.function_rows
                ),
            );
        }
        if !(self.mix_weight.is_finite() && self.mix_weight >= 0.0) {
            return bad("mix_weight", format!("need a finite weight ≥ 0, got {}", self.mix_weight));
        }
        Ok(())
    }

    /// The meta-model settings whose alignment these inputs share.
    pub(crate) fn alignment(&self) -> MetaTrainConfig {
        MetaTrainConfig { align: self.align, seed: self.seed, ..MetaTrainConfig::default() }
    }
}

/// The layers of both halves; `dims` lists widths from input to output.
fn mlp(dims: &[usize], vb: VarBuilder) -> Result<Vec<Linear>> {
    dims.windows(2)
        .enumerate()
        .map(|(i, w)| linear(w[0], w[1], vb.pp(format!("l{i}"))).op("build autoencoder"))
        .collect()
}

/// Applies `layers` with SiLU between them (none after the last).
fn run_mlp(layers: &[Linear], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (i, l) in layers.iter().enumerate() {
        h = l.forward(&h)?;
        if i + 1 < layers.len() {
            h = candle_nn::ops::silu(&h)?;
        }
    }
    Ok(h)
}

/// Encoder and decoder widths, input to output.
fn widths(dim: usize, cfg: &AutoencoderConfig) -> (Vec<usize>, Vec<usize>) {
    let enc: Vec<usize> = std::iter::once(dim).chain(cfg.hidden.iter().copied()).chain([cfg.latent_dim]).collect();
    let dec = enc.iter().rev().copied().collect();
    (enc, dec)
}

/// The two halves built on `vb` (tensor names `enc.l{i}.*`, `dec.l{i}.*`).
fn halves(dim: usize, cfg: &AutoencoderConfig, vb: &VarBuilder) -> Result<(Vec<Linear>, Vec<Linear>)> {
    let (enc, dec) = widths(dim, cfg);
    Ok((mlp(&enc, vb.pp("enc"))?, mlp(&dec, vb.pp("dec"))?))
}

/// The contents of `autoencoder.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderManifest {
    /// Always [`AUTOENCODER_FORMAT`].
    pub format: String,
    /// [`AUTOENCODER_VERSION`].
    pub version: u32,
    /// The base classifiers' layer widths.
    pub layout: Layout,
    /// The base classifiers' hidden activation, as given by the caller of [`WeightAutoencoder::save`].
    pub activation: String,
    /// The training settings (latent width and hidden widths define the network).
    pub training: AutoencoderConfig,
    /// The per-tensor scaling z = θ / s.
    pub scaling: Scaling,
    /// sha256 (hex) of the training trajectories' f32 bytes.
    pub data_digest: String,
    /// Wall-clock seconds of training.
    pub train_seconds: f64,
    /// Mean loss over the last training steps.
    pub final_loss: f32,
    /// The reconstruction loss of the held-out runs' finals (None when none were held out).
    pub heldout_loss: Option<f32>,
    /// sha256 (hex) of `autoencoder.safetensors`.
    pub weights_sha256: String,
}

/// A trained weight autoencoder (see the module documentation for the architecture).
#[derive(Debug, Clone)]
pub struct WeightAutoencoder {
    layout: Layout,
    config: AutoencoderConfig,
    scaling: Scaling,
    weights: Vec<(String, Tensor)>,
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
    mean: Tensor,
    scale: Tensor,
    device: Device,
    data_digest: String,
    train_seconds: f64,
    final_loss: f32,
    heldout_loss: Option<f32>,
    activation: Option<String>,
}

/// Everything [`WeightAutoencoder::from_parts`] needs besides the weights.
struct Info {
    layout: Layout,
    config: AutoencoderConfig,
    scaling: Scaling,
    data_digest: String,
    train_seconds: f64,
    final_loss: f32,
    heldout_loss: Option<f32>,
    activation: Option<String>,
}

/// The final checkpoints `[R, D]` an autoencoder trained with `cfg` sees: aligned exactly as [`train_meta`]
/// aligns them with the same seed (so its latents and a latent flow's data agree), not yet normalised.
///
/// [`train_meta`]: super::train_meta
pub fn autoencoder_inputs(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    cfg: &AutoencoderConfig,
) -> Result<Array2<f32>> {
    let (r, k1, d) = trajectories.dim();
    if d != layout.dim() || r == 0 || k1 == 0 {
        return Err(Error::Shape {
            what: "trajectories",
            expected: format!("[R ≥ 1, K+1 ≥ 1, {}]", layout.dim()),
            got: format!("{:?}", trajectories.shape()),
        });
    }
    let traj = prepared_trajectories(layout, trajectories, &cfg.alignment())?;
    Ok(traj.index_axis(Axis(1), k1 - 1).to_owned())
}

/// Trains an autoencoder on the final checkpoints of `trajectories` `[R, K+1, D]` (all runs but the last
/// `cfg.heldout`), calling `progress(step, total, loss)` after each step. `function` supplies the data of the
/// functional term, required when `cfg.function_weight` > 0. Deterministic for a seed on the CPU.
pub fn train_autoencoder(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    cfg: &AutoencoderConfig,
    function: Option<FunctionData<'_>>,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<WeightAutoencoder> {
    let started = Instant::now();
    let finals = autoencoder_inputs(layout, trajectories, cfg)?;
    let (r, d) = finals.dim();
    cfg.validate(r)?;
    let function = match (cfg.function_weight > 0.0 || cfg.mix_weight > 0.0, function) {
        (false, _) => None,
        (true, Some(f)) if f.x.ncols() == layout.n_inputs() && f.x.nrows() > 0 => Some(f),
        (true, f) => {
            return Err(Error::Config {
                field: "function_weight",
                reason: format!(
                    "the functional term needs data rows of width {}, got {}",
                    layout.n_inputs(),
                    f.map_or("none".into(), |f| format!("{:?}", f.x.shape()))
                ),
            })
        }
    };
    let n_train = r - cfg.heldout;
    // Scaling::fit reads the last checkpoint of `[R, K+1, D]`; the training finals are a one-checkpoint set.
    let train_finals = finals.slice(s![..n_train, ..]);
    let scaling = Scaling::fit(layout, train_finals.insert_axis(Axis(1)))?;
    let scale = scaling.per_coordinate(layout)?;
    let mut z = finals.clone();
    for mut row in z.rows_mut() {
        row.iter_mut().zip(&scale).for_each(|(v, s)| *v /= s);
    }
    let mean = z.slice(s![..n_train, ..]).mean_axis(Axis(0)).expect("at least one training run");

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let (encoder, decoder) = halves(d, cfg, &vb)?;
    seeded_init(&varmap, &mut rng::stream(cfg.seed, STREAM_INIT))?;
    let vars = sorted_vars(&varmap);
    let params = ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() };
    let mut opt = AdamWEma::new(vars.iter().map(|(_, v)| v.clone()).collect::<Vec<Var>>(), params, None)?;
    let mean_t = Tensor::from_vec(mean.to_vec(), (1, d), device).op("upload mean")?;
    let upload = |rows: ArrayView2<f32>| -> Result<Tensor> {
        let rows = rows.as_standard_layout();
        let x = Tensor::from_slice(rows.as_slice().expect("standard layout"), rows.dim(), device).op("upload")?;
        x.broadcast_sub(&mean_t).op("centre")
    };
    let decode = |h: &Tensor| run_mlp(&decoder, h).op("decode");
    // The reconstruction error, the latent h and the decoder's output ẑ − μ for centred inputs u = z − μ.
    let recon = |u: &Tensor| -> Result<(Tensor, Tensor, Tensor)> {
        let h = run_mlp(&encoder, u).and_then(|h| h.tanh()).op("encode")?;
        let out = decode(&h)?;
        let err = (&out - u).and_then(|r| r.sqr()).and_then(|r| r.mean_all()).op("loss")?;
        Ok((err, h, out))
    };
    let recon_loss = |u: &Tensor| -> Result<Tensor> { Ok(recon(u)?.0) };
    let scale_t = Tensor::from_vec(scale.clone(), (1, d), device).op("upload scale")?;
    // θ = s ⊙ (μ + u) for centred normalised rows u.
    let weights_of = |u: &Tensor| -> Result<Tensor> {
        u.broadcast_add(&mean_t).and_then(|z| z.broadcast_mul(&scale_t)).op("unnormalise")
    };
    let mut frng = rng::stream(cfg.seed, STREAM_FUNCTION);
    let mut mrng = rng::stream(cfg.seed, STREAM_MIX);
    // Both functional terms for a batch: u centred inputs, h their latents, out their reconstructions.
    let mut functional = |u: &Tensor, h: &Tensor, out: &Tensor, f: &FunctionData| -> Result<Tensor> {
        let rows: Vec<usize> = (0..cfg.function_rows).map(|_| frng.random_range(0..f.x.nrows())).collect();
        let xb = f.x.select(Axis(0), &rows);
        let xb = Tensor::from_slice(xb.as_slice().expect("fresh standard layout"), xb.dim(), device).op("upload")?;
        let logits = |u: &Tensor| -> Result<Tensor> {
            Ok(BatchedMlp::logits_of_flat(layout, f.activation, &weights_of(u)?, &xb)?)
        };
        let p = logits(u)?.detach();
        let log_p = log_softmax(&p, D::Minus1).op("functional term")?;
        let mut term = Tensor::zeros((), DType::F32, device).op("functional term")?;
        if cfg.function_weight > 0.0 {
            let kl = kl_mean(&log_p, &logits(out)?).op("functional term")?;
            term = (kl * cfg.function_weight).and_then(|k| term + k).op("functional term")?;
        }
        if cfg.mix_weight > 0.0 {
            let b = h.dim(0).op("batch size")?;
            let lam: Vec<f32> = (0..b).map(|_| mrng.random::<f32>()).collect();
            // The batch is a fresh shuffle, so the next row is a random partner.
            let partner: Vec<u32> = (0..b as u32).map(|i| (i + 1) % b as u32).collect();
            let mixed = || -> candle_core::Result<(Tensor, Tensor)> {
                let lam = Tensor::from_vec(lam, (b, 1), device)?;
                let partner = Tensor::from_vec(partner, b, device)?;
                let h_mix = (h.broadcast_mul(&lam)? + h.index_select(&partner, 0)?.broadcast_mul(&(1.0 - &lam)?)?)?;
                // The target: the mixture of the two originals' predictive distributions, as log-probabilities
                // (the floor keeps the log finite for a class both originals give probability 0).
                let (lam, p) = (lam.unsqueeze(2)?, log_p.exp()?);
                let target = (p.broadcast_mul(&lam)? + p.index_select(&partner, 0)?.broadcast_mul(&(1.0 - &lam)?)?)?;
                Ok((h_mix, target.clamp(1e-30f32, 1f32)?.log()?))
            };
            let (h_mix, log_target) = mixed().op("mix term")?;
            let out_mix = decode(&h_mix)?;
            let kl = kl_mean(&log_target, &logits(&out_mix)?).op("mix term")?;
            term = (kl * cfg.mix_weight).and_then(|k| term + k).op("mix term")?;
        }
        Ok(term)
    };

    let mut order: Vec<usize> = (0..n_train).collect();
    let mut brng = rng::stream(cfg.seed, STREAM_BATCH);
    let batch = cfg.batch_size.min(n_train);
    let mut cursor = n_train;
    let mut recent = Vec::with_capacity(FINAL_LOSS_WINDOW);
    let mut rows = Array2::<f32>::zeros((batch, d));
    for step in 0..cfg.steps {
        let frac = step as f64 / cfg.steps as f64;
        opt.set_learning_rate(cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
        // Epochs over a fresh shuffle, so every training run is seen equally often.
        for mut row in rows.rows_mut() {
            if cursor == n_train {
                order.shuffle(&mut brng);
                cursor = 0;
            }
            row.assign(&z.row(order[cursor]));
            cursor += 1;
        }
        let u = upload(rows.view())?;
        let (err, h, out) = recon(&u)?;
        let loss = match &function {
            Some(f) => (err + functional(&u, &h, &out, f)?).op("loss")?,
            None => err,
        };
        let value = loss.to_scalar::<f32>().op("read loss")?;
        if !value.is_finite() {
            return Err(Error::Diverged { step, loss: value });
        }
        opt.backward_step(&loss)?;
        if recent.len() == FINAL_LOSS_WINDOW {
            recent.remove(0);
        }
        recent.push(value);
        progress(step + 1, cfg.steps, value);
    }
    let final_loss = recent.iter().sum::<f32>() / recent.len().max(1) as f32;
    let heldout_loss = match cfg.heldout {
        0 => None,
        _ => Some(recon_loss(&upload(z.slice(s![n_train.., ..]))?)?.to_scalar::<f32>().op("read loss")?),
    };

    let mut weights: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| v.as_tensor().copy().map(|t| (n.clone(), t.detach())))
        .collect::<candle_core::Result<_>>()
        .op("copy weights")?;
    weights.push((MEAN.into(), Tensor::from_vec(mean.to_vec(), d, device).op("upload mean")?));
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    let info = Info {
        layout: layout.clone(),
        config: cfg.clone(),
        scaling,
        data_digest: data_digest(trajectories),
        train_seconds: started.elapsed().as_secs_f64(),
        final_loss,
        heldout_loss,
        activation: None,
    };
    WeightAutoencoder::from_parts(info, weights, device)
}

impl WeightAutoencoder {
    /// Builds the model from sorted, detached `weights` (the networks' and [`MEAN`]) on `device`.
    fn from_parts(info: Info, weights: Vec<(String, Tensor)>, device: &Device) -> Result<Self> {
        let dim = info.layout.dim();
        let map: std::collections::HashMap<String, Tensor> = weights.iter().cloned().collect();
        let mean = map
            .get(MEAN)
            .ok_or_else(|| Error::Config { field: "weights", reason: format!("no {MEAN} tensor") })?
            .reshape((1, dim))
            .op("mean")?;
        let vb = VarBuilder::from_tensors(map, DType::F32, device);
        let (encoder, decoder) = halves(dim, &info.config, &vb)?;
        let scale = info.scaling.per_coordinate(&info.layout)?;
        let scale = Tensor::from_vec(scale, (1, dim), device).op("upload scaling")?;
        Ok(Self {
            layout: info.layout,
            config: info.config,
            scaling: info.scaling,
            weights,
            encoder,
            decoder,
            mean,
            scale,
            device: device.clone(),
            data_digest: info.data_digest,
            train_seconds: info.train_seconds,
            final_loss: info.final_loss,
            heldout_loss: info.heldout_loss,
            activation: info.activation,
        })
    }

    /// The base classifiers' layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The training settings.
    pub fn config(&self) -> &AutoencoderConfig {
        &self.config
    }

    /// The width of the latent.
    pub fn latent_dim(&self) -> usize {
        self.config.latent_dim
    }

    /// The per-tensor scaling of the inputs.
    pub fn scaling(&self) -> &Scaling {
        &self.scaling
    }

    /// sha256 (hex) of the training trajectories' f32 bytes.
    pub fn data_digest(&self) -> &str {
        &self.data_digest
    }

    /// Wall-clock seconds of training.
    pub fn train_seconds(&self) -> f64 {
        self.train_seconds
    }

    /// Mean reconstruction loss (normalised units) over the last (up to 100) training steps.
    pub fn final_loss(&self) -> f32 {
        self.final_loss
    }

    /// Reconstruction loss of the held-out runs' finals (None when none were held out).
    pub fn heldout_loss(&self) -> Option<f32> {
        self.heldout_loss
    }

    /// The base classifiers' activation as recorded in a saved model (None before saving).
    pub fn activation(&self) -> Option<&str> {
        self.activation.as_deref()
    }

    /// Rows `[n, width]` as a tensor, after checking the width.
    fn upload(&self, rows: ArrayView2<f32>, width: usize, what: &'static str) -> Result<Tensor> {
        if rows.ncols() != width {
            return Err(Error::Shape { what, expected: format!("[n, {width}]"), got: format!("{:?}", rows.shape()) });
        }
        let rows = rows.as_standard_layout();
        Tensor::from_slice(rows.as_slice().expect("standard layout"), rows.dim(), &self.device).op("upload")
    }

    fn download(t: &Tensor) -> Result<Array2<f32>> {
        let (n, d) = t.dims2().op("download")?;
        let v = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).op("download")?;
        Ok(Array2::from_shape_vec((n, d), v).expect("n × d values"))
    }

    /// The decoder's graph θ̂(h) = s (μ + dec(h)) for latents `h` `[n, latent]`.
    fn decode_graph(&self, h: &Tensor) -> Result<Tensor> {
        run_mlp(&self.decoder, h)
            .and_then(|o| o.broadcast_add(&self.mean))
            .and_then(|o| o.broadcast_mul(&self.scale))
            .op("decode")
    }

    /// Latents `[n, latent]` (each in (−1, 1)) of weight vectors `thetas` `[n, D]` (aligned as in training).
    pub fn encode(&self, thetas: ArrayView2<f32>) -> Result<Array2<f32>> {
        let x = self.upload(thetas, self.layout.dim(), "weights")?;
        let u = x.broadcast_div(&self.scale).and_then(|z| z.broadcast_sub(&self.mean)).op("normalise")?;
        Self::download(&run_mlp(&self.encoder, &u).and_then(|h| h.tanh()).op("encode")?)
    }

    /// Weight vectors `[n, D]` decoded from latents `[n, latent]`.
    pub fn decode(&self, latents: ArrayView2<f32>) -> Result<Array2<f32>> {
        let h = self.upload(latents, self.latent_dim(), "latents")?;
        Self::download(&self.decode_graph(&h)?)
    }

    /// `decode(encode(thetas))`.
    pub fn reconstruct(&self, thetas: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.decode(self.encode(thetas)?.view())
    }

    /// The decoder's vector-Jacobian product: row i of the result is J_i(h_i)ᵀ g_i, the gradient with respect
    /// to latent h_i of ⟨g_i, decode(h_i)⟩, for latents `[n, latent]` and cotangents `g` `[n, D]` (e.g. a
    /// reward's gradient with respect to the decoded weights).
    pub fn decode_vjp(&self, latents: ArrayView2<f32>, cotangent: ArrayView2<f32>) -> Result<Array2<f32>> {
        let h = Var::from_tensor(&self.upload(latents, self.latent_dim(), "latents")?).op("latent variable")?;
        let g = self.upload(cotangent, self.layout.dim(), "cotangent")?;
        if g.dims()[0] != latents.nrows() {
            return Err(Error::Shape {
                what: "cotangent",
                expected: format!("[{}, {}]", latents.nrows(), self.layout.dim()),
                got: format!("{:?}", cotangent.shape()),
            });
        }
        let inner = (self.decode_graph(h.as_tensor())? * g).and_then(|p| p.sum_all()).op("decoder vjp")?;
        let grads = inner.backward().op("decoder vjp")?;
        let grad = grads
            .get(h.as_tensor())
            .ok_or_else(|| Error::Config { field: "decoder", reason: "no gradient reached the latents".into() })?;
        Self::download(grad)
    }

    /// The tensor names and shapes a saved autoencoder of `layout` and `cfg` holds, sorted by name.
    fn expected_tensors(layout: &Layout, cfg: &AutoencoderConfig) -> Result<Vec<(String, Vec<usize>)>> {
        let varmap = VarMap::new();
        halves(layout.dim(), cfg, &VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
        let data = varmap.data().lock().expect("var map lock poisoned");
        let mut out: Vec<(String, Vec<usize>)> = data.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
        out.push((MEAN.into(), vec![layout.dim()]));
        out.sort();
        Ok(out)
    }

    /// sha256 (hex) of the bytes [`Self::save`] writes to `autoencoder.safetensors`.
    pub fn weights_sha256(&self) -> Result<String> {
        Ok(super::io::hex(&sha2::Sha256::digest(safetensors_bytes(&self.weights, AUTOENCODER_WEIGHTS)?)))
    }

    /// Saves to `dir` (created if missing): `autoencoder.safetensors`, then `autoencoder.json` recording
    /// `activation` (the base classifiers' hidden activation, e.g. `"relu"`).
    pub fn save(&self, dir: &Path, activation: &str) -> Result<()> {
        save_pair(dir, AUTOENCODER_WEIGHTS, AUTOENCODER_MANIFEST, &self.weights, |weights_sha256| AutoencoderManifest {
            format: AUTOENCODER_FORMAT.into(),
            version: AUTOENCODER_VERSION,
            layout: self.layout.clone(),
            activation: activation.into(),
            training: self.config.clone(),
            scaling: self.scaling.clone(),
            data_digest: self.data_digest.clone(),
            train_seconds: self.train_seconds,
            final_loss: self.final_loss,
            heldout_loss: self.heldout_loss,
            weights_sha256,
        })
    }

    /// Loads an autoencoder saved by [`Self::save`] onto `device`, checking format, version, the weights'
    /// sha256 and every tensor's name, dtype and shape.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let json_path = dir.join(AUTOENCODER_MANIFEST);
        let loose = read_checked_manifest(&json_path, AUTOENCODER_FORMAT, AUTOENCODER_VERSION)?;
        let m: AutoencoderManifest =
            serde_json::from_value(loose).map_err(|source| Error::Json { path: json_path.clone(), source })?;
        // A manifest's settings must describe a buildable network (held-out runs are not re-checked: R is
        // not known here).
        m.training.validate(m.training.heldout + 1)?;
        let expected = Self::expected_tensors(&m.layout, &m.training)?;
        let weights = read_checked_tensors(&dir.join(AUTOENCODER_WEIGHTS), &m.weights_sha256, &expected, device)?;
        let info = Info {
            layout: m.layout,
            config: m.training,
            scaling: m.scaling,
            data_digest: m.data_digest,
            train_seconds: m.train_seconds,
            final_loss: m.final_loss,
            heldout_loss: m.heldout_loss,
            activation: Some(m.activation),
        };
        Self::from_parts(info, weights, device)
    }
}
