//! Synthetic "trajectory" sets whose finals lie near a low-dimensional affine subspace, so that a small
//! autoencoder latent can hold them (the autoencoder and latent-space tests share them).

use ndarray::Array3;
use rand::Rng as _;
use weightflow::rng;
use weightflow::space::Layout;

/// `[R, 2, D]` for `layout`: uniform inits, finals b_0 + Σ_i c_i b_i on a 3-dimensional affine subspace
/// (c_i uniform in ±1) plus noise uniform in ±0.01.
pub fn subspace_runs(layout: &Layout, runs: usize, seed: u64) -> Array3<f32> {
    let d = layout.dim();
    let mut r = rng::rng(seed);
    let basis: Vec<Vec<f32>> = (0..4).map(|_| (0..d).map(|_| r.random_range(-1.0..1.0)).collect()).collect();
    let mut traj = Array3::zeros((runs, 2, d));
    for run in 0..runs {
        let c: Vec<f32> = (0..3).map(|_| r.random_range(-1.0..1.0)).collect();
        for j in 0..d {
            traj[[run, 0, j]] = r.random_range(-1.0..1.0);
            let fin = basis[0][j] + (0..3).map(|i| c[i] * basis[i + 1][j]).sum::<f32>();
            traj[[run, 1, j]] = fin + 0.01 * r.random_range(-1.0..1.0);
        }
    }
    traj
}
