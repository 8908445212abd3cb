//! `weightflow quickstart`: the README's main job, on the embedded UCI heart data, with nothing to set up.
//! Grows with the product: base trajectories today; meta-model, bundle and a scored window as they land.

use std::path::PathBuf;

use weightflow::data::DatasetSpec;

use crate::{output, train_base};

/// Command-line arguments of `quickstart`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the artefacts.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Runs R of the base classifier (the meta-models need thousands).
    #[arg(long, default_value_t = 2048)]
    pub runs: usize,
    /// Machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `quickstart`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    output::say("weightflow quickstart: UCI heart (embedded), MLP 9-16-16-2");
    let dataset: DatasetSpec = "uci-heart".parse()?;
    train_base::run(train_base::Args {
        dataset,
        arch: None,
        runs: Some(args.runs),
        checkpoints: None,
        epochs: None,
        batch_size: None,
        lr: None,
        weight_decay: None,
        l2: None,
        optimizer: None,
        activation: None,
        seed: 0,
        split_seed: 0,
        device: Default::default(),
        backend: None,
        out: args.out.join("trajectories"),
        json: args.json,
        quiet: false,
    })
}
