//! Rewards r(θ) of generated classifiers and their gradients ∇_θ r, in the classifier's flat layout.
//!
//! * [`TaskReward`]: r(θ) = −mean CE(f_θ(x), y) on a labelled set (adaptation to a target data set).
//! * [`CdcReward`]: r(θ) = −ℓ_cdc(θ; P, Q) with the deployed model f's pseudo-labels (METHOD.md §4).
//! * [`LinearReward`] r(θ) = a·θ and [`QuadraticReward`] r(θ) = −½ κ ‖θ − c‖²: closed-form tilts for
//!   checking the fine-tuning itself (a Gaussian N(μ, Σ) tilted by exp(λ a·θ) is N(μ + λΣa, Σ)).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::{Error, Result};
use crate::classifier::{Mlp, Targets};

/// A reward on classifiers' weights, with its gradient.
pub trait Reward {
    /// Per classifier (row of `thetas` `[M, D]`, flat weights in the classifier's layout) the reward `[M]` and
    /// its gradient with respect to the weights `[M, D]`.
    fn reward_and_grad(&self, thetas: ArrayView2<f32>) -> Result<(Array1<f32>, Array2<f32>)>;

    /// The reward in words, for manifests and reports.
    fn describe(&self) -> String;
}

/// r(θ) = −(1/B) Σ_b CE(f_θ(x_b), y_b).
#[derive(Debug, Clone)]
pub struct TaskReward {
    mlp: Mlp,
    x: Array2<f32>,
    targets: Targets,
}

impl TaskReward {
    /// The task reward of classifiers of `mlp` on rows `x` `[B, d_in]` (standardised as the classifiers
    /// expect) with labels `y`.
    pub fn new(mlp: Mlp, x: Array2<f32>, y: &[usize]) -> Result<Self> {
        check_rows(&mlp, &x, "task rows")?;
        if y.len() != x.nrows() {
            return Err(Error::Shape {
                what: "task labels",
                expected: format!("{}", x.nrows()),
                got: y.len().to_string(),
            });
        }
        let targets = Targets::cross_entropy(y);
        // Labels out of range are refused here, not at the first reward evaluation.
        targets_check(&mlp, &x, &targets)?;
        Ok(Self { mlp, x, targets })
    }
}

impl Reward for TaskReward {
    fn reward_and_grad(&self, thetas: ArrayView2<f32>) -> Result<(Array1<f32>, Array2<f32>)> {
        let (loss, grad) = self.mlp.loss_and_grad(thetas, self.x.view(), &self.targets)?;
        Ok((-loss, -grad))
    }

    fn describe(&self) -> String {
        format!("task: −mean CE on {} rows", self.x.nrows())
    }
}

/// r(θ) = −ℓ_cdc(g_θ; P, Q) = −(Σ_P CE(g(x), ŷ(x)) + λ Σ_Q DCE(g(x), ŷ(x))) / (|P| + |Q|), with ŷ = argmax of
/// the deployed classifier f: agree with f on P, disagree with it on the window Q.
#[derive(Debug, Clone)]
pub struct CdcReward {
    mlp: Mlp,
    /// [P; Q] stacked.
    x: Array2<f32>,
    n_p: usize,
    labels: Vec<usize>,
    targets: Targets,
}

impl CdcReward {
    /// The CDC reward for classifiers of `mlp`, deployed classifier `f` `[D]`, reference rows `p` and window
    /// `q` (both standardised), DCE weight `lambda` (None: 1/(|Q|+1)).
    pub fn new(
        mlp: Mlp,
        f: ArrayView1<f32>,
        p: ArrayView2<f32>,
        q: ArrayView2<f32>,
        lambda: Option<f32>,
    ) -> Result<Self> {
        check_rows(&mlp, &p.to_owned(), "P rows")?;
        check_rows(&mlp, &q.to_owned(), "Q rows")?;
        if let Some(l) = lambda {
            if !l.is_finite() || l < 0.0 {
                return Err(Error::Config {
                    field: "cdc lambda", reason: format!("must be finite and ≥ 0, got {l}")
                });
            }
        }
        let x =
            ndarray::concatenate(Axis(0), &[p.view(), q.view()]).expect("P and Q have the classifier's input width");
        let f = f.insert_axis(Axis(0));
        let labels = mlp.predict(f, x.view())?.row(0).to_vec();
        let n_p = p.nrows();
        let targets = Targets::cdc(&labels[..n_p], &labels[n_p..], lambda);
        Ok(Self { mlp, x, n_p, labels, targets })
    }

    /// f's pseudo-labels on [P; Q].
    pub fn pseudo_labels(&self) -> &[usize] {
        &self.labels
    }

    /// Per classifier (rows of `thetas`), the fraction of P on which it agrees with f and the fraction of Q on
    /// which it disagrees with f, each `[M]`.
    pub fn agreement(&self, thetas: ArrayView2<f32>) -> Result<(Array1<f64>, Array1<f64>)> {
        let pred = self.mlp.predict(thetas, self.x.view())?;
        let n_q = self.labels.len() - self.n_p;
        let frac = |range: std::ops::Range<usize>, same: bool, n: usize| -> Array1<f64> {
            pred.rows()
                .into_iter()
                .map(|row| range.clone().filter(|&b| (row[b] == self.labels[b]) == same).count() as f64 / n as f64)
                .collect()
        };
        Ok((frac(0..self.n_p, true, self.n_p), frac(self.n_p..self.labels.len(), false, n_q)))
    }
}

impl Reward for CdcReward {
    fn reward_and_grad(&self, thetas: ArrayView2<f32>) -> Result<(Array1<f32>, Array2<f32>)> {
        let (loss, grad) = self.mlp.loss_and_grad(thetas, self.x.view(), &self.targets)?;
        Ok((-loss, -grad))
    }

    fn describe(&self) -> String {
        format!("cdc: −ℓ_cdc with |P| = {}, |Q| = {}", self.n_p, self.labels.len() - self.n_p)
    }
}

/// r(θ) = a·θ (a closed-form check: it shifts a Gaussian's mean by λΣa).
#[derive(Debug, Clone)]
pub struct LinearReward {
    /// The direction a `[D]`.
    pub a: Array1<f32>,
}

impl Reward for LinearReward {
    fn reward_and_grad(&self, thetas: ArrayView2<f32>) -> Result<(Array1<f32>, Array2<f32>)> {
        check_dim(thetas, self.a.len())?;
        let grad = self.a.broadcast(thetas.raw_dim()).expect("checked width").to_owned();
        Ok((thetas.dot(&self.a), grad))
    }

    fn describe(&self) -> String {
        format!("linear: a·θ, a = {:?}", self.a.to_vec())
    }
}

/// r(θ) = −½ κ ‖θ − c‖² (a closed-form check: N(μ, σ²I) tilted by exp(λ r) is
/// N((μ + λκσ² c)/(1 + λκσ²), σ²/(1 + λκσ²) I)).
#[derive(Debug, Clone)]
pub struct QuadraticReward {
    /// The centre c `[D]`.
    pub center: Array1<f32>,
    /// The curvature κ.
    pub curvature: f32,
}

impl Reward for QuadraticReward {
    fn reward_and_grad(&self, thetas: ArrayView2<f32>) -> Result<(Array1<f32>, Array2<f32>)> {
        check_dim(thetas, self.center.len())?;
        let diff = &thetas - &self.center;
        let r = diff.map_axis(Axis(1), |d| -0.5 * self.curvature * d.dot(&d));
        Ok((r, diff * -self.curvature))
    }

    fn describe(&self) -> String {
        format!("quadratic: −½·{}·‖θ − c‖²", self.curvature)
    }
}

fn check_dim(thetas: ArrayView2<f32>, d: usize) -> Result<()> {
    if thetas.ncols() != d || thetas.nrows() == 0 {
        return Err(Error::Shape {
            what: "reward input",
            expected: format!("[M ≥ 1, {d}]"),
            got: format!("{:?}", thetas.shape()),
        });
    }
    Ok(())
}

fn check_rows(mlp: &Mlp, x: &Array2<f32>, what: &'static str) -> Result<()> {
    if x.nrows() == 0 || x.ncols() != mlp.layout.n_inputs() {
        return Err(Error::Shape {
            what,
            expected: format!("[B ≥ 1, {}]", mlp.layout.n_inputs()),
            got: format!("{:?}", x.shape()),
        });
    }
    Ok(())
}

/// Runs one zero classifier through the loss so that bad labels and non-finite rows fail at construction.
fn targets_check(mlp: &Mlp, x: &Array2<f32>, targets: &Targets) -> Result<()> {
    let zero = Array2::zeros((1, mlp.layout.dim()));
    mlp.loss(zero.view(), x.view(), targets)?;
    Ok(())
}
