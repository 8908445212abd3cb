//! The ensemble detector: a deployed classifier f, a reference sample of P, and a pool of candidate members
//! (e.g. generated once by the meta-model); scores windows against calibrated null statistics.
//!
//! Per window Q (rows already standardised):
//! 1. ŷ = argmax f on Q and on the reference sample P_ref;
//! 2. members: among the pool's candidates (agreement with f on P_ref ≥ floor, checked at construction) the
//!    first M, or the M that disagree most with ŷ on Q ([`Selection`]), each moved
//!    `steps` gradient steps on ℓ_cdc(g_θ; P_sub, Q) ([`step`]: θ ← θ − lr·∇ℓ_cdc, or a move of a fixed fraction
//!    of the weights' norm) with P_sub `refine_rows` reference rows drawn for the window ([`EnsembleConfig`]);
//!    refined members vote only if they still pass the floor;
//! 3. entropy test: H of the mean softmax over {f, g_1 … g_M} on Q and on P_ref, KS test between the two
//!    (statistic −ln p_KS); disagreement: the members' mean disagreement rate with ŷ on Q;
//! 4. p-values against the [`Calibration`] of the window's size, decision p ≤ α.

use ndarray::{concatenate, Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use super::calibration::{p_value, threshold, Calibration};
use super::config::{
    EnsembleConfig, Selection, Statistic, StepRule, BACKOFF_WINDOWS, BACKOFF_WINDOW_ROWS, CALIBRATED_CAP, STEP_BACKOFFS,
};
use super::error::{check_rows, DetectError};
use super::ks::ks_two_sample;
use super::method::WindowTest;
use super::stats::{disagreement_mean, mean_softmax_entropy_of};
use crate::classifier::{Mlp, Targets};
use crate::rng::{stream, Rng};
use crate::space::Layout;

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
    /// The rows of P_ref the voters are checked and compared on ([`EnsembleConfig::vote_rows`]).
    vote: VoteSample,
    /// Entropies on the vote sample when the voters are the same for every window (first-M selection, no steps).
    fixed_reference: Option<Vec<f64>>,
    /// The refinement's step sizes: `config.lr`, or less after the back-off of `config.step_keep`.
    step: StepSizes,
}

/// The part of P_ref a window's voters are checked on (the floor) and compared with (the reference
/// entropies): all of P_ref, or a fixed subsample of [`EnsembleConfig::vote_rows`] rows drawn when the detector
/// is built. Per window this is the largest pass (every voter over every row), so for large training sets
/// (MNIST's 7,000 rows) the cap sets the latency.
#[derive(Debug, Clone)]
struct VoteSample {
    /// The subsample's rows, or `None` for all of P_ref (then no copy is kept).
    x: Option<Array2<f32>>,
    /// f's labels on those rows.
    labels: Vec<usize>,
    /// f's softmax on those rows `[1, R, C]`: f never moves, so it is computed once.
    f_probs: Array3<f32>,
}

/// Seed of the vote subsample's draw (fixed: every detector over the same P_ref and cap votes on the same rows).
const VOTE_SEED: u64 = 0x766f_7465;

/// The step sizes a refinement uses.
#[derive(Debug, Clone, PartialEq)]
struct StepSizes {
    /// The rule's lr (for [`StepRule::Calibrated`], the η of its cap).
    lr: f32,
    /// Per-layer step sizes of [`StepRule::Calibrated`] (`calibrated_layer_lr`), `None` with any other rule.
    layer: Option<Vec<f32>>,
}

impl StepSizes {
    fn scaled(&self, by: f32) -> Self {
        Self { lr: self.lr * by, layer: self.layer.as_ref().map(|l| l.iter().map(|v| v * by).collect()) }
    }
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
            Selection::First => config.ensemble_size.members(mlp.n_classes()),
            Selection::Disagreeing => usize::MAX,
        }
        .min(config.candidates.unwrap_or(usize::MAX));
        let passing: Vec<usize> = (0..pool.nrows()).filter(|&m| agreement[m] >= config.floor).take(keep).collect();
        if passing.is_empty() {
            let best = agreement.iter().copied().fold(0.0, f64::max);
            return Err(DetectError::NoMemberPassesFloor { floor: config.floor, best });
        }
        let candidates = pool.select(Axis(0), &passing);
        let vote = match config.vote_rows {
            Some(cap) if cap < p_ref.nrows() => {
                let mut idx = rand::seq::index::sample(&mut stream(VOTE_SEED, 0), p_ref.nrows(), cap).into_vec();
                idx.sort_unstable();
                let f_probs = f_ref_probs.select(Axis(1), &idx);
                let labels = idx.iter().map(|&i| p_labels[i]).collect();
                VoteSample { x: Some(p_ref.select(Axis(0), &idx)), labels, f_probs }
            }
            _ => VoteSample { x: None, labels: p_labels.clone(), f_probs: f_ref_probs },
        };
        let step = StepSizes { lr: config.lr, layer: None };
        let mut det = Self { mlp, f, p_ref, p_labels, candidates, config, vote, fixed_reference: None, step };
        if det.config.steps > 0 && det.config.step_rule == StepRule::Calibrated {
            det.step.layer = Some(det.calibrated_layer_lr()?);
            if let Some(keep) = det.config.step_keep {
                det.step = det.backed_off(keep)?;
            }
        }
        if det.config.steps == 0 && det.config.selection == Selection::First {
            let probs = det.mlp.probabilities(det.candidates.view(), det.vote_rows())?;
            det.fixed_reference = Some(ensemble_entropies(det.vote.f_probs.view(), probs.view())?);
        }
        Ok(det)
    }

    /// The settings.
    pub fn config(&self) -> &EnsembleConfig {
        &self.config
    }

    /// The candidates voters are chosen from: pool members that passed the floor at construction, in pool
    /// order (at most [`EnsembleConfig::candidates`] of them, and only the first M with [`Selection::First`]),
    /// `[candidates, D]`.
    pub fn members(&self) -> ArrayView2<'_, f32> {
        self.candidates.view()
    }

    /// The per-layer step sizes lr/G_l of [`StepRule::Calibrated`] set at construction, after any back-off
    /// (`None` with any other rule, or without steps).
    pub fn step_sizes(&self) -> Option<&[f32]> {
        self.step.layer.as_deref()
    }

    /// The step size the refinement uses: `config.lr`, divided by √2 for each back-off that
    /// [`EnsembleConfig::step_keep`] needed.
    pub fn step_lr(&self) -> f32 {
        self.step.lr
    }

    /// The rows of P_ref the voters are checked on and compared with: all of them, or the fixed subsample of
    /// [`EnsembleConfig::vote_rows`] rows (in P_ref's order).
    pub fn vote_rows(&self) -> ArrayView2<'_, f32> {
        self.vote.x.as_ref().unwrap_or(&self.p_ref).view()
    }

    /// Members that vote on a window before refinement: M ([`EnsembleConfig::ensemble_size`] for f's number of
    /// classes), or fewer when fewer candidates passed the floor.
    pub fn ensemble_size(&self) -> usize {
        self.config.ensemble_size.members(self.mlp.n_classes()).min(self.candidates.nrows())
    }

    /// Null statistics for each window size in `sizes`: `windows` windows of distinct rows drawn from
    /// `null_rows` (standardised in-distribution rows P*, not used for training f), scored as windows are.
    /// Window w of size N is drawn and scored from its own seed, so the tables do not depend on the number of
    /// threads the windows are spread over (all available cores: a deployed detector's realised
    /// false-positive rate varies around α by about √(α(1 − α)/windows), so a bundle wants many).
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
        let threads = std::thread::available_parallelism().map_or(1, usize::from).min(windows);
        let mut tables = Vec::with_capacity(sizes.len());
        for &size in sizes {
            if size == 0 || size > null_rows.nrows() {
                return Err(DetectError::WindowSize { size, available: null_rows.nrows() });
            }
            let null_window = |w: usize| {
                let mut rng = stream(seed, (size as u64) << 32 | w as u64);
                let idx = rand::seq::index::sample(&mut rng, null_rows.nrows(), size).into_vec();
                self.window_statistics(null_rows.select(Axis(0), &idx).view(), rand::Rng::random(&mut rng))
            };
            let per_thread = windows.div_ceil(threads);
            let stats: Vec<WindowStatistics> = std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        let range = t * per_thread..((t + 1) * per_thread).min(windows);
                        s.spawn(move || range.map(null_window).collect::<Result<Vec<_>, _>>())
                    })
                    .collect();
                // A worker's panic is re-raised here, where a single-threaded loop would have raised it.
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect::<Result<Vec<_>, _>>()
            })?
            .into_iter()
            .flatten()
            .collect();
            tables.push(Calibration {
                window_size: size,
                null_entropy: stats.iter().map(|s| s.entropy).collect(),
                null_disagreement: stats.iter().map(|s| s.disagreement).collect(),
            });
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
        if let Some(fixed) = &self.fixed_reference {
            let q_probs = self.mlp.probabilities(self.candidates.view(), q)?;
            return self.statistics(f_q_probs.view(), &q_labels, q_probs.view(), fixed);
        }
        let chosen = self.select(q, &q_labels)?;
        let moved = self.refine(chosen, q, &q_labels, &mut stream(seed, 0), &self.step)?;
        self.vote(q, f_q_probs.view(), &q_labels, moved)
    }

    /// The raw statistics of window `q` (step 3 of the module docs) with `members` `[M, D]` made for this window
    /// elsewhere (e.g. generated by a meta-model tuned on the window) in place of the pool's: members below the
    /// floor on P_ref do not vote; with none left f votes alone.
    pub fn statistics_of_members(
        &self,
        q: ArrayView2<'_, f32>,
        members: Array2<f32>,
    ) -> Result<WindowStatistics, DetectError> {
        check_rows("window", q, self.mlp.layout.n_inputs())?;
        check_rows("members", members.view(), self.mlp.layout.dim())?;
        let f_q_probs = self.mlp.probabilities(self.f.view(), q)?;
        let q_labels = argmax(f_q_probs.view()).row(0).to_vec();
        self.vote(q, f_q_probs.view(), &q_labels, members)
    }

    /// The floor on P_ref, then the statistics of the members that pass it. One forward pass of the members
    /// over P_ref's vote rows serves both the floor (argmax) and the reference entropies (softmax); f's share of
    /// both is precomputed. The window's pass covers every member, so it never runs on an empty batch.
    fn vote(
        &self,
        q: ArrayView2<'_, f32>,
        f_q_probs: ArrayView3<'_, f32>,
        q_labels: &[usize],
        members: Array2<f32>,
    ) -> Result<WindowStatistics, DetectError> {
        let on_ref = self.mlp.probabilities(members.view(), self.vote_rows())?;
        let on_q = self.mlp.probabilities(members.view(), q)?;
        let agreement = agreement_rates(argmax(on_ref.view()).view(), &self.vote.labels);
        let keep: Vec<usize> = (0..members.nrows()).filter(|&m| agreement[m] >= self.config.floor).collect();
        let reference = ensemble_entropies(self.vote.f_probs.view(), on_ref.select(Axis(0), &keep).view())?;
        self.statistics(f_q_probs, q_labels, on_q.select(Axis(0), &keep).view(), &reference)
    }

    /// The entropy test and the disagreement on the window of the voters whose softmax there is `q_probs`
    /// `[voters, N, C]`, against the reference entropies. With no voter (refinement can push every member below
    /// the floor) f votes alone and the disagreement is 0.
    fn statistics(
        &self,
        f_q_probs: ArrayView3<'_, f32>,
        q_labels: &[usize],
        q_probs: ArrayView3<'_, f32>,
        reference: &[f64],
    ) -> Result<WindowStatistics, DetectError> {
        let voters = q_probs.dim().0;
        let ks = ks_two_sample(&ensemble_entropies(f_q_probs.view(), q_probs.view())?, reference)?;
        let disagreement = if voters == 0 { 0.0 } else { disagreement_mean(argmax(q_probs).view(), q_labels)? };
        Ok(WindowStatistics { entropy: -ks.p_value.ln(), entropy_p: ks.p_value, disagreement, ensemble_size: voters })
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

    /// The per-layer step sizes lr/G_l of [`StepRule::Calibrated`]: G_l is the median over the candidates of
    /// ‖g_l‖/‖θ_l‖, g = ∇ℓ_cdc(g_θ; P_sub, Q_ref) with `refine_rows` reference rows P_sub and a window Q_ref of
    /// 10 other reference rows (fixed draws: the same for every detector over the same P_ref), λ as for a
    /// window of that size. A layer whose gradient vanishes on every candidate gets step size 0.
    fn calibrated_layer_lr(&self) -> Result<Vec<f32>, DetectError> {
        let n_ref = self.p_ref.nrows();
        let n_q = 10.min(n_ref / 2).max(1);
        let k = if self.config.refine_rows == 0 { n_ref } else { self.config.refine_rows }.min(n_ref - n_q).max(1);
        let idx = rand::seq::index::sample(&mut stream(0, 1), n_ref, (k + n_q).min(n_ref)).into_vec();
        let (p_idx, q_idx) = idx.split_at(k.min(idx.len() - 1));
        let x = self.p_ref.select(Axis(0), idx.as_slice());
        let labels = |ix: &[usize]| ix.iter().map(|&i| self.p_labels[i]).collect::<Vec<_>>();
        let targets = Targets::cdc(&labels(p_idx), &labels(q_idx), Some(self.config.lambda_for(q_idx.len())));
        let (_, grad) = self.mlp.loss_and_grad(self.candidates.view(), x.view(), &targets)?;
        let layout = &self.mlp.layout;
        Ok((0..layout.n_layers())
            .map(|l| {
                let r = layer_range(layout, l);
                let mut ratios: Vec<f64> = self
                    .candidates
                    .outer_iter()
                    .zip(grad.outer_iter())
                    .map(|(t, g)| {
                        norm(&g.as_slice().expect(FRESH)[r.clone()]) / norm(&t.as_slice().expect(FRESH)[r.clone()])
                    })
                    .filter(|v| v.is_finite())
                    .collect();
                ratios.sort_by(f64::total_cmp);
                let g = if ratios.is_empty() { 0.0 } else { ratios[ratios.len() / 2] };
                if g > 0.0 {
                    (self.config.lr as f64 / g) as f32
                } else {
                    0.0
                }
            })
            .collect())
    }

    /// The step sizes after the back-off of [`EnsembleConfig::step_keep`]: the current ones divided by √2 until
    /// at least `keep` of the members chosen on an in-distribution window still pass the floor after the steps
    /// (mean over [`BACKOFF_WINDOWS`] windows of reference rows), at most [`STEP_BACKOFFS`] times.
    fn backed_off(&self, keep: f64) -> Result<StepSizes, DetectError> {
        let mut sizes = self.step.clone();
        for _ in 0..STEP_BACKOFFS {
            if self.kept_fraction(&sizes)? >= keep {
                break;
            }
            sizes = sizes.scaled(std::f32::consts::FRAC_1_SQRT_2);
        }
        Ok(sizes)
    }

    /// The mean fraction of members that pass the floor after refinement with `sizes` on [`BACKOFF_WINDOWS`]
    /// windows of [`BACKOFF_WINDOW_ROWS`] reference rows, chosen and moved as on a live window (fixed draws, so
    /// every detector over the same P_ref backs off alike). A window whose steps diverge keeps none.
    fn kept_fraction(&self, sizes: &StepSizes) -> Result<f64, DetectError> {
        let n_ref = self.p_ref.nrows();
        let mut kept = 0.0;
        for w in 0..BACKOFF_WINDOWS as u64 {
            let mut rng = stream(BACKOFF_SEED, w);
            let idx = rand::seq::index::sample(&mut rng, n_ref, BACKOFF_WINDOW_ROWS.min(n_ref)).into_vec();
            let q = self.p_ref.select(Axis(0), &idx);
            let q_labels: Vec<usize> = idx.iter().map(|&i| self.p_labels[i]).collect();
            let chosen = self.select(q.view(), &q_labels)?;
            let moved = match self.refine(chosen, q.view(), &q_labels, &mut rng, sizes) {
                Ok(moved) => moved,
                Err(DetectError::Diverged { .. }) => continue,
                Err(e) => return Err(e),
            };
            let probs = self.mlp.probabilities(moved.view(), self.vote_rows())?;
            let agreement = agreement_rates(argmax(probs.view()).view(), &self.vote.labels);
            kept += agreement.iter().filter(|&&a| a >= self.config.floor).count() as f64 / agreement.len() as f64;
        }
        Ok(kept / BACKOFF_WINDOWS as f64)
    }

    /// `thetas` moved `steps` gradient steps of sizes `sizes` on ℓ_cdc(g; P_sub, Q) (module docs); unchanged
    /// when steps = 0.
    fn refine(
        &self,
        mut thetas: Array2<f32>,
        q: ArrayView2<'_, f32>,
        q_labels: &[usize],
        rng: &mut Rng,
        sizes: &StepSizes,
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
        for k in 1..=self.config.steps {
            let (_, grad) = self.mlp.loss_and_grad(thetas.view(), x.view(), &targets)?;
            step(&self.mlp.layout, self.config.step_rule, sizes.lr, sizes.layer.as_deref(), &mut thetas, grad.view());
            // Caught here, with what caused it, rather than as "non-finite thetas" from the next pass.
            if let Some(member) = thetas.outer_iter().position(|t| t.iter().any(|v| !v.is_finite())) {
                let max_abs = q.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
                return Err(DetectError::Diverged { step: k, member, max_abs });
            }
        }
        Ok(thetas)
    }
}

/// One refinement step of every member (rows of `thetas`, flat weights of `layout`) along its gradient (the
/// same row of `grad`), by `rule` with step size `lr` ([`StepRule`]). `layer_lr` holds the per-layer step
/// sizes of [`StepRule::Calibrated`] (one per layer; the detector sets them at construction) and is ignored by
/// the other rules. A member's layer whose gradient is zero does not move; norms are accumulated in f64.
///
/// # Panics
/// When the shapes of `thetas` and `grad` differ, `thetas` is not in standard (row-major) layout with a rule
/// other than [`StepRule::Absolute`], or the rule is [`StepRule::Calibrated`] and `layer_lr` does not hold one
/// size per layer.
pub fn step(
    layout: &Layout,
    rule: StepRule,
    lr: f32,
    layer_lr: Option<&[f32]>,
    thetas: &mut Array2<f32>,
    grad: ArrayView2<'_, f32>,
) {
    assert_eq!(thetas.dim(), grad.dim(), "one gradient row per member");
    if rule == StepRule::Absolute {
        // Exactly the arithmetic of the configs stored before the rule existed (bundles score identically).
        thetas.scaled_add(-lr, &grad);
        return;
    }
    let layer_lr = match rule {
        StepRule::Calibrated => {
            let sizes = layer_lr.expect("StepRule::Calibrated needs the per-layer step sizes");
            assert_eq!(sizes.len(), layout.n_layers(), "one step size per layer");
            sizes
        }
        _ => &[],
    };
    let eta = lr as f64;
    let layers: Vec<_> = (0..layout.n_layers()).map(|l| layer_range(layout, l)).collect();
    // Rows as slices: a view of `grad` when it is in standard layout (a fresh gradient is), no copy per member.
    let grad = grad.as_standard_layout();
    for (mut theta, g) in thetas.outer_iter_mut().zip(grad.outer_iter()) {
        let (theta, g) = (theta.as_slice_mut().expect("standard layout"), g.as_slice().expect("standard layout"));
        if rule == StepRule::Relative {
            let g_norm = norm(g);
            if g_norm > 0.0 {
                let by = (eta * norm(theta) / g_norm) as f32;
                theta.iter_mut().zip(g).for_each(|(t, &gi)| *t -= by * gi);
            }
            continue;
        }
        for (l, r) in layers.iter().enumerate() {
            let (t, g) = (&mut theta[r.clone()], &g[r.clone()]);
            let (t_norm, g_norm) = (norm(t), norm(g));
            if g_norm == 0.0 {
                continue;
            }
            if rule == StepRule::Sign {
                let by = (eta * t_norm / (t.len() as f64).sqrt()) as f32;
                t.iter_mut().zip(g).filter(|(_, &gi)| gi != 0.0).for_each(|(t, &gi)| *t -= by * gi.signum());
                continue;
            }
            // The step's length: η‖θ_l‖ (layer-relative), or lr_l‖g_l‖ capped at CALIBRATED_CAP·η‖θ_l‖.
            let length = match rule {
                StepRule::Calibrated => (layer_lr[l] as f64 * g_norm).min(CALIBRATED_CAP * eta * t_norm),
                _ => eta * t_norm,
            };
            let by = (length / g_norm) as f32;
            t.iter_mut().zip(g).for_each(|(t, &gi)| *t -= by * gi);
        }
    }
}

/// Seed of the back-off's reference windows (stream w for window w).
const BACKOFF_SEED: u64 = 0x6261_636b;

/// Why a row of a freshly built array is one slice.
const FRESH: &str = "an array built here is in standard layout";

/// The elements of layer `l` (its weight, then its bias) in the flat vector.
fn layer_range(layout: &Layout, l: usize) -> std::ops::Range<usize> {
    let (w, b) = layout.layer(l);
    w.range().start..b.range().end
}

/// The Euclidean norm, accumulated in f64.
fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()
}

/// Per-row entropy of the mean softmax over {f} ∪ members, from f's softmax `[1, B, C]` and the members'
/// `[M, B, C]` (M may be 0).
fn ensemble_entropies<'a>(
    f_probs: ArrayView3<'a, f32>,
    member_probs: ArrayView3<'a, f32>,
) -> Result<Vec<f64>, DetectError> {
    mean_softmax_entropy_of(&[f_probs, member_probs])
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

    fn step_lr(&self) -> Option<f32> {
        (self.config.steps > 0).then_some(self.step.lr)
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
