//! The meta-model's training configuration.

use serde::{Deserialize, Serialize};

use super::{ContextConfig, Coupling, Error, FunctionalConfig, NetConfig, Result};
use crate::space::SourceKind;

/// The training objective (METHOD.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Conditional flow matching between the source and the final checkpoints.
    #[default]
    Cfm,
    /// Multi-marginal flow matching through `intermediates` checkpoint marginals (natural cubic splines).
    Mmfm,
    /// JKO steps of a learned potential between consecutive chosen marginals.
    Jko,
}

/// What the network of a CFM or MMFM model outputs, and how a JKO model steps.
///
/// * `velocity`: v(x_t, t) directly, regressed on the path's velocity u_t (x_1 − x_0 for CFM, the spline's
///   derivative for MMFM).
/// * `endpoint`: the expected endpoint x̂_1(x_t, t), regressed on y = x_t + (1 − t) u_t, the point the path's
///   tangent at t reaches at t = 1 (x_1 itself on CFM's straight paths; on MMFM's splines the tangent's
///   extrapolation, which tends to the final checkpoint as t → 1); the velocity is then
///   v = (x̂_1 − x_t)/(1 − t). Trained classifiers sit in a small region compared with the Kaiming source, so
///   the ideal velocity is nearly the contraction (μ_1 − x)/(1 − t); an MLP reproduces a near-constant
///   endpoint far more easily than that x-proportional field (docs/FLOW.md measures the difference, for CFM
///   and for MMFM).
///
/// JKO: `endpoint` predicts each step's arrival point as the Gaussian map between the two marginals plus the
/// potential's correction, fitted where the step departs (module `precond`); `velocity` is the raw JKOnet*
/// potential, fitted by its first-order condition where the step arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prediction {
    /// The network outputs the velocity (JKO: the raw potential).
    Velocity,
    /// The network outputs the endpoint x̂_1 (JKO: each step starts from the Gaussian baseline).
    #[default]
    Endpoint,
}

/// The smallest 1 − t an endpoint model divides by (Heun and RK4 evaluate the field at t = 1).
pub const ENDPOINT_MIN_GAP: f64 = 1e-2;

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// Cosine decay from `lr` to 0 over the steps.
    #[default]
    Cosine,
}

/// JKO's default noise on departure points, in the scaled coordinates z = θ/s. Without it, the learned
/// correction steers generated states that drift off the training runs anywhere, and on digits the steps
/// diverged; too much of it shrinks the generated spread (UCI heart: 83% of the trained spread at 0.3, 64% at
/// 1.0). docs/FLOW.md, "JKO with the Gaussian baseline", has the sweep.
const JKO_SIGMA: f32 = 0.3;

/// Settings of [`super::train_meta`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaTrainConfig {
    /// What is learned.
    pub objective: Objective,
    /// What a CFM or MMFM network outputs, and whether JKO steps start from the Gaussian baseline. MMFM models
    /// saved before MMFM could predict endpoints (manifest version < 4) and JKO models saved before the baseline
    /// (version < 5) read as [`Prediction::Velocity`].
    pub prediction: Prediction,
    /// Pairing of source samples (and of consecutive marginals for MMFM); JKO pairs within runs always.
    pub coupling: Coupling,
    /// Source distribution p_0 of fresh samples.
    pub source: SourceKind,
    /// MMFM/JKO: number of intermediate checkpoint marginals, ≤ K − 1, chosen evenly among 1 … K − 1.
    pub intermediates: usize,
    /// Align every run's trajectory to run 0 by weight matching first.
    pub align: bool,
    /// The network.
    pub net: NetConfig,
    /// Minibatch size B.
    pub batch_size: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Decay of the exponential moving average of the weights used for sampling (None: sample with the
    /// trained weights).
    pub ema_decay: Option<f64>,
    /// Noise (in the scaled coordinates z = θ/s): σ_min of CFM, σ of MMFM, and for JKO with its baseline the
    /// noise on each step's departure point (unused by the raw potential).
    pub sigma: f32,
    /// Seed of every random draw (init, alignment, minibatches).
    pub seed: u64,
    /// Context conditioning (module `context`; the conditioning width is `net.cond_dim`). None: the
    /// unconditioned meta-model (and the field is absent from files, which older builds therefore still read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextConfig>,
    /// The functional term of weight-space CFM and MMFM (module `functional`; trained with
    /// [`super::train_meta_functional`], which supplies its data rows). None: the weight-space loss alone, and
    /// the field is absent from files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functional: Option<FunctionalConfig>,
}

impl Default for MetaTrainConfig {
    /// The recommended CFM configuration, [`MetaTrainConfig::for_objective`]`(Objective::Cfm)`.
    fn default() -> Self {
        Self::for_objective(Objective::Cfm)
    }
}

impl MetaTrainConfig {
    /// The measured defaults for `objective` (docs/FLOW.md). CFM predicts preconditioned endpoints with the
    /// independent coupling: the preconditioner is the exact posterior mean for independent Gaussian pairs,
    /// and minibatch OT pairs break that assumption (OT correlates x_0 with x_1); on UCI heart the
    /// independent coupling matched or beat OT on every figure of docs/FLOW.md. MMFM predicts the preconditioned
    /// endpoint of its spline's tangent (docs/FLOW.md: it removed the velocity network's blur) and JKO learns a
    /// potential; both chain the marginals by minibatch OT (for MMFM the independent coupling measured the
    /// same, in less time). JKO's steps start from the Gaussian baseline, fitted at noisy departure points
    /// (σ = 0.3).
    pub fn for_objective(objective: Objective) -> Self {
        Self {
            objective,
            prediction: Prediction::Endpoint,
            coupling: if objective == Objective::Cfm { Coupling::Independent } else { Coupling::Ot },
            source: SourceKind::Kaiming,
            intermediates: 1,
            align: true,
            net: NetConfig::default(),
            batch_size: 256,
            steps: 2_000,
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: LrSchedule::Cosine,
            ema_decay: Some(0.999),
            sigma: if objective == Objective::Jko { JKO_SIGMA } else { 1e-2 },
            seed: 0,
            context: None,
            functional: None,
        }
    }

    /// Checks the settings against trajectories with `k` checkpoint intervals (K).
    pub fn validate(&self, k: usize) -> Result<()> {
        self.net.validate()?;
        match &self.context {
            None if self.net.cond_dim != 0 => {
                return Err(Error::Config {
                    field: "cond_dim",
                    reason: "a conditioning width without context settings: set cond_dim to 0 or give `context`".into(),
                })
            }
            Some(_) if self.net.cond_dim == 0 => {
                return Err(Error::Config {
                    field: "cond_dim",
                    reason: "context conditioning needs a conditioning width cond_dim ≥ 1".into(),
                })
            }
            Some(_) if self.objective != Objective::Cfm => {
                return Err(Error::Config {
                    field: "context",
                    reason: format!(
                        "context conditioning trains with CFM, not {:?} (MMFM and JKO chain checkpoints of single \
                         runs that a per-task context would have to follow)",
                        self.objective
                    ),
                })
            }
            Some(c) => c.validate()?,
            None => {}
        }
        if let Some(f) = &self.functional {
            f.validate()?;
            let flow = matches!(self.objective, Objective::Cfm | Objective::Mmfm);
            if !flow || self.prediction != Prediction::Endpoint || self.context.is_some() {
                return Err(Error::Config {
                    field: "functional",
                    reason: "the functional term trains an unconditioned CFM or MMFM model that predicts endpoints \
                             (each row's endpoint is a trained run to compare predictions with)"
                        .into(),
                });
            }
        }
        if self.steps == 0 {
            return Err(Error::Config { field: "steps", reason: "must be ≥ 1".into() });
        }
        if self.batch_size == 0 {
            return Err(Error::Config { field: "batch_size", reason: "must be ≥ 1".into() });
        }
        if k == 0 {
            return Err(Error::Config {
                field: "trajectories",
                reason: "need K ≥ 1 (an init and a final checkpoint)".into(),
            });
        }
        if self.objective != Objective::Cfm && self.intermediates + 1 > k {
            return Err(Error::Config {
                field: "intermediates",
                reason: format!(
                    "{} intermediate marginals need K ≥ {}, the trajectories have K = {k}",
                    self.intermediates,
                    self.intermediates + 1
                ),
            });
        }
        if self.lr.is_nan() || self.lr <= 0.0 || !self.lr.is_finite() {
            return Err(Error::Config { field: "lr", reason: format!("must be positive, got {}", self.lr) });
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return Err(Error::Config { field: "ema_decay", reason: format!("must lie in [0, 1), got {d}") });
            }
        }
        if self.sigma.is_nan() || self.sigma < 0.0 {
            return Err(Error::Config { field: "sigma", reason: format!("must be ≥ 0, got {}", self.sigma) });
        }
        Ok(())
    }

    /// True when the network outputs endpoints (CFM or MMFM with [`Prediction::Endpoint`]).
    pub fn predicts_endpoint(&self) -> bool {
        matches!(self.objective, Objective::Cfm | Objective::Mmfm) && self.prediction == Prediction::Endpoint
    }

    /// True for a JKO model whose steps start from the Gaussian baseline between marginals
    /// ([`Prediction::Endpoint`], module `precond`); false for a raw JKOnet* potential and for CFM and MMFM.
    pub fn jko_baseline(&self) -> bool {
        self.objective == Objective::Jko && self.prediction == Prediction::Endpoint
    }

    /// For a [`Self::jko_baseline`] model, the number of marginals it steps through over trajectories of `k`
    /// intervals (the rows of its baseline statistics); None otherwise.
    pub fn jko_baseline_knots(&self, k: usize) -> Option<usize> {
        self.jko_baseline().then(|| self.knots(k).len())
    }

    /// The checkpoint indices of the marginals used: 0, the chosen intermediates, K (CFM: 0 and K).
    pub fn knots(&self, k: usize) -> Vec<usize> {
        let inter = if self.objective == Objective::Cfm { 0 } else { self.intermediates.min(k.saturating_sub(1)) };
        knots(k, inter)
    }
}

/// 0, `inter` checkpoints evenly among 1 … K − 1 (round(i·K/(inter+1)), distinct since the spacing is ≥ 1),
/// and K.
pub fn knots(k: usize, inter: usize) -> Vec<usize> {
    let mut v = vec![0];
    v.extend((1..=inter).map(|i| (i as f64 * k as f64 / (inter + 1) as f64).round() as usize));
    v.push(k);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knots_are_even_distinct_and_inside() {
        assert_eq!(knots(6, 0), [0, 6]);
        assert_eq!(knots(6, 1), [0, 3, 6]);
        assert_eq!(knots(6, 2), [0, 2, 4, 6]);
        assert_eq!(knots(6, 5), [0, 1, 2, 3, 4, 5, 6]);
        for k in 1..12 {
            for i in 0..k {
                let v = knots(k, i);
                assert!(v.windows(2).all(|w| w[1] > w[0]), "{k} {i} {v:?}");
            }
        }
    }

    #[test]
    fn serde_names_are_kebab_case_and_bad_settings_are_refused() {
        let s = serde_json::to_string(&(Objective::Mmfm, Coupling::Trajectory, LrSchedule::Cosine)).unwrap();
        assert_eq!(s, r#"["mmfm","trajectory","cosine"]"#);
        let c = MetaTrainConfig { objective: Objective::Jko, intermediates: 3, ..Default::default() };
        assert!(c.validate(3).unwrap_err().to_string().contains("intermediates"));
        assert!(c.validate(4).is_ok());
        let back: MetaTrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
