//! Evaluation of generated classifiers (METHOD.md §2; the paper's Figures 2–3): pure functions on weight
//! matrices `[M, D]` (one classifier per row, [`Layout`](crate::space::Layout) order), predictions `[M, B]` and
//! labels `[B]`, each in its own file with its formula:
//!
//! | figure | functions |
//! |---|---|
//! | accuracy | [`accuracy_stats`] → [`AccuracyStats`] (mean/min/max and per classifier) |
//! | diversity | [`mean_pairwise_disagreement`], [`error_iou`] |
//! | memorisation | [`nn_distance`], [`nn_distance_loo`] |
//! | collapse | [`constant_predictors`], [`mean_weight_norm`], [`spread`] |
//! | marginals | [`w1_exact`], [`w1_sliced`], [`w1`], [`w1_per_marginal`] |
//! | loss along the generation path | [`path_loss`] |
//! | initialisation quality | [`steps_to_accuracy`] (Adam fine-tuning of M inits at once) |
//! | everything at once | [`evaluate_generation`] → [`GenerationReport`] (serde, stable JSON shape) |
//! | figures | [`svg_line_plot`] |
//!
//! Always evaluate generated weights from *fresh* source samples, never from training inits, and read the
//! collapse diagnostics (constant predictors, weight-norm ratio, spread, nearest-neighbour distances) next to
//! accuracy: a shrunken "average network" can look accurate on average (METHOD.md §2).
//!
//! ```
//! use ndarray::array;
//! use weightflow::eval::{error_iou, mean_pairwise_disagreement, spread};
//!
//! // Three classifiers' predictions on four rows with labels y.
//! let preds = array![[0usize, 1, 1, 0], [0, 1, 1, 0], [1, 1, 1, 0]];
//! let y = [0, 1, 0, 0];
//! // Pairs (0,1) agree everywhere, (0,2) and (1,2) differ on one row of four: (0 + ¼ + ¼)/3.
//! let d = mean_pairwise_disagreement(preds.view())?.unwrap();
//! assert!((d - 1.0 / 6.0).abs() < 1e-12);
//! // Error sets {2}, {2}, {0, 2}: IoU 1, ½, ½.
//! assert_eq!(error_iou(preds.view(), &y)?, Some(2.0 / 3.0));
//! // {0, e1, e2}: (1 + 1 + √2)/3.
//! let s = spread(array![[0.0f32, 0.0], [1.0, 0.0], [0.0, 1.0]].view())?;
//! assert!((s - (2.0 + 2f64.sqrt()) / 3.0).abs() < 1e-6);
//! # Ok::<(), weightflow::eval::Error>(())
//! ```

mod accuracy;
mod collapse;
mod distance;
mod diversity;
mod error;
mod finetune;
mod path;
mod reconstruction;
mod report;
mod splits;
mod svg;
mod wasserstein;

pub use accuracy::{accuracy_of_predictions, accuracy_stats, AccuracyStats, Stats};
pub use collapse::{constant_predictors, mean_weight_norm, spread, SPREAD_EXACT_MAX};
pub use distance::{nn_distance, nn_distance_loo};
pub use diversity::{error_iou, mean_pairwise_disagreement};
pub use error::Error;
pub use finetune::{steps_to_accuracy, FinetuneConfig, InitSteps, Labelled};
pub use path::{path_loss, PathPoint};
pub use reconstruction::{reconstruction_accuracy, ReconstructionAccuracy};
pub use report::{
    evaluate_generation, w1_per_marginal, AccuracySummary, BestOfK, GenerationConfig, GenerationInputs,
    GenerationReport, InitStepsReport, InitTarget, Pair, W1Marginals, W1Report,
};
pub use splits::EvalData;
pub use svg::svg_line_plot;
pub use wasserstein::{w1, w1_1d, w1_exact, w1_sliced, W1Config, W1Method};
