//! `weightflow train-base`: batched base-model training runs → a trajectory set on disk.

use std::path::PathBuf;

use weightflow::classifier::Activation;
use weightflow::data::{DatasetSpec, Shift};
use weightflow::space::Layout;
use weightflow::train::{train_base_task, Backend, DeviceKind, OptimizerKind, TrainConfig};

use crate::args::kebab;
use crate::{info, output};

/// Command-line arguments of `train-base`. Unset hyper-parameters take the data set's tuned defaults
/// ([`TrainConfig::for_dataset`]).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data set: uci-heart, digits, mnist or csv:PATH (label in the last column).
    #[arg(long, default_value = "uci-heart")]
    pub dataset: DatasetSpec,
    /// Train on a variant of the data set, a *task*: every split transformed by this shift before
    /// standardising, e.g. rotate:90 (digits turned ±90°) or classes:0,1,2 (forms: rotate:MIN-MAX, noise:SIGMA,
    /// classes:C1,C2,…, corners:K). Sets of several tasks train a context-conditioned meta-model.
    #[arg(long)]
    pub task: Option<Shift>,
    /// Layer widths, e.g. 9-16-16-2 (default: the data set's standard architecture).
    #[arg(long)]
    pub arch: Option<String>,
    /// Independent runs R.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Checkpoint intervals K (K+1 checkpoints are saved, init and final included).
    #[arg(long)]
    pub checkpoints: Option<usize>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Minibatch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Decoupled weight decay (AdamW).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Coupled L2 penalty l2/2·‖θ‖² on each run's loss.
    #[arg(long)]
    pub l2: Option<f64>,
    /// Optimiser: adam or sgd.
    #[arg(long, value_parser = kebab::<OptimizerKind>)]
    pub optimizer: Option<OptimizerKind>,
    /// Hidden activation: relu, tanh or silu.
    #[arg(long, value_parser = kebab::<Activation>)]
    pub activation: Option<Activation>,
    /// Master seed of inits and minibatch orders.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the train/val/test split (data sets without fixed splits).
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Device: cpu, or cuda with the `cuda` feature (implies the candle backend).
    #[arg(long, value_parser = kebab::<DeviceKind>, default_value = "cpu")]
    pub device: DeviceKind,
    /// Step implementation: native (hand-written backprop, fastest on CPU) or candle.
    #[arg(long, value_parser = kebab::<Backend>)]
    pub backend: Option<Backend>,
    /// Output directory (manifest.json + trajectories.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the `info --json` summary on stdout when done.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Resolves the raw arguments against the data set's defaults.
    pub fn resolve(&self) -> Result<(Layout, TrainConfig), Box<dyn std::error::Error>> {
        let (default_arch, mut cfg) = TrainConfig::for_dataset(&self.dataset);
        let arch = match (&self.arch, default_arch) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a,
            (None, None) => {
                // A CSV data set: one hidden layer of 32 between its width and its classes.
                let splits = self.dataset.load(self.split_seed)?;
                format!("{}-32-{}", splits.train.n_features(), splits.train.n_classes)
            }
        };
        let layout = Layout::parse(&arch)?;
        let set = |slot: &mut _, v: Option<_>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut cfg.runs, self.runs);
        set(&mut cfg.checkpoints, self.checkpoints);
        set(&mut cfg.epochs, self.epochs);
        set(&mut cfg.batch_size, self.batch_size);
        cfg.lr = self.lr.unwrap_or(cfg.lr);
        cfg.weight_decay = self.weight_decay.unwrap_or(cfg.weight_decay);
        cfg.l2 = self.l2.unwrap_or(cfg.l2);
        cfg.optimizer = self.optimizer.unwrap_or(cfg.optimizer);
        cfg.activation = self.activation.unwrap_or(cfg.activation);
        cfg.seed = self.seed;
        cfg.backend = match (self.backend, self.device) {
            (Some(Backend::Native), DeviceKind::Cuda) => {
                return Err("the native backend runs on the CPU only: use --backend candle with --device cuda".into())
            }
            (Some(b), _) => b,
            (None, DeviceKind::Cuda) => Backend::Candle,
            (None, DeviceKind::Cpu) => Backend::Native,
        };
        cfg.validate()?;
        Ok((layout, cfg))
    }
}

/// Runs `train-base`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (layout, cfg) = args.resolve()?;
    output::say(format_args!(
        "training {} runs of {} ({} parameters) on {}{} for {} epochs, {} checkpoints",
        cfg.runs,
        layout,
        layout.dim(),
        args.dataset,
        args.task.as_ref().map(|t| format!(" ({t})")).unwrap_or_default(),
        cfg.epochs,
        cfg.checkpoints + 1
    ));
    let mut bar = None;
    let mut set =
        train_base_task(&args.dataset, args.task.as_ref(), args.split_seed, &layout, &cfg, args.device, &mut |p| {
            let b = bar.get_or_insert_with(|| output::progress(p.total_steps as u64, "train-base", args.quiet));
            b.set_position(p.step as u64);
            b.set_prefix(format!("loss {:.4}", p.loss));
        })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    set.save(&args.out)?;
    output::say(format_args!("wrote {} in {:.1} s of training", args.out.display(), set.manifest.train_seconds));
    info::report(&set, args.json)
}
