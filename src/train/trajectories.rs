//! A trajectory set on disk: `manifest.json` (canonical JSON) beside `trajectories.safetensors`.
//!
//! Tensors (all f32, R runs, K+1 checkpoints, D parameters):
//! * `thetas` `[R, K+1, D]` — checkpoint k of run r in the flat [`Layout`](crate::space::Layout) order;
//! * `train_loss`, `train_accuracy`, `val_loss`, `val_accuracy` `[R, K+1]`;
//! * `test_loss`, `test_accuracy` `[R]` (final checkpoint on the held-out split), and for binary tasks
//!   `val_auroc`, `test_auroc` `[R]`.
//!
//! The manifest records everything needed to reproduce and to use the set: layout, activation, data set and
//! split seed, the standardisation fitted on the training split, the training configuration, checkpoint
//! steps and times, per-checkpoint means, and the sha256 of the tensor file, which [`TrajectorySet::load`]
//! verifies before trusting a byte of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayView3, IxDyn};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DeviceKind, Error, TrainConfig};
use crate::classifier::Activation;
use crate::data::Standardizer;
use crate::space::Layout;

/// The manifest's `format` value.
pub const TRAJECTORY_FORMAT: &str = "weightflow.trajectories";
/// The manifest's `version`; readers refuse any other.
pub const TRAJECTORY_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const TENSORS: &str = "trajectories.safetensors";

/// Means over runs at one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    /// Flow time t_k = k/K.
    pub t: f64,
    /// Optimiser step.
    pub step: usize,
    /// Mean training cross entropy.
    pub train_loss: f64,
    /// Mean training accuracy.
    pub train_accuracy: f64,
    /// Mean validation cross entropy.
    pub val_loss: f64,
    /// Mean validation accuracy.
    pub val_accuracy: f64,
}

/// Means over runs of the final checkpoints (the stable `final` object of `weightflow info --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalSummary {
    /// Mean training accuracy.
    pub train_accuracy: f64,
    /// Mean validation accuracy.
    pub val_accuracy: f64,
    /// Mean accuracy on the held-out split (UCI heart: iid_test; MNIST: the held-out 2k; digits: its test part).
    pub test_accuracy: f64,
    /// Mean validation AUROC for binary tasks, else null.
    pub val_auroc: Option<f64>,
    /// Mean held-out AUROC for binary tasks, else null.
    pub test_auroc: Option<f64>,
}

/// Sizes of the data splits the runs saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub val: usize,
    /// Held-out rows.
    pub test: usize,
    /// Shifted rows, where the data set has a shifted pool.
    pub shifted: Option<usize>,
}

/// The JSON manifest of a trajectory set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryManifest {
    /// Always [`TRAJECTORY_FORMAT`].
    pub format: String,
    /// Always [`TRAJECTORY_VERSION`].
    pub version: u32,
    /// weightflow version that wrote the set.
    pub writer: String,
    /// Layer widths of the classifiers.
    pub layout: Layout,
    /// Hidden activation.
    pub activation: Activation,
    /// Number of classes.
    pub n_classes: usize,
    /// The data set, as given on the command line (`uci-heart`, `digits`, `mnist`, `csv:PATH`).
    pub dataset: String,
    /// Seed of the train/val/test split (unused for fixed splits).
    pub split_seed: u64,
    /// The shift every split was transformed by before standardising (a *task* such as `rotate:90-90`, see
    /// [`crate::data::DatasetSpec::load_task`]); absent for the data set itself (and in sets written before
    /// tasks existed, which therefore still load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Split sizes.
    pub splits: SplitSizes,
    /// Standardisation fitted on the training split; apply it to any input before the classifiers.
    pub standardizer: Standardizer,
    /// Training settings, seed included.
    pub train: TrainConfig,
    /// Device the runs trained on.
    pub device: DeviceKind,
    /// Runs R.
    pub runs: usize,
    /// Optimiser step of each checkpoint.
    pub checkpoint_steps: Vec<usize>,
    /// Per-checkpoint means over runs.
    pub checkpoints: Vec<CheckpointSummary>,
    /// Means over runs of the final checkpoints.
    #[serde(rename = "final")]
    pub final_summary: FinalSummary,
    /// Wall time of training, seconds.
    pub train_seconds: f64,
    /// sha256 (hex) of `trajectories.safetensors`.
    pub tensors_sha256: String,
}

/// A trajectory set in memory.
#[derive(Debug, Clone)]
pub struct TrajectorySet {
    /// The manifest.
    pub manifest: TrajectoryManifest,
    /// Named tensors (see the module docs), `thetas` among them.
    pub tensors: BTreeMap<String, ArrayD<f32>>,
}

impl TrajectorySet {
    /// Checkpoints `[R, K+1, D]`, borrowed (a set can hold gigabytes: callers copy only what they change).
    pub fn thetas(&self) -> ArrayView3<'_, f32> {
        self.tensors["thetas"].view().into_dimensionality().expect("checked at load/build time")
    }

    /// A `[R, K+1]` metric such as `val_accuracy`.
    pub fn metric2(&self, name: &str) -> Option<ArrayView2<'_, f32>> {
        self.tensors.get(name).and_then(|t| t.view().into_dimensionality().ok())
    }

    /// A per-run metric `[R]` such as `test_accuracy`.
    pub fn metric1(&self, name: &str) -> Option<ArrayView1<'_, f32>> {
        self.tensors.get(name).and_then(|t| t.view().into_dimensionality().ok())
    }

    /// Writes `dir/manifest.json` and `dir/trajectories.safetensors`, each atomically (temp file, rename).
    /// The tensor file's sha256 is written into the manifest. Same set → same bytes.
    pub fn save(&mut self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        let bytes = self.tensor_bytes()?;
        self.manifest.tensors_sha256 = hex_sha256(&bytes);
        write_atomic(&dir.join(TENSORS), &bytes)?;
        let mut json = serde_json::to_vec_pretty(&self.manifest).expect("a manifest always serialises");
        json.push(b'\n');
        write_atomic(&dir.join(MANIFEST), &json)
    }

    fn tensor_bytes(&self) -> Result<Vec<u8>, Error> {
        let fail =
            |e: safetensors::SafeTensorError| Error::Format { path: PathBuf::from(TENSORS), reason: e.to_string() };
        // Tensors built here are in standard layout; a view of their memory needs no copy.
        let owned: Vec<_> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let data = match t.as_slice() {
                    Some(s) => std::borrow::Cow::Borrowed(s),
                    None => std::borrow::Cow::Owned(t.iter().copied().collect()),
                };
                (name, data, t.shape().to_vec())
            })
            .collect();
        let views = owned
            .iter()
            .map(|(name, data, shape)| {
                TensorView::new(Dtype::F32, shape.clone(), f32_bytes(data)).map(|v| ((*name).clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        safetensors::serialize(views, None).map_err(fail)
    }

    /// Reads and checks a trajectory set: format and version, the tensor file's sha256, and every tensor's
    /// shape against the manifest.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let mpath = dir.join(MANIFEST);
        let fmt = |path: &Path, reason: String| Error::Format { path: path.to_path_buf(), reason };
        let text = std::fs::read(&mpath).map_err(|source| Error::Io { path: mpath.clone(), source })?;
        let probe: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| fmt(&mpath, format!("not JSON: {e}")))?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(TRAJECTORY_FORMAT) {
            return Err(fmt(&mpath, format!("not a trajectory set (format is not {TRAJECTORY_FORMAT:?})")));
        }
        let version = probe.get("version").and_then(|v| v.as_u64());
        if version != Some(TRAJECTORY_VERSION as u64) {
            return Err(fmt(
                &mpath,
                format!("format version {version:?}, this build reads version {TRAJECTORY_VERSION}"),
            ));
        }
        let manifest: TrajectoryManifest =
            serde_json::from_value(probe).map_err(|e| fmt(&mpath, format!("malformed manifest: {e}")))?;
        let tpath = dir.join(TENSORS);
        let bytes = std::fs::read(&tpath).map_err(|source| Error::Io { path: tpath.clone(), source })?;
        let digest = hex_sha256(&bytes);
        if digest != manifest.tensors_sha256 {
            return Err(fmt(
                &tpath,
                format!("checksum mismatch: manifest says {}, file is {digest}", manifest.tensors_sha256),
            ));
        }
        let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt(&tpath, format!("not a safetensors file: {e}")))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(fmt(&tpath, format!("tensor {name:?} has dtype {:?}, expected F32", view.dtype())));
            }
            let values: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let arr = ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| fmt(&tpath, e.to_string()))?;
            tensors.insert(name, arr);
        }
        let set = Self { manifest, tensors };
        set.check_shapes().map_err(|reason| fmt(&tpath, reason))?;
        Ok(set)
    }

    /// Checks every tensor's shape against the manifest.
    pub(crate) fn check_shapes(&self) -> Result<(), String> {
        let m = &self.manifest;
        let (r, k1, d) = (m.runs, m.checkpoint_steps.len(), m.layout.dim());
        let expect = |name: &str, shape: &[usize], required: bool| -> Result<(), String> {
            match self.tensors.get(name) {
                Some(t) if t.shape() == shape => Ok(()),
                Some(t) => Err(format!("tensor {name:?} has shape {:?}, expected {shape:?}", t.shape())),
                None if required => Err(format!("tensor {name:?} is missing")),
                None => Ok(()),
            }
        };
        expect("thetas", &[r, k1, d], true)?;
        for name in ["train_loss", "train_accuracy", "val_loss", "val_accuracy"] {
            expect(name, &[r, k1], true)?;
        }
        for name in ["test_loss", "test_accuracy"] {
            expect(name, &[r], true)?;
        }
        for name in ["val_auroc", "test_auroc"] {
            expect(name, &[r], false)?;
        }
        if m.checkpoints.len() != k1 {
            return Err(format!("{} checkpoint summaries for {k1} checkpoints", m.checkpoints.len()));
        }
        Ok(())
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the length is scaled by size_of::<f32>.
    // safetensors stores little-endian, which is the byte order of every target this crate builds for
    // (checked at compile time below).
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
const _: () = assert!(cfg!(target_endian = "little"), "weightflow's file formats assume a little-endian host");

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so that readers
/// never see a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
