//! The batched forward pass of M classifiers over one shared input batch.
//!
//! Layers are computed *transposed*, one column per sample: the pre-activations Z_l and activations
//! A_l = σ(Z_l) of layer l are `[M·h, B]` matrices whose row block m·h … (m+1)·h − 1 is classifier m's
//! `[h, B]` block, contiguous, so that each per-classifier GEMM reads and writes one compact block.
//!
//! * Layer 0 has the same input x `[B, d_in]` for all M classifiers, so it is ONE GEMM:
//!   Z_0 = W_all · x^T + b_all, where W_all `[M·h_1, d_in]` stacks the M first-layer weight matrices (row
//!   m·h_1 + j is row j of W_{0,m}) and b_all `[M·h_1]` their biases. W_all is gathered once from the rows of
//!   θ: a row holds W_0, then b_0 and the later layers, so the M blocks are not evenly strided and no view can
//!   stack them; the copy is M·h_1·d_in floats against the GEMM's B·M·h_1·d_in multiply-adds. With M = 1,
//!   W_all is a view.
//! * Layer l ≥ 1 is one GEMM per classifier: Z_{l,m} = W_{l,m} · A_{l−1,m} + b_{l,m} `[h_{l+1}, B]`, with
//!   W_{l,m} `[h_{l+1}, h_l]` a view into θ_m (no copy).

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, CowArray, Ix2};

use super::Activation;
use crate::space::{Layout, TensorSpec};

/// The tensors of one batched pass, transposed (`[M·h, B]`, see the module docs).
pub(crate) struct Pass {
    /// Pre-activations Z_l `[M·h_{l+1}, B]`; with `keep` every layer's, without it only the logits (last).
    pub z: Vec<Array2<f32>>,
    /// Activations A_l = σ(Z_l) of the hidden layers `[M·h_{l+1}, B]`; empty without `keep`.
    pub a: Vec<Array2<f32>>,
}

impl Pass {
    /// The transposed logits `[M·C, B]`.
    pub fn logits(&self) -> &Array2<f32> {
        self.z.last().expect("a pass has at least one layer")
    }

    /// The logits as `[M, B, C]`.
    pub fn logits_mbc(&self, m: usize) -> Array3<f32> {
        let z = self.logits();
        let (c, b) = (z.nrows() / m, z.ncols());
        let v = z.view().into_shape_with_order((m, c, b)).expect("logits hold M·C rows");
        v.permuted_axes([0, 2, 1]).as_standard_layout().into_owned()
    }
}

/// θ in standard (row-major, contiguous) layout: a view when it already is, a copy otherwise.
pub(crate) fn standard(thetas: ArrayView2<'_, f32>) -> CowArray<'_, f32, Ix2> {
    if thetas.is_standard_layout() {
        CowArray::from(thetas)
    } else {
        CowArray::from(thetas.as_standard_layout().into_owned())
    }
}

/// The row `m` of a standard-layout θ as a slice.
pub(crate) fn row<'a>(thetas: &'a ArrayView2<'_, f32>, m: usize) -> &'a [f32] {
    let d = thetas.ncols();
    &thetas.as_slice().expect("thetas are in standard layout")[m * d..(m + 1) * d]
}

/// The weight `[out, in]` of `spec` inside one row of θ.
pub(crate) fn weight<'a>(row: &'a [f32], spec: &TensorSpec) -> ArrayView2<'a, f32> {
    ArrayView2::from_shape((spec.shape[0], spec.shape[1]), &row[spec.range()]).expect("the layout matches θ")
}

/// `[M·h, B]` whose row m·h + j is filled with b_{m}[j], the biases of `spec`.
fn biases(thetas: &ArrayView2<'_, f32>, spec: &TensorSpec, batch: usize) -> Array2<f32> {
    let h = spec.len();
    let mut z = Array2::zeros((thetas.nrows() * h, batch));
    for (r, mut zr) in z.outer_iter_mut().enumerate() {
        zr.fill(row(thetas, r / h)[spec.offset + r % h]);
    }
    z
}

/// Runs the M classifiers (rows of standard-layout `thetas`) on `x`; with `keep`, stores what backprop needs.
/// Shapes must have been checked.
pub(crate) fn forward(
    layout: &Layout,
    act: Activation,
    thetas: &ArrayView2<'_, f32>,
    x: &ArrayView2<'_, f32>,
    keep: bool,
) -> Pass {
    let (m, batch) = (thetas.nrows(), x.nrows());
    let n_layers = layout.n_layers();
    let mut pass = Pass { z: Vec::with_capacity(n_layers), a: Vec::with_capacity(n_layers - 1) };

    // Layer 0: one GEMM for all M classifiers.
    let (w0, b0) = layout.layer(0);
    let mut z = biases(thetas, b0, batch);
    if m == 1 {
        general_mat_mul(1.0, &weight(row(thetas, 0), w0), &x.t(), 1.0, &mut z);
    } else {
        general_mat_mul(1.0, &stack_weights(thetas, w0), &x.t(), 1.0, &mut z);
    }

    for l in 1..n_layers {
        let a = if keep {
            let mut a = z.clone();
            act.apply(&mut a);
            pass.z.push(z);
            a
        } else {
            act.apply(&mut z);
            z
        };
        let (ws, bs) = layout.layer(l);
        let (out, inp) = (ws.shape[0], ws.shape[1]);
        let mut next = biases(thetas, bs, batch);
        for mi in 0..m {
            let a_m = a.slice(s![mi * inp..(mi + 1) * inp, ..]);
            let mut z_m = next.slice_mut(s![mi * out..(mi + 1) * out, ..]);
            general_mat_mul(1.0, &weight(row(thetas, mi), ws), &a_m, 1.0, &mut z_m);
        }
        if keep {
            pass.a.push(a);
        }
        z = next;
    }
    pass.z.push(z);
    pass
}

/// W_all `[M·h, in]`: the M weight matrices of `spec`, stacked row-block by row-block.
fn stack_weights(thetas: &ArrayView2<'_, f32>, spec: &TensorSpec) -> Array2<f32> {
    let (h, inp) = (spec.shape[0], spec.shape[1]);
    let m = thetas.nrows();
    let mut data = Vec::with_capacity(m * h * inp);
    for mi in 0..m {
        data.extend_from_slice(&row(thetas, mi)[spec.range()]);
    }
    Array2::from_shape_vec((m * h, inp), data).expect("M·h·in values")
}
