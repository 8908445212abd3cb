use serde::{Deserialize, Serialize};

use super::Error;
use crate::classifier::Activation;

/// The optimiser of base-model training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (AdamW; β = (0.9, 0.999), ε = 1e-8).
    #[default]
    Adam,
    /// Plain minibatch SGD (no momentum).
    Sgd,
}

/// Which implementation computes the batched steps (see the `engine` module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Hand-written backpropagation on the CPU, parallel over runs (fastest for small MLPs).
    #[default]
    Native,
    /// One batched candle graph per step, on the CPU or (feature `cuda`) a GPU.
    Candle,
}

/// How the R runs train. Stored verbatim in the trajectory manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of independent runs R.
    pub runs: usize,
    /// Number of checkpoint intervals K: K+1 checkpoints are saved, t_k = k/K of the training steps.
    pub checkpoints: usize,
    /// Passes over the training data.
    pub epochs: usize,
    /// Minibatch size (rows per run per step); clipped to the training-set size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Decoupled weight decay (AdamW) or, for SGD, an L2 penalty coefficient on the loss.
    pub weight_decay: f64,
    /// Coupled L2 penalty `l2/2 · ‖θ‖²` added to each run's loss (both optimisers).
    pub l2: f64,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Hidden-layer activation.
    pub activation: Activation,
    /// Master seed: run r uses `rng::stream(seed, r)` for its init and minibatch order.
    pub seed: u64,
    /// The implementation of the batched step.
    #[serde(default)]
    pub backend: Backend,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            runs: 256,
            checkpoints: 6,
            epochs: 60,
            batch_size: 32,
            lr: 1e-2,
            weight_decay: 0.0,
            l2: 1e-2,
            optimizer: OptimizerKind::Adam,
            activation: Activation::Relu,
            seed: 0,
            backend: Backend::Native,
        }
    }
}

impl TrainConfig {
    /// Checks the settings that no training run could recover from.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.runs == 0 {
            return bad("runs must be at least 1");
        }
        if self.checkpoints == 0 {
            return bad("checkpoints (K) must be at least 1");
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("learning rate must be a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0 && self.l2.is_finite() && self.l2 >= 0.0) {
            return bad("weight decay and l2 must be non-negative numbers");
        }
        Ok(())
    }
}

impl TrainConfig {
    /// The standard architecture and tuned settings for a built-in data set (see docs/BASE_TRAINING.md for
    /// the measurements behind them). `csv:` data get a generic configuration and no architecture (`None`):
    /// the caller derives one from the data's width.
    pub fn for_dataset(spec: &crate::data::DatasetSpec) -> (Option<String>, Self) {
        use crate::data::DatasetSpec;
        let base = Self::default();
        match spec {
            DatasetSpec::UciHeart => {
                (Some("9-16-16-2".into()), Self { runs: 2048, epochs: 60, batch_size: 32, lr: 1e-3, l2: 3e-2, ..base })
            }
            DatasetSpec::Digits => {
                (Some("64-32-10".into()), Self { runs: 256, epochs: 40, batch_size: 64, lr: 3e-3, l2: 1e-3, ..base })
            }
            DatasetSpec::Mnist => {
                (Some("784-32-10".into()), Self { runs: 64, epochs: 20, batch_size: 128, lr: 2e-3, l2: 1e-4, ..base })
            }
            _ => (None, Self { runs: 256, epochs: 50, batch_size: 32, lr: 3e-3, l2: 1e-3, ..base }),
        }
    }
}
