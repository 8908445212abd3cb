//! The bundle's manifest (JSON): what the artefact holds and how to use it.

use serde::{Deserialize, Serialize};

use crate::classifier::Mlp;
use crate::data::Standardizer;
use crate::detect::{Calibration, EnsembleConfig};
use crate::ode::Sampler;
use crate::space::SourceKind;

/// One section of the bundle's data area: `length` bytes at `offset` (from the start of the data area).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The section's name ([`super::SECTION_ONNX`], [`super::SECTION_TENSORS`]).
    pub name: String,
    /// Byte offset from the start of the data area.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// sha256 of the bytes, lower-case hex.
    pub sha256: String,
}

/// The ensemble's candidate pool: `size` weight vectors generated from fresh source samples drawn with
/// `seed`, stored in the bundle (format ≥ 2, written by `weightflow export`) or generated when a detector opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Number of generated candidates.
    pub size: usize,
    /// Seed of their source samples.
    pub seed: u64,
}

/// The manifest. Field order is the JSON order; the writer fills `format_version` and `sections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The bundle format version ([`super::FORMAT_VERSION`] when written by this library).
    pub format_version: u32,
    /// The writing library, `weightflow <version>`.
    pub producer: String,
    /// The classifier family (layout and activation) of f and of every generated member.
    pub classifier: Mlp,
    /// Standardisation of raw input rows (fitted on P's training split); rows are standardised before scoring.
    pub standardizer: Standardizer,
    /// The meta-model's source distribution p_0.
    pub source: SourceKind,
    /// The ODE integrator of generation.
    pub sampler: Sampler,
    /// Its number of steps.
    pub steps: usize,
    /// The candidate pool (stored, or generated at open).
    pub pool: PoolSpec,
    /// The detector's scoring settings.
    pub ensemble: EnsembleConfig,
    /// Calibration tables, one per window size.
    pub calibration: Vec<Calibration>,
    /// The data area's sections, in file order.
    pub sections: Vec<Section>,
}
