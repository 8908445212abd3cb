//! The settings of an [`EnsembleDetector`](super::EnsembleDetector) (stored in a bundle).

use serde::{Deserialize, Serialize};

use super::error::DetectError;

/// The DCE weight λ of ℓ_cdc for a window of `n_q` rows: `lambda` (or 1/(n_q + 1) when unset), capped at
/// `lambda_rows / n_q` ([`EnsembleConfig::lambda_for`]; the faithful path weighs its reward the same way).
pub(crate) fn capped_lambda(lambda: Option<f32>, lambda_rows: Option<usize>, n_q: usize) -> f32 {
    let lambda = lambda.unwrap_or_else(|| crate::classifier::Targets::default_lambda(n_q));
    match lambda_rows {
        Some(rows) if n_q > 0 => lambda.min(rows as f32 / n_q as f32),
        _ => lambda,
    }
}

/// Which statistic decides a window (both are always computed and reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Statistic {
    /// −ln p of the KS test between the ensemble's entropies on the window and on the reference sample.
    #[default]
    Entropy,
    /// The members' mean disagreement rate with f's pseudo-labels on the window.
    Disagreement,
}

/// How many members vote on a window (fewer when fewer candidates pass the floor).
///
/// Stored as a number ([`EnsembleSize::Fixed`], the only form before per-class sizes existed) or as
/// `{"per_class": k}`; written and parsed as `M` or `k/class` (the command line's form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnsembleSize {
    /// Exactly this many members.
    Fixed(usize),
    /// k members per class of f's output, M = k·C. The best ensemble size grows with the number of classes
    /// (measured, docs/DETECT.md "Fewer members"): with 2 classes (UCI heart) 4 members find the shift at
    /// least as well as 32, while with 10 (digits, MNIST) 4 lose a tenth of rotation's power and 16–32 keep it.
    PerClass {
        /// Members per class, k.
        per_class: usize,
    },
}

impl EnsembleSize {
    /// The default size of every version before per-class sizes: what a stored config without one reads as.
    fn before_per_class() -> Self {
        Self::Fixed(32)
    }

    /// The number of members M for a classifier with `n_classes` outputs.
    pub fn members(self, n_classes: usize) -> usize {
        match self {
            Self::Fixed(m) => m,
            Self::PerClass { per_class } => per_class.saturating_mul(n_classes),
        }
    }
}

impl std::fmt::Display for EnsembleSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(m) => write!(f, "{m}"),
            Self::PerClass { per_class } => write!(f, "{per_class}/class"),
        }
    }
}

impl std::str::FromStr for EnsembleSize {
    type Err = String;

    /// `M` (a fixed size) or `k/class`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let count =
            |v: &str| v.trim().parse::<usize>().map_err(|_| format!("{s:?} is not M or k/class (e.g. 32, 2/class)"));
        match s.strip_suffix("/class") {
            Some(k) => Ok(Self::PerClass { per_class: count(k)? }),
            None => Ok(Self::Fixed(count(s)?)),
        }
    }
}

/// Which of the pool's candidates (those that pass the accuracy floor on P) vote on a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Selection {
    /// The first M candidates, the same for every window (the only choice of format-1 bundles).
    #[default]
    First,
    /// Per window, the M candidates that disagree most with f on the window (ties: pool order): a cheap
    /// importance selection by the CDC reward's "disagree on Q" term among members that already agree on P.
    /// The gradient steps then start from the members closest to the tilted distribution.
    Disagreeing,
}

/// How a refinement step turns the gradient g = ∇ℓ_cdc of a member into a move of its flat weights θ.
///
/// An absolute step size suits one classifier family only: ℓ_cdc's gradient and the weights' norm both scale
/// with the architecture (measured: lr 2.0 works for UCI heart's 9-16-16-2 and inverts the test on digits'
/// 64-32-10, where 0.2 works; docs/DETECT.md). The relative rules move each member by a fixed *fraction* of its
/// weights' norm, whatever the gradient's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StepRule {
    /// θ ← θ − lr·g (plain gradient descent). The only rule of configs stored before this field existed, so
    /// it is what a missing field reads as.
    #[default]
    Absolute,
    /// Per member: θ ← θ − lr·‖θ‖·g/‖g‖, so ‖Δθ‖ = lr·‖θ‖.
    Relative,
    /// Per member and layer l (its weight and bias together): θ_l ← θ_l − lr·‖θ_l‖·g_l/‖g_l‖, so every layer
    /// moves by the fraction lr of its own norm (LARS-like).
    LayerRelative,
    /// Per member and layer l: θ_l ← θ_l − lr·rms(θ_l)·sign(g_l) (signSGD scaled by the layer's RMS weight), so
    /// ‖Δθ_l‖ = lr·‖θ_l‖ when no gradient component is zero.
    Sign,
    /// Per member and layer l, θ_l ← θ_l − (lr/G_l)·g_l with the step's length capped at
    /// [`CALIBRATED_CAP`]·lr·‖θ_l‖. G_l is set once, when the detector is built: the median over the
    /// candidates of ‖g_l‖/‖θ_l‖ on a reference window drawn from P_ref itself (in distribution). On such a
    /// window a step moves a typical layer by the fraction lr of its norm; where ℓ_cdc's gradient is larger
    /// (a shifted window), proportionally more, up to the cap: the gradient's magnitude per window and per
    /// member is kept (measured: normalising it away costs UCI heart's power at N = 10), only the family's
    /// scale is divided out; the cap stops the runaway steps that invert the digits test (docs/DETECT.md).
    Calibrated,
}

impl StepRule {
    /// The step size `lr` that goes with this rule when none is given (docs/DETECT.md, the step-rule sweep):
    /// 2.0 for [`StepRule::Absolute`] (the UCI heart value of the previous default), 0.15 for
    /// [`StepRule::Calibrated`], 0.05 for the normalised rules (a middle value of the sweep; none of them
    /// reached the UCI heart target at N = 10 at any size).
    pub fn default_lr(self) -> f32 {
        match self {
            StepRule::Absolute => 2.0,
            StepRule::Relative | StepRule::LayerRelative | StepRule::Sign => 0.05,
            StepRule::Calibrated => 0.15,
        }
    }
}

impl std::fmt::Display for StepRule {
    /// The kebab-case name, as in JSON and on the command line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepRule::Absolute => "absolute",
            StepRule::Relative => "relative",
            StepRule::LayerRelative => "layer-relative",
            StepRule::Sign => "sign",
            StepRule::Calibrated => "calibrated",
        })
    }
}

/// The cap of a [`StepRule::Calibrated`] step: its length is at most `CALIBRATED_CAP · lr · ‖θ_l‖` per layer
/// (measured on digits: uncapped steps on rotated windows reach 30× the in-distribution length and invert the
/// test; caps of 3 and 5 gave the same digits figures, 5 kept more UCI heart power at N = 10).
pub const CALIBRATED_CAP: f64 = 5.0;

/// In-distribution reference windows (of [`BACKOFF_WINDOW_ROWS`] rows each) on which a detector checks
/// [`EnsembleConfig::step_keep`].
pub const BACKOFF_WINDOWS: usize = 4;
/// Rows of each of those windows: the smallest window size of the protocols.
pub const BACKOFF_WINDOW_ROWS: usize = 10;
/// The most times the step size is divided by √2 for [`EnsembleConfig::step_keep`] (down to lr/8).
pub const STEP_BACKOFFS: u32 = 6;

/// Scoring settings: which members vote, how far each is moved towards "agree on P, disagree on Q", and the
/// decision level. `steps = 0` with [`Selection::First`] is the *untilted* ensemble (the pool's members as
/// generated); the default, *meta-detectron*, selects the most disagreeing candidates per window and moves
/// them by gradient descent on ℓ_cdc (inference only: no meta-model runs per window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnsembleConfig {
    /// Members M that vote: M of the pool's candidates whose agreement with f on the reference sample reaches
    /// `floor`, chosen by `selection` (fewer if fewer pass). A stored config without the field reads as the
    /// fixed 32 of every default before per-class sizes.
    #[serde(default = "EnsembleSize::before_per_class")]
    pub ensemble_size: EnsembleSize,
    /// At most this many of the pool's members that pass the floor, in pool order, are candidates; the rest of
    /// the pool is not used. The disagreeing selection runs every candidate on the window, so this bounds its
    /// cost: measured, 64 candidates choose as well as 256 (docs/DETECT.md "Fewer members"). `None`: the whole
    /// pool — also what a stored config without the field reads as.
    #[serde(default)]
    pub candidates: Option<usize>,
    /// How the M voters are chosen among the candidates. A manifest without this field predates it and was
    /// calibrated with [`Selection::First`], so that is the value a missing field reads as.
    #[serde(default)]
    pub selection: Selection,
    /// Accuracy floor on P: the least agreement with f's predictions on the reference sample a member needs to
    /// vote, checked on the pool at construction and again after refinement.
    pub floor: f64,
    /// Gradient steps on ℓ_cdc(g; P, Q) per window (0 = untilted).
    pub steps: usize,
    /// How a step turns the gradient into a move. A manifest without this field predates it and was calibrated
    /// with [`StepRule::Absolute`], so that is the value a missing field reads as.
    #[serde(default)]
    pub step_rule: StepRule,
    /// Step size of those steps: absolute with [`StepRule::Absolute`], a fraction of the weights' norm with
    /// the relative rules.
    pub lr: f32,
    /// With [`StepRule::Calibrated`]: the least fraction of a window's members that must still pass `floor`
    /// after the steps on in-distribution windows. When the detector is built, it tries the steps on
    /// [`BACKOFF_WINDOWS`] windows of reference rows, and while fewer members than this survive them on
    /// average, it divides the step size by √2 (at most [`STEP_BACKOFFS`] times). One setting thus fits
    /// families whose nets break at different step sizes: measured, MNIST 784-32-10 members all leave the floor
    /// at the lr that suits UCI heart and digits (docs/DETECT.md). `None`: lr as given — also what a stored
    /// config without the field reads as.
    #[serde(default)]
    pub step_keep: Option<f64>,
    /// Reference rows (drawn per window) that carry the "agree on P" term of the steps; 0 = all of them.
    pub refine_rows: usize,
    /// Weight λ of the disagreement term; `None` = 1/(|Q|+1) (METHOD.md §4). With 1/(|Q|+1) the "agree on P"
    /// term dominates a few steps and pulls members towards copies of f (measured: lower disagreement than
    /// untilted), so the refined default weighs Q's rows like P's.
    pub lambda: Option<f32>,
    /// Caps λ at `lambda_rows / |Q|`, so that the window's rows together never weigh more in ℓ_cdc than
    /// `lambda_rows` rows at weight λ would. Without a cap, large windows drown the "agree on P" term and the
    /// steps make members disagree on in-distribution windows too (measured at N = 50: TPR .62 with the cap
    /// off, docs/DETECT.md). `None`: no cap — also what a stored config without the field reads as.
    #[serde(default)]
    pub lambda_rows: Option<usize>,
    /// At most this many rows of the reference sample P_ref, a fixed subsample drawn when the detector is built,
    /// check the voters against the floor and give the reference entropies the window is compared with; the
    /// steps' P_sub still draws from all of P_ref. This pass (every voter over every row) is the largest of a
    /// window on large training sets: MNIST's 7,000 rows cost ≈ 11 GFLOP per window, against ≈ 2 for the steps
    /// (docs/DETECT.md). A few thousand rows estimate the reference entropies' distribution far more
    /// precisely than a window of 10–50 rows does; the default, 2,048, keeps UCI heart's 358 and digits' 1,078
    /// rows whole. `None`: all rows — also what a stored config without the field reads as.
    #[serde(default)]
    pub vote_rows: Option<usize>,
    /// The decision level α.
    pub alpha: f64,
    /// The statistic that decides.
    pub statistic: Statistic,
}

impl Default for EnsembleConfig {
    /// The meta-detectron path (see docs/DETECT.md for the measurements behind these values).
    fn default() -> Self {
        Self {
            ensemble_size: EnsembleSize::PerClass { per_class: 2 },
            candidates: Some(64),
            selection: Selection::Disagreeing,
            floor: 0.8,
            steps: 5,
            step_rule: StepRule::Calibrated,
            lr: StepRule::Calibrated.default_lr(),
            step_keep: Some(0.5),
            refine_rows: 64,
            lambda: Some(1.0),
            lambda_rows: Some(10),
            vote_rows: Some(2048),
            alpha: 0.05,
            statistic: Statistic::Entropy,
        }
    }
}

impl EnsembleConfig {
    /// The untilted ensemble: the first 32 candidates as generated, no steps.
    pub fn untilted() -> Self {
        Self {
            ensemble_size: EnsembleSize::Fixed(32),
            candidates: None,
            steps: 0,
            selection: Selection::First,
            ..Self::default()
        }
    }

    /// Selection alone: the default's most disagreeing candidates per window, without gradient steps.
    pub fn selected() -> Self {
        Self { steps: 0, ..Self::default() }
    }

    /// Steps alone (an earlier default, docs/DETECT.md): the first 32 candidates, 10 ℓ_cdc steps each of
    /// absolute size 2.0, λ not capped.
    pub fn steps_only() -> Self {
        Self {
            ensemble_size: EnsembleSize::Fixed(32),
            candidates: None,
            selection: Selection::First,
            steps: 10,
            step_rule: StepRule::Absolute,
            lr: StepRule::Absolute.default_lr(),
            lambda_rows: None,
            ..Self::default()
        }
    }

    /// The DCE weight λ of ℓ_cdc for a window of `n_q` rows: `lambda` (or 1/(n_q + 1) when unset), capped at
    /// `lambda_rows / n_q`.
    pub fn lambda_for(&self, n_q: usize) -> f32 {
        capped_lambda(self.lambda, self.lambda_rows, n_q)
    }

    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), DetectError> {
        let bad = |name, value: String, reason| Err(DetectError::Config { name, value, reason });
        if matches!(self.ensemble_size, EnsembleSize::Fixed(0) | EnsembleSize::PerClass { per_class: 0 }) {
            return bad("ensemble_size", self.ensemble_size.to_string(), "at least one member must vote");
        }
        if self.candidates == Some(0) {
            return bad("candidates", "0".into(), "at least one candidate (or the whole pool)");
        }
        if !(0.0..=1.0).contains(&self.floor) {
            return bad("floor", self.floor.to_string(), "an agreement rate in [0, 1]");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr.to_string(), "a positive finite step size");
        }
        if let Some(l) = self.lambda {
            if !(l.is_finite() && l >= 0.0) {
                return bad("lambda", l.to_string(), "a non-negative finite weight");
            }
        }
        if let Some(k) = self.step_keep {
            if !(k > 0.0 && k <= 1.0) {
                return bad("step_keep", k.to_string(), "a fraction of the members in (0, 1]");
            }
        }
        if self.lambda_rows == Some(0) {
            return bad("lambda_rows", "0".into(), "a cap of at least one row (or none)");
        }
        if self.vote_rows == Some(0) {
            return bad("vote_rows", "0".into(), "at least one reference row to vote on (or all)");
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad("alpha", self.alpha.to_string(), "a level in (0, 1)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_capped_at_the_rows_worth_of_weight() {
        let c = EnsembleConfig { lambda: Some(1.0), lambda_rows: Some(10), ..EnsembleConfig::default() };
        assert_eq!([c.lambda_for(5), c.lambda_for(10), c.lambda_for(20), c.lambda_for(50)], [1.0, 1.0, 0.5, 0.2]);
        let uncapped = EnsembleConfig { lambda_rows: None, ..c.clone() };
        assert_eq!(uncapped.lambda_for(50), 1.0);
        // Unset λ is 1/(N + 1), and the cap still applies (it binds only when below it).
        let default_lambda = EnsembleConfig { lambda: None, lambda_rows: Some(1), ..c };
        assert_eq!(default_lambda.lambda_for(4), 0.2);
        let zero = EnsembleConfig { lambda_rows: Some(0), ..EnsembleConfig::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("lambda_rows"));
    }

    #[test]
    fn ensemble_sizes_resolve_per_class_and_read_as_stored_before() {
        let per_class = EnsembleSize::PerClass { per_class: 2 };
        assert_eq!([per_class.members(2), per_class.members(10)], [4, 20]);
        assert_eq!(EnsembleSize::Fixed(32).members(10), 32);
        // A number is how every manifest before per-class sizes stored the size.
        assert_eq!(serde_json::from_str::<EnsembleSize>("32").unwrap(), EnsembleSize::Fixed(32));
        let json = serde_json::to_string(&per_class).unwrap();
        assert_eq!(json, r#"{"per_class":2}"#);
        assert_eq!(serde_json::from_str::<EnsembleSize>(&json).unwrap(), per_class);
        assert!(serde_json::from_str::<EnsembleSize>(r#"{"per_klass":2}"#).is_err());
        for size in [per_class, EnsembleSize::Fixed(7)] {
            assert_eq!(size.to_string().parse::<EnsembleSize>(), Ok(size));
        }
        assert!("2/klass".parse::<EnsembleSize>().unwrap_err().contains("k/class"));
        assert!("-1".parse::<EnsembleSize>().is_err());
        // A stored config without `candidates` keeps the whole pool, as it was calibrated with.
        let mut old = serde_json::to_value(EnsembleConfig::default()).unwrap();
        old["ensemble_size"] = 32.into();
        old.as_object_mut().unwrap().remove("candidates");
        let old: EnsembleConfig = serde_json::from_value(old).unwrap();
        assert_eq!((old.ensemble_size, old.candidates), (EnsembleSize::Fixed(32), None));
    }

    #[test]
    fn empty_ensembles_and_candidate_sets_are_refused() {
        for size in [EnsembleSize::Fixed(0), EnsembleSize::PerClass { per_class: 0 }] {
            let c = EnsembleConfig { ensemble_size: size, ..EnsembleConfig::default() };
            assert!(c.validate().unwrap_err().to_string().contains("ensemble_size"));
        }
        let c = EnsembleConfig { candidates: Some(0), ..EnsembleConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("candidates"));
    }
}
