//! Detectron (Ginsberg et al., ICLR 2023) with MLP CDCs trained natively, as the baseline meta-detectron must
//! beat (METHOD.md §4).
//!
//! Per window Q: up to `cdcs` constrained disagreement classifiers, each a fresh copy of f trained `epochs`
//! epochs with Adam (lr `lr`) on ℓ_cdc(g; P_ref, Q_rest) — minibatches of `batch_size` reference rows with
//! f's labels (CE), each joined by all of Q_rest with f's labels (DCE, λ = 1/(|Q_rest|+1)). Q_rest starts as
//! Q; rows a CDC disagrees with f on are removed before the next CDC, and training stops early when Q_rest is
//! empty. Statistics:
//! * disagreement: the fraction of Q some CDC disagrees on;
//! * entropy: −ln p of the KS test between the entropies of the mean softmax over {f, CDCs} on Q and on the
//!   reference sample.

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::config::Statistic;
use super::error::{check_rows, DetectError};
use super::ks::ks_two_sample;
use super::method::WindowTest;
use super::stats::mean_softmax_entropy;
use crate::classifier::{Adam, Mlp, Targets};
use crate::rng::stream;

/// Detectron's training settings (defaults: the paper's 5 CDCs, 5 epochs, Adam lr 1e-3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectronConfig {
    /// The most CDCs per window.
    pub cdcs: usize,
    /// Epochs over the reference sample per CDC.
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Reference rows per minibatch.
    pub batch_size: usize,
}

impl Default for DetectronConfig {
    fn default() -> Self {
        Self { cdcs: 5, epochs: 5, lr: 1e-3, batch_size: 32 }
    }
}

/// Detectron's statistics of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectronStatistics {
    /// Fraction of the window some CDC disagrees with f on.
    pub disagreement: f64,
    /// −ln p of the entropy KS test.
    pub entropy: f64,
    /// CDCs trained.
    pub cdcs: usize,
}

/// Detectron with one of its two statistics deciding.
#[derive(Debug, Clone)]
pub struct Detectron {
    mlp: Mlp,
    f: Array2<f32>,
    p_ref: Array2<f32>,
    p_labels: Vec<usize>,
    config: DetectronConfig,
    statistic: Statistic,
}

impl Detectron {
    /// Detectron for deployed classifier `f` (flat weights) with reference sample `p_ref` (standardised rows of
    /// P); `statistic` picks the test that [`WindowTest::statistic`] reports.
    pub fn new(
        mlp: Mlp,
        f: Array1<f32>,
        p_ref: Array2<f32>,
        config: DetectronConfig,
        statistic: Statistic,
    ) -> Result<Self, DetectError> {
        let d = mlp.layout.dim();
        if f.len() != d {
            return Err(DetectError::Width { what: "deployed classifier f", expected: d, got: f.len() });
        }
        check_rows("reference sample", p_ref.view(), mlp.layout.n_inputs())?;
        let bad = |name, value: String| Err(DetectError::Config { name, value, reason: "must be at least 1" });
        if config.cdcs == 0 || config.epochs == 0 || config.batch_size == 0 {
            return bad("cdcs/epochs/batch_size", format!("{}/{}/{}", config.cdcs, config.epochs, config.batch_size));
        }
        if !(config.lr.is_finite() && config.lr > 0.0) {
            return Err(DetectError::Config { name: "lr", value: config.lr.to_string(), reason: "a positive step" });
        }
        let f = f.insert_axis(Axis(0));
        let p_labels = mlp.predict(f.view(), p_ref.view())?.row(0).to_vec();
        Ok(Self { mlp, f, p_ref, p_labels, config, statistic })
    }

    /// Both statistics of window `q`; `seed` draws the minibatch order.
    pub fn window_statistics(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<DetectronStatistics, DetectError> {
        check_rows("window", q, self.mlp.layout.n_inputs())?;
        let q_labels = self.mlp.predict(self.f.view(), q)?.row(0).to_vec();
        let mut rest: Vec<usize> = (0..q.nrows()).collect();
        let mut cdcs: Vec<Array2<f32>> = Vec::new();
        let mut rng = stream(seed, 0);
        let mut order: Vec<usize> = (0..self.p_ref.nrows()).collect();
        let batch = self.config.batch_size.min(order.len());
        while cdcs.len() < self.config.cdcs && !rest.is_empty() {
            let q_rest = q.select(Axis(0), &rest);
            let q_rest_labels: Vec<usize> = rest.iter().map(|&i| q_labels[i]).collect();
            let mut g = self.f.clone();
            let mut adam = Adam::new(g.dim(), self.config.lr);
            for _ in 0..self.config.epochs {
                order.shuffle(&mut rng);
                for chunk in order.chunks(batch) {
                    let p = self.p_ref.select(Axis(0), chunk);
                    let x = concatenate(Axis(0), &[p.view(), q_rest.view()]).expect("equal widths");
                    let labels: Vec<usize> = chunk.iter().map(|&i| self.p_labels[i]).collect();
                    let targets = Targets::cdc(&labels, &q_rest_labels, None);
                    let (_, grad) = self.mlp.loss_and_grad(g.view(), x.view(), &targets)?;
                    adam.step(&mut g, &grad, &[0]);
                }
            }
            let preds = self.mlp.predict(g.view(), q_rest.view())?;
            rest = rest.iter().zip(preds.row(0)).filter(|(&i, &p)| p == q_labels[i]).map(|(&i, _)| i).collect();
            cdcs.push(g);
        }
        let mut views = vec![self.f.view()];
        views.extend(cdcs.iter().map(|g| g.view()));
        let all = concatenate(Axis(0), &views).expect("equal widths");
        let h_q = mean_softmax_entropy(self.mlp.probabilities(all.view(), q)?.view())?;
        let h_ref = mean_softmax_entropy(self.mlp.probabilities(all.view(), self.p_ref.view())?.view())?;
        Ok(DetectronStatistics {
            disagreement: 1.0 - rest.len() as f64 / q.nrows() as f64,
            entropy: -ks_two_sample(&h_q, &h_ref)?.p_value.ln(),
            cdcs: cdcs.len(),
        })
    }
}

impl WindowTest for Detectron {
    fn statistic(&self, q: ArrayView2<'_, f32>, seed: u64) -> Result<f64, DetectError> {
        let s = self.window_statistics(q, seed)?;
        Ok(match self.statistic {
            Statistic::Entropy => s.entropy,
            Statistic::Disagreement => s.disagreement,
        })
    }
}
