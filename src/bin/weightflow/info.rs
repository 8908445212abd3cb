//! `weightflow info DIR`: a trajectory set's summary.
//!
//! JSON schema `info/1` (stable; fields are only added):
//! `{"schema", "runs", "checkpoints", "arch", "activation", "dataset", "parameters", "n_classes",
//!   "splits": {...}, "train": {TrainConfig}, "train_seconds",
//!   "final": {"train_accuracy", "val_accuracy", "test_accuracy", "val_auroc", "test_auroc"},
//!   "per_checkpoint": [{"t", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}]}`
//! where `final` holds means over runs of the final checkpoints and AUROCs are null for non-binary tasks.

use std::path::PathBuf;

use serde_json::json;
use weightflow::train::TrajectorySet;

use crate::output;

/// Command-line arguments of `info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trajectory set directory written by `train-base`.
    pub dir: PathBuf,
    /// One JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs `info`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let set = TrajectorySet::load(&args.dir)?;
    report(&set, args.json)
}

/// Prints the summary of `set`: JSON on stdout, or a table on stderr.
pub fn report(set: &TrajectorySet, as_json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let m = &set.manifest;
    if as_json {
        return output::json(&json!({
            "schema": "info/1",
            "runs": m.runs,
            "checkpoints": m.checkpoint_steps.len(),
            "arch": m.layout.arch(),
            "activation": m.activation,
            "dataset": m.dataset,
            "parameters": m.layout.dim(),
            "n_classes": m.n_classes,
            "splits": m.splits,
            "train": m.train,
            "train_seconds": m.train_seconds,
            "final": m.final_summary,
            "per_checkpoint": m.checkpoints,
        }));
    }
    let f = &m.final_summary;
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    output::say(format_args!(
        "{} runs of {} ({} parameters, {}) on {}; {} checkpoints; trained in {:.1} s",
        m.runs,
        m.layout,
        m.layout.dim(),
        serde_json::to_value(m.activation)?.as_str().unwrap_or("?"),
        m.dataset,
        m.checkpoint_steps.len(),
        m.train_seconds
    ));
    output::say("     t   step  train_loss  train_acc  val_loss  val_acc");
    for c in &m.checkpoints {
        output::say(format_args!(
            "{:6.3} {:6} {:11.4} {:10.3} {:9.4} {:8.3}",
            c.t, c.step, c.train_loss, c.train_accuracy, c.val_loss, c.val_accuracy
        ));
    }
    output::say(format_args!(
        "final (mean over runs): train acc {:.3}, val acc {:.3}, test acc {:.3}, val AUROC {}, test AUROC {}",
        f.train_accuracy,
        f.val_accuracy,
        f.test_accuracy,
        opt(f.val_auroc),
        opt(f.test_auroc)
    ));
    Ok(())
}
