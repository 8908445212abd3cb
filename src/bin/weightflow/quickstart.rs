//! `weightflow quickstart`: the README's main job on the embedded UCI heart data, with nothing to set up:
//! 2,048 base runs → an MMFM₂ meta-model → 256 generated classifiers scored against the trained ones → a bundle
//! (`detector.wfb`) → one in-distribution and one shifted window scored by the runtime (needs onnxruntime:
//! `ORT_DYLIB_PATH`, see scripts/setup-ort.sh).
//!
//! The meta-model is MMFM₂ with the independent coupling rather than `train-meta`'s CFM default: as the
//! detector's pool it gave meta-detectron more power on UCI heart (five seeds, TPR at N = 10 .938 against .894;
//! docs/DETECT.md), and it trains in the same time as CFM.

use std::path::PathBuf;

use weightflow::data::{sample_window, DatasetSpec};
use weightflow::flow::{Coupling, Objective};
use weightflow::rng;
use weightflow::runtime::{Detector, OpenOptions};

use crate::{eval_gen, export, output, train_base, train_meta};

/// Rows of the windows the quickstart scores.
const WINDOW: usize = 20;

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
    let meta = args.out.join("meta");
    output::say("\n[1/5] base trajectories");
    train_base::run(train_base::Args {
        dataset: "uci-heart".parse::<DatasetSpec>()?,
        task: None,
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
    output::say(
        "\n[2/5] MMFM₂ meta-model (Kaiming source, aligned runs, independent coupling, preconditioned endpoint)",
    );
    train_meta::run(train_meta::Args {
        trajectories: vec![trajectories.clone()],
        objective: Objective::Mmfm,
        intermediates: Some(2),
        coupling: Some(Coupling::Independent),
        steps: Some(args.meta_steps),
        out: meta.clone(),
        ..Default::default()
    })?;
    output::say("\n[3/5] generated vs trained classifiers (held-out iid_test)");
    eval_gen::run(eval_gen::Args {
        meta: meta.clone(),
        trajectories: trajectories.clone(),
        gaussian_meta: None,
        n: 256,
        best_of_k: 4,
        steps: 60,
        sampler: Default::default(),
        init_n: 32,
        seed: 1,
        temperature: 1.0,
        guidance: vec![1.0, 2.0],
        plots: Some(args.out.join("plots")),
        device: Default::default(),
        json: args.json,
    })?;
    output::say(
        "\n[4/5] bundle: ONNX meta-model, f (run 0), P's reference sample, calibration for windows of 10, 20, 50",
    );
    let bundle = args.out.join("detector.wfb");
    export::run(export::Args {
        meta,
        trajectories,
        calibrate_sizes: "10,20,50".into(),
        build: export::BuildArgs::default(),
        seed: 0,
        onnxruntime: None,
        out: bundle.clone(),
        json: false,
    })?;
    output::say(format_args!(
        "\n[5/5] the runtime scores a window of {WINDOW} iid_test rows and one of {WINDOW} shifted rows"
    ));
    let detector = Detector::open(&bundle, &OpenOptions::default())?;
    let splits = "uci-heart".parse::<DatasetSpec>()?.load(0)?;
    let shifted = splits.shifted.as_ref().ok_or("uci-heart has a shifted split")?;
    for (name, pool) in [("iid_test", &splits.test), ("shifted", shifted)] {
        let window = sample_window(pool, WINDOW, &mut rng::rng(7))?;
        let s = detector.score(window.x.view(), 7)?;
        output::say(format_args!(
            "  {name:>8}: p = {:.3} (statistic {:.3}, threshold {:.3}) → {}; disagreement {:.3}, {} members",
            s.p_value,
            s.statistic,
            s.threshold,
            if s.is_shift { "SHIFT" } else { "no shift" },
            s.disagreement,
            s.ensemble_size
        ));
    }
    Ok(())
}
