//! A Gaussian toy whose reward-tilted distribution is known in closed form, for checking fine-tuning.
//!
//! Weight space of the layout `1-1` (one weight, one bias: D = 2) with "trained weights" drawn from
//! N(μ, Σ). Tilting by exp(λ a·θ) gives N(μ + λΣa, Σ): the mean moves, the covariance stays.

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, Axis};
use rand_distr::{Distribution, StandardNormal};

use super::{mean_and_covariance, AdjointConfig};
use crate::flow::{MetaTrainConfig, NetConfig};
use crate::rng;
use crate::space::{Layout, SourceKind};

/// N(mean, cov) over the weight space of [`GaussianToy::layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianToy {
    /// μ `[2]`.
    pub mean: Array1<f64>,
    /// Σ `[2, 2]`, symmetric positive definite.
    pub cov: Array2<f64>,
}

impl GaussianToy {
    /// The toy docs/TUNE.md measures: μ = (1, −0.5), Σ = [[0.5, 0.1], [0.1, 0.3]].
    pub fn standard() -> Self {
        Self { mean: ndarray::array![1.0, -0.5], cov: ndarray::array![[0.5, 0.1], [0.1, 0.3]] }
    }

    /// The base meta-model of the toy: a small endpoint-predicting CFM from `source`, independent coupling,
    /// no alignment (the layout has no hidden units), 1,500 steps.
    pub fn meta_config(source: SourceKind) -> MetaTrainConfig {
        MetaTrainConfig {
            source,
            align: false,
            net: NetConfig { hidden: vec![64, 64], time_dim: 16, cond_dim: 0 },
            steps: 1500,
            ema_decay: Some(0.99),
            ..MetaTrainConfig::default()
        }
    }

    /// The fine-tuning settings of the toy (128 trajectories of 20 steps per iteration, Adam at 5e-3).
    pub fn tune_config(lambda: f64, iterations: usize) -> AdjointConfig {
        AdjointConfig { lambda, iterations, batch_size: 128, steps: 20, lr: 5e-3, ..AdjointConfig::default() }
    }

    /// The toy's classifier layout `1-1` (D = 2).
    pub fn layout() -> Layout {
        Layout::parse("1-1").expect("a valid architecture")
    }

    /// `n` samples `[n, 2]` drawn with `seed` (x = μ + L ε, Σ = L Lᵀ).
    pub fn sample(&self, n: usize, seed: u64) -> Array2<f32> {
        let (l00, l10) = (self.cov[[0, 0]].sqrt(), self.cov[[1, 0]] / self.cov[[0, 0]].sqrt());
        let l11 = (self.cov[[1, 1]] - l10 * l10).sqrt();
        let mut r = rng::rng(seed);
        let mut out = Array2::zeros((n, 2));
        for mut row in out.rows_mut() {
            let (e0, e1): (f64, f64) = (StandardNormal.sample(&mut r), StandardNormal.sample(&mut r));
            row[0] = (self.mean[0] + l00 * e0) as f32;
            row[1] = (self.mean[1] + l10 * e0 + l11 * e1) as f32;
        }
        out
    }

    /// "Trajectories" `[runs, 2, 2]` for a CFM meta-model: checkpoint 0 a `source` sample, checkpoint 1 a
    /// sample of the toy (K = 1).
    pub fn trajectories(&self, source: SourceKind, runs: usize, seed: u64) -> Array3<f32> {
        let layout = Self::layout();
        let init = source.source().sample(&layout, runs, &mut rng::stream(seed, 1));
        let finals = self.sample(runs, seed);
        ndarray::stack(Axis(1), &[init.view(), finals.view()]).expect("equal shapes")
    }

    /// The base meta-model of the closed-form check: a CFM over 4,096 toy "runs" from `source`, trained on the
    /// CPU with [`Self::meta_config`] (what the test and `examples/tune_toy.rs` both tune).
    pub fn train_base(&self, source: SourceKind) -> crate::flow::Result<crate::flow::MetaModel> {
        crate::flow::train_meta(
            &Self::layout(),
            self.trajectories(source, 4096, 0).view(),
            &Self::meta_config(source),
            &candle_core::Device::Cpu,
            &mut |_, _, _| {},
        )
    }

    /// The toy tilted by exp(λ a·θ): N(μ + λΣa, Σ).
    pub fn tilted_linear(&self, a: ArrayView1<f64>, lambda: f64) -> Self {
        Self { mean: &self.mean + &(self.cov.dot(&a) * lambda), cov: self.cov.clone() }
    }

    /// Relative errors of samples `[n, 2]` against the toy: ‖m̂ − μ‖/‖μ‖ and ‖Ĉ − Σ‖_F/‖Σ‖_F.
    pub fn relative_errors(&self, samples: ArrayView2<f32>) -> (f64, f64) {
        let (m, c) = mean_and_covariance(samples);
        let norm = |a: &Array1<f64>| a.dot(a).sqrt();
        let fro = |a: &Array2<f64>| a.iter().map(|v| v * v).sum::<f64>().sqrt();
        (norm(&(&m - &self.mean)) / norm(&self.mean), fro(&(&c - &self.cov)) / fro(&self.cov))
    }
}
