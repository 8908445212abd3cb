//! Source distributions p_0 over weight space.

use ndarray::Array2;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::Layout;
use crate::rng::Rng;

/// A distribution over weight vectors of a layout, sampled from a caller-provided seeded generator.
pub trait Source {
    /// Fills `theta` (length `layout.dim()`) with one sample.
    fn sample_into(&self, layout: &Layout, rng: &mut Rng, theta: &mut [f32]);

    /// `n` samples as rows of an `[n, D]` matrix.
    fn sample(&self, layout: &Layout, n: usize, rng: &mut Rng) -> Array2<f32> {
        let mut out = Array2::zeros((n, layout.dim()));
        for mut row in out.rows_mut() {
            self.sample_into(layout, rng, row.as_slice_mut().expect("rows of a standard-layout array are contiguous"));
        }
        out
    }
}

/// Kaiming uniform: every tensor (weights and biases alike) uniform in ±1/√fan_in, as PyTorch initialises
/// `nn.Linear`. The informative source of the paper.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KaimingUniform;

impl Source for KaimingUniform {
    fn sample_into(&self, layout: &Layout, rng: &mut Rng, theta: &mut [f32]) {
        assert_eq!(theta.len(), layout.dim(), "theta length must equal the layout dimension");
        for t in layout.tensors() {
            let bound = 1.0 / (t.fan_in as f32).sqrt();
            for v in &mut theta[t.range()] {
                *v = rng.random_range(-bound..bound);
            }
        }
    }
}

/// Isotropic Gaussian N(0, std² I): the uninformative ablation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaussian {
    /// Standard deviation of every coordinate.
    pub std: f32,
}

impl Default for Gaussian {
    fn default() -> Self {
        Self { std: 1.0 }
    }
}

impl Gaussian {
    /// Fills `out` with independent N(0, std²) draws: the same distribution over any flat vector, e.g. an
    /// autoencoder's latent, which has no layout.
    pub fn fill(&self, rng: &mut Rng, out: &mut [f32]) {
        for v in out.iter_mut() {
            let z: f32 = StandardNormal.sample(rng);
            *v = self.std * z;
        }
    }
}

impl Source for Gaussian {
    fn sample_into(&self, layout: &Layout, rng: &mut Rng, theta: &mut [f32]) {
        assert_eq!(theta.len(), layout.dim(), "theta length must equal the layout dimension");
        self.fill(rng, theta);
    }
}

/// The source distributions by name, as stored in manifests and chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// [`KaimingUniform`].
    #[default]
    Kaiming,
    /// [`Gaussian`] with unit variance.
    Gaussian,
}

impl SourceKind {
    /// The source as a trait object.
    pub fn source(self) -> Box<dyn Source + Send + Sync> {
        match self {
            Self::Kaiming => Box::new(KaimingUniform),
            Self::Gaussian => Box::new(Gaussian::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn kaiming_uniform_has_the_bounds_and_moments_of_u_pm_1_over_sqrt_fan_in() {
        let layout = Layout::parse("9-16-2").unwrap();
        let x = KaimingUniform.sample(&layout, 2000, &mut rng::rng(1));
        for t in layout.tensors() {
            let b = 1.0 / (t.fan_in as f64).sqrt();
            let vals: Vec<f64> =
                x.columns().into_iter().skip(t.offset).take(t.len()).flatten().map(|&v| v as f64).collect();
            assert!(vals.iter().all(|v| v.abs() <= b), "{} out of bounds", t.name);
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            // U(-b, b): mean 0, variance b²/3; 5 standard errors of tolerance.
            let se_mean = (b * b / 3.0 / n).sqrt();
            assert!(mean.abs() < 5.0 * se_mean, "{}: mean {mean}", t.name);
            assert!((var / (b * b / 3.0) - 1.0).abs() < 0.05, "{}: var {var}", t.name);
        }
    }

    #[test]
    fn gaussian_source_has_unit_moments_and_seeds_reproduce() {
        let layout = Layout::parse("4-8-3").unwrap();
        let g = Gaussian { std: 2.0 };
        let a = g.sample(&layout, 1000, &mut rng::rng(5));
        let b = g.sample(&layout, 1000, &mut rng::rng(5));
        assert_eq!(a, b);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 5.0 * (4.0 / n).sqrt());
        assert!((var / 4.0 - 1.0).abs() < 0.03, "var {var}");
    }
}
