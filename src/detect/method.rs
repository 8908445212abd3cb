//! The seam every shift test shares, so that an evaluation treats meta-detectron and its baselines alike.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

#[cfg(feature = "train")]
use super::adjoint::{AdjointDetector, AdjointDetectorConfig};
use super::config::{EnsembleConfig, Statistic};
use super::detectron::{Detectron, DetectronConfig};
use super::ensemble::EnsembleDetector;
use super::error::DetectError;
use super::mmd::Mmd;
use super::output_tests::{Bbsd, FEntropy};
use crate::classifier::Mlp;

/// A shift test reduced to one statistic per window: larger means more shifted. Calibration and decisions
/// ([`p_value`](super::p_value), [`threshold`](super::threshold)) work on these statistics for every test.
pub trait WindowTest: Send + Sync {
    /// The statistic of window `q` (standardised rows); `seed` fixes whatever the test draws at random.
    fn statistic(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<f64, DetectError>;

    /// The step size of a test that moves members per window, after any back-off
    /// ([`EnsembleConfig::step_keep`]); `None` for a test that takes no steps.
    fn step_lr(&self) -> Option<f32> {
        None
    }
}

/// The shift tests an evaluation can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Method {
    /// The most disagreeing pool members per window, refined by gradient steps on ℓ_cdc
    /// ([`EnsembleDetector`] with the default [`EnsembleConfig`]).
    MetaDetectron,
    /// Selection without steps ([`EnsembleConfig::selected`]): what the per-window choice alone earns.
    Selected,
    /// Steps without selection ([`EnsembleConfig::steps_only`], the previous default).
    MetaDetectronSteps,
    /// The faithful path: the base meta-model tuned by adjoint matching on each window, then sampled
    /// (`AdjointDetector`; needs the `train` feature and [`MethodInputs::meta`]).
    MetaDetectronAdjoint,
    /// The pool's first members as generated ([`EnsembleDetector`], `steps = 0`).
    Untilted,
    /// Detectron's entropy test with natively trained CDCs ([`Detectron`]).
    Detectron,
    /// Detectron's disagreement test.
    DetectronDisagreement,
    /// BBSD: per-output KS tests, Bonferroni ([`Bbsd`]).
    Bbsd,
    /// f's own predictive-entropy KS test ([`FEntropy`]).
    FEntropy,
    /// MMD with an RBF kernel ([`Mmd`]).
    Mmd,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 10] = [
        Method::MetaDetectron,
        Method::Selected,
        Method::MetaDetectronSteps,
        Method::MetaDetectronAdjoint,
        Method::Untilted,
        Method::Detectron,
        Method::DetectronDisagreement,
        Method::Bbsd,
        Method::FEntropy,
        Method::Mmd,
    ];

    /// The kebab-case name (`meta-detectron`, `f-entropy`, …).
    pub fn name(self) -> &'static str {
        match self {
            Method::MetaDetectron => "meta-detectron",
            Method::Selected => "selected",
            Method::MetaDetectronSteps => "meta-detectron-steps",
            Method::MetaDetectronAdjoint => "meta-detectron-adjoint",
            Method::Untilted => "untilted",
            Method::Detectron => "detectron",
            Method::DetectronDisagreement => "detectron-disagreement",
            Method::Bbsd => "bbsd",
            Method::FEntropy => "f-entropy",
            Method::Mmd => "mmd",
        }
    }

    /// Whether the method needs a pool of generated members.
    pub fn needs_pool(self) -> bool {
        matches!(self, Method::MetaDetectron | Method::Selected | Method::MetaDetectronSteps | Method::Untilted)
    }

    /// Whether the method tunes the meta-model itself per window ([`MethodInputs::meta`]).
    pub fn needs_meta_model(self) -> bool {
        self == Method::MetaDetectronAdjoint
    }

    /// The test for one deployed classifier (module-level seam for evaluations).
    pub fn build(self, inputs: &MethodInputs<'_>) -> Result<Box<dyn WindowTest>, DetectError> {
        let (mlp, f, p_ref) = (inputs.mlp.clone(), inputs.f.clone(), inputs.p_ref.clone());
        let pool = || inputs.pool.map(|p| p.to_owned()).ok_or(DetectError::Empty { what: "member pool" });
        // The variants of meta-detectron share its floor and level; only selection and steps differ.
        let variant = |base: EnsembleConfig| EnsembleConfig {
            floor: inputs.refined.floor,
            alpha: inputs.refined.alpha,
            statistic: inputs.refined.statistic,
            ..base
        };
        let ensemble = |config| -> Result<Box<dyn WindowTest>, DetectError> {
            Ok(Box::new(EnsembleDetector::new(mlp.clone(), f.clone(), p_ref.clone(), pool()?, config)?))
        };
        Ok(match self {
            Method::MetaDetectron => ensemble(inputs.refined.clone())?,
            Method::Selected => ensemble(EnsembleConfig { steps: 0, ..inputs.refined.clone() })?,
            Method::MetaDetectronSteps => ensemble(variant(EnsembleConfig::steps_only()))?,
            #[cfg(feature = "train")]
            Method::MetaDetectronAdjoint => {
                let meta = inputs.meta.ok_or(DetectError::Empty { what: "base meta-model" })?;
                Box::new(AdjointDetector::new(meta.clone(), mlp, f, p_ref, inputs.adjoint.clone())?)
            }
            #[cfg(not(feature = "train"))]
            Method::MetaDetectronAdjoint => {
                return Err(DetectError::Tuning("the faithful path needs the `train` feature (candle)".into()))
            }
            Method::Untilted => ensemble(inputs.untilted.clone())?,
            Method::Detectron => Box::new(Detectron::new(mlp, f, p_ref, inputs.detectron.clone(), Statistic::Entropy)?),
            Method::DetectronDisagreement => {
                Box::new(Detectron::new(mlp, f, p_ref, inputs.detectron.clone(), Statistic::Disagreement)?)
            }
            Method::Bbsd => Box::new(Bbsd::new(mlp, f, p_ref.view())?),
            Method::FEntropy => Box::new(FEntropy::new(mlp, f, p_ref.view())?),
            Method::Mmd => Box::new(Mmd::new(p_ref, inputs.mmd_permutations)?),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            format!("unknown method {s:?} (expected one of {})", Method::ALL.map(Method::name).join(", "))
        })
    }
}

/// What [`Method::build`] needs: the deployed classifier, the reference sample of P and the settings.
#[derive(Debug, Clone)]
pub struct MethodInputs<'a> {
    /// The classifier family.
    pub mlp: &'a Mlp,
    /// The deployed classifier f (flat weights).
    pub f: Array1<f32>,
    /// The reference sample of P (standardised rows).
    pub p_ref: Array2<f32>,
    /// Generated members `[M, D]` for the ensemble methods.
    pub pool: Option<ArrayView2<'a, f32>>,
    /// Settings of meta-detectron.
    pub refined: EnsembleConfig,
    /// Settings of the untilted ensemble.
    pub untilted: EnsembleConfig,
    /// Settings of Detectron.
    pub detectron: DetectronConfig,
    /// Permutations of the MMD test's own p-value (unused by its calibrated statistic).
    pub mmd_permutations: usize,
    /// The base meta-model the faithful path tunes per window.
    #[cfg(feature = "train")]
    pub meta: Option<&'a crate::flow::MetaModel>,
    /// Settings of the faithful path.
    #[cfg(feature = "train")]
    pub adjoint: AdjointDetectorConfig,
}
