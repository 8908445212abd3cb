//! The seam between the C ABI and the detector it wraps: the ABI validates every argument, then calls a
//! [`Backend`]. In a library built with the `runtime` feature the backend is `runtime::Detector` (a bundle
//! scored through onnxruntime); without it, opening a bundle fails with `WF_STATUS_NOT_BUILT_IN`, so the
//! exported symbols, and the ABI, are the same in every build.

use std::path::Path;

use ndarray::{Array2, ArrayView2};

use super::error::CapiError;
use super::status::wf_status;
use super::types::wf_score;

/// What a detector tells about itself (mirrors `runtime::DetectorInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Info {
    pub(crate) n_features: usize,
    pub(crate) n_classes: usize,
    pub(crate) n_params: usize,
    pub(crate) window_sizes: Vec<usize>,
    pub(crate) ensemble_size: usize,
    pub(crate) bundle_version: u32,
}

/// A detector behind the ABI. Immutable and shared: `score` and `generate` are called from many threads.
pub(crate) trait Backend: Send + Sync {
    /// The detector's facts, read once at open.
    fn info(&self) -> Info;
    /// A verdict for one window of raw rows `[n, n_features]`, already checked finite and of the right width.
    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<wf_score, CapiError>;
    /// `n` classifiers' flat weights `[n, n_params]`.
    fn generate(&self, n: usize, seed: u64) -> Result<Array2<f32>, CapiError>;
}

/// How to open a bundle (the ABI's `wf_open_options`, resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OpenSettings {
    pub(crate) onnxruntime: Option<std::path::PathBuf>,
    pub(crate) threads: usize,
    /// `Some(device)`: onnxruntime's CUDA provider on that GPU.
    pub(crate) cuda_device: Option<u32>,
}

/// Opens the bundle at `path` with the backend this library was built with.
#[cfg(not(feature = "runtime"))]
pub(crate) fn open(path: &Path, _settings: &OpenSettings) -> Result<Box<dyn Backend>, CapiError> {
    Err(CapiError::new(
        wf_status::NotBuiltIn,
        format!(
            "cannot open {}: this weightflow library was built without the `runtime` feature (rebuild with \
             `--features runtime`)",
            path.display()
        ),
    ))
}

/// Opens the bundle at `path` through `runtime::Detector` (onnxruntime loaded from `settings.onnxruntime`,
/// else `ORT_DYLIB_PATH`).
#[cfg(feature = "runtime")]
pub(crate) fn open(path: &Path, settings: &OpenSettings) -> Result<Box<dyn Backend>, CapiError> {
    use crate::runtime::{ExecutionProvider, OpenOptions};
    let provider = ExecutionProvider::from_cuda_device(settings.cuda_device);
    let options = OpenOptions { onnxruntime: settings.onnxruntime.clone(), threads: settings.threads, provider };
    Ok(Box::new(crate::runtime::Detector::open(path, &options)?))
}

#[cfg(feature = "runtime")]
impl Backend for crate::runtime::Detector {
    fn info(&self) -> Info {
        let i = crate::runtime::Detector::info(self);
        Info {
            n_features: i.n_features,
            n_classes: i.n_classes,
            n_params: i.n_params,
            window_sizes: i.window_sizes.clone(),
            ensemble_size: i.ensemble_size,
            bundle_version: i.bundle_version,
        }
    }

    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<wf_score, CapiError> {
        Ok(crate::runtime::Detector::score(self, rows, seed)?.into())
    }

    fn generate(&self, n: usize, seed: u64) -> Result<Array2<f32>, CapiError> {
        Ok(crate::runtime::Detector::generate(self, n, seed)?)
    }
}

/// The one mapping from runtime failures to ABI status codes.
#[cfg(feature = "runtime")]
impl From<crate::runtime::RuntimeError> for CapiError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        use crate::runtime::RuntimeError as E;
        let status = match &e {
            E::InvalidArgument(_) => wf_status::InvalidArgument,
            E::NotABundle(_) => wf_status::NotABundle,
            E::BundleCorrupt(_) => wf_status::BundleCorrupt,
            E::UnsupportedVersion { .. } => wf_status::UnsupportedVersion,
            E::OnnxRuntimeUnavailable { .. } => wf_status::OnnxruntimeUnavailable,
            E::OnnxRuntime { .. } => wf_status::Onnxruntime,
            // No catch-all: a variant added to RuntimeError must get its code here (the match stops compiling).
            E::Io { .. } => wf_status::Io,
            E::Detect(_) => wf_status::Detect,
        };
        CapiError::new(status, e.to_string())
    }
}
