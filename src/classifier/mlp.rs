//! The MLP family: M classifiers of one [`Layout`], run together on a shared input batch.
//!
//! f_θ(x) = W_L σ(… σ(W_0 x + b_0) …) + b_L with θ laid out by [`Layout`] (`l{i}.weight` `[out, in]`
//! row-major, then `l{i}.bias`). Every method takes `thetas` `[M, D]` (one classifier per row) and
//! `x` `[B, d_in]`, validates both (widths, non-empty, finite) and returns a [`Error`] instead of panicking.

use ndarray::{s, Array1, Array2, Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::backward::backward;
use super::error::check_finite;
use super::forward::{forward, standard, Pass};
use super::fused;
use super::loss::row_loss;
use super::{Activation, Error, Targets};
use crate::space::Layout;

/// Target size in bytes of one chunk's intermediate tensors (see `Mlp::chunks`). It bounds memory for large
/// M·B (MNIST-sized batches of many classifiers) while keeping the first layer one GEMM over many classifiers.
/// A first, noisy measurement on a loaded 2-core machine (9-16-16-2, M = 1024, B = 478: logits 88 ms unchunked,
/// 43–66 ms with 0.25–8 MiB chunks; 784-32-10, M = 64, B = 1000: 54 ms unchunked, 96–173 ms chunked) points
/// both ways; tune it with a bench before trusting a smaller value.
const CHUNK_BYTES: usize = 32 << 20;

/// The largest D whose logits and gradients take the fused passes ([`fused`]): one classifier's weights
/// (4·D bytes) fit a 32 KiB L1 data cache. Above it (e.g. 784-32-10) the first layer is a real GEMM and the
/// GEMM pass reaches ≈ 90% of this machine's SGEMM rate (`cargo bench --bench classifier`, docs/PERFORMANCE.md).
const FUSED_MAX_DIM: usize = 8192;

/// A family of MLP classifiers: a layout and the activation after every hidden layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mlp {
    /// The parameter layout (widths `[d_in, h_1, …, C]`).
    pub layout: Layout,
    /// The hidden-layer activation.
    pub activation: Activation,
}

impl Mlp {
    /// The MLP family of `layout` with `activation`.
    pub fn new(layout: Layout, activation: Activation) -> Self {
        Self { layout, activation }
    }

    /// The number of classes C.
    pub fn n_classes(&self) -> usize {
        self.layout.n_outputs()
    }

    /// Logits `[M, B, C]` of the M classifiers (rows of `thetas` `[M, D]`) on `x` `[B, d_in]`.
    pub fn logits(&self, thetas: ArrayView2<'_, f32>, x: ArrayView2<'_, f32>) -> Result<Array3<f32>, Error> {
        self.check(&thetas, &x)?;
        let thetas = standard(thetas);
        let (m, c) = (thetas.nrows(), self.n_classes());
        let mut out = Array3::zeros((m, x.nrows(), c));
        if self.layout.dim() <= FUSED_MAX_DIM {
            fused::logits(self.fused_inputs(thetas.view(), x.view()), out.view_mut());
            return Ok(out);
        }
        for chunk in self.chunks(m, x.nrows(), false) {
            let th = thetas.slice(s![chunk.clone(), ..]);
            let pass = forward(&self.layout, self.activation, &th, &x, false);
            out.slice_mut(s![chunk.clone(), .., ..]).assign(&pass.logits_mbc(chunk.len()));
        }
        Ok(out)
    }

    /// Predicted classes `[M, B]`: the argmax of each classifier's logits (the first on ties).
    pub fn predict(&self, thetas: ArrayView2<'_, f32>, x: ArrayView2<'_, f32>) -> Result<Array2<usize>, Error> {
        let logits = self.logits(thetas, x)?;
        Ok(logits.map_axis(Axis(2), |z| {
            z.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (c, &v)| if v > best.1 { (c, v) } else { best }).0
        }))
    }

    /// Class probabilities `[M, B, C]`: softmax(z)_c = exp(z_c − max z) / Σ_k exp(z_k − max z).
    pub fn probabilities(&self, thetas: ArrayView2<'_, f32>, x: ArrayView2<'_, f32>) -> Result<Array3<f32>, Error> {
        let mut p = self.logits(thetas, x)?;
        for mut z in p.lanes_mut(Axis(2)) {
            let max = z.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            z.mapv_inplace(|v| (v - max).exp());
            let sum = z.sum();
            z.mapv_inplace(|v| v / sum);
        }
        Ok(p)
    }

    /// The loss L_m = Σ_b w_b ℓ_b of each classifier `[M]` (see [`Targets`]).
    pub fn loss(
        &self,
        thetas: ArrayView2<'_, f32>,
        x: ArrayView2<'_, f32>,
        targets: &Targets,
    ) -> Result<Array1<f32>, Error> {
        self.check(&thetas, &x)?;
        targets.check(x.nrows(), self.n_classes())?;
        let thetas = standard(thetas);
        if self.layout.dim() <= FUSED_MAX_DIM {
            // The fused logits and the head's row order are those of the fused loss_and_grad, so both return
            // the same losses bit for bit.
            let mut logits = Array3::zeros((thetas.nrows(), x.nrows(), self.n_classes()));
            fused::logits(self.fused_inputs(thetas.view(), x.view()), logits.view_mut());
            let losses = logits.outer_iter().map(|z| {
                let rows = z.outer_iter().zip(targets.rows());
                rows.map(|(z, t)| t.weight as f64 * row_loss(z, t, None)).sum::<f64>() as f32
            });
            return Ok(losses.collect());
        }
        let mut losses = Vec::with_capacity(thetas.nrows());
        for chunk in self.chunks(thetas.nrows(), x.nrows(), false) {
            let th = thetas.slice(s![chunk.clone(), ..]);
            let pass = forward(&self.layout, self.activation, &th, &x, false);
            losses.extend(self.head(&pass, chunk.len(), targets, None));
        }
        Ok(Array1::from(losses))
    }

    /// The losses `[M]` and their gradients with respect to the weights, `[M, D]` in the flat layout, by
    /// backpropagation.
    pub fn loss_and_grad(
        &self,
        thetas: ArrayView2<'_, f32>,
        x: ArrayView2<'_, f32>,
        targets: &Targets,
    ) -> Result<(Array1<f32>, Array2<f32>), Error> {
        self.check(&thetas, &x)?;
        targets.check(x.nrows(), self.n_classes())?;
        let thetas = standard(thetas);
        let m = thetas.nrows();
        let mut grads = Array2::zeros((m, self.layout.dim()));
        if self.layout.dim() <= FUSED_MAX_DIM {
            let mut losses = vec![0f32; m];
            fused::loss_and_grad(self.fused_inputs(thetas.view(), x.view()), targets, &mut losses, grads.view_mut());
            return Ok((Array1::from(losses), grads));
        }
        let mut losses = Vec::with_capacity(m);
        for chunk in self.chunks(m, x.nrows(), true) {
            let th = thetas.slice(s![chunk.clone(), ..]);
            let pass = forward(&self.layout, self.activation, &th, &x, true);
            let mut g = Array2::zeros(pass.logits().raw_dim());
            losses.extend(self.head(&pass, chunk.len(), targets, Some(&mut g)));
            let gr = backward(&self.layout, self.activation, &th, &x, &pass, g);
            grads.slice_mut(s![chunk, ..]).assign(&gr);
        }
        Ok((Array1::from(losses), grads))
    }

    /// The fused passes' inputs (`thetas` in standard layout, shapes checked).
    fn fused_inputs<'a>(&'a self, thetas: ArrayView2<'a, f32>, x: ArrayView2<'a, f32>) -> fused::Inputs<'a> {
        fused::Inputs { layout: &self.layout, act: self.activation, thetas, x }
    }

    /// Splits the M classifiers into consecutive chunks whose intermediate tensors (B·Σ h floats per classifier,
    /// twice with `keep`) stay near `CHUNK_BYTES`; within a chunk the first layer is one GEMM.
    fn chunks(&self, m: usize, batch: usize, keep: bool) -> impl Iterator<Item = std::ops::Range<usize>> {
        let widths: usize = self.layout.sizes()[1..].iter().sum();
        let per = (batch * widths * 4 * if keep { 2 } else { 1 }).max(1);
        let size = (CHUNK_BYTES / per).clamp(1, m);
        (0..m).step_by(size).map(move |s| s..(s + size).min(m))
    }

    /// Validates shapes and values of `thetas` and `x`.
    fn check(&self, thetas: &ArrayView2<'_, f32>, x: &ArrayView2<'_, f32>) -> Result<(), Error> {
        if thetas.ncols() != self.layout.dim() {
            return Err(Error::ThetaDim { arch: self.layout.arch(), expected: self.layout.dim(), got: thetas.ncols() });
        }
        if x.ncols() != self.layout.n_inputs() {
            return Err(Error::InputWidth { expected: self.layout.n_inputs(), got: x.ncols() });
        }
        if thetas.nrows() == 0 {
            return Err(Error::Empty { what: "thetas" });
        }
        if x.nrows() == 0 {
            return Err(Error::Empty { what: "x" });
        }
        check_finite("thetas", thetas.view())?;
        check_finite("x", x.view())
    }

    /// Loss per classifier from the pass's logits; with `grad`, writes ∂L/∂logits `[M·C, B]` there.
    fn head(&self, pass: &Pass, m: usize, targets: &Targets, mut grad: Option<&mut Array2<f32>>) -> Array1<f32> {
        let c = self.n_classes();
        let logits = pass.logits();
        (0..m)
            .map(|mi| {
                let rows = mi * c..(mi + 1) * c;
                let mut loss = 0f64;
                for (b, t) in targets.rows().iter().enumerate() {
                    let z = logits.slice(s![rows.clone(), b]);
                    let g = grad.as_mut().map(|g| g.slice_mut(s![rows.clone(), b]));
                    loss += t.weight as f64 * row_loss(z, t, g);
                }
                loss as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::{LossKind, Target};
    use ndarray::array;

    #[test]
    fn a_hand_computed_two_layer_net() {
        // 2-2-2 ReLU: W0 = [[1, −1], [0, 2]], b0 = [0, −1], W1 = [[1, 1], [−1, 0]], b1 = [0.5, 0].
        // x = (1, 1): z0 = (0, 1), a0 = (0, 1), z1 = (1.5, 0).  x = (2, 0): z0 = (2, −1), a0 = (2, 0), z1 = (2.5, −2).
        let mlp = Mlp::new(Layout::parse("2-2-2").unwrap(), Activation::Relu);
        let theta = array![[1.0f32, -1.0, 0.0, 2.0, 0.0, -1.0, 1.0, 1.0, -1.0, 0.0, 0.5, 0.0]];
        let x = array![[1.0f32, 1.0], [2.0, 0.0]];
        let logits = mlp.logits(theta.view(), x.view()).unwrap();
        assert_eq!(logits, array![[[1.5f32, 0.0], [2.5, -2.0]]]);
        assert_eq!(mlp.predict(theta.view(), x.view()).unwrap(), array![[0usize, 0]]);
        // Ties go to the first class.
        let zero = Array2::zeros((1, mlp.layout.dim()));
        assert_eq!(mlp.predict(zero.view(), x.view()).unwrap(), array![[0usize, 0]]);
        // CE on row 0 with label 1 only (weights 1, 0): ∂L/∂b1 = softmax(1.5, 0) − e_1 = (p0, −p0), and the gradient of the
        // dead unit's incoming weights (unit 0 of layer 0 has z = 0, not > 0) is zero.
        let targets = Targets::new(vec![
            Target { label: 1, kind: LossKind::Ce, weight: 1.0 },
            Target { label: 0, kind: LossKind::Ce, weight: 0.0 },
        ]);
        let (loss, grad) = mlp.loss_and_grad(theta.view(), x.view(), &targets).unwrap();
        let p0 = 1.0 / (1.0 + (-1.5f32).exp());
        assert!((loss[0] - (1.0 + 1.5f32.exp()).ln()).abs() < 1e-6);
        assert!((grad[[0, 10]] - p0).abs() < 1e-6 && (grad[[0, 11]] + p0).abs() < 1e-6);
        assert_eq!(grad.slice(s![0, 0..2]).to_vec(), [0.0, 0.0]);
    }
}
