//! [`Detector`]: a bundle opened for generation and scoring.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::{s, Array2, ArrayView2};

use super::session::{ensure_loaded, library_path, VelocitySession};
use super::stream::Stream;
use super::RuntimeError;
use crate::bundle::{Bundle, Manifest};
use crate::detect::{EnsembleDetector, Score};
use crate::ode::integrate;
use crate::rng;

/// Rows integrated together by [`Detector::generate`] (bounds the ONNX call's memory).
const GEN_BATCH: usize = 4096;

/// How to open a detector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// The onnxruntime shared library; `None`: `ORT_DYLIB_PATH`, else `libonnxruntime.so` on the loader's
    /// search path. A process loads one library: the first successful open decides which.
    pub onnxruntime: Option<PathBuf>,
    /// onnxruntime intra-op threads; 0: its default.
    pub threads: usize,
    /// Where onnxruntime runs the meta-model's velocity field.
    pub provider: ExecutionProvider,
}

/// The onnxruntime execution provider of the velocity field: generation ([`Detector::generate`], and the
/// candidate pool of a bundle that does not store one). Scoring runs the stored pool's classifiers in Rust on
/// the CPU either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutionProvider {
    /// onnxruntime's default CPU provider.
    #[default]
    Cpu,
    /// onnxruntime's CUDA provider on GPU `device`. Needs an onnxruntime build that has it (the PyPI
    /// `onnxruntime-gpu` wheel) and a CUDA GPU; the session then fails to build with an error rather than
    /// falling back to the CPU.
    Cuda {
        /// The CUDA device ordinal.
        device: u32,
    },
}

impl ExecutionProvider {
    /// `Cuda { device }` for `Some(device)`, else `Cpu` (the CLI's `--cuda-device` and the C ABI's provider).
    pub fn from_cuda_device(device: Option<u32>) -> Self {
        device.map_or(Self::Cpu, |device| Self::Cuda { device })
    }
}

/// What a detector scores and generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorInfo {
    /// Features per input row.
    pub n_features: usize,
    /// Classes of the classifier.
    pub n_classes: usize,
    /// D: parameters of one classifier.
    pub n_params: usize,
    /// Window sizes with a calibration table.
    pub window_sizes: Vec<usize>,
    /// Members that vote: pool candidates (stored in the bundle or generated at open) that passed the
    /// accuracy floor, at most the configured ensemble size.
    pub ensemble_size: usize,
    /// The bundle's format version.
    pub bundle_version: u32,
    /// Whether the candidate pool came stored in the bundle (format ≥ 2) rather than generated at open.
    pub pool_stored: bool,
}

/// An opened bundle: immutable after [`Detector::open`]; `Send + Sync`, so many threads may score at once.
pub struct Detector {
    bundle: Bundle,
    /// The velocity field, built on first use: scoring with a stored pool never needs it.
    session: OnceLock<VelocitySession>,
    threads: usize,
    provider: ExecutionProvider,
    pool: Array2<f32>,
    ensemble: EnsembleDetector,
    info: DetectorInfo,
}

// The C ABI and services share one detector across threads: keep it Send + Sync (a compile-time check).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Detector>();
};

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Detector {
    /// Reads and checks the bundle (strictly: see [`Bundle::from_bytes`]), loads onnxruntime, takes the
    /// candidate pool stored in the bundle (or, for a bundle without one, builds the ONNX session and
    /// generates it with the bundle's pool seed) and builds the ensemble detector from it (members that pass
    /// the accuracy floor on P's reference sample). With a stored pool, open only reads: the ONNX session is
    /// built on the first [`Self::generate`] or [`Self::velocity`] call.
    pub fn open(bundle: &Path, options: &OpenOptions) -> Result<Self, RuntimeError> {
        // The reader has validated the bundle already.
        Self::from_valid(Bundle::read(bundle)?, options)
    }

    /// A detector over a bundle held in memory, e.g. one just built and never written (`weightflow detect`
    /// given a meta-model): what [`Self::open`] does after reading, with [`Bundle::validate`] in place of the
    /// reader's checks of the bytes.
    pub fn from_bundle(bundle: Bundle, options: &OpenOptions) -> Result<Self, RuntimeError> {
        bundle.validate()?;
        Self::from_valid(bundle, options)
    }

    /// [`Self::from_bundle`] for a bundle that has passed [`Bundle::validate`].
    fn from_valid(bundle: Bundle, options: &OpenOptions) -> Result<Self, RuntimeError> {
        // Loaded at open even when the pool is stored, so that a missing library is reported where users
        // look for set-up errors rather than on a later generate call.
        ensure_loaded(&library_path(options.onnxruntime.as_deref()))?;
        let session = OnceLock::new();
        let m = &bundle.manifest;
        let layout = &m.classifier.layout;
        let pool = match &bundle.pool {
            Some(pool) => {
                crate::onnx::check_velocity_signature(&bundle.onnx, layout.dim()).map_err(|e| {
                    RuntimeError::OnnxRuntime { op: "check the ONNX model's signature", message: e.to_string() }
                })?;
                pool.clone()
            }
            None => {
                let built = VelocitySession::new(&bundle.onnx, layout.dim(), options.threads, options.provider)?;
                generate(session.get_or_init(|| built), m, m.pool.size, m.pool.seed)?
            }
        };
        let (f, p_ref) = (bundle.f.clone(), bundle.p_ref.clone());
        let ensemble = EnsembleDetector::new(m.classifier.clone(), f, p_ref, pool.clone(), m.ensemble.clone())?;
        let info = DetectorInfo {
            n_features: layout.n_inputs(),
            n_classes: layout.n_outputs(),
            n_params: layout.dim(),
            window_sizes: m.calibration.iter().map(|c| c.window_size).collect(),
            ensemble_size: ensemble.ensemble_size(),
            bundle_version: m.format_version,
            pool_stored: bundle.pool.is_some(),
        };
        Ok(Self { bundle, session, threads: options.threads, provider: options.provider, pool, ensemble, info })
    }

    /// The ONNX session, built on first use (two racing first callers may both build one; one is kept).
    fn session(&self) -> Result<&VelocitySession, RuntimeError> {
        if let Some(session) = self.session.get() {
            return Ok(session);
        }
        let layout = &self.bundle.manifest.classifier.layout;
        let built = VelocitySession::new(&self.bundle.onnx, layout.dim(), self.threads, self.provider)?;
        Ok(self.session.get_or_init(|| built))
    }

    /// What this detector scores and generates.
    pub fn info(&self) -> &DetectorInfo {
        &self.info
    }

    /// The bundle it was opened from.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The candidate pool `[pool size, D]` (stored in the bundle or generated at open).
    pub fn pool(&self) -> &Array2<f32> {
        &self.pool
    }

    /// The ensemble detector that scores windows (before standardisation: it takes standardised rows), e.g.
    /// to calibrate a bundle with exactly the members the runtime holds.
    pub fn ensemble(&self) -> &EnsembleDetector {
        &self.ensemble
    }

    /// The verdict on one window of raw (unstandardised) rows `[N, n_features]`: the rows are checked (not
    /// empty, the bundle's feature count, every value finite), standardised with the bundle's standardiser and
    /// scored by the ensemble against the calibration table of size N. `seed` drives the window's random
    /// choices (reference rows of the refinement steps): same window and seed, same verdict.
    pub fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<Score, RuntimeError> {
        if rows.nrows() == 0 {
            return Err(RuntimeError::InvalidArgument("the window has no rows".into()));
        }
        self.check_rows(rows)?;
        let mut q = rows.to_owned();
        self.bundle.manifest.standardizer.apply(&mut q).map_err(|e| RuntimeError::InvalidArgument(e.to_string()))?;
        Ok(self.ensemble.score(q.view(), &self.bundle.manifest.calibration, seed)?)
    }

    /// Raw rows are of the bundle's feature count and finite (an empty block passes).
    pub(crate) fn check_rows(&self, rows: ArrayView2<'_, f32>) -> Result<(), RuntimeError> {
        let width = rows.ncols();
        if width != self.info.n_features {
            return Err(RuntimeError::InvalidArgument(format!(
                "rows have {width} features, the bundle's classifier takes {}",
                self.info.n_features
            )));
        }
        if let Some(((r, c), v)) = rows.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(RuntimeError::InvalidArgument(format!("row {r}, feature {c} is {v} (not finite)")));
        }
        Ok(())
    }

    /// A streaming detector over this one: windows of `window` rows (a calibrated size) every `stride` rows,
    /// each scored like [`Self::score`] with seed [`window_seed`](crate::detect::window_seed)`(seed, k)`.
    pub fn stream(&self, window: usize, stride: usize, seed: u64) -> Result<Stream<'_>, RuntimeError> {
        Stream::new(self, window, stride, seed)
    }

    /// The meta-model's velocity dθ/dt `[B, D]` at weights `theta` `[B, D]` and time `t`, through
    /// onnxruntime (the field [`Self::generate`] integrates).
    pub fn velocity(&self, theta: ArrayView2<'_, f32>, t: f64) -> Result<Array2<f32>, RuntimeError> {
        if !t.is_finite() || theta.iter().any(|v| !v.is_finite()) {
            return Err(RuntimeError::InvalidArgument("velocity needs finite weights and time".into()));
        }
        self.session()?.velocity(theta, t)
    }

    /// `n` classifiers' flat weights `[n, D]` (classifier layout): fresh source samples drawn with `seed`
    /// (as `flow::MetaModel::generate` draws them) carried to t = 1 by the bundle's sampler and steps, the
    /// velocity evaluated by onnxruntime.
    pub fn generate(&self, n: usize, seed: u64) -> Result<Array2<f32>, RuntimeError> {
        generate(self.session()?, &self.bundle.manifest, n, seed)
    }
}

/// `n` weight vectors from source samples drawn with `seed`, integrated with the manifest's sampler.
fn generate(session: &VelocitySession, m: &Manifest, n: usize, seed: u64) -> Result<Array2<f32>, RuntimeError> {
    if n == 0 {
        return Err(RuntimeError::InvalidArgument("generate needs n ≥ 1".into()));
    }
    let layout = &m.classifier.layout;
    let mut theta = m.source.source().sample(layout, n, &mut rng::rng(seed));
    for start in (0..n).step_by(GEN_BATCH) {
        let rows = GEN_BATCH.min(n - start);
        let x0 = theta.slice(s![start..start + rows, ..]).to_owned();
        let x1 = integrate(m.sampler, m.steps, x0, |x, t| session.velocity(x.view(), t), |_, _, _| Ok(()))?;
        theta.slice_mut(s![start..start + rows, ..]).assign(&x1);
    }
    Ok(theta)
}

impl From<std::convert::Infallible> for RuntimeError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}
