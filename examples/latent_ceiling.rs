//! How much of the trained runs' diversity a latent meta-model *can* generate, and where its samples sit.
//!
//! A latent model generates decoded weights, so its spread is bounded by what the decoder reproduces. This
//! prints, for the trained finals (aligned as the autoencoder saw them), the autoencoder's reconstructions of
//! its training runs (the ceiling), the model's samples, their best-of-k on the training split, and samples with
//! the autoencoder's residuals added back (a random training run's θ − D(E(θ)), or a diagonal Gaussian of the
//! residuals' per-weight RMS), scaled. With a weight-space velocity model (CFM or MMFM on the same trajectory
//! set) as a third argument it also refines the samples SDEdit-style: from t0, the point (1 − t0)·x0 + t0·θ of a
//! fresh Kaiming sample x0 and the decoded θ, 40 Euler steps of the weight-space flow to t = 1. Each line: test accuracy mean [min, max], spread, distance to the nearest
//! trained final, mean weight norm. docs/FLOW.md ("Digits: why the latent trades accuracy for spread") quotes it.
//!
//! ```sh
//! cargo run --release --example latent_ceiling -- TRAJECTORY_DIR LATENT_META_DIR [M] [SEED] [WEIGHT_META_DIR]
//! ```

use std::path::Path;

use candle_core::Device;
use ndarray::{s, Array2, ArrayView2, Axis};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use weightflow::classifier::Mlp;
use weightflow::eval::{accuracy_stats, mean_weight_norm, nn_distance, nn_distance_loo, spread, EvalData};
use weightflow::flow::{autoencoder_inputs, MetaModel, Sampler};
use weightflow::space::{KaimingUniform, Source};
use weightflow::train::TrajectorySet;

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// ODE steps of every sample (eval-gen's default).
const STEPS: usize = 60;
/// Euler steps of the weight-space refinement from t0 to 1.
const REFINE_STEPS: usize = 40;

struct Population<'a> {
    mlp: &'a Mlp,
    data: &'a EvalData,
    finals: ArrayView2<'a, f32>,
}

impl Population<'_> {
    fn print(&self, name: &str, thetas: ArrayView2<f32>) -> R<()> {
        let acc = accuracy_stats(self.mlp, thetas, self.data.test.x.view(), &self.data.test.y)?.stats;
        println!(
            "{name:34} acc {:.4} [{:.3}, {:.3}]  spread {:.3}  nn {:.3}  norm {:.3}",
            acc.mean,
            acc.min,
            acc.max,
            spread(thetas)?,
            nn_distance(thetas, self.finals)?,
            mean_weight_norm(thetas)?
        );
        Ok(())
    }

    /// The `m` of `thetas` with the highest accuracy on the training split (ties by row order).
    fn best(&self, thetas: ArrayView2<f32>, m: usize) -> R<Array2<f32>> {
        let preds = self.mlp.predict(thetas, self.data.train.x.view())?;
        let mut hits: Vec<(usize, usize)> = preds
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i, p.iter().zip(&self.data.train.y).filter(|(a, b)| a == b).count()))
            .collect();
        hits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let keep: Vec<usize> = hits[..m].iter().map(|h| h.0).collect();
        Ok(thetas.select(Axis(0), &keep))
    }
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(2..=5).contains(&args.len()) {
        return Err(
            "usage: latent_ceiling TRAJECTORY_DIR LATENT_META_DIR [M = 256] [SEED = 1] [WEIGHT_META_DIR]".into()
        );
    }
    let m: usize = args.get(2).map_or(Ok(256), |a| a.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(1), |a| a.parse())?;
    let set = TrajectorySet::load(Path::new(&args[0]))?;
    let model = MetaModel::load(Path::new(&args[1]), &Device::Cpu)?;
    let ae = model.latent().ok_or("the meta-model has no latent space (train-meta --latent)")?;
    let layout = set.manifest.layout.clone();
    let finals = autoencoder_inputs(&layout, set.thetas(), ae.config())?;
    // The autoencoder trained on all runs but the last `heldout`.
    let r = finals.nrows().saturating_sub(ae.config().heldout).max(1);
    let seen = finals.slice(s![..r, ..]);
    let recon = ae.reconstruct(seen)?;
    let resid = &seen - &recon;
    let rms: Vec<f32> = resid.columns().into_iter().map(|c| c.mapv(|v| v * v).mean().unwrap_or(0.0).sqrt()).collect();

    let data = EvalData::from_manifest(&set.manifest)?;
    let mlp = Mlp::new(layout, set.manifest.activation);
    let pop = Population { mlp: &mlp, data: &data, finals: finals.view() };
    println!("trained nearest-other-final distance {:.3}", nn_distance_loo(finals.view())?);
    pop.print("trained finals", finals.view())?;
    pop.print(&format!("reconstructions of the {r} seen runs"), recon.view())?;
    let generated = model.generate(m, Sampler::Euler, STEPS, seed)?;
    pop.print("generated", generated.view())?;
    for k in [2, 4] {
        let pool = model.generate(k * m, Sampler::Euler, STEPS, seed)?;
        pop.print(&format!("best-of-{k} on the training split"), pop.best(pool.view(), m)?.view())?;
    }
    let mut rng = weightflow::rng::rng(seed ^ 0x5eed);
    for scale in [0.5f32, 0.75, 1.0] {
        let mut with_run = generated.clone();
        for mut row in with_run.axis_iter_mut(Axis(0)) {
            row.scaled_add(scale, &resid.row(rng.random_range(0..r)));
        }
        pop.print(&format!("+ {scale} × a seen run's residual"), with_run.view())?;
        let mut with_noise = generated.clone();
        for mut row in with_noise.axis_iter_mut(Axis(0)) {
            for (v, s) in row.iter_mut().zip(&rms) {
                let z: f32 = StandardNormal.sample(&mut rng);
                *v += scale * s * z;
            }
        }
        pop.print(&format!("+ {scale} × residual-RMS Gaussian"), with_noise.view())?;
    }
    if let Some(dir) = args.get(4) {
        let field = MetaModel::load(Path::new(dir), &Device::Cpu)?;
        let x0 = KaimingUniform.sample(field.layout(), m, &mut rng);
        for t0 in [0.5f64, 0.7, 0.9] {
            let mut x = &x0 * (1.0 - t0) as f32 + &generated * t0 as f32;
            let dt = (1.0 - t0) / REFINE_STEPS as f64;
            for i in 0..REFINE_STEPS {
                let v = field.velocity_at(x.view(), t0 + i as f64 * dt)?;
                x.scaled_add(dt as f32, &v);
            }
            pop.print(&format!("refined by the weight flow from {t0}"), x.view())?;
        }
    }
    Ok(())
}
