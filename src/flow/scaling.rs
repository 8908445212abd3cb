//! Per-tensor scaling of weight space: the flow works on z = θ / s.

use ndarray::{s, Array2, ArrayView2, ArrayView3};
use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::space::Layout;

/// The smallest scale a tensor gets (a tensor that ends constant would otherwise divide by zero).
pub const SCALE_FLOOR: f32 = 1e-3;

/// One scale per [`Layout`] tensor, in flattening order: s_j = max(std of tensor j's entries over all final
/// checkpoints, [`SCALE_FLOOR`]). Coordinates of z = θ / s have comparable magnitudes, so one σ and one
/// learning rate fit every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Per tensor, in [`Layout::tensors`] order.
    pub scales: Vec<f32>,
}

impl Scaling {
    /// Fits the scales on the final checkpoints of `trajectories` `[R, K+1, D]`.
    pub fn fit(layout: &Layout, trajectories: ArrayView3<f32>) -> Result<Self> {
        let (r, k1, d) = trajectories.dim();
        if d != layout.dim() || k1 == 0 || r == 0 {
            return Err(Error::Shape {
                what: "trajectories",
                expected: format!("[R ≥ 1, K+1 ≥ 1, {}]", layout.dim()),
                got: format!("{:?}", trajectories.shape()),
            });
        }
        let finals = trajectories.slice(s![.., k1 - 1, ..]);
        let scales =
            layout.tensors().iter().map(|t| floored_std(finals.slice(s![.., t.range()]).iter().copied())).collect();
        Ok(Self { scales })
    }

    /// One scale for a flat space without tensors (an autoencoder's latent): the floored std of all entries
    /// of `x` `[N, L]`.
    pub fn fit_flat(x: ArrayView2<f32>) -> Self {
        Self { scales: vec![floored_std(x.iter().copied())] }
    }

    /// The identity scaling (all ones) for `layout`.
    pub fn identity(layout: &Layout) -> Self {
        Self { scales: vec![1.0; layout.tensors().len()] }
    }

    /// The per-coordinate scale vector of length D.
    pub fn per_coordinate(&self, layout: &Layout) -> Result<Vec<f32>> {
        if self.scales.len() != layout.tensors().len() {
            return Err(Error::Shape {
                what: "scaling",
                expected: format!("{} scales (one per tensor)", layout.tensors().len()),
                got: format!("{}", self.scales.len()),
            });
        }
        let mut out = vec![0f32; layout.dim()];
        for (t, &sc) in layout.tensors().iter().zip(&self.scales) {
            out[t.range()].iter_mut().for_each(|v| *v = sc);
        }
        Ok(out)
    }

    /// z = θ / s for `[N, D]` weight vectors.
    pub fn to_flow(&self, layout: &Layout, theta: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.map(layout, theta, |v, s| v / s)
    }

    /// θ = z · s for `[N, D]` flow coordinates.
    pub fn from_flow(&self, layout: &Layout, z: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.map(layout, z, |v, s| v * s)
    }

    fn map(&self, layout: &Layout, x: ArrayView2<f32>, f: impl Fn(f32, f32) -> f32) -> Result<Array2<f32>> {
        if x.ncols() != layout.dim() {
            return Err(crate::space::Error::Dim { expected: layout.dim(), got: x.ncols() }.into());
        }
        let sc = self.per_coordinate(layout)?;
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            row.iter_mut().zip(&sc).for_each(|(v, &s)| *v = f(*v, s));
        }
        Ok(out)
    }
}

/// max(population std of `vals` in f64, [`SCALE_FLOOR`]).
fn floored_std(vals: impl Iterator<Item = f32> + Clone) -> f32 {
    let n = vals.clone().count().max(1) as f64;
    let mean = vals.clone().map(|v| v as f64).sum::<f64>() / n;
    let var = vals.map(|v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (var.sqrt() as f32).max(SCALE_FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn scales_are_per_tensor_stds_of_the_finals_and_round_trip() {
        let layout = Layout::parse("1-2").unwrap(); // l0.weight [2,1], l0.bias [2]
        let mut traj = Array3::<f32>::zeros((2, 2, 4));
        // Finals: weights {1, 3, -1, 1} → std 1.414…; biases {5, 5, 5, 5} → std 0 → floor.
        traj.slice_mut(s![0, 1, ..]).assign(&ndarray::arr1(&[1.0, 3.0, 5.0, 5.0]));
        traj.slice_mut(s![1, 1, ..]).assign(&ndarray::arr1(&[-1.0, 1.0, 5.0, 5.0]));
        traj.slice_mut(s![.., 0, ..]).fill(100.0); // inits are ignored
        let sc = Scaling::fit(&layout, traj.view()).unwrap();
        assert!((sc.scales[0] - 2f32.sqrt()).abs() < 1e-6, "{:?}", sc.scales);
        assert_eq!(sc.scales[1], SCALE_FLOOR);
        let theta = traj.slice(s![.., 1, ..]);
        let z = sc.to_flow(&layout, theta).unwrap();
        assert!((z[[0, 2]] - 5000.0).abs() < 1e-2);
        let back = sc.from_flow(&layout, z.view()).unwrap();
        assert!(back.iter().zip(theta.iter()).all(|(a, b)| (a - b).abs() < 1e-5));
        assert!(sc.to_flow(&layout, Array2::zeros((1, 3)).view()).is_err());
    }
}
