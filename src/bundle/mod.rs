//! The exported artefact: one versioned file a detector opens (ARCHITECTURE.md, "The bundle").
//!
//! A bundle holds a JSON [`Manifest`] (classifier family, standardiser, source, ODE sampler and steps, the
//! candidate pool's size and seed, the detector's settings and calibration tables, and the sections table
//! with a sha256 per section) and two sections: [`SECTION_ONNX`], the meta-model's velocity field as ONNX
//! ([`crate::onnx`]), and [`SECTION_TENSORS`], safetensors with the deployed classifier f (`f`, `[D]` f32),
//! the standardised reference sample of P (`p_ref`, `[N, features]` f32) and f's pseudo-labels on it
//! (`p_labels`, `[N]` u32) and, from format version 2, the candidate pool (`pool`, `[pool size, D]` f32) so
//! that a detector opens without running the meta-model. The byte format is in [`codec`].
//!
//! [`Bundle::write`] is atomic and deterministic; [`Bundle::read`] is strict: every check of the format has
//! its own [`BundleError`] variant and runs before anything is used. This layer needs neither candle nor
//! onnxruntime: the ONNX section is opaque bytes here.

pub mod codec;
mod error;
mod manifest;

use ndarray::{Array1, Array2};

pub use error::BundleError;
pub use manifest::{Manifest, PoolSpec, Section};

/// The first bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"WFBUNDL\0";
/// The format version this library writes (and the newest it reads). Version 2 added the optional `pool`
/// tensor: the candidate pool stored at export, so that opening a bundle only reads. Version 3 lets the
/// ensemble settings hold what a version-2 reader would misread or silently ignore, and so score differently
/// from the writer: a per-class ensemble size and a cap on the candidates
/// ([`EnsembleConfig::ensemble_size`](crate::detect::EnsembleConfig::ensemble_size),
/// [`EnsembleConfig::candidates`](crate::detect::EnsembleConfig::candidates)). The file layout is unchanged.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this library reads (version 1: no stored pool, generated at open).
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Name of the ONNX section.
pub const SECTION_ONNX: &str = "model.onnx";
/// Name of the safetensors section.
pub const SECTION_TENSORS: &str = "tensors.safetensors";

/// A bundle in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The manifest (its `format_version` and `sections` are filled by the writer).
    pub manifest: Manifest,
    /// The meta-model's velocity field, serialised ONNX.
    pub onnx: Vec<u8>,
    /// The deployed classifier f's flat weights `[D]` (classifier layout).
    pub f: Array1<f32>,
    /// Reference sample of P, standardised rows `[N, features]`.
    pub p_ref: Array2<f32>,
    /// f's pseudo-labels on `p_ref` `[N]`.
    pub p_labels: Vec<u32>,
    /// The candidate pool `[pool size, D]`: exactly what the meta-model generates from the manifest's pool
    /// seed, stored at export. `None`: a detector generates it at open (version-1 bundles have none).
    pub pool: Option<Array2<f32>>,
}

impl Bundle {
    /// Checks that the parts agree with the manifest: f's length is the layout's D, P's width its input
    /// size and the standardiser's, labels are classes of f, settings are in range and every number finite.
    pub fn validate(&self) -> Result<(), BundleError> {
        let m = &self.manifest;
        let layout = &m.classifier.layout;
        let shape = |what: &str, expected: String, got: String| {
            if expected == got {
                Ok(())
            } else {
                Err(BundleError::Shape { what: what.into(), expected, got })
            }
        };
        shape("tensor f", format!("[{}]", layout.dim()), format!("[{}]", self.f.len()))?;
        let (n, width) = self.p_ref.dim();
        shape("tensor p_ref columns", layout.n_inputs().to_string(), width.to_string())?;
        shape("tensor p_labels", format!("[{n}]"), format!("[{}]", self.p_labels.len()))?;
        shape("standardizer mean", layout.n_inputs().to_string(), m.standardizer.mean.len().to_string())?;
        shape("standardizer std", layout.n_inputs().to_string(), m.standardizer.std.len().to_string())?;
        let invalid = |field: &'static str, reason: String| Err(BundleError::Invalid { field, reason });
        if n == 0 {
            return invalid("p_ref", "the reference sample of P is empty".into());
        }
        if let Some(&c) = self.p_labels.iter().find(|&&c| c as usize >= layout.n_outputs()) {
            return invalid("p_labels", format!("class {c} of a {}-class classifier", layout.n_outputs()));
        }
        let finite = |x: &f32| x.is_finite();
        if !self.f.iter().all(finite) || !self.p_ref.iter().all(finite) || !m.standardizer.mean.iter().all(finite) {
            return invalid("tensors", "f, p_ref and the standardiser's mean must be finite".into());
        }
        if !m.standardizer.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return invalid("standardizer", "every std must be finite and positive".into());
        }
        if m.steps == 0 {
            return invalid("steps", "generation needs ≥ 1 ODE step".into());
        }
        if m.pool.size == 0 {
            return invalid("pool", "the candidate pool is empty".into());
        }
        if let Some(pool) = &self.pool {
            let expected = format!("[{}, {}]", m.pool.size, layout.dim());
            shape("tensor pool", expected, format!("{:?}", pool.shape()))?;
            if !pool.iter().all(finite) {
                return invalid("pool", "every stored candidate's weight must be finite".into());
            }
        }
        m.ensemble.validate().or_else(|e| invalid("ensemble", e.to_string()))?;
        let mut sizes = std::collections::BTreeSet::new();
        for c in &m.calibration {
            c.validate().or_else(|e| invalid("calibration", e.to_string()))?;
            if c.window_size == 0 || !sizes.insert(c.window_size) {
                return invalid("calibration", format!("window size {} is zero or repeated", c.window_size));
            }
        }
        Ok(())
    }
}
