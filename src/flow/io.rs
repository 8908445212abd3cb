//! Saving and loading a [`MetaModel`]: `DIR/meta.safetensors` + `DIR/meta.json`.
//!
//! * `meta.safetensors`: the network's sampling weights (the EMA copy when training kept one), f32, under
//!   their `VarBuilder` names, written in sorted name order.
//! * `meta.json`: a [`MetaManifest`] — format `weightflow.meta`, what was trained and on what (sha256 of the
//!   trajectories' f32 bytes), and the sha256 of `meta.safetensors`, checked on load.
//! * A latent-space model (module `space`) also holds its autoencoder, `autoencoder.safetensors` +
//!   `autoencoder.json`, whose weights' sha256 the manifest's [`LatentRecord`] pins.
//!
//! Versions: 1 is a weight-space model; 2 adds the latent record; 3 adds context conditioning (the
//! `training.context` settings and the encoder's `context.*` tensors); 4 marks an MMFM network that outputs
//! endpoints (before it, MMFM networks always output velocities, whatever `training.prediction` says, so a
//! version below 4 reads as [`Prediction::Velocity`] for MMFM); 5 marks a JKO model whose steps start from the
//! Gaussian baseline (`precond.knot_*` tensors; before it JKO models held a raw potential and read as
//! [`Prediction::Velocity`]). Each model is written with the lowest version
//! that holds it, so builds from before a feature still read models without it and refuse models with it by
//! their version instead of misreading them.
//!
//! Every file is written atomically (temporary file, then rename), weights first and `meta.json` last, so a
//! manifest never points at weights that are not there. Loading refuses a wrong format, version or checksum, and a weights
//! file whose tensors are not exactly those of the manifest's network.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::ArrayView3;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::CandleContext;
use super::model::ModelInfo;
use super::{
    Coupling, Error, MetaModel, MetaTrainConfig, NetConfig, Objective, Prediction, Result, Scaling, WeightAutoencoder,
};
use crate::space::{Layout, SourceKind};

/// The manifest's `format` field.
pub const META_FORMAT: &str = "weightflow.meta";
/// The newest manifest version this build writes and reads (see the module documentation).
pub const META_VERSION: u32 = 5;
/// The version of a weight-space model's manifest.
const META_VERSION_WEIGHTS: u32 = 1;
/// The version of a latent-space model's manifest without context conditioning.
const META_VERSION_LATENT: u32 = 2;
/// The version of a context-conditioned model's manifest.
const META_VERSION_CONTEXT: u32 = 3;
/// The first version whose MMFM networks may output endpoints.
const META_VERSION_MMFM_ENDPOINT: u32 = 4;
/// The first version whose JKO models may step from the Gaussian baseline.
const META_VERSION_JKO_BASELINE: u32 = 5;

/// The lowest manifest version that holds a model trained with `training` (with or without a latent record).
fn version_for(latent: bool, training: &MetaTrainConfig) -> u32 {
    if training.jko_baseline() {
        META_VERSION_JKO_BASELINE
    } else if training.objective == Objective::Mmfm && training.predicts_endpoint() {
        META_VERSION_MMFM_ENDPOINT
    } else if training.context.is_some() {
        META_VERSION_CONTEXT
    } else if latent {
        META_VERSION_LATENT
    } else {
        META_VERSION_WEIGHTS
    }
}
/// The weights file in a model directory.
pub const META_WEIGHTS: &str = "meta.safetensors";
/// The manifest file in a model directory.
pub const META_MANIFEST: &str = "meta.json";

/// The contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaManifest {
    /// Always [`META_FORMAT`].
    pub format: String,
    /// 1 (weight space), 2 (latent space), 3 (context-conditioned) or 4 (MMFM predicting endpoints); see the
    /// module documentation.
    pub version: u32,
    /// The objective trained.
    pub objective: Objective,
    /// The coupling used.
    pub coupling: Coupling,
    /// The source distribution generation starts from.
    pub source: SourceKind,
    /// The base classifiers' layer widths.
    pub layout: Layout,
    /// The base classifiers' hidden activation, as given by the caller of [`MetaModel::save`].
    pub activation: String,
    /// The network.
    pub net: NetConfig,
    /// K, the checkpoint intervals of the training trajectories.
    pub checkpoints: usize,
    /// The scaling z = θ / s.
    pub scaling: Scaling,
    /// The full training configuration.
    pub training: MetaTrainConfig,
    /// sha256 (hex) of the training trajectories' f32 bytes (little-endian, row-major).
    pub data_digest: String,
    /// Wall-clock seconds of training.
    pub train_seconds: f64,
    /// Mean loss over the last training steps.
    pub final_loss: f32,
    /// sha256 (hex) of `meta.safetensors`.
    pub weights_sha256: String,
    /// How the model was reward fine-tuned; absent for a model trained by flow matching only (and in files
    /// written before fine-tuning existed, which therefore still load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningRecord>,
    /// The autoencoder a latent-space model runs in (version 2); absent in weight space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<LatentRecord>,
}

/// The autoencoder of a latent-space meta-model, stored beside it in the same directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentRecord {
    /// Width of the latent the flow runs in.
    pub latent_dim: usize,
    /// sha256 (hex) of the `autoencoder.safetensors` in the model directory.
    pub autoencoder_sha256: String,
}

/// What reward fine-tuning (the `tune` layer) did to a meta-model, recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningRecord {
    /// The method, e.g. `"adjoint-matching"`.
    pub method: String,
    /// The reward, in words (e.g. `"task: −mean CE on 161 rows"`).
    pub reward: String,
    /// The tilt strength λ of p* ∝ p_base · exp(λ r).
    pub lambda: f64,
    /// Fine-tuning iterations run.
    pub iterations: usize,
    /// sha256 (hex) of the base model's `meta.safetensors` bytes, so the tuned model names its base.
    pub base_weights_sha256: String,
    /// The full fine-tuning configuration, as the tuning layer serialises it.
    pub settings: serde_json::Value,
    /// Wall-clock seconds of fine-tuning.
    pub seconds: f64,
}

/// sha256 (hex) of the f32 bytes (little-endian, in row-major order) of `trajectories`.
pub fn data_digest(trajectories: ArrayView3<f32>) -> String {
    let mut h = Sha256::new();
    let mut buf = Vec::with_capacity(4 * 4096);
    for v in trajectories.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
        if buf.len() >= 4 * 4096 {
            h.update(&buf);
            buf.clear();
        }
    }
    h.update(&buf);
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))
}

/// The safetensors bytes of f32 `weights` (deterministic: sorted names, little-endian); `file` names the file
/// in errors.
pub(crate) fn safetensors_bytes(weights: &[(String, Tensor)], file: &str) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in weights {
        let vals = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).op("read weights")?;
        owned.push((name.clone(), t.dims().to_vec(), vals.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let path = PathBuf::from(file);
    let views = owned
        .iter()
        .map(|(n, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (n.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Safetensors { path: path.clone(), source })?;
    safetensors::serialize(views, None).map_err(|source| Error::Safetensors { path, source })
}

/// Reads the manifest at `json_path` as loose JSON after checking its `format` field and that its `version`
/// lies in 1 ..= `version`, so that a newer file says so instead of failing on a field this build does not know.
pub(crate) fn read_checked_manifest(json_path: &Path, format: &'static str, version: u32) -> Result<serde_json::Value> {
    let json = std::fs::read(json_path).map_err(io("read", json_path))?;
    let loose: serde_json::Value =
        serde_json::from_slice(&json).map_err(|source| Error::Json { path: json_path.to_path_buf(), source })?;
    let got = loose.get("format").and_then(|v| v.as_str()).unwrap_or("");
    if got != format {
        return Err(Error::Format { path: json_path.to_path_buf(), expected: format, got: got.into() });
    }
    let got = loose.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if !(1..=u64::from(version)).contains(&got) {
        return Err(Error::Version {
            path: json_path.to_path_buf(),
            expected: version,
            got: got.try_into().unwrap_or(u32::MAX),
        });
    }
    Ok(loose)
}

/// Reads the weights file `w_path`, checks its sha256 against `sha256` and that it holds exactly the
/// `expected` `(name, shape)` f32 tensors, and returns them in `expected`'s order on `device`.
pub(crate) fn read_checked_tensors(
    w_path: &Path,
    sha256: &str,
    expected: &[(String, Vec<usize>)],
    device: &Device,
) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(w_path).map_err(io("read", w_path))?;
    let got = hex(&Sha256::digest(&bytes));
    if got != sha256 {
        return Err(Error::Checksum { path: w_path.to_path_buf(), expected: sha256.into(), got });
    }
    let st =
        SafeTensors::deserialize(&bytes).map_err(|source| Error::Safetensors { path: w_path.to_path_buf(), source })?;
    let tensor_err =
        |name: &str, reason: String| Error::Tensor { path: w_path.to_path_buf(), name: name.into(), reason };
    let mut in_file: Vec<String> = st.names().into_iter().map(String::from).collect();
    in_file.sort();
    for name in &in_file {
        if !expected.iter().any(|(n, _)| n == name) {
            return Err(tensor_err(name, "not a tensor of the manifest's network".into()));
        }
    }
    let mut weights = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let view = st.tensor(name).map_err(|_| tensor_err(name, "missing".into()))?;
        if view.dtype() != Dtype::F32 {
            return Err(tensor_err(name, format!("dtype {:?}, expected F32", view.dtype())));
        }
        if view.shape() != shape.as_slice() {
            return Err(tensor_err(name, format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        let vals: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let t = Tensor::from_vec(vals, shape.as_slice(), device).op("load weights")?;
        weights.push((name.clone(), t));
    }
    Ok(weights)
}

/// Writes `weights` to `dir/weights_file`, then `manifest` (built from the weights' sha256) to
/// `dir/manifest_file`, creating `dir` if missing.
pub(crate) fn save_pair<M: Serialize>(
    dir: &Path,
    weights_file: &str,
    manifest_file: &str,
    weights: &[(String, Tensor)],
    manifest: impl FnOnce(String) -> M,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io("create dir", dir))?;
    let bytes = safetensors_bytes(weights, weights_file)?;
    let digest = hex(&Sha256::digest(&bytes));
    write_atomic(&dir.join(weights_file), &bytes)?;
    let json_path = dir.join(manifest_file);
    let mut json = serde_json::to_vec_pretty(&manifest(digest))
        .map_err(|source| Error::Json { path: json_path.clone(), source })?;
    json.push(b'\n');
    write_atomic(&json_path, &json)
}

impl MetaModel {
    /// The manifest this model saves with `activation`, for the weights file digest `weights_sha256` and the
    /// latent record `latent` (latent models).
    fn manifest(&self, activation: &str, weights_sha256: String, latent: Option<LatentRecord>) -> MetaManifest {
        let cfg = self.config();
        MetaManifest {
            format: META_FORMAT.into(),
            version: version_for(latent.is_some(), cfg),
            objective: cfg.objective,
            coupling: cfg.coupling,
            source: cfg.source,
            layout: self.layout().clone(),
            activation: activation.into(),
            net: cfg.net.clone(),
            checkpoints: self.checkpoints(),
            scaling: self.scaling().clone(),
            training: cfg.clone(),
            data_digest: self.data_digest().into(),
            train_seconds: self.train_seconds(),
            final_loss: self.final_loss(),
            weights_sha256,
            tuning: self.tuning().cloned(),
            latent,
        }
    }

    /// sha256 (hex) of the bytes [`Self::save`] writes to `meta.safetensors`.
    pub fn weights_sha256(&self) -> Result<String> {
        Ok(hex(&Sha256::digest(self.weight_bytes()?)))
    }

    /// The bytes of `meta.safetensors` (deterministic: sorted names, f32 little-endian).
    fn weight_bytes(&self) -> Result<Vec<u8>> {
        safetensors_bytes(self.weights(), META_WEIGHTS)
    }

    /// Saves to `dir` (created if missing): `meta.safetensors`, then `meta.json` recording `activation`
    /// (the base classifiers' hidden activation, e.g. `"relu"`).
    /// A latent model first writes its autoencoder into `dir` (module documentation).
    pub fn save(&self, dir: &Path, activation: &str) -> Result<()> {
        let latent = match self.latent() {
            Some(ae) => {
                ae.save(dir, activation)?;
                Some(LatentRecord { latent_dim: ae.latent_dim(), autoencoder_sha256: ae.weights_sha256()? })
            }
            None => None,
        };
        save_pair(dir, META_WEIGHTS, META_MANIFEST, self.weights(), |digest| self.manifest(activation, digest, latent))
    }

    /// Loads a model saved by [`Self::save`] onto `device`, checking format, version, the weights' sha256
    /// and every tensor's name, dtype and shape.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let json_path = dir.join(META_MANIFEST);
        let loose = read_checked_manifest(&json_path, META_FORMAT, META_VERSION)?;
        let mut m: MetaManifest =
            serde_json::from_value(loose).map_err(|source| Error::Json { path: json_path.clone(), source })?;
        let old = match m.training.objective {
            Objective::Mmfm => META_VERSION_MMFM_ENDPOINT,
            Objective::Jko => META_VERSION_JKO_BASELINE,
            Objective::Cfm => 0,
        };
        if m.version < old {
            // Written when MMFM networks always output velocities and JKO models held a raw potential (the
            // stored field held the CFM default).
            m.training.prediction = Prediction::Velocity;
        }
        let want = version_for(m.latent.is_some(), &m.training);
        if m.version != want {
            return Err(Error::Config {
                field: "manifest",
                reason: format!(
                    "{}: version {} {} a latent record and {} context settings{}, which is version {want}",
                    json_path.display(),
                    m.version,
                    if m.latent.is_some() { "with" } else { "without" },
                    if m.training.context.is_some() { "with" } else { "without" },
                    match (m.training.objective, m.training.prediction) {
                        (Objective::Mmfm, Prediction::Endpoint) => " for an MMFM endpoint network",
                        (Objective::Mmfm, Prediction::Velocity) => " for an MMFM velocity network",
                        (Objective::Jko, Prediction::Endpoint) => " for a JKO model with its Gaussian baseline",
                        (Objective::Jko, Prediction::Velocity) => " for a raw JKO potential",
                        (Objective::Cfm, _) => "",
                    }
                ),
            });
        }
        let latent = match &m.latent {
            Some(record) => Some(Box::new(Self::load_latent(dir, record, &m.layout, device)?)),
            None => None,
        };
        if m.training.objective != m.objective || m.training.net != m.net || m.training.source != m.source {
            return Err(Error::Config {
                field: "manifest",
                reason: format!(
                    "{}: objective, net or source disagree with the training configuration",
                    json_path.display()
                ),
            });
        }

        m.training.validate(m.checkpoints)?;
        let dim = m.latent.as_ref().map_or(m.layout.dim(), |l| l.latent_dim);
        let context = m.training.context.as_ref().map(|c| (&m.layout, c));
        let expected = super::net::expected_tensors(dim, &m.training, m.checkpoints, context)?;
        let weights = read_checked_tensors(&dir.join(META_WEIGHTS), &m.weights_sha256, &expected, device)?;
        let info = ModelInfo {
            layout: m.layout,
            config: m.training,
            checkpoints: m.checkpoints,
            scaling: m.scaling,
            data_digest: m.data_digest,
            train_seconds: m.train_seconds,
            final_loss: m.final_loss,
            activation: Some(m.activation),
            tuning: m.tuning,
            latent,
        };
        MetaModel::from_parts(info, weights, device)
    }

    /// The autoencoder stored beside a latent model in `dir`, checked against the manifest's `record`.
    fn load_latent(dir: &Path, record: &LatentRecord, layout: &Layout, device: &Device) -> Result<WeightAutoencoder> {
        let ae = WeightAutoencoder::load(dir, device)?;
        let sha = ae.weights_sha256()?;
        if sha != record.autoencoder_sha256 || ae.latent_dim() != record.latent_dim || ae.layout() != layout {
            return Err(Error::Config {
                field: "latent",
                reason: format!(
                    "{}: the autoencoder there (sha256 {sha}, latent {}, layout {}) is not the one meta.json names \
                     (sha256 {}, latent {}, layout {layout})",
                    dir.display(),
                    ae.latent_dim(),
                    ae.layout(),
                    record.autoencoder_sha256,
                    record.latent_dim
                ),
            });
        }
        Ok(ae)
    }
}
