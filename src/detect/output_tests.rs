//! Tests on the deployed classifier's own outputs, no ensemble: f's predictive-entropy KS test and BBSD.
//!
//! * **f-entropy**: KS test between f's per-sample softmax entropies on Q and on the reference sample;
//!   statistic −ln p.
//! * **BBSD** (black-box shift detection): one KS test per softmax output c between Q and the reference
//!   sample, combined by Bonferroni: p = min(1, C · min_c p_c); statistic −ln p.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::error::{check_rows, DetectError};
use super::ks::ks_two_sample;
use super::method::WindowTest;
use super::stats::mean_softmax_entropy;
use crate::classifier::Mlp;

/// f's softmax `[B, C]` on `x`, in f64.
fn softmax(mlp: &Mlp, f: &Array2<f32>, x: ArrayView2<'_, f32>) -> Result<Array2<f64>, DetectError> {
    Ok(mlp.probabilities(f.view(), x)?.index_axis(Axis(0), 0).mapv(f64::from))
}

/// Shared set-up of both tests: f as a one-row matrix and its softmax on the reference sample.
#[derive(Debug, Clone)]
struct Outputs {
    mlp: Mlp,
    f: Array2<f32>,
    reference: Array2<f64>,
}

impl Outputs {
    fn new(mlp: Mlp, f: Array1<f32>, p_ref: ArrayView2<'_, f32>) -> Result<Self, DetectError> {
        let d = mlp.layout.dim();
        if f.len() != d {
            return Err(DetectError::Width { what: "deployed classifier f", expected: d, got: f.len() });
        }
        check_rows("reference sample", p_ref, mlp.layout.n_inputs())?;
        let f = f.insert_axis(Axis(0));
        let reference = softmax(&mlp, &f, p_ref)?;
        Ok(Self { mlp, f, reference })
    }

    fn window(&self, q: ArrayView2<'_, f32>) -> Result<Array2<f64>, DetectError> {
        check_rows("window", q, self.mlp.layout.n_inputs())?;
        softmax(&self.mlp, &self.f, q)
    }
}

fn entropy(p: &Array2<f64>) -> Result<Vec<f64>, DetectError> {
    mean_softmax_entropy(p.mapv(|v| v as f32).insert_axis(Axis(0)).view())
}

/// f's own predictive-entropy KS test (module docs).
#[derive(Debug, Clone)]
pub struct FEntropy {
    outputs: Outputs,
    reference: Vec<f64>,
}

impl FEntropy {
    /// The test of deployed classifier `f` (flat weights) against the reference sample `p_ref`.
    pub fn new(mlp: Mlp, f: Array1<f32>, p_ref: ArrayView2<'_, f32>) -> Result<Self, DetectError> {
        let outputs = Outputs::new(mlp, f, p_ref)?;
        let reference = entropy(&outputs.reference)?;
        Ok(Self { outputs, reference })
    }
}

impl WindowTest for FEntropy {
    fn statistic(&self, q: ArrayView2<'_, f32>, _seed: u64) -> Result<f64, DetectError> {
        let h = entropy(&self.outputs.window(q)?)?;
        Ok(-ks_two_sample(&h, &self.reference)?.p_value.ln())
    }
}

/// BBSD: per-output KS tests with Bonferroni (module docs).
#[derive(Debug, Clone)]
pub struct Bbsd {
    outputs: Outputs,
}

impl Bbsd {
    /// The test of deployed classifier `f` (flat weights) against the reference sample `p_ref`.
    pub fn new(mlp: Mlp, f: Array1<f32>, p_ref: ArrayView2<'_, f32>) -> Result<Self, DetectError> {
        Ok(Self { outputs: Outputs::new(mlp, f, p_ref)? })
    }

    /// The Bonferroni-combined p-value min(1, C · min_c p_c) of window `q`.
    pub fn p_value(&self, q: ArrayView2<'_, f32>) -> Result<f64, DetectError> {
        let p = self.outputs.window(q)?;
        let c = p.ncols();
        let mut min_p = 1.0f64;
        for k in 0..c {
            let a = p.column(k).to_vec();
            let b = self.outputs.reference.column(k).to_vec();
            min_p = min_p.min(ks_two_sample(&a, &b)?.p_value);
        }
        Ok((c as f64 * min_p).min(1.0))
    }
}

impl WindowTest for Bbsd {
    fn statistic(&self, q: ArrayView2<'_, f32>, _seed: u64) -> Result<f64, DetectError> {
        Ok(-self.p_value(q)?.ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::Activation;
    use crate::space::Layout;
    use ndarray::array;

    fn setup() -> (Mlp, Array1<f32>, Array2<f32>) {
        let mlp = Mlp::new(Layout::parse("1-3").unwrap(), Activation::Relu);
        // Logits (x, 0, −x): class probabilities move with x.
        let f = array![1.0f32, 0.0, -1.0, 0.0, 0.0, 0.0];
        let p_ref = Array2::from_shape_fn((30, 1), |(i, _)| i as f32 / 10.0 - 1.5);
        (mlp, f, p_ref)
    }

    #[test]
    fn the_reference_sample_against_itself_gives_p_one() {
        let (mlp, f, p_ref) = setup();
        let fe = FEntropy::new(mlp.clone(), f.clone(), p_ref.view()).unwrap();
        assert_eq!(fe.statistic(p_ref.view(), 0).unwrap(), 0.0);
        let bbsd = Bbsd::new(mlp, f, p_ref.view()).unwrap();
        assert_eq!(bbsd.p_value(p_ref.view()).unwrap(), 1.0);
    }

    #[test]
    fn bbsd_is_the_bonferroni_minimum_of_per_output_ks_tests() {
        let (mlp, f, p_ref) = setup();
        let q = Array2::from_shape_fn((8, 1), |(i, _)| 2.0 + i as f32 / 10.0);
        let bbsd = Bbsd::new(mlp.clone(), f.clone(), p_ref.view()).unwrap();
        // Independently: softmax of (x, 0, −x) by hand, KS per column, times 3.
        let soft = |x: f32| {
            let e = [x.exp() as f64, 1.0, (-x).exp() as f64];
            let s: f64 = e.iter().sum();
            e.map(|v| v / s)
        };
        let col = |xs: &Array2<f32>, c: usize| xs.iter().map(|&x| soft(x)[c]).collect::<Vec<f64>>();
        let min_p = (0..3).map(|c| ks_two_sample(&col(&q, c), &col(&p_ref, c)).unwrap().p_value).fold(1.0, f64::min);
        assert!((bbsd.p_value(q.view()).unwrap() - (3.0 * min_p).min(1.0)).abs() < 1e-9);
        assert!(bbsd.p_value(q.view()).unwrap() < 0.01);
    }
}
