//! Where a meta-model's flow runs: the base classifiers' weight space, or a weight autoencoder's latent space
//! (METHOD.md §2, "optional parts"; issue 4).
//!
//! * **Weights**: flow coordinates z = θ / s with one scale per layout tensor ([`Scaling::fit`]); the source
//!   is a weight-space law (Kaiming uniform by default) mapped the same way.
//! * **Latent**: z = encode(θ) / s with one scale s for the whole latent ([`Scaling::fit_flat`] over the
//!   training runs' latents, so the data have the unit spread the weight-space z has, and one σ and one
//!   learning rate serve both); θ = decode(s z). The source is N(0, I) in z. Kaiming uniform is a law over
//!   MLP weights: the encoder, trained on final checkpoints only, maps it to some region of the latent that
//!   says nothing about trained nets, so it would be informative in name only.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

use super::{prepared_trajectories, MetaModel, Result, Scaling};
use crate::rng::Rng;
use crate::space::{Gaussian, Layout, SourceKind};

/// The source p_0, sampled directly in flow coordinates.
#[derive(Debug, Clone)]
pub(crate) enum FlowSource {
    /// A weight-space source, then z = θ / s.
    Weights { layout: Layout, kind: SourceKind, scale: Vec<f32> },
    /// N(0, I) over a latent of width `dim`.
    Latent { dim: usize },
}

impl FlowSource {
    /// The source of weight-space flows over `layout` with the per-tensor `scaling`.
    pub fn weights(layout: &Layout, kind: SourceKind, scaling: &Scaling) -> Result<Self> {
        Ok(Self::Weights { layout: layout.clone(), kind, scale: scaling.per_coordinate(layout)? })
    }

    /// Per flow coordinate, the source's variance: Kaiming uniform ±1/√fan_in has b²/3 = 1/(3 fan_in), the
    /// unit Gaussian 1, both divided by s² in weight space; 1 in a latent.
    pub fn variance(&self) -> Vec<f32> {
        match self {
            Self::Weights { layout, kind, scale } => {
                let mut var = vec![0f32; layout.dim()];
                for t in layout.tensors() {
                    let v = match kind {
                        SourceKind::Kaiming => 1.0 / (3.0 * t.fan_in as f32),
                        SourceKind::Gaussian => 1.0,
                    };
                    var[t.range()].iter_mut().for_each(|x| *x = v);
                }
                var.iter().zip(scale).map(|(v, s)| v / (s * s)).collect()
            }
            Self::Latent { dim } => vec![1.0; *dim],
        }
    }

    /// `n` samples `[n, dim]` in flow coordinates.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Array2<f32> {
        match self {
            Self::Weights { layout, kind, scale } => {
                let mut x = kind.source().sample(layout, n, rng);
                for mut row in x.rows_mut() {
                    row.iter_mut().zip(scale).for_each(|(v, s)| *v /= s);
                }
                x
            }
            Self::Latent { dim } => {
                let mut x = Array2::zeros((n, *dim));
                Gaussian::default().fill(rng, x.as_slice_mut().expect("fresh standard layout"));
                x
            }
        }
    }
}

impl MetaModel {
    /// Width of the space the flow runs in: D for a weight-space model, the latent width for a latent one.
    pub fn flow_dim(&self) -> usize {
        match self.latent() {
            Some(ae) => ae.latent_dim(),
            None => self.layout().dim(),
        }
    }

    /// The source in flow coordinates.
    pub(crate) fn flow_source(&self) -> Result<FlowSource> {
        match self.latent() {
            Some(ae) => Ok(FlowSource::Latent { dim: ae.latent_dim() }),
            None => FlowSource::weights(self.layout(), self.config().source, self.scaling()),
        }
    }

    /// Flow coordinates of weight vectors `theta` `[n, D]`.
    pub(crate) fn flow_coords(&self, theta: ArrayView2<f32>) -> Result<Array2<f32>> {
        match self.latent() {
            Some(ae) => Ok(ae.encode(theta)? / self.latent_scale()),
            None => self.scaling().to_flow(self.layout(), theta),
        }
    }

    /// Weight vectors `[n, D]` of flow coordinates `z` `[n, flow_dim]`.
    pub(crate) fn weights_of(&self, z: ArrayView2<f32>) -> Result<Array2<f32>> {
        match self.latent() {
            Some(ae) => ae.decode((&z * self.latent_scale()).view()),
            None => self.scaling().from_flow(self.layout(), z),
        }
    }

    /// The gradient with respect to flow coordinates `z` `[n, flow_dim]` of a function of θ = weights_of(z),
    /// given its gradient `grad_theta` `[n, D]` at those θ: s ⊙ g in weight space, s Jᵀ g through the decoder
    /// in a latent (the chain rule a reward's gradient takes into the flow).
    pub(crate) fn pull_back(&self, z: ArrayView2<f32>, grad_theta: ArrayView2<f32>) -> Result<Array2<f32>> {
        match self.latent() {
            Some(ae) => {
                let s = self.latent_scale();
                Ok(ae.decode_vjp((&z * s).view(), grad_theta)? * s)
            }
            None => {
                let scale = self.scaling().per_coordinate(self.layout())?;
                if grad_theta.ncols() != scale.len() {
                    let got = grad_theta.ncols();
                    return Err(crate::space::Error::Dim { expected: scale.len(), got }.into());
                }
                Ok(&grad_theta * &ndarray::ArrayView1::from(&scale))
            }
        }
    }

    /// `trajectories` `[R, K+1, D]` aligned as this model's training data were (a latent model's by its
    /// autoencoder's alignment): what evaluations that compare generated and trained weights must use.
    pub fn prepared_trajectories(&self, trajectories: ArrayView3<f32>) -> Result<Array3<f32>> {
        match self.latent() {
            Some(ae) => prepared_trajectories(self.layout(), trajectories, &ae.config().alignment()),
            None => prepared_trajectories(self.layout(), trajectories, self.config()),
        }
    }

    /// The latent's one scale (latent models only; 1 otherwise).
    fn latent_scale(&self) -> f32 {
        match (self.latent(), self.scaling().scales.as_slice()) {
            (Some(_), [s]) => *s,
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use ndarray::{Array2, Array3};
    use rand::Rng as _;

    use super::super::{train_autoencoder, train_meta, train_meta_latent, AutoencoderConfig, MetaTrainConfig};
    use super::*;
    use crate::rng;

    fn runs(layout: &Layout) -> Array3<f32> {
        let mut r = rng::rng(3);
        Array3::from_shape_fn((32, 2, layout.dim()), |_| r.random_range(-1.0..1.0))
    }

    /// ⟨g, weights_of(z)⟩ differentiated by central differences in f64 of f32 evaluations.
    fn finite_difference(m: &MetaModel, z: &Array2<f32>, g: &Array2<f32>, h: f32) -> Array2<f32> {
        let f = |z: &Array2<f32>| -> f64 {
            let theta = m.weights_of(z.view()).expect("decodes");
            theta.iter().zip(g.iter()).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
        };
        let mut out = Array2::zeros(z.raw_dim());
        for idx in ndarray::indices(z.raw_dim()) {
            let (mut up, mut down) = (z.clone(), z.clone());
            up[idx] += h;
            down[idx] -= h;
            out[idx] = ((f(&up) - f(&down)) / (2.0 * f64::from(h))) as f32;
        }
        out
    }

    #[test]
    fn pull_back_is_the_gradient_of_a_function_of_the_decoded_weights() {
        let layout = Layout::parse("2-3-2").unwrap();
        let traj = runs(&layout);
        let ae_cfg =
            AutoencoderConfig { latent_dim: 3, hidden: vec![8], steps: 20, heldout: 4, ..AutoencoderConfig::default() };
        let ae = train_autoencoder(&layout, traj.view(), &ae_cfg, None, &Device::Cpu, &mut |_, _, _| {}).unwrap();
        let cfg = MetaTrainConfig { steps: 2, source: SourceKind::Gaussian, ..MetaTrainConfig::default() };
        let latent = train_meta_latent(&layout, traj.view(), &ae, &cfg, &Device::Cpu, &mut |_, _, _| {}).unwrap();
        let weights = train_meta(&layout, traj.view(), &cfg, &Device::Cpu, &mut |_, _, _| {}).unwrap();
        let mut r = rng::rng(4);
        let g = Array2::from_shape_fn((2, layout.dim()), |_| r.random_range(-1.0f32..1.0));
        for (m, h) in [(&latent, 1e-2), (&weights, 1e-1)] {
            let z = Array2::from_shape_fn((2, m.flow_dim()), |_| r.random_range(-0.5f32..0.5));
            let analytic = m.pull_back(z.view(), g.view()).unwrap();
            let numeric = finite_difference(m, &z, &g, h);
            let err = (&analytic - &numeric).mapv(f32::abs).fold(0f32, |a, &b| a.max(b));
            let size = numeric.mapv(f32::abs).fold(0f32, |a, &b| a.max(b));
            assert!(err <= 2e-2 * size, "pull-back {analytic:?} vs finite differences {numeric:?}");
        }
        assert!(weights.pull_back(Array2::zeros((1, 17)).view(), Array2::zeros((1, 16)).view()).is_err());
    }
}
