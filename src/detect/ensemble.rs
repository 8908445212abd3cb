//! The ensemble detector: a deployed classifier f, a reference sample of P, and a pool of candidate members
//! (e.g. generated once by the meta-model); scores windows against calibrated null statistics.
//!
//! Per window Q (rows already standardised):
//! 1. ŷ = argmax f on Q and on the reference sample P_ref;
//! 2. members: among the pool's candidates (agreement with f on P_ref ≥ floor, checked at construction) the
//!    first M, or the M that disagree most with ŷ on Q ([`Selection`]), each moved
//!    `steps` gradient steps θ ← θ − lr·∇ℓ_cdc(g_θ; P_sub, Q) with P_sub `refine_rows` reference rows drawn
//!    for the window ([`EnsembleConfig`]); refined members vote only if they still pass the floor;
//! 3. entropy test: H of the mean softmax over {f, g_1 … g_M} on Q and on P_ref, KS test between the two
//!    (statistic −ln p_KS); disagreement: the members' mean disagreement rate with ŷ on Q;
//! 4. p-values against the [`Calibration`] of the window's size, decision p ≤ α.

use ndarray::{concatenate, Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::calibration::{p_value, threshold, Calibration};
use super::config::{EnsembleConfig, Selection, Statistic};
use super::error::{check_rows, DetectError};
use super::ks::ks_two_sample;
use super::method::WindowTest;
use super::stats::{disagreement_mean, mean_softmax_entropy};
use crate::classifier::{Mlp, Targets};
use crate::rng::{stream, Rng};

/// One window's verdict (what the C ABI returns).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The calibrated p-value (1 + #{null ≥ statistic}) / (1 + B) of the deciding statistic.
    pub p_value: f64,
    /// The deciding statistic ([`EnsembleConfig::statistic`]); larger means more shifted.
    pub statistic: f64,
    /// The window is flagged when `statistic > threshold` (the same decision as `p_value ≤ α`).
    pub threshold: f64,
    /// Whether the window is flagged as harmfully shifted at level α.
    pub is_shift: bool,
    /// The members' mean disagreement rate with f's predictions on the window.
    pub disagreement: f64,
    /// The raw (uncalibrated) KS p-value of the window's entropies against the reference sample's.
    pub entropy_p: f64,
    /// The members that voted (f not counted).
    pub ensemble_size: usize,
}

/// The raw statistics of one window, before calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowStatistics {
    /// −ln p_KS of the entropy test.
    pub entropy: f64,
    /// p_KS of the entropy test.
    pub entropy_p: f64,
    /// The members' mean disagreement rate with f on the window (0 with no voter).
    pub disagreement: f64,
    /// The members that voted.
    pub ensemble_size: usize,
}

impl WindowStatistics {
    /// The statistic `which`.
    pub fn get(&self, which: Statistic) -> f64 {
        match which {
            Statistic::Entropy => self.entropy,
            Statistic::Disagreement => self.disagreement,
        }
    }
}

/// The ensemble detector (module docs). Immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct EnsembleDetector {
    mlp: Mlp,
    f: Array2<f32>,
    p_ref: Array2<f32>,
    p_labels: Vec<usize>,
    /// The pool members that pass the floor, in pool order.
    candidates: Array2<f32>,
    config: EnsembleConfig,
    /// f's softmax on P_ref `[1, R, C]`: f never moves, so it is computed once.
    f_ref_probs: Array3<f32>,
    /// Entropies on P_ref when the voters are the same for every window (first-M selection, no steps).
    fixed_reference: Option<Vec<f64>>,
}

impl EnsembleDetector {
    /// A detector for the deployed classifier `f` (flat weights `[D]`), the reference sample `p_ref`
    /// (standardised rows of P) and a pool of candidate members `pool` `[M, D]`. Errors on shapes, non-finite
    /// values, an invalid `config`, or when no pool member passes the accuracy floor.
    pub fn new(
        mlp: Mlp,
        f: Array1<f32>,
        p_ref: Array2<f32>,
        pool: Array2<f32>,
        config: EnsembleConfig,
    ) -> Result<Self, DetectError> {
        config.validate()?;
        let d = mlp.layout.dim();
        if f.len() != d {
            return Err(DetectError::Width { what: "deployed classifier f", expected: d, got: f.len() });
        }
        check_rows("reference sample", p_ref.view(), mlp.layout.n_inputs())?;
        check_rows("member pool", pool.view(), d)?;
        let f = f.insert_axis(Axis(0));
        let f_ref_probs = mlp.probabilities(f.view(), p_ref.view())?;
        let p_labels = argmax(f_ref_probs.view()).row(0).to_vec();
        let agreement = agreement(&mlp, pool.view(), p_ref.view(), &p_labels)?;
        // With first-M selection only M candidates can ever vote: keep just those.
        let keep = match config.selection {
            Selection::First => config.ensemble_size,
            Selection::Disagreeing => usize::MAX,
        };
        let passing: Vec<usize> = (0..pool.nrows()).filter(|&m| agreement[m] >= config.floor).take(keep).collect();
        if passing.is_empty() {
            let best = agreement.iter().copied().fold(0.0, f64::max);
            return Err(DetectError::NoMemberPassesFloor { floor: config.floor, best });
        }
        let candidates = pool.select(Axis(0), &passing);
        let mut det = Self { mlp, f, p_ref, p_labels, candidates, config, f_ref_probs, fixed_reference: None };
        if det.config.steps == 0 && det.config.selection == Selection::First {
            let probs = det.mlp.probabilities(det.candidates.view(), det.p_ref.view())?;
            det.fixed_reference = Some(ensemble_entropies(det.f_ref_probs.view(), probs.view())?);
        }
        Ok(det)
    }

    /// The settings.
    pub fn config(&self) -> &EnsembleConfig {
        &self.config
    }

    /// The candidates voters are chosen from: pool members that passed the floor at construction, in pool
    /// order (only the first M of them with [`Selection::First`]), `[candidates, D]`.
    pub fn members(&self) -> ArrayView2<'_, f32> {
        self.candidates.view()
    }

    /// Members that vote on a window before refinement: M, or fewer when fewer candidates passed the floor.
    pub fn ensemble_size(&self) -> usize {
        self.config.ensemble_size.min(self.candidates.nrows())
    }

    /// Null statistics for each window size in `sizes`: `windows` windows of distinct rows drawn from
    /// `null_rows` (standardised in-distribution rows P*, not used for training f), scored as windows are.
    pub fn calibrate(
        &self,
        null_rows: ArrayView2<'_, f32>,
        sizes: &[usize],
        windows: usize,
        seed: u64,
    ) -> Result<Vec<Calibration>, DetectError> {
        check_rows("null rows", null_rows, self.mlp.layout.n_inputs())?;
        if sizes.is_empty() {
            return Err(DetectError::Empty { what: "window sizes" });
        }
        if windows == 0 {
            return Err(DetectError::Config { name: "windows", value: "0".into(), reason: "at least 1 null window" });
        }
        let mut tables = Vec::with_capacity(sizes.len());
        for &size in sizes {
            if size == 0 || size > null_rows.nrows() {
                return Err(DetectError::WindowSize { size, available: null_rows.nrows() });
            }
            let (mut null_entropy, mut null_disagreement) = (Vec::new(), Vec::new());
            for w in 0..windows as u64 {
                let mut rng = stream(seed, (size as u64) << 32 | w);
                let idx = rand::seq::index::sample(&mut rng, null_rows.nrows(), size).into_vec();
                let stats =
                    self.window_statistics(null_rows.select(Axis(0), &idx).view(), rand::Rng::random(&mut rng))?;
                null_entropy.push(stats.entropy);
                null_disagreement.push(stats.disagreement);
            }
            tables.push(Calibration { window_size: size, null_entropy, null_disagreement });
        }
        Ok(tables)
    }

    /// The verdict on window `q` (standardised rows) against the calibration table of its size.
    pub fn score(&self, q: ArrayView2<'_, f32>, calibration: &[Calibration], seed: u64) -> Result<Score, DetectError> {
        check_rows("window", q, self.mlp.layout.n_inputs())?;
        let table = Calibration::find(calibration, q.nrows())?;
        table.validate()?;
        let stats = self.window_statistics(q, seed)?;
        let null = match self.config.statistic {
            Statistic::Entropy => &table.null_entropy,
            Statistic::Disagreement => &table.null_disagreement,
        };
        let statistic = stats.get(self.config.statistic);
        let p = p_value(null, statistic);
        Ok(Score {
            p_value: p,
            statistic,
            threshold: threshold(null, self.config.alpha),
            is_shift: p <= self.config.alpha,
            disagreement: stats.disagreement,
            entropy_p: stats.entropy_p,
            ensemble_size: stats.ensemble_size,
        })
    }

    /// The raw statistics of window `q` (module docs, steps 1–3); `seed` draws the reference rows of the steps.
    pub fn window_statistics(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<WindowStatistics, DetectError> {
        check_rows("window", q, self.mlp.layout.n_inputs())?;
        let f_q_probs = self.mlp.probabilities(self.f.view(), q)?;
        let q_labels = argmax(f_q_probs.view()).row(0).to_vec();
        // One forward pass of the moved members over P_ref serves both the floor (argmax) and the reference
        // entropies (softmax); f's share of both is precomputed.
        let (voters, reference) = if let Some(fixed) = &self.fixed_reference {
            (self.candidates.clone(), fixed.clone())
        } else {
            let chosen = self.select(q, &q_labels)?;
            let moved = self.refine(chosen, q, &q_labels, &mut stream(seed, 0))?;
            let probs = self.mlp.probabilities(moved.view(), self.p_ref.view())?;
            let agreement = agreement_rates(argmax(probs.view()).view(), &self.p_labels);
            let keep: Vec<usize> = (0..moved.nrows()).filter(|&m| agreement[m] >= self.config.floor).collect();
            let reference = ensemble_entropies(self.f_ref_probs.view(), probs.select(Axis(0), &keep).view())?;
            (moved.select(Axis(0), &keep), reference)
        };
        // Refinement can push every member below the floor; then f votes alone (the batched forward refuses an
        // empty batch of classifiers).
        let q_probs = if voters.nrows() == 0 {
            Array3::zeros((0, q.nrows(), f_q_probs.dim().2))
        } else {
            self.mlp.probabilities(voters.view(), q)?
        };
        let ks = ks_two_sample(&ensemble_entropies(f_q_probs.view(), q_probs.view())?, &reference)?;
        let disagreement =
            if voters.nrows() == 0 { 0.0 } else { disagreement_mean(argmax(q_probs.view()).view(), &q_labels)? };
        Ok(WindowStatistics {
            entropy: -ks.p_value.ln(),
            entropy_p: ks.p_value,
            disagreement,
            ensemble_size: voters.nrows(),
        })
    }

    /// The window's M voters before refinement ([`Selection`]).
    fn select(&self, q: ArrayView2<'_, f32>, q_labels: &[usize]) -> Result<Array2<f32>, DetectError> {
        let m = self.ensemble_size();
        match self.config.selection {
            Selection::First => Ok(self.candidates.slice(ndarray::s![..m, ..]).to_owned()),
            Selection::Disagreeing => {
                let agreement = agreement(&self.mlp, self.candidates.view(), q, q_labels)?;
                // Least agreement first; a stable sort keeps pool order among ties, so the choice is
                // deterministic.
                let mut order: Vec<usize> = (0..agreement.len()).collect();
                order.sort_by(|&a, &b| agreement[a].total_cmp(&agreement[b]));
                order.truncate(m);
                Ok(self.candidates.select(Axis(0), &order))
            }
        }
    }

    /// `thetas` moved `steps` gradient steps on ℓ_cdc(g; P_sub, Q) (module docs); unchanged when steps = 0.
    fn refine(
        &self,
        mut thetas: Array2<f32>,
        q: ArrayView2<'_, f32>,
        q_labels: &[usize],
        rng: &mut Rng,
    ) -> Result<Array2<f32>, DetectError> {
        if self.config.steps == 0 {
            return Ok(thetas);
        }
        let n_ref = self.p_ref.nrows();
        let k = if self.config.refine_rows == 0 { n_ref } else { self.config.refine_rows.min(n_ref) };
        let idx = rand::seq::index::sample(rng, n_ref, k).into_vec();
        let p_sub = self.p_ref.select(Axis(0), &idx);
        let x = concatenate(Axis(0), &[p_sub.view(), q.view()]).expect("equal widths");
        let p_labels: Vec<usize> = idx.iter().map(|&i| self.p_labels[i]).collect();
        let targets = Targets::cdc(&p_labels, q_labels, Some(self.config.lambda_for(q_labels.len())));
        for _ in 0..self.config.steps {
            let (_, grad) = self.mlp.loss_and_grad(thetas.view(), x.view(), &targets)?;
            thetas.scaled_add(-self.config.lr, &grad);
        }
        Ok(thetas)
    }
}

/// Per-row entropy of the mean softmax over {f} ∪ members, from f's softmax `[1, B, C]` and the members'
/// `[M, B, C]` (M may be 0).
fn ensemble_entropies<'a>(
    f_probs: ArrayView3<'a, f32>,
    member_probs: ArrayView3<'a, f32>,
) -> Result<Vec<f64>, DetectError> {
    let all = concatenate(Axis(0), &[f_probs, member_probs]).expect("equal row and class counts");
    mean_softmax_entropy(all.view())
}

/// The arg-max class of each member on each row, `[M, B]`, from softmax outputs `[M, B, C]` (the same as
/// `Mlp::predict`: softmax keeps the order of the logits; the first of tied classes wins).
fn argmax(probs: ArrayView3<'_, f32>) -> Array2<usize> {
    probs.map_axis(Axis(2), |p| {
        p.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (c, &v)| if v > best.1 { (c, v) } else { best }).0
    })
}

/// Each member's agreement rate with `labels`, from predictions `[M, B]`.
fn agreement_rates(preds: ArrayView2<'_, usize>, labels: &[usize]) -> Vec<f64> {
    preds
        .outer_iter()
        .map(|p| p.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / labels.len() as f64)
        .collect()
}

impl WindowTest for EnsembleDetector {
    fn statistic(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<f64, DetectError> {
        Ok(self.window_statistics(q, seed)?.get(self.config.statistic))
    }
}

/// Each member's agreement rate with `labels` on `x`.
pub(crate) fn agreement(
    mlp: &Mlp,
    thetas: ArrayView2<'_, f32>,
    x: ArrayView2<'_, f32>,
    labels: &[usize],
) -> Result<Vec<f64>, DetectError> {
    Ok(agreement_rates(mlp.predict(thetas, x)?.view(), labels))
}
