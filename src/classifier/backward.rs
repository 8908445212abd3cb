//! Hand-written backpropagation of a weighted loss through M classifiers at once.
//!
//! In the forward pass's transposed layout, G_l = (∂L/∂Z_l) `[M·h_{l+1}, B]` (row block m is classifier m's
//! `[h_{l+1}, B]`), and G_L = w·(softmax − t) comes from the loss head. For classifier m and l = L … 1:
//!
//! * ∂L/∂W_{l,m} = G_{l,m} · A_{l−1,m}^T  `[h_{l+1}, h_l]`, written straight into θ-gradient row m;
//! * ∂L/∂b_{l,m} = Σ_b G_{l,m}[:, b];
//! * G_{l−1,m} = (W_{l,m}^T · G_{l,m}) ⊙ σ'(Z_{l−1,m}).
//!
//! Layer 0 shares its input x across classifiers, so its weight gradient for all M is again ONE GEMM:
//! ∂L/∂W_all = G_0 · x `[M·h_1, d_in]`, whose row block m is classifier m's ∂L/∂W_0, contiguous, and is
//! copied into place.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Axis};

use super::forward::{row, weight, Pass};
use super::Activation;
use crate::space::Layout;

/// The gradient `[M, D]` in the flat layout, from the stored `pass` and `g` = ∂L/∂logits `[M·C, B]`.
pub(crate) fn backward(
    layout: &Layout,
    act: Activation,
    thetas: &ArrayView2<'_, f32>,
    x: &ArrayView2<'_, f32>,
    pass: &Pass,
    mut g: Array2<f32>,
) -> Array2<f32> {
    let (m, batch) = (thetas.nrows(), x.nrows());
    let mut grads = Array2::<f32>::zeros((m, layout.dim()));
    for l in (1..layout.n_layers()).rev() {
        let (ws, bs) = layout.layer(l);
        let (out, inp) = (ws.shape[0], ws.shape[1]);
        let a_prev = &pass.a[l - 1];
        let mut g_prev = Array2::<f32>::zeros((m * inp, batch));
        for (mi, mut grow) in grads.outer_iter_mut().enumerate() {
            let grow = grow.as_slice_mut().expect("a fresh array is contiguous");
            let g_m = g.slice(s![mi * out..(mi + 1) * out, ..]);
            let a_m = a_prev.slice(s![mi * inp..(mi + 1) * inp, ..]);
            let mut dw = ArrayViewMut2::from_shape((out, inp), &mut grow[ws.range()]).expect("the layout matches θ");
            general_mat_mul(1.0, &g_m, &a_m.t(), 0.0, &mut dw);
            for (db, gr) in grow[bs.range()].iter_mut().zip(g_m.outer_iter()) {
                *db = gr.sum();
            }
            let mut gp_m = g_prev.slice_mut(s![mi * inp..(mi + 1) * inp, ..]);
            general_mat_mul(1.0, &weight(row(thetas, mi), ws).t(), &g_m, 0.0, &mut gp_m);
        }
        act.backprop(&mut g_prev, &pass.z[l - 1], a_prev);
        g = g_prev;
    }

    let (ws, bs) = layout.layer(0);
    let (block, h) = (ws.len(), ws.shape[0]);
    let mut dw_all = Array2::<f32>::zeros((m * h, ws.shape[1]));
    general_mat_mul(1.0, &g, x, 0.0, &mut dw_all);
    let db_all = g.sum_axis(Axis(1));
    let dw_all = dw_all.as_slice().expect("a fresh array is contiguous");
    let db_all = db_all.as_slice().expect("a fresh array is contiguous");
    for (mi, mut grow) in grads.outer_iter_mut().enumerate() {
        let grow = grow.as_slice_mut().expect("a fresh array is contiguous");
        grow[ws.range()].copy_from_slice(&dw_all[mi * block..(mi + 1) * block]);
        grow[bs.range()].copy_from_slice(&db_all[mi * h..(mi + 1) * h]);
    }
    grads
}
