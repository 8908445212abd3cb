//! A well-formed bundle of a 2-2 classifier whose ONNX bytes are junk: for tests whose every case fails
//! before onnxruntime would read the model (bad bundles, a missing onnxruntime library).

use ndarray::{Array1, Array2};
use weightflow::bundle::{Bundle, Manifest, PoolSpec};
use weightflow::classifier::{Activation, Mlp};
use weightflow::data::Standardizer;
use weightflow::detect::EnsembleConfig;
use weightflow::ode::Sampler;
use weightflow::space::{Layout, SourceKind};

/// The bundle; `producer` names the test that made it.
pub fn junk_bundle(producer: &str) -> Bundle {
    let layout = Layout::parse("2-2").expect("a valid architecture");
    Bundle {
        manifest: Manifest {
            format_version: 0,
            producer: producer.into(),
            classifier: Mlp::new(layout.clone(), Activation::default()),
            standardizer: Standardizer { mean: vec![0.0; 2], std: vec![1.0; 2] },
            source: SourceKind::Kaiming,
            sampler: Sampler::Euler,
            steps: 1,
            pool: PoolSpec { size: 1, seed: 0 },
            ensemble: EnsembleConfig::untilted(),
            calibration: Vec::new(),
            sections: Vec::new(),
        },
        onnx: vec![1, 2, 3],
        f: Array1::zeros(layout.dim()),
        p_ref: Array2::zeros((1, 2)),
        p_labels: vec![0],
        pool: None,
    }
}
