//! Adam on flat weight matrices (shared by fine-tuning evaluations and Detectron's CDCs):
//!
//!   m ← β₁ m + (1−β₁) g,   v ← β₂ v + (1−β₂) g²,   θ ← θ − lr · (m / (1−β₁^s)) / (√(v / (1−β₂^s)) + ε),
//!
//! with β = (0.9, 0.999), ε = 1e-8, moments kept in f32 and updated in f64, no weight decay.

use ndarray::Array2;

/// Adam on the rows of a flat `[M, D]` parameter matrix (formula in the module docs).
#[derive(Debug, Clone)]
pub struct Adam {
    lr: f64,
    m: Array2<f32>,
    v: Array2<f32>,
    step: i32,
}

impl Adam {
    /// β₁.
    pub const BETA1: f64 = 0.9;
    /// β₂.
    pub const BETA2: f64 = 0.999;
    /// ε.
    pub const EPS: f64 = 1e-8;

    /// Zero moments for parameters of `shape` `[M, D]` and learning rate `lr`.
    pub fn new(shape: (usize, usize), lr: f64) -> Self {
        Self { lr, m: Array2::zeros(shape), v: Array2::zeros(shape), step: 0 }
    }

    /// One step of the parameter rows `rows` of `thetas` with gradients `grads` `[rows.len(), D]`; every row
    /// passed has taken the same number of steps before (rows only ever leave the active set).
    pub fn step(&mut self, thetas: &mut Array2<f32>, grads: &Array2<f32>, rows: &[usize]) {
        self.step += 1;
        let c1 = 1.0 / (1.0 - Self::BETA1.powi(self.step));
        let c2 = 1.0 / (1.0 - Self::BETA2.powi(self.step));
        for (g, &r) in grads.outer_iter().zip(rows) {
            let (mut th, mut m, mut v) = (thetas.row_mut(r), self.m.row_mut(r), self.v.row_mut(r));
            for (((p, &gi), mi), vi) in th.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let gi = gi as f64;
                let nm = Self::BETA1 * *mi as f64 + (1.0 - Self::BETA1) * gi;
                let nv = Self::BETA2 * *vi as f64 + (1.0 - Self::BETA2) * gi * gi;
                *mi = nm as f32;
                *vi = nv as f32;
                *p = (*p as f64 - self.lr * (nm * c1) / ((nv * c2).sqrt() + Self::EPS)) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_first_steps_follow_the_bias_corrected_formula() {
        // Step 1: m̂ = g, v̂ = g², so θ moves by lr·g/(|g| + ε) ≈ lr·sign(g). Step 2 with the same g: m̂ = g and
        // v̂ = g² again (bias correction undoes the decay), so it moves by the same amount.
        let mut theta = array![[1.0f32, -2.0, 0.5]];
        let g = array![[0.3f32, -4.0, 0.0]];
        let mut adam = Adam::new((1, 3), 0.1);
        adam.step(&mut theta, &g, &[0]);
        assert!((theta[[0, 0]] - 0.9).abs() < 1e-6 && (theta[[0, 1]] + 1.9).abs() < 1e-6 && theta[[0, 2]] == 0.5);
        adam.step(&mut theta, &g, &[0]);
        assert!((theta[[0, 0]] - 0.8).abs() < 1e-6 && (theta[[0, 1]] + 1.8).abs() < 1e-6);
    }
}
