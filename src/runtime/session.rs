//! The meta-model's velocity field on onnxruntime: loading the shared library once per process, and one
//! session per detector.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ndarray::{Array2, ArrayView2};
use ort::session::Session;
use ort::value::Tensor;

use super::error::ort_err;
use super::{ExecutionProvider, RuntimeError};
use crate::onnx::{INPUT_T, INPUT_X, OUTPUT_V};

/// The library this process loaded (ort can load only one per process).
static LOADED: OnceLock<PathBuf> = OnceLock::new();
/// Serialises first loads, so two threads opening detectors at once do not race the loader.
static LOADING: Mutex<()> = Mutex::new(());

/// The onnxruntime library path to use: the option, else `ORT_DYLIB_PATH`, else the loader's default name.
pub(crate) fn library_path(option: Option<&Path>) -> PathBuf {
    match (option, std::env::var_os("ORT_DYLIB_PATH")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("libonnxruntime.so"),
    }
}

/// Loads onnxruntime from `path` unless this process already has a library (then that one is used: ort
/// cannot load a second). A missing or foreign file is an error, never a panic.
pub(crate) fn ensure_loaded(path: &Path) -> Result<(), RuntimeError> {
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if LOADED.get().is_some() {
        return Ok(());
    }
    let unavailable = |reason: String| RuntimeError::OnnxRuntimeUnavailable { path: path.to_path_buf(), reason };
    if !path.is_file() && path.components().count() > 1 {
        return Err(unavailable("no such file".into()));
    }
    let builder = ort::init_from(path).map_err(|e| unavailable(e.to_string()))?;
    // Logging stays at onnxruntime's default; a library must not install a process-wide environment with
    // options of its own beyond what loading requires.
    let _ = builder.with_name("weightflow").commit();
    let _ = LOADED.set(path.to_path_buf());
    Ok(())
}

/// An ONNX velocity field dθ/dt = v(θ, t) (inputs `x` f32 `[B, D]`, `t` f64 `[B, 1]`, output `v` f32
/// `[B, D]`). `Session::run` needs `&mut`: a detector's session sits behind a mutex, so concurrent callers
/// take turns on the (rare) generation path; scoring uses the pool generated at open.
pub(crate) struct VelocitySession {
    session: Mutex<Session>,
    dim: usize,
}

impl VelocitySession {
    /// A session over `model` (ONNX bytes) with `threads` intra-op threads (0: onnxruntime's default) on
    /// `provider`.
    pub(crate) fn new(
        model: &[u8],
        dim: usize,
        threads: usize,
        provider: ExecutionProvider,
    ) -> Result<Self, RuntimeError> {
        let mut builder = Session::builder().map_err(ort_err("create session builder"))?;
        if threads > 0 {
            builder = builder.with_intra_threads(threads).map_err(ort_err("set intra-op threads"))?;
        }
        if let ExecutionProvider::Cuda { device } = provider {
            let device = i32::try_from(device)
                .map_err(|_| RuntimeError::InvalidArgument(format!("CUDA device {device} is out of range")))?;
            // error_on_failure: a CPU-only onnxruntime must not silently run what was asked of a GPU.
            let cuda = ort::ep::CUDA::default().with_device_id(device).build().error_on_failure();
            builder =
                builder.with_execution_providers([cuda]).map_err(ort_err("register the CUDA execution provider"))?;
        }
        let session = builder.commit_from_memory(model).map_err(ort_err("load the ONNX model"))?;
        let names = |v: Vec<&str>| v.join(",");
        let inputs = names(session.inputs().iter().map(|i| i.name()).collect());
        let outputs = names(session.outputs().iter().map(|o| o.name()).collect());
        if inputs != format!("{INPUT_X},{INPUT_T}") || outputs != OUTPUT_V {
            return Err(RuntimeError::OnnxRuntime {
                op: "check the ONNX model's signature",
                message: format!(
                    "inputs [{inputs}], outputs [{outputs}]; expected [{INPUT_X},{INPUT_T}], [{OUTPUT_V}]"
                ),
            });
        }
        Ok(Self { session: Mutex::new(session), dim })
    }

    /// v(x, t) `[B, D]` for one time shared by the batch.
    pub(crate) fn velocity(&self, x: ArrayView2<'_, f32>, t: f64) -> Result<Array2<f32>, RuntimeError> {
        let (b, d) = x.dim();
        if d != self.dim {
            return Err(RuntimeError::InvalidArgument(format!("weights of width {d}, the model takes {}", self.dim)));
        }
        let xs: Vec<f32> = x.as_standard_layout().iter().copied().collect();
        let xt = Tensor::from_array(([b, d], xs)).map_err(ort_err("build input x"))?;
        let tt = Tensor::from_array(([b, 1], vec![t; b])).map_err(ort_err("build input t"))?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(ort::inputs![INPUT_X => xt, INPUT_T => tt]).map_err(ort_err("run the velocity"))?;
        let (shape, v) = outputs[OUTPUT_V].try_extract_tensor::<f32>().map_err(ort_err("read output v"))?;
        if shape.len() != 2 || shape[0] as usize != b || shape[1] as usize != d {
            return Err(RuntimeError::OnnxRuntime {
                op: "read output v",
                message: format!("shape {shape:?}, expected [{b}, {d}]"),
            });
        }
        Ok(Array2::from_shape_vec((b, d), v.to_vec()).expect("checked shape"))
    }
}
