//! `weightflow train-meta`: a flow meta-model (CFM, MMFM or JKO) over a trajectory set's weight space, or
//! (`--latent DIR`) a CFM meta-model in the latent space of an autoencoder from `train-vae`; over the runs of
//! several sets (tasks), optionally conditioned on their task's context sets (`--context`).

use std::path::PathBuf;

use serde_json::json;
use weightflow::flow::{
    data_digest, train_meta, train_meta_conditioned, train_meta_functional, train_meta_latent, ContextConfig, Coupling,
    FunctionData, FunctionalConfig, LrSchedule, MetaTrainConfig, Objective, Prediction, WeightAutoencoder,
};
use weightflow::space::SourceKind;
use weightflow::train::{device, DeviceKind};

use crate::args::{kebab, widths};
use crate::output;
use crate::tasks::{describe, training_rows, TaskSets};

/// Command-line arguments of `train-meta`; unset settings take [`MetaTrainConfig::for_objective`]'s values.
/// `Default` equals the command line with only the required paths given (empty here), so callers such as
/// `quickstart` set just what they change.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// A trajectory set written by `train-base`; repeat for the runs of several tasks (`train-base --task`),
    /// trained on together (conditioned on their task with --context).
    #[arg(long, required = true)]
    pub trajectories: Vec<PathBuf>,
    /// Objective: cfm, mmfm or jko.
    #[arg(long, value_parser = kebab::<Objective>, default_value = "cfm")]
    pub objective: Objective,
    /// What a CFM or MMFM network outputs: endpoint (x̂_1; default) or velocity. For JKO, endpoint (default)
    /// steps from the Gaussian map between consecutive marginals plus the potential's correction; velocity is
    /// the raw JKOnet* potential.
    #[arg(long, value_parser = kebab::<Prediction>)]
    pub prediction: Option<Prediction>,
    /// Intermediate marginals used by MMFM and JKO (k of MMFM_k / JKO(k+1)).
    #[arg(long)]
    pub intermediates: Option<usize>,
    /// Coupling of source samples to checkpoints: ot, independent or trajectory.
    #[arg(long, value_parser = kebab::<Coupling>)]
    pub coupling: Option<Coupling>,
    /// Source distribution p_0: kaiming or gaussian.
    #[arg(long, value_parser = kebab::<SourceKind>)]
    pub source: Option<SourceKind>,
    /// Hidden widths of the velocity network, comma-separated.
    #[arg(long)]
    pub hidden: Option<String>,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Minibatch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate (AdamW).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant or cosine.
    #[arg(long, value_parser = kebab::<LrSchedule>)]
    pub schedule: Option<LrSchedule>,
    /// EMA decay of the weights used for sampling (0 turns EMA off).
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Noise σ around the interpolation path (in scaled units).
    #[arg(long)]
    pub sigma: Option<f32>,
    /// Train in the latent space of this autoencoder (a `train-vae` directory over the same layout): CFM
    /// from N(0, I) latents (the source defaults to gaussian), decoded at generation; the autoencoder is
    /// copied into --out.
    #[arg(long)]
    pub latent: Option<PathBuf>,
    /// Condition on context sets: every run on labelled rows of its set's training split, with
    /// classifier-free guidance (CFM only). `generate --context` and `eval-gen` then sample for a task.
    #[arg(long)]
    pub context: bool,
    /// Rows per context set (with --context).
    #[arg(long)]
    pub context_size: Option<usize>,
    /// Width of the context encoder (with --context).
    #[arg(long)]
    pub context_width: Option<usize>,
    /// Width of the context encoding fed to the velocity network (with --context).
    #[arg(long, default_value_t = 32)]
    pub cond_dim: usize,
    /// Probability of training a row on the null context, for classifier-free guidance (with --context).
    #[arg(long)]
    pub context_drop: Option<f32>,
    /// Weight of the functional term (weight-space CFM and MMFM): each predicted endpoint must predict like the trained
    /// run it is regressed on (KL on the training rows), beside the weight-space loss. 0 (default) turns it off.
    #[arg(long)]
    pub function_weight: Option<f64>,
    /// Training rows per step of the functional term (with --function-weight).
    #[arg(long)]
    pub function_rows: Option<usize>,
    /// P of the functional term's weighting along the path (with --function-weight): a row at time t counts
    /// (P + 1)·t^P times, the same total weight moved towards t = 1. 0 (default): every t alike. MMFM needs it
    /// near t = 1 (e.g. 8): its endpoint is the spline's tangent, which nears the run only there, and uniform
    /// weighting broke MMFM on digits (docs/FLOW.md).
    #[arg(long)]
    pub function_time_power: Option<f64>,
    /// Skip the weight-matching alignment of the runs (an ablation: expect collapse).
    #[arg(long)]
    pub no_align: bool,
    /// Seed of initialisation, minibatches and source samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, or cuda with the `cuda` feature.
    #[arg(long, value_parser = kebab::<DeviceKind>, default_value = "cpu")]
    pub device: DeviceKind,
    /// Output directory (meta.json + meta.safetensors).
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
    /// The resolved training configuration.
    pub fn config(&self) -> Result<MetaTrainConfig, String> {
        let mut c = MetaTrainConfig {
            seed: self.seed,
            align: !self.no_align,
            ..MetaTrainConfig::for_objective(self.objective)
        };
        c.intermediates = self.intermediates.unwrap_or(c.intermediates);
        c.prediction = self.prediction.unwrap_or(c.prediction);
        c.coupling = self.coupling.unwrap_or(c.coupling);
        c.source = self.source.unwrap_or(c.source);
        if let Some(h) = &self.hidden {
            c.net.hidden = widths(h).map_err(|e| format!("--hidden {h:?}: {e}"))?;
        }
        c.steps = self.steps.unwrap_or(c.steps);
        c.batch_size = self.batch_size.unwrap_or(c.batch_size);
        c.lr = self.lr.unwrap_or(c.lr);
        c.schedule = self.schedule.unwrap_or(c.schedule);
        c.ema_decay = match self.ema_decay {
            Some(0.0) => None,
            Some(d) => Some(d),
            None => c.ema_decay,
        };
        c.sigma = self.sigma.unwrap_or(c.sigma);
        let context_flags = self.context_size.is_some() || self.context_width.is_some() || self.context_drop.is_some();
        if self.context {
            let d = ContextConfig::default();
            c.context = Some(ContextConfig {
                set_size: self.context_size.unwrap_or(d.set_size),
                width: self.context_width.unwrap_or(d.width),
                drop_prob: self.context_drop.unwrap_or(d.drop_prob),
            });
            c.net.cond_dim = self.cond_dim;
        } else if context_flags {
            return Err("--context-size, --context-width and --context-drop need --context".into());
        }
        let term_flags = self.function_rows.is_some() || self.function_time_power.is_some();
        c.functional = match self.function_weight {
            None | Some(0.0) if term_flags => {
                return Err("--function-rows and --function-time-power need --function-weight > 0".into())
            }
            None | Some(0.0) => None,
            Some(weight) => {
                let d = FunctionalConfig::default();
                Some(FunctionalConfig {
                    weight,
                    rows: self.function_rows.unwrap_or(d.rows),
                    time_power: self.function_time_power.unwrap_or(d.time_power),
                })
            }
        };
        Ok(c)
    }
}

/// Runs `train-meta`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sets = TaskSets::load(&args.trajectories)?;
    let mut cfg = args.config()?;
    let m = sets.manifest();
    let runs = sets.run_task.len();
    let dev = device(args.device)?;
    let autoencoder = match &args.latent {
        Some(dir) => {
            let ae = WeightAutoencoder::load(dir, &dev)?;
            if ae.layout() != &m.layout {
                return Err(format!(
                    "--latent {}: the autoencoder is over {}, the trajectories over {}",
                    dir.display(),
                    ae.layout(),
                    m.layout
                )
                .into());
            }
            if ae.data_digest() != data_digest(sets.thetas()) {
                output::say(format_args!(
                    "note: the autoencoder was trained on other trajectories than {}",
                    describe(&args.trajectories)
                ));
            }
            cfg.source = args.source.unwrap_or(SourceKind::Gaussian);
            Some(ae)
        }
        None => None,
    };
    let space = match &autoencoder {
        Some(ae) => format!("the {}-dimensional latent of", ae.latent_dim()),
        None => "the weights of".into(),
    };
    output::say(format_args!(
        "training a {:?} meta-model over {space} {runs} runs of {} (D = {}) for {} steps",
        cfg.objective,
        m.layout,
        m.layout.dim(),
        cfg.steps
    ));
    let tasks = match &cfg.context {
        Some(c) => {
            let names = sets.names();
            output::say(format_args!("conditioned on context sets of {} rows from {}", c.set_size, names.join(", ")));
            Some(sets.context_tasks()?)
        }
        None => None,
    };
    let bar = output::progress(cfg.steps as u64, "train-meta", args.quiet);
    let mut progress = |step: usize, _total: usize, loss: f32| {
        bar.set_position(step as u64);
        bar.set_prefix(format!("loss {loss:.4}"));
    };
    let model = match (&tasks, &autoencoder) {
        (Some(t), ae) => train_meta_conditioned(&m.layout, sets.thetas(), t, ae.as_ref(), &cfg, &dev, &mut progress)?,
        (None, Some(ae)) => train_meta_latent(&m.layout, sets.thetas(), ae, &cfg, &dev, &mut progress)?,
        (None, None) if cfg.functional.is_some() => {
            let rows = training_rows(&sets.data()?)?;
            let function = FunctionData { activation: m.activation, x: rows.view() };
            train_meta_functional(&m.layout, sets.thetas(), &cfg, function, &dev, &mut progress)?
        }
        (None, None) => train_meta(&m.layout, sets.thetas(), &cfg, &dev, &mut progress)?,
    };
    bar.finish_and_clear();
    let activation = serde_json::to_value(m.activation)?;
    model.save(&args.out, activation.as_str().unwrap_or("relu"))?;
    output::say(format_args!(
        "wrote {} ({:.1} s of training, final loss {:.4})",
        args.out.display(),
        model.train_seconds(),
        model.final_loss()
    ));
    if args.json {
        output::json(&json!({
            "schema": "train-meta/1",
            "out": args.out,
            "objective": cfg.objective,
            "train_seconds": model.train_seconds(),
            "final_loss": model.final_loss(),
            "latent_dim": model.latent().map(|ae| ae.latent_dim()),
            "runs": runs,
            "tasks": sets.names(),
            "config": cfg,
        }))?;
    }
    Ok(())
}
