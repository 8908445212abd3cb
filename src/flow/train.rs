//! Training a meta-model on checkpoint trajectories.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ParamsAdamW, VarBuilder, VarMap};
use ndarray::{Array2, Array3, ArrayView3, Axis};

use super::context::draw_step;
use super::error::CandleContext;
use super::functional::FunctionalTerm;
use super::model::ModelInfo;
use super::net::{seeded_init, PotentialNet, VelocityNet};
use super::objective::{Batch, BatchSampler};
use super::optim::AdamWEma;
use super::precond::{PrecondStats, StepStats, MIN_VAR, PRECOND_PREFIX};
use super::space::FlowSource;
use super::{
    align_trajectories, autoencoder_inputs, data_digest, ContextEncoder, ContextTasks, Coupling, Error, FunctionData,
    LrSchedule, MetaModel, MetaTrainConfig, Objective, Result, Scaling, WeightAutoencoder,
};
use crate::rng;
use crate::space::{Layout, SourceKind};

/// RNG streams of a training seed.
const STREAM_INIT: u64 = 0;
const STREAM_BATCH: u64 = 1;
const STREAM_ALIGN: u64 = 2;
/// Stream of the source samples that estimate the preconditioner's source variance.
const STREAM_PRECOND: u64 = 3;
/// Stream of the context sets and guidance drops.
const STREAM_CONTEXT: u64 = 4;
/// Stream of the functional term's data rows (its own, so models without the term train as before it existed).
const STREAM_FUNCTION: u64 = 5;

/// Steps averaged into [`MetaModel::final_loss`].
const FINAL_LOSS_WINDOW: usize = 100;

/// Uploads `a` (copied only when it is not in standard layout).
pub(super) fn to_tensor(a: &Array2<f32>, device: &Device) -> Result<Tensor> {
    let a = a.as_standard_layout();
    Tensor::from_slice(a.as_slice().expect("standard layout"), a.dim(), device).op("upload minibatch")
}

/// The trajectories exactly as [`train_meta`] sees them before scaling: every run's whole trajectory aligned
/// to run 0 (when `cfg.align`), with the same seeded layer order. Evaluations that compare weights (W1,
/// nearest-neighbour distances) must use these, not the raw runs.
pub fn prepared_trajectories(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    cfg: &MetaTrainConfig,
) -> Result<Array3<f32>> {
    let mut traj = trajectories.to_owned();
    if cfg.align {
        align_trajectories(layout, &mut traj, 0, &mut rng::stream(cfg.seed, STREAM_ALIGN))?;
    }
    Ok(traj)
}

/// Trains a meta-model on `trajectories` `[R, K+1, D]` (run, checkpoint, flat weights; checkpoint 0 is each
/// run's init, K its final weights, t_k = k/K).
///
/// Aligns every run to run 0 (unless `cfg.align` is off), fits the [`Scaling`] on the finals, then runs
/// `cfg.steps` AdamW steps on the objective's minibatches, calling `progress(step, total, loss)` after each.
/// Every random draw comes from `cfg.seed`, so on the CPU a seed reproduces the model bit for bit.
pub fn train_meta(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    cfg: &MetaTrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<MetaModel> {
    train_weights(layout, trajectories, None, None, cfg, device, progress)
}

/// [`train_meta`] with the functional term of `cfg.functional` (module `functional`): predicted endpoints
/// must predict like their runs on the rows of `function` (standardised as the base runs saw them).
pub fn train_meta_functional(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    cfg: &MetaTrainConfig,
    function: FunctionData<'_>,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<MetaModel> {
    train_weights(layout, trajectories, None, Some(function), cfg, device, progress)
}

/// Trains a context-conditioned CFM meta-model (module `context`): every run of `trajectories` belongs to the
/// task `tasks.run_task` names, and each training row is conditioned on a fresh context set from its run's
/// task pool (or, with probability `drop_prob`, on the null context). In weight space like [`train_meta`],
/// or in the latent of `latent` like [`train_meta_latent`]. `cfg.context` must be set.
pub fn train_meta_conditioned(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    tasks: &ContextTasks,
    latent: Option<&WeightAutoencoder>,
    cfg: &MetaTrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<MetaModel> {
    if cfg.context.is_none() {
        return Err(Error::Config {
            field: "context",
            reason: "a context-conditioned meta-model needs context settings (MetaTrainConfig::context)".into(),
        });
    }
    tasks.check(layout, trajectories.dim().0)?;
    match latent {
        Some(ae) => train_latent(layout, trajectories, ae, Some(tasks), cfg, device, progress),
        None => train_weights(layout, trajectories, Some(tasks), None, cfg, device, progress),
    }
}

/// Refuses context settings without the tasks they need.
fn check_tasks(cfg: &MetaTrainConfig, tasks: Option<&ContextTasks>) -> Result<()> {
    if cfg.context.is_some() && tasks.is_none() {
        return Err(Error::Config {
            field: "context",
            reason: "context settings need the runs' tasks: train with train_meta_conditioned".into(),
        });
    }
    Ok(())
}

fn train_weights(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    tasks: Option<&ContextTasks>,
    function: Option<FunctionData<'_>>,
    cfg: &MetaTrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<MetaModel> {
    check_tasks(cfg, tasks)?;
    let started = Instant::now();
    let (r, k1, d) = trajectories.dim();
    if d != layout.dim() || r == 0 || k1 < 2 {
        return Err(Error::Shape {
            what: "trajectories",
            expected: format!("[R ≥ 1, K+1 ≥ 2, {}]", layout.dim()),
            got: format!("{:?}", trajectories.shape()),
        });
    }
    let k = k1 - 1;
    cfg.validate(k)?;
    let digest = data_digest(trajectories);
    let mut traj = prepared_trajectories(layout, trajectories, cfg)?;
    let scaling = Scaling::fit(layout, traj.view())?;
    let scale = scaling.per_coordinate(layout)?;
    for mut row in traj.lanes_mut(Axis(2)) {
        row.iter_mut().zip(&scale).for_each(|(v, s)| *v /= s);
    }
    let source = FlowSource::weights(layout, cfg.source, &scaling)?;
    let functional = match (&cfg.functional, function) {
        (Some(f), Some(data)) => {
            Some(FunctionalTerm::new(layout, data, f, &scale, rng::stream(cfg.seed, STREAM_FUNCTION), device)?)
        }
        (None, None) => None,
        (Some(_), None) => {
            let reason = "the functional term needs data rows: train with train_meta_functional".into();
            return Err(Error::Config { field: "functional", reason });
        }
        (None, Some(_)) => {
            let reason = "train_meta_functional needs functional settings (MetaTrainConfig::functional)".into();
            return Err(Error::Config { field: "functional", reason });
        }
    };
    let (weights, final_loss) = fit(traj.view(), &source, layout, tasks, functional, cfg, device, progress)?;
    let info = ModelInfo {
        layout: layout.clone(),
        config: cfg.clone(),
        checkpoints: k,
        scaling,
        data_digest: digest,
        train_seconds: started.elapsed().as_secs_f64(),
        final_loss,
        activation: None,
        tuning: None,
        latent: None,
    };
    MetaModel::from_parts(info, weights, device)
}

/// Trains a CFM meta-model in the latent space of `autoencoder` (module `space`): the finals of
/// `trajectories` `[R, K+1, D]`, aligned exactly as the autoencoder's inputs were, are encoded, scaled to unit
/// spread and matched from N(0, I) source samples; generation decodes. Only CFM with the independent or OT
/// coupling and the Gaussian source: MMFM and JKO would need latents of intermediate checkpoints, which the
/// autoencoder never saw, and the trajectory coupling the encodings of Kaiming inits (see module `space`).
pub fn train_meta_latent(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    autoencoder: &WeightAutoencoder,
    cfg: &MetaTrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<MetaModel> {
    train_latent(layout, trajectories, autoencoder, None, cfg, device, progress)
}

fn train_latent(
    layout: &Layout,
    trajectories: ArrayView3<f32>,
    autoencoder: &WeightAutoencoder,
    tasks: Option<&ContextTasks>,
    cfg: &MetaTrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<MetaModel> {
    check_tasks(cfg, tasks)?;
    let started = Instant::now();
    let refuse = |field, reason: String| Err(Error::Config { field, reason });
    if autoencoder.layout() != layout {
        return refuse(
            "latent",
            format!("the autoencoder is over {}, the trajectories over {layout}", autoencoder.layout()),
        );
    }
    if cfg.objective != Objective::Cfm {
        return refuse("objective", format!("a latent-space meta-model is trained with CFM, not {:?}", cfg.objective));
    }
    if cfg.functional.is_some() {
        return refuse(
            "functional",
            "the functional term is for weight space; an autoencoder has its own (train-vae --function-weight)".into(),
        );
    }
    if cfg.coupling == Coupling::Trajectory {
        return refuse(
            "coupling",
            "a latent-space flow starts from fresh N(0, I) samples: use independent or ot".into(),
        );
    }
    if cfg.source != SourceKind::Gaussian {
        return refuse(
            "source",
            "Kaiming uniform is a law over MLP weights; a latent-space flow starts from N(0, I) (source gaussian)"
                .into(),
        );
    }
    let finals = autoencoder_inputs(layout, trajectories, autoencoder.config())?;
    let k = trajectories.dim().1 - 1;
    cfg.validate(k)?;
    let latents = autoencoder.encode(finals.view())?;
    let scaling = Scaling::fit_flat(latents.view());
    let (r, l) = latents.dim();
    // CFM reads only the last checkpoint and fresh source samples: a one-interval set whose checkpoint 0 is
    // never read.
    let mut z = Array3::<f32>::zeros((r, 2, l));
    z.index_axis_mut(Axis(1), 1).assign(&(latents / scaling.scales[0]));
    let source = FlowSource::Latent { dim: l };
    let (weights, final_loss) = fit(z.view(), &source, layout, tasks, None, cfg, device, progress)?;
    let info = ModelInfo {
        layout: layout.clone(),
        config: cfg.clone(),
        checkpoints: k,
        scaling,
        data_digest: data_digest(trajectories),
        train_seconds: started.elapsed().as_secs_f64(),
        final_loss,
        activation: None,
        tuning: None,
        latent: Some(Box::new(autoencoder.clone())),
    };
    MetaModel::from_parts(info, weights, device)
}

/// The training loop shared by both spaces: `cfg.steps` AdamW steps on the objective's minibatches of the
/// scaled trajectories `z` `[R, K+1, d]` with fresh samples of `source`, each row conditioned on a context
/// set of its run's task when `tasks` are given (base classifiers of `layout`), plus the `functional` term when
/// given. Returns the sampling weights (sorted by name; the EMA copy when kept) and the mean loss of the last
/// steps.
#[allow(clippy::too_many_arguments)]
fn fit<'a>(
    z: ArrayView3<'a, f32>,
    source: &'a FlowSource,
    layout: &Layout,
    tasks: Option<&ContextTasks>,
    mut functional: Option<FunctionalTerm<'_>>,
    cfg: &MetaTrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<(Vec<(String, Tensor)>, f32)> {
    let (d, k) = (z.dim().2, z.dim().1 - 1);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let net = match cfg.objective {
        Objective::Jko => Net::Potential(PotentialNet::new(d, &cfg.net, cfg.jko_baseline_knots(k), vb.clone())?),
        Objective::Cfm | Objective::Mmfm => Net::Velocity(VelocityNet::new(d, &cfg.net, vb.clone())?),
    };
    let context = match (&cfg.context, tasks) {
        (Some(c), Some(tasks)) => Some((ContextEncoder::new(layout, c, cfg.net.cond_dim, vb)?, c, tasks)),
        _ => None,
    };
    let mut crng = rng::stream(cfg.seed, STREAM_CONTEXT);
    seeded_init(&varmap, &mut rng::stream(cfg.seed, STREAM_INIT))?;
    let precond = match net {
        Net::Velocity(_) => Some(set_precond(&varmap, z, source, cfg, device)?),
        Net::Potential(_) => None,
    };
    let steps = if cfg.jko_baseline() { Some(set_step_stats(&varmap, z, source, cfg, device)?) } else { None };
    let vars = sorted_vars(&varmap);
    let params = ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() };
    // The preconditioner's statistics are data, not parameters: neither trained nor averaged.
    let is_trained = |name: &str| !name.starts_with(PRECOND_PREFIX);
    let trained: Vec<Var> = vars.iter().filter(|(n, _)| is_trained(n)).map(|(_, v)| v.clone()).collect();
    let mut opt = AdamWEma::new(trained, params, cfg.ema_decay)?;

    let sampler = BatchSampler {
        z: z.view(),
        source,
        objective: cfg.objective,
        coupling: cfg.coupling,
        knots: cfg.knots(k),
        sigma: cfg.sigma,
        batch: cfg.batch_size,
        steps: steps.as_ref(),
    };
    let mut brng = rng::stream(cfg.seed, STREAM_BATCH);
    let mut recent = Vec::with_capacity(FINAL_LOSS_WINDOW);
    for step in 0..cfg.steps {
        if cfg.schedule == LrSchedule::Cosine {
            let frac = step as f64 / cfg.steps as f64;
            opt.set_learning_rate(cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
        }
        let batch = sampler.sample(&mut brng)?;
        let c = match &context {
            Some((encoder, c, tasks)) => {
                let runs = batch.runs.as_deref().expect("CFM batches name their runs");
                let (sets, drop) = draw_step(tasks, c, runs.len(), &mut crng);
                let task: Vec<usize> = runs.iter().map(|&r| tasks.run_task[r]).collect();
                Some(encoder.row_contexts(&encoder.encode_sets(&sets, device)?, &task, &drop)?)
            }
            None => None,
        };
        let endpoint = precond.as_ref().filter(|_| cfg.predicts_endpoint());
        let resid = residual(&net, &batch, c.as_ref(), endpoint, device)?;
        let mut loss = resid.sqr().and_then(|r| r.sum(1)).and_then(|r| r.mean(0)).op("loss")?;
        if let Some(f) = functional.as_mut() {
            // The residual is x̂_1 − y with y = x + (1 − t)(x_1 − x_0), so x̂_1 = residual + y.
            let runs = batch.runs.as_deref().expect("CFM and MMFM batches name their runs");
            let x1 = z.index_axis(Axis(1), k).select(Axis(0), runs);
            let x_hat = (resid + to_tensor(&path_endpoints(&batch), device)?).op("predicted endpoints")?;
            loss = (loss + f.term(&x_hat, &x1, &batch.t)?).op("loss")?;
        }
        let value = loss.to_scalar::<f32>().op("read loss")?;
        if !value.is_finite() {
            return Err(Error::Diverged { step, loss: value });
        }
        opt.backward_step(&loss)?;
        if recent.len() == FINAL_LOSS_WINDOW {
            recent.remove(0);
        }
        recent.push(value);
        progress(step + 1, cfg.steps, value);
    }
    let final_loss = recent.iter().sum::<f32>() / recent.len().max(1) as f32;

    let mut kept = opt.weights()?.into_iter();
    let mut weights = Vec::with_capacity(vars.len());
    for (name, var) in &vars {
        let w = match is_trained(name) {
            true => kept.next().expect("one kept tensor per trained variable"),
            false => var.as_tensor().copy().op("copy weights")?.detach(),
        };
        weights.push((name.clone(), w));
    }
    Ok((weights, final_loss))
}

enum Net {
    Velocity(VelocityNet),
    Potential(PotentialNet),
}

/// Sets the preconditioner's statistics (module `precond`): the per-coordinate mean and variance of the
/// scaled final checkpoints, and the variance of the scaled source, estimated from 4,096 seeded samples.
/// Returns them for the training loss.
fn set_precond(
    varmap: &VarMap,
    z: ArrayView3<f32>,
    source: &FlowSource,
    cfg: &MetaTrainConfig,
    device: &Device,
) -> Result<PrecondStats> {
    let k = z.dim().1 - 1;
    let finals = z.index_axis(Axis(1), k);
    let mean = |a: ndarray::ArrayView2<f32>| a.mean_axis(Axis(0)).expect("at least one row");
    let var = |a: ndarray::ArrayView2<f32>| a.var_axis(Axis(0), 0.0).mapv(|v| v.max(MIN_VAR));
    let src = source.sample(4096, &mut rng::stream(cfg.seed, STREAM_PRECOND));
    let stats = PrecondStats { mu1: mean(finals).to_vec(), var0: var(src.view()).to_vec(), var1: var(finals).to_vec() };
    for (name, values) in [("mu1", &stats.mu1), ("var0", &stats.var0), ("var1", &stats.var1)] {
        set_statistic(varmap, name, Tensor::from_slice(values, values.len(), device))?;
    }
    Ok(stats)
}

/// Sets JKO's baseline statistics (module `precond`): the per-coordinate mean and standard deviation of each
/// chosen marginal of the scaled checkpoints, marginal 0 estimated from 4,096 seeded source samples (where
/// generation starts). Returns them for the minibatches.
fn set_step_stats(
    varmap: &VarMap,
    z: ArrayView3<f32>,
    source: &FlowSource,
    cfg: &MetaTrainConfig,
    device: &Device,
) -> Result<StepStats> {
    let src = source.sample(4096, &mut rng::stream(cfg.seed, STREAM_PRECOND));
    let knots = cfg.knots(z.dim().1 - 1);
    let mut marginals = vec![src.view()];
    marginals.extend(knots[1..].iter().map(|&k| z.index_axis(Axis(1), k)));
    let stats = StepStats::fit(&marginals);
    for (name, a) in [("knot_mean", &stats.mean), ("knot_sd", &stats.sd)] {
        let a = a.as_standard_layout();
        set_statistic(varmap, name, Tensor::from_slice(a.as_slice().expect("standard layout"), a.dim(), device))?;
    }
    Ok(stats)
}

/// Writes `value` into the untrained statistic `PRECOND_PREFIX + name` that the network declared.
fn set_statistic(varmap: &VarMap, name: &str, value: candle_core::Result<Tensor>) -> Result<()> {
    let t = value.op("upload preconditioner")?;
    let data = varmap.data().lock().expect("var map lock poisoned");
    let var = data.get(&format!("{PRECOND_PREFIX}{name}")).expect("the network declares its preconditioner");
    var.set(&t).op("set preconditioner")
}

/// The VarMap's variables sorted by name (its HashMap order must not reach the optimiser or the file).
pub(crate) fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("var map lock poisoned");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// y = x + (1 − t)·target for every row of a velocity batch: the endpoint of the path's tangent through x.
fn path_endpoints(batch: &Batch) -> Array2<f32> {
    let mut y = batch.x.clone();
    for ((mut row, u), &t) in y.rows_mut().into_iter().zip(batch.target.rows()).zip(&batch.t) {
        row.zip_mut_with(&u, |y, &u| *y += (1.0 - t) * u);
    }
    y
}

/// The per-row residual `[B, D]` whose squared norm, averaged over the batch, is the loss: v(x, t) − target
/// (velocity), x̂_1(x, t) − (x + (1 − t)·target) (endpoint prediction with the preconditioner's statistics
/// `endpoint`: x + (1 − t)(x_1 − x_0) is the endpoint x_1 of the straight path through x), or
/// τ ∇V(x, t) + target (JKO). `c` `[B, cond_dim]`: each row's conditioning vector (context-conditioned models).
fn residual(
    net: &Net,
    batch: &Batch,
    c: Option<&Tensor>,
    endpoint: Option<&PrecondStats>,
    device: &Device,
) -> Result<Tensor> {
    let x = to_tensor(&batch.x, device)?;
    let t = Tensor::from_slice(&batch.t, batch.t.len(), device).op("upload minibatch")?;
    let resid = match (net, &batch.tau) {
        (Net::Velocity(v), _) => match endpoint {
            Some(stats) => {
                let (c_out, offset) = stats.residual_terms(batch.x.view(), &batch.t, batch.target.view());
                let (c_out, offset) = (to_tensor(&c_out, device)?, to_tensor(&offset, device)?);
                (v.forward(&x, &t, c)? * c_out).and_then(|r| r + offset).op("residual")?
            }
            None => (v.forward(&x, &t, c)? - to_tensor(&batch.target, device)?).op("residual")?,
        },
        (Net::Potential(p), Some(tau)) => {
            let tau = Tensor::from_slice(tau, (tau.len(), 1), device).op("upload minibatch")?;
            let g = p.grad_x_graph(&x, &t, None)?;
            (g.broadcast_mul(&tau).op("jko residual")? + to_tensor(&batch.target, device)?).op("jko residual")?
        }
        (Net::Potential(_), None) => unreachable!("JKO batches carry τ"),
    };
    Ok(resid)
}
