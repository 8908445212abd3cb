//! `weightflow`: the command-line tool. This file only parses, dispatches and maps results to exit codes;
//! each subcommand lives in its own module.
//!
//! Exit codes: 0 success; 1 the command failed (bad input, I/O, training error; the message is on stderr);
//! 2 the command line itself is malformed (clap's usage error).

/// mimalloc instead of the system allocator: candle's CPU ops allocate a fresh output buffer per op, and with
/// glibc's malloc the multi-megabyte ones (a minibatch of MNIST weights is 26 MB) went back to the kernel and
/// were faulted in and zeroed again on every step (a third of a profile of MNIST `train-meta` was the kernel
/// clearing pages). See [`keep_freed_memory`].
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc's `mi_option_e` (index 15 in both the v2 and v3 headers it vendors).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory freed by the process mapped for reuse instead of purging it to the OS 10 ms later (mimalloc's
/// default): the same buffer sizes come back every training step. MNIST `train-meta` on the 2-core box: 1.36 s
/// per step with glibc, 0.84 s with mimalloc; the setup (alignment of 256 × 7 checkpoints) 9 s → 6 s with this
/// option, 21 s without it (docs/PERFORMANCE.md).
fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores an integer option; any option index and value are accepted.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

mod args;
mod detect;
mod eval_gen;
mod eval_shift;
mod export;
mod generate;
mod info;
mod output;
mod plot_gen;
mod quickstart;
mod tasks;
mod train_base;
mod train_meta;
mod train_vae;
mod tune;

use clap::{Parser, Subcommand};

/// Generative meta-models of classifier weights, and harmful covariate-shift detection.
#[derive(Debug, Parser)]
#[command(name = "weightflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train R base classifiers as one batched computation and save their checkpoint trajectories.
    TrainBase(train_base::Args),
    /// Summarise a trajectory set (`--json` for the stable machine-readable form).
    Info(info::Args),
    /// Train a flow meta-model (CFM, MMFM or JKO) on a trajectory set.
    TrainMeta(train_meta::Args),
    /// Train a weight autoencoder (flattened weights ↔ a small latent) on a trajectory set.
    TrainVae(train_vae::Args),
    /// Fine-tune a meta-model towards a reward (task cross entropy or CDC) by adjoint matching.
    Tune(tune::Args),
    /// Generate classifiers from a meta-model.
    Generate(generate::Args),
    /// Evaluate a meta-model's generated classifiers against the trained runs.
    EvalGen(eval_gen::Args),
    /// Draw the path-loss and W1 curves of several `eval-gen --json` reports on one pair of plots.
    PlotGen(plot_gen::Args),
    /// Export a meta-model, a deployed classifier and calibration tables as one bundle for the runtime.
    Export(export::Args),
    /// Score one window of live inputs (a CSV) with a bundle or a meta-model and its trajectories: p-value, verdict.
    Detect(detect::Args),
    // Boxed: its many protocol flags make it the largest variant by far.
    /// The shift-detection protocol: every method's power, calibration and latency on the same windows.
    EvalShift(Box<eval_shift::Args>),
    /// The README's main job on the embedded UCI heart data: trajectories → meta-model → report → bundle → a scored window.
    Quickstart(quickstart::Args),
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::TrainBase(a) => train_base::run(a),
        Command::Info(a) => info::run(a),
        Command::TrainMeta(a) => train_meta::run(a),
        Command::TrainVae(a) => train_vae::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Generate(a) => generate::run(a),
        Command::EvalGen(a) => eval_gen::run(a),
        Command::PlotGen(a) => plot_gen::run(a),
        Command::Export(a) => export::run(a),
        Command::EvalShift(a) => eval_shift::run(*a),
        Command::Detect(a) => detect::run(a),
        Command::Quickstart(a) => quickstart::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::error(e.as_ref());
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
