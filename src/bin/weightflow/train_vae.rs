//! `weightflow train-vae`: a weight autoencoder over a trajectory set's final checkpoints, and how well its
//! decoded classifiers keep the originals' accuracy.
//!
//! JSON (schema `train-vae/1`): `out`, `train_seconds`, `final_loss`, `heldout_loss`, `config`, and
//! `heldout` / `train` — the [`ReconstructionAccuracy`] on the data set's held-out test split of the held-out
//! runs and of the first [`TRAIN_SAMPLE`] training runs.

use std::path::PathBuf;

use serde_json::json;
use weightflow::classifier::Mlp;
use weightflow::eval::{reconstruction_accuracy, EvalData, ReconstructionAccuracy};
use weightflow::flow::{autoencoder_inputs, train_autoencoder, AutoencoderConfig, FunctionData, WeightAutoencoder};
use weightflow::train::{device, DeviceKind};

use crate::args::{kebab, widths};
use crate::output;
use crate::tasks::{training_rows, TaskSets};

/// Training runs whose reconstruction is reported beside the held-out ones.
const TRAIN_SAMPLE: usize = 256;

/// The CLI's functional-term weight: on digits it keeps decoded classifiers within 0.1 point of their originals
/// where reconstruction error alone loses 1–4 points (docs/FLOW.md). The library's default stays 0, so a caller
/// without data rows gets the plain autoencoder.
const DEFAULT_FUNCTION_WEIGHT: f64 = 10.0;

/// Command-line arguments of `train-vae`; unset settings take [`AutoencoderConfig::default`]'s values.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trajectory set written by `train-base`; repeat for the runs of several tasks (`train-base --task`),
    /// encoded by one autoencoder (for a context-conditioned `train-meta --latent`).
    #[arg(long, required = true)]
    pub trajectories: Vec<PathBuf>,
    /// Width of the latent.
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Hidden widths of the encoder (the decoder mirrors them), comma-separated.
    #[arg(long)]
    pub hidden: Option<String>,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Minibatch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (AdamW, cosine decay).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Runs (the last ones) held out of training to measure reconstruction.
    #[arg(long)]
    pub heldout: Option<usize>,
    /// Weight of the functional term: KL from each original classifier's predictions to its reconstruction's
    /// on the training split (0: weight-space reconstruction error only; docs/FLOW.md measures both).
    #[arg(long, default_value_t = DEFAULT_FUNCTION_WEIGHT)]
    pub function_weight: f64,
    /// Training rows per step in the functional term.
    #[arg(long)]
    pub function_rows: Option<usize>,
    /// Weight of the mix term: decodings of latents between two runs must predict like the mixture of the two
    /// originals' predictions (0: off; docs/FLOW.md measures it).
    #[arg(long, default_value_t = 0.0)]
    pub mix_weight: f64,
    /// Skip the weight-matching alignment of the runs.
    #[arg(long)]
    pub no_align: bool,
    /// Seed of initialisation, minibatches and alignment.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, or cuda with the `cuda` feature.
    #[arg(long, value_parser = kebab::<DeviceKind>, default_value = "cpu")]
    pub device: DeviceKind,
    /// Output directory (autoencoder.json + autoencoder.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    fn config(&self) -> Result<AutoencoderConfig, String> {
        let mut c = AutoencoderConfig { seed: self.seed, align: !self.no_align, ..AutoencoderConfig::default() };
        if let Some(h) = &self.hidden {
            c.hidden = widths(h).map_err(|e| format!("--hidden {h:?}: {e}"))?;
        }
        c.latent_dim = self.latent_dim.unwrap_or(c.latent_dim);
        c.steps = self.steps.unwrap_or(c.steps);
        c.batch_size = self.batch_size.unwrap_or(c.batch_size);
        c.lr = self.lr.unwrap_or(c.lr);
        c.heldout = self.heldout.unwrap_or(c.heldout);
        c.function_weight = self.function_weight;
        c.function_rows = self.function_rows.unwrap_or(c.function_rows);
        c.mix_weight = self.mix_weight;
        Ok(c)
    }
}

/// Decoded against original accuracy on the test split, for aligned `finals` `[M, D]`.
fn compare(
    ae: &WeightAutoencoder,
    mlp: &Mlp,
    data: &EvalData,
    finals: ndarray::ArrayView2<f32>,
) -> Result<ReconstructionAccuracy, Box<dyn std::error::Error>> {
    let decoded = ae.reconstruct(finals)?;
    Ok(reconstruction_accuracy(mlp, finals, decoded.view(), data.test.x.view(), &data.test.y)?)
}

fn describe(what: &str, r: &ReconstructionAccuracy) {
    output::say(format_args!(
        "{what:<9} accuracy original {:.4}  decoded {:.4}  |change| mean {:.4} max {:.4}  agreement {:.4}",
        r.original.mean, r.reconstructed.mean, r.mean_abs_change, r.max_abs_change, r.agreement
    ));
}

/// Runs `train-vae`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sets = TaskSets::load(&args.trajectories)?;
    let cfg = args.config()?;
    let m = sets.manifest();
    let runs = sets.run_task.len();
    output::say(format_args!(
        "training a weight autoencoder {} → {} over {runs} runs of {} ({} held out) for {} steps",
        m.layout.dim(),
        cfg.latent_dim,
        m.layout,
        cfg.heldout,
        cfg.steps
    ));
    let dev = device(args.device)?;
    let data = sets.data()?;
    let rows = training_rows(&data)?;
    let function = FunctionData { activation: m.activation, x: rows.view() };
    let bar = output::progress(cfg.steps as u64, "train-vae", args.quiet);
    let ae = train_autoencoder(&m.layout, sets.thetas(), &cfg, Some(function), &dev, &mut |step, _total, loss| {
        bar.set_position(step as u64);
        bar.set_prefix(format!("loss {loss:.5}"));
    })?;
    bar.finish_and_clear();
    let activation = serde_json::to_value(m.activation)?;
    ae.save(&args.out, activation.as_str().unwrap_or("relu"))?;
    output::say(format_args!(
        "wrote {} ({:.1} s of training, final loss {:.5}, held-out loss {:?})",
        args.out.display(),
        ae.train_seconds(),
        ae.final_loss(),
        ae.heldout_loss()
    ));

    let finals = autoencoder_inputs(&m.layout, sets.thetas(), &cfg)?;
    let n_train = finals.nrows() - cfg.heldout;
    let mlp = Mlp::new(m.layout.clone(), m.activation);
    // Each comparison scores the runs of one task on that task's test split: the held-out runs of the last
    // run's task, the training sample's runs of the first run's task.
    let compare_task = |range: std::ops::Range<usize>, task: usize| {
        let idx: Vec<usize> = range.filter(|&r| sets.run_task[r] == task).collect();
        compare(&ae, &mlp, &data[task], finals.select(ndarray::Axis(0), &idx).view())
    };
    let heldout = match cfg.heldout {
        0 => None,
        _ => Some(compare_task(n_train..runs, sets.run_task[runs - 1])?),
    };
    let train = compare_task(0..n_train.min(TRAIN_SAMPLE), sets.run_task[0])?;
    if let Some(h) = &heldout {
        describe("held-out", h);
    }
    describe("training", &train);
    if args.json {
        output::json(&json!({
            "schema": "train-vae/1",
            "out": args.out,
            "train_seconds": ae.train_seconds(),
            "final_loss": ae.final_loss(),
            "heldout_loss": ae.heldout_loss(),
            "heldout": heldout,
            "train": train,
            "config": cfg,
        }))?;
    }
    Ok(())
}
