//! `weightflow quickstart`: the README's main job on the embedded UCI heart data, with nothing to set up:
//! 2,048 base runs → a CFM meta-model → 256 generated classifiers scored against the trained ones.
//! Grows with the product: the bundle and a scored window come next.

use std::path::PathBuf;

use weightflow::data::DatasetSpec;

use crate::{eval_gen, output, train_base, train_meta};

/// Command-line arguments of `quickstart`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the artefacts.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Runs R of the base classifier (the meta-models need thousands).
    #[arg(long, default_value_t = 2048)]
    pub runs: usize,
    /// Optimiser steps of the meta-model.
    #[arg(long, default_value_t = 2000)]
    pub meta_steps: usize,
    /// The evaluation report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `quickstart`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    output::say("weightflow quickstart: UCI heart (embedded), MLP 9-16-16-2");
    let trajectories = args.out.join("trajectories");
    let meta = args.out.join("cfm");
    output::say("\n[1/3] base trajectories");
    train_base::run(train_base::Args {
        dataset: "uci-heart".parse::<DatasetSpec>()?,
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
        out: trajectories.clone(),
        json: false,
        quiet: false,
    })?;
    output::say("\n[2/3] CFM meta-model (Kaiming source, aligned runs, independent coupling, preconditioned endpoint)");
    train_meta::run(train_meta::Args {
        trajectories: trajectories.clone(),
        steps: Some(args.meta_steps),
        out: meta.clone(),
        ..Default::default()
    })?;
    output::say("\n[3/3] generated vs trained classifiers (held-out iid_test)");
    eval_gen::run(eval_gen::Args {
        meta,
        trajectories,
        gaussian_meta: None,
        n: 256,
        best_of_k: 4,
        steps: 60,
        sampler: Default::default(),
        init_n: 32,
        seed: 1,
        plots: Some(args.out.join("plots")),
        device: Default::default(),
        json: args.json,
    })
}
