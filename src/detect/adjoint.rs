//! The faithful meta-detectron path (METHOD.md §4): per window, fine-tune the base meta-model towards the CDC
//! reward r(θ) = −ℓ_cdc(g_θ; P, Q) by adjoint matching, generate the ensemble from the tuned model, and score
//! the window with the same entropy test as every ensemble method.
//!
//! This is the path the paper describes, kept as the reference the inference-only default is judged against
//! (`eval-shift --methods meta-detectron-adjoint`). It trains a copy of the velocity net per window, so it
//! costs seconds where the default costs milliseconds, and it needs candle: the module exists with the `train`
//! feature only, and uses the `flow` and `tune` layers (above this one), which the scoring runtime never links.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::config::{capped_lambda, EnsembleConfig, EnsembleSize, Selection, Statistic};
use super::ensemble::{EnsembleDetector, WindowStatistics};
use super::error::{check_rows, DetectError};
use super::method::WindowTest;
use crate::classifier::Mlp;
use crate::flow::{MetaModel, Sampler};
use crate::rng::stream;
use crate::tune::{AdjointConfig, AdjointMatching, CdcReward};

/// Settings of [`AdjointDetector`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdjointDetectorConfig {
    /// Adjoint matching per window: tilt λ, iterations, trajectories per iteration, Euler–Maruyama steps, Adam
    /// lr, clipping. Its `seed` is replaced per window by one drawn from the window's seed.
    pub tuning: AdjointConfig,
    /// The DCE weight λ_Q of ℓ_cdc in the reward (`None`: Detectron's 1/(|Q|+1), which makes the tilt copy f;
    /// docs/TUNE.md measured λ_Q = 1 as the weight that separates shifted from in-distribution windows).
    pub q_weight: Option<f32>,
    /// Cap λ_Q at this many rows' worth of weight, λ_Q ≤ R/|Q| (`None`: no cap), as the default's steps do
    /// ([`EnsembleConfig::lambda_rows`]).
    pub lambda_rows: Option<usize>,
    /// Rows of P_ref in the reward, drawn per window (0: all of them).
    pub reward_rows: usize,
    /// Members the tuned model generates per window.
    pub ensemble_size: usize,
    /// Euler steps of that generation.
    pub ode_steps: usize,
    /// Agreement with f on P_ref a generated member needs to vote.
    pub floor: f64,
    /// The deciding statistic.
    pub statistic: Statistic,
}

impl Default for AdjointDetectorConfig {
    /// 20 iterations of 32 trajectories × 20 steps at Adam 1e-3, λ = 1000 (the CDC runs of docs/TUNE.md, with
    /// a quarter of the iterations at ten times the lr so that one window takes about two seconds), and the
    /// reward the default's gradient steps descend: ℓ_cdc on 64 rows of P_ref and the window, λ_Q = 1 capped at
    /// 10/|Q| (with all of P, the P term dominates and the tilt makes members copy f everywhere); 32 members
    /// from 20 Euler steps, with the ensemble methods' floor and statistic.
    fn default() -> Self {
        let ensemble = EnsembleConfig::default();
        Self {
            tuning: AdjointConfig {
                lambda: 1000.0,
                iterations: 20,
                batch_size: 32,
                steps: 20,
                lr: 1e-3,
                ..AdjointConfig::default()
            },
            q_weight: ensemble.lambda,
            lambda_rows: ensemble.lambda_rows,
            reward_rows: ensemble.refine_rows,
            // The size the faithful path was measured with (docs/DETECT.md), not the pool path's per-class one.
            ensemble_size: 32,
            ode_steps: 20,
            floor: ensemble.floor,
            statistic: ensemble.statistic,
        }
    }
}

impl AdjointDetectorConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), DetectError> {
        self.tuning.validate().map_err(tuning)?;
        let bad = |name, value: String, reason| Err(DetectError::Config { name, value, reason });
        if let Some(w) = self.q_weight {
            if !w.is_finite() || w < 0.0 {
                return bad("q_weight", w.to_string(), "must be finite and ≥ 0");
            }
        }
        if self.lambda_rows == Some(0) {
            return bad("lambda_rows", "0".into(), "a cap of at least one row (or none)");
        }
        if self.ensemble_size == 0 {
            return bad("ensemble_size", "0".into(), "at least one member");
        }
        if self.ode_steps == 0 {
            return bad("ode_steps", "0".into(), "at least one ODE step");
        }
        if !(0.0..=1.0).contains(&self.floor) {
            return bad("floor", self.floor.to_string(), "an agreement rate in [0, 1]");
        }
        Ok(())
    }
}

/// The faithful path (module docs). Immutable, `Send + Sync`: each window tunes its own copy of the base.
pub struct AdjointDetector {
    base: MetaModel,
    mlp: Mlp,
    f: Array1<f32>,
    p_ref: Array2<f32>,
    config: AdjointDetectorConfig,
    /// Scores generated members: the ensemble detector's floor and statistics over a pool of f alone (which
    /// never votes as a member here: the members are always passed in).
    scorer: EnsembleDetector,
}

impl AdjointDetector {
    /// The faithful path for the deployed classifier `f` (flat weights `[D]`) with reference sample `p_ref`
    /// (standardised rows of P) and the base meta-model `base` (CFM or MMFM, unconditioned, over `mlp`'s
    /// layout). Errors on shapes, an invalid `config`, or a base that adjoint matching cannot tune.
    pub fn new(
        base: MetaModel,
        mlp: Mlp,
        f: Array1<f32>,
        p_ref: Array2<f32>,
        config: AdjointDetectorConfig,
    ) -> Result<Self, DetectError> {
        config.validate()?;
        if base.layout() != &mlp.layout {
            return Err(DetectError::Tuning(format!(
                "the meta-model is over {} but f is {}",
                base.layout(),
                mlp.layout
            )));
        }
        let scorer_config = EnsembleConfig {
            ensemble_size: EnsembleSize::Fixed(1),
            selection: Selection::Disagreeing,
            steps: 0,
            floor: config.floor,
            statistic: config.statistic,
            ..EnsembleConfig::default()
        };
        let pool = f.clone().insert_axis(Axis(0));
        let scorer = EnsembleDetector::new(mlp.clone(), f.clone(), p_ref.clone(), pool, scorer_config)?;
        // Fail here, not at the first window, on a base adjoint matching refuses (JKO, context-conditioned).
        let probe = CdcReward::new(mlp.clone(), f.view(), p_ref.view(), p_ref.slice(ndarray::s![..1, ..]), None)
            .map_err(tuning)?;
        AdjointMatching::new(&base, &probe, config.tuning.clone()).map_err(tuning)?;
        Ok(Self { base, mlp, f, p_ref, config, scorer })
    }

    /// The settings.
    pub fn config(&self) -> &AdjointDetectorConfig {
        &self.config
    }

    /// The raw statistics of window `q` (standardised rows): tune, generate, vote. `seed` fixes the reward's
    /// reference rows, the tuning's trajectories and the generation's source samples.
    pub fn window_statistics(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<WindowStatistics, DetectError> {
        check_rows("window", q, self.mlp.layout.n_inputs())?;
        let mut rng = stream(seed, 0);
        let n_ref = self.p_ref.nrows();
        let p = match self.config.reward_rows {
            0 => self.p_ref.clone(),
            k => self.p_ref.select(Axis(0), &rand::seq::index::sample(&mut rng, n_ref, k.min(n_ref)).into_vec()),
        };
        let q_weight = capped_lambda(self.config.q_weight, self.config.lambda_rows, q.nrows());
        let reward = CdcReward::new(self.mlp.clone(), self.f.view(), p.view(), q, Some(q_weight)).map_err(tuning)?;
        let config = AdjointConfig { seed: rng.random(), ..self.config.tuning.clone() };
        let mut am = AdjointMatching::new(&self.base, &reward, config).map_err(tuning)?;
        for _ in 0..self.config.tuning.iterations {
            am.step().map_err(tuning)?;
        }
        let members = am
            .model()
            .map_err(tuning)?
            .generate(self.config.ensemble_size, Sampler::Euler, self.config.ode_steps, rng.random())
            .map_err(tuning)?;
        self.scorer.statistics_of_members(q, members)
    }
}

impl WindowTest for AdjointDetector {
    fn statistic(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<f64, DetectError> {
        Ok(self.window_statistics(q, seed)?.get(self.config.statistic))
    }
}

/// A `tune` or `flow` error as this layer's.
fn tuning(e: impl std::fmt::Display) -> DetectError {
    DetectError::Tuning(e.to_string())
}
