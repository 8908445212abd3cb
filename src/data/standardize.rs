//! Per-feature standardisation `x'_ij = (x_ij − μ_j) / σ_j`, fitted on the training split and stored in
//! manifests so that deployment scales inputs exactly as training did.

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::error::{Error, Result};

/// Per-feature mean and standard deviation, `x'_ij = (x_ij − μ_j) / σ_j`.
///
/// μ_j is the column mean and σ_j the population standard deviation (`ddof = 0`, as sklearn's
/// `StandardScaler`), both accumulated in f64 (two passes) and stored as f32. A column with σ_j < 10⁻⁸ (the
/// constant border pixels of MNIST) gets σ_j = 1, so it maps to 0 rather than to NaN or huge values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// μ_j, one per feature.
    pub mean: Vec<f32>,
    /// σ_j, one per feature, all positive (1 for constant columns).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Standard deviations below this are replaced by 1.
    pub const MIN_STD: f64 = 1e-8;

    /// Fits μ and σ on the rows of `x` (`[n, d]`, n ≥ 1).
    pub fn fit(x: &Array2<f32>) -> Result<Self> {
        let n = x.nrows();
        if n == 0 {
            return Err(Error::Standardizer {
                file: "<array>".into(),
                reason: "expected at least one row to fit, found 0".into(),
            });
        }
        let mut mean = Vec::with_capacity(x.ncols());
        let mut std = Vec::with_capacity(x.ncols());
        for col in x.axis_iter(Axis(1)) {
            let mu = col.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
            let var = col.iter().map(|&v| (f64::from(v) - mu).powi(2)).sum::<f64>() / n as f64;
            let sigma = var.sqrt();
            mean.push(mu as f32);
            std.push(if sigma < Self::MIN_STD { 1.0 } else { sigma as f32 });
        }
        Ok(Standardizer { mean, std })
    }

    /// The number of features d it was fitted on.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    fn check(&self, file: &str, found: usize) -> Result<()> {
        if self.std.len() != self.mean.len() {
            return Err(Error::Standardizer {
                file: "<standardizer>".into(),
                reason: format!("expected as many std as mean entries ({}), found {}", self.mean.len(), self.std.len()),
            });
        }
        if let Some(j) = self.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Standardizer {
                file: "<standardizer>".into(),
                reason: format!("feature {j}: expected a positive finite std, found {}", self.std[j]),
            });
        }
        if found != self.n_features() {
            return Err(Error::FeatureCount { file: file.to_owned(), expected: self.n_features(), found });
        }
        Ok(())
    }

    /// Standardises `x` (`[n, d]`) in place; errors if d differs from the fitted feature count.
    pub fn apply(&self, x: &mut Array2<f32>) -> Result<()> {
        self.check("<array>", x.ncols())?;
        for mut row in x.axis_iter_mut(Axis(0)) {
            for ((v, &mu), &sigma) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - mu) / sigma;
            }
        }
        Ok(())
    }

    /// A copy of `data` with standardised features; errors (naming `data.source`) if its feature count differs.
    pub fn transform(&self, data: &Dataset) -> Result<Dataset> {
        self.check(&data.source, data.n_features())?;
        let mut out = data.clone();
        self.apply(&mut out.x)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn serde_round_trip() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let s = Standardizer::fit(&array![[1.0f32, 2.0], [3.0, 2.0]])?;
        let json = serde_json::to_string(&s)?;
        assert_eq!(json, r#"{"mean":[2.0,2.0],"std":[1.0,1.0]}"#);
        assert_eq!(serde_json::from_str::<Standardizer>(&json)?, s);
        Ok(())
    }

    #[test]
    fn rejects_empty_and_broken_statistics() {
        let err = Standardizer::fit(&Array2::zeros((0, 3))).unwrap_err();
        assert_eq!(err.to_string(), "<array>: expected at least one row to fit, found 0");
        let s = Standardizer { mean: vec![0.0, 0.0], std: vec![1.0, 0.0] };
        let err = s.apply(&mut Array2::zeros((1, 2))).unwrap_err();
        assert_eq!(err.to_string(), "<standardizer>: feature 1: expected a positive finite std, found 0");
    }
}
