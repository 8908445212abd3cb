//! A missing onnxruntime library is an error naming the path tried, never a panic. Its own test binary:
//! a process that has loaded onnxruntime keeps it, so this must run before any successful load.
#![cfg(feature = "runtime")]

use ndarray::{Array1, Array2};
use weightflow::bundle::{Bundle, Manifest, PoolSpec};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::ode::Sampler;
use weightflow::runtime::{Detector, OpenOptions, RuntimeError};
use weightflow::space::{Layout, SourceKind};

#[test]
fn a_missing_library_is_reported_with_its_path() -> Result<(), Box<dyn std::error::Error>> {
    let layout = Layout::parse("2-2")?;
    let bundle = Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: "test".into(),
            classifier: Mlp::new(layout.clone(), Activation::default()),
            standardizer: Standardizer { mean: vec![0.0; 2], std: vec![1.0; 2] },
            source: SourceKind::Kaiming,
            sampler: Sampler::Euler,
            steps: 1,
            pool: PoolSpec { size: 1, seed: 0 },
            ensemble: weightflow::detect::EnsembleConfig::untilted(),
            calibration: Vec::new(),
            sections: Vec::new(),
        },
        onnx: vec![1, 2, 3],
        f: Array1::zeros(layout.dim()),
        p_ref: Array2::zeros((1, 2)),
        p_labels: vec![0],
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("b.wfb");
    bundle.write(&path)?;
    let missing = dir.path().join("no/libonnxruntime.so");
    let err = Detector::open(&path, &OpenOptions { onnxruntime: Some(missing.clone()), threads: 0 }).unwrap_err();
    match &err {
        RuntimeError::OnnxRuntimeUnavailable { path, .. } => assert_eq!(path, &missing),
        other => panic!("expected OnnxRuntimeUnavailable, got {other}"),
    }
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
    // A file that is not a shared library at all.
    let foreign = dir.path().join("libfake.so");
    std::fs::write(&foreign, b"not a library")?;
    let err = Detector::open(&path, &OpenOptions { onnxruntime: Some(foreign), threads: 0 }).unwrap_err();
    assert!(matches!(err, RuntimeError::OnnxRuntimeUnavailable { .. }), "{err}");
    Ok(())
}
