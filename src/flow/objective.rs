//! Minibatches (x, t, target) of the three objectives, drawn from scaled trajectories with a seeded RNG.
//!
//! All arrays are in the flow coordinates z = θ / s. Marginal 0 of CFM and MMFM is made of *fresh* source
//! samples (unless the coupling is [`Coupling::Trajectory`]); JKO pairs consecutive checkpoints of one run.

use ndarray::{s, Array2, Array3, ArrayView3, Axis};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use super::coupling::{gather, ot_pairing};
use super::precond::StepStats;
use super::space::FlowSource;
use super::spline::NaturalCubicSpline;
use super::{Coupling, Objective, Result};
use crate::rng::Rng;

/// One minibatch. Velocity objectives regress v(x, t) on `target`; JKO minimises ‖τ ∇V(x, t) + target‖² with
/// t = t_{k+1} and, for a raw potential (JKOnet*'s first-order condition at the arrival point), x = x_{k+1},
/// target = x_{k+1} − x_k; with the Gaussian baseline B_k (module `precond`), x = x_k, target = x_{k+1} − B_k(x_k),
/// so that the explicit step B_k(x) − τ ∇F(x) that generation takes from x_k lands on x_{k+1}.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub x: Array2<f32>,
    pub t: Vec<f32>,
    pub target: Array2<f32>,
    /// JKO only: the time gap τ of each pair.
    pub tau: Option<Vec<f32>>,
    /// CFM and MMFM: the run each row's endpoint x_1 (MMFM: its chain's last knot) comes from, after the
    /// coupling reordered them, so a context-conditioned model can give each row its run's task and the
    /// functional term can compare predictions with that run's.
    pub runs: Option<Vec<usize>>,
}

/// Draws minibatches for one objective.
pub(crate) struct BatchSampler<'a> {
    /// Scaled trajectories `[R, K+1, D]`.
    pub z: ArrayView3<'a, f32>,
    /// The source, sampled in flow coordinates.
    pub source: &'a FlowSource,
    pub objective: Objective,
    pub coupling: Coupling,
    /// Checkpoint indices of the marginals (0 … K).
    pub knots: Vec<usize>,
    pub sigma: f32,
    pub batch: usize,
    /// JKO with the Gaussian baseline: its statistics, one row per knot.
    pub steps: Option<&'a StepStats>,
}

impl BatchSampler<'_> {
    fn k(&self) -> usize {
        self.z.len_of(Axis(1)) - 1
    }

    fn time(&self, knot: usize) -> f64 {
        knot as f64 / self.k() as f64
    }

    fn runs(&self, rng: &mut Rng) -> Vec<usize> {
        let r = self.z.len_of(Axis(0));
        (0..self.batch).map(|_| rng.random_range(0..r)).collect()
    }

    fn checkpoint(&self, runs: &[usize], k: usize) -> Array2<f32> {
        self.z.slice(s![.., k, ..]).select(Axis(0), runs)
    }

    /// Fresh source samples in flow coordinates.
    fn fresh(&self, rng: &mut Rng) -> Array2<f32> {
        self.source.sample(self.batch, rng)
    }

    fn noise(&self, rng: &mut Rng, x: &mut Array2<f32>) {
        if self.sigma > 0.0 {
            x.iter_mut()
                .for_each(|v| *v += self.sigma * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng));
        }
    }

    /// Pairs `next` (checkpoints of `runs`) with `prev` by OT — rows of `next` and their runs reordered
    /// together — unless the coupling says otherwise.
    fn couple(&self, prev: &Array2<f32>, next: Array2<f32>, runs: Vec<usize>) -> (Array2<f32>, Vec<usize>) {
        match self.coupling {
            Coupling::Ot => {
                let order = ot_pairing(prev.view(), next.view());
                (gather(next.view(), &order), order.iter().map(|&i| runs[i]).collect())
            }
            Coupling::Independent | Coupling::Trajectory => (next, runs),
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> Result<Batch> {
        match self.objective {
            Objective::Cfm => Ok(self.cfm(rng)),
            Objective::Mmfm => self.mmfm(rng),
            Objective::Jko => Ok(self.jko(rng)),
        }
    }

    fn cfm(&self, rng: &mut Rng) -> Batch {
        let runs = self.runs(rng);
        let x1 = self.checkpoint(&runs, self.k());
        let x0 = if self.coupling == Coupling::Trajectory { self.checkpoint(&runs, 0) } else { self.fresh(rng) };
        let (x1, runs) = self.couple(&x0, x1, runs);
        let t: Vec<f32> = (0..self.batch).map(|_| rng.random::<f32>()).collect();
        let mut x = x0.clone();
        for ((mut row, r1), &ti) in x.rows_mut().into_iter().zip(x1.rows()).zip(&t) {
            row.zip_mut_with(&r1, |a, &b| *a = (1.0 - ti) * *a + ti * b);
        }
        self.noise(rng, &mut x);
        Batch { x, t, target: x1 - x0, tau: None, runs: Some(runs) }
    }

    fn mmfm(&self, rng: &mut Rng) -> Result<Batch> {
        let (b, d, n) = (self.batch, self.z.len_of(Axis(2)), self.knots.len());
        let mut chain = Array3::<f32>::zeros((b, n, d));
        let shared = (self.coupling == Coupling::Trajectory).then(|| self.runs(rng));
        let mut prev = match &shared {
            Some(runs) => self.checkpoint(runs, 0),
            None => self.fresh(rng),
        };
        chain.slice_mut(s![.., 0, ..]).assign(&prev);
        // The runs of the knot drawn last; after the loop, those of the chain's endpoints (the last knot is K).
        let mut drawn = Vec::new();
        for (j, &knot) in self.knots.iter().enumerate().skip(1) {
            let next = match &shared {
                Some(runs) => self.checkpoint(runs, knot),
                None => {
                    let runs = self.runs(rng);
                    let next = self.checkpoint(&runs, knot);
                    let (next, runs) = self.couple(&prev, next, runs);
                    drawn = runs;
                    next
                }
            };
            chain.slice_mut(s![.., j, ..]).assign(&next);
            prev = next;
        }
        let times: Vec<f64> = self.knots.iter().map(|&k| self.time(k)).collect();
        let spline = NaturalCubicSpline::fit(&times, chain.view())?;
        let t: Vec<f32> = (0..b).map(|_| rng.random::<f32>()).collect();
        let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
        let (mut x, target) = spline.eval(&t64)?;
        self.noise(rng, &mut x);
        Ok(Batch { x, t, target, tau: None, runs: Some(shared.unwrap_or(drawn)) })
    }

    fn jko(&self, rng: &mut Rng) -> Batch {
        let (b, d) = (self.batch, self.z.len_of(Axis(2)));
        let r = self.z.len_of(Axis(0));
        let pairs = self.knots.len() - 1;
        let (mut from, mut to) = (Array2::zeros((b, d)), Array2::zeros((b, d)));
        let (mut t, mut tau, mut step) = (Vec::with_capacity(b), Vec::with_capacity(b), Vec::with_capacity(b));
        for i in 0..b {
            let run = rng.random_range(0..r);
            let j = rng.random_range(0..pairs);
            let (k0, k1) = (self.knots[j], self.knots[j + 1]);
            from.row_mut(i).assign(&self.z.slice(s![run, k0, ..]));
            to.row_mut(i).assign(&self.z.slice(s![run, k1, ..]));
            t.push(self.time(k1) as f32);
            tau.push((self.time(k1) - self.time(k0)) as f32);
            step.push(j);
        }
        match self.steps {
            Some(stats) => {
                // Noisy departures teach the correction to steer generated states, which drift off the
                // training runs, back towards the next marginal (docs/FLOW.md measures σ).
                self.noise(rng, &mut from);
                let (mut target, mut base) = (to, ndarray::Array1::zeros(d));
                for ((x, mut row), &j) in from.rows().into_iter().zip(target.rows_mut()).zip(&step) {
                    stats.step(x, j, base.view_mut());
                    row -= &base;
                }
                Batch { x: from, t, target, tau: Some(tau), runs: None }
            }
            None => Batch { target: &to - &from, x: to, t, tau: Some(tau), runs: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use crate::space::{Layout, SourceKind};

    fn fixture() -> (Layout, Array3<f32>) {
        let layout = Layout::parse("1-2").unwrap();
        // Run r, checkpoint k: every coordinate equals 10 r + k.
        let z = Array3::from_shape_fn((5, 4, layout.dim()), |(r, k, _)| (10 * r + k) as f32);
        (layout, z)
    }

    #[test]
    fn trajectory_coupling_and_jko_pairs_stay_within_one_run() {
        let (layout, z) = fixture();
        let source =
            FlowSource::Weights { layout: layout.clone(), kind: SourceKind::Kaiming, scale: vec![1.0; layout.dim()] };
        let mut bs = BatchSampler {
            z: z.view(),
            source: &source,
            objective: Objective::Cfm,
            coupling: Coupling::Trajectory,
            knots: vec![0, 3],
            sigma: 0.0,
            batch: 16,
            steps: None,
        };
        let mut r = rng::rng(1);
        let b = bs.sample(&mut r).unwrap();
        for i in 0..16 {
            // x = x0 + t·(x1 − x0) and x1 − x0 = 3 within a run.
            assert!(b.target.row(i).iter().all(|&v| v == 3.0));
            let x0 = b.x[[i, 0]] - 3.0 * b.t[i];
            assert!((x0 / 10.0 - (x0 / 10.0).round()).abs() < 1e-4, "x0 {x0} is not an init");
        }
        bs.objective = Objective::Jko;
        bs.knots = vec![0, 2, 3];
        let b = bs.sample(&mut r).unwrap();
        let tau = b.tau.unwrap();
        for (i, &tau_i) in tau.iter().enumerate() {
            let k1 = (b.x[[i, 0]] as usize) % 10;
            assert!(k1 == 2 || k1 == 3);
            let gap = if k1 == 2 { 2.0 } else { 1.0 };
            assert_eq!(b.target[[i, 1]], gap);
            assert!((tau_i - gap / 3.0).abs() < 1e-6 && (b.t[i] - k1 as f32 / 3.0).abs() < 1e-6);
        }
    }

    #[test]
    fn mmfm_passes_through_the_marginals_at_the_knot_times() {
        let (layout, z) = fixture();
        let source =
            FlowSource::Weights { layout: layout.clone(), kind: SourceKind::Kaiming, scale: vec![1.0; layout.dim()] };
        let bs = BatchSampler {
            z: z.view(),
            source: &source,
            objective: Objective::Mmfm,
            coupling: Coupling::Ot,
            knots: vec![0, 2, 3],
            sigma: 0.0,
            batch: 8,
            steps: None,
        };
        let b = bs.sample(&mut rng::rng(2)).unwrap();
        assert_eq!(b.x.dim(), (8, 4));
        assert!(b.x.iter().chain(b.target.iter()).all(|v| v.is_finite()));
    }
}
