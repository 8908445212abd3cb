//! R MLPs of one architecture as stacked candle variables, evaluated in one batched pass.

use candle_core::{DType, Device, Tensor, Var, D};
use ndarray::{Array2, ArrayView2};

use super::error::{CandleContext, Error};
use crate::classifier::Activation;
use crate::space::Layout;

/// R classifiers of one [`Layout`]: layer `i` holds `W_i: [R, out, in]` and `b_i: [R, 1, out]`.
pub struct BatchedMlp {
    layout: Layout,
    activation: Activation,
    runs: usize,
    weights: Vec<Var>,
    biases: Vec<Var>,
}

/// The batched MLP pass over per-layer `(W [R, out, in], b [R, 1, out])` from `x` `[R, B, in]`.
fn forward_layers(
    activation: Activation,
    layers: impl ExactSizeIterator<Item = (Tensor, Tensor)>,
    x: Tensor,
) -> Result<Tensor, Error> {
    let last = layers.len() - 1;
    let mut h = x;
    for (i, (w, b)) in layers.enumerate() {
        // [R, B, in] · [R, in, out]: the transposed view is a strided batched GEMM, no copy.
        h = h.matmul(&w.transpose(1, 2).op("transposing weights")?).op("batched matmul")?;
        h = h.broadcast_add(&b).op("adding bias")?;
        if i < last {
            h = match activation {
                Activation::Relu => h.relu(),
                Activation::Tanh => h.tanh(),
                Activation::Silu => h.silu(),
            }
            .op("activation")?;
        }
    }
    Ok(h)
}

impl BatchedMlp {
    /// Builds R classifiers from the rows of `thetas: [R, D]` (flat layout of [`Layout`]).
    pub fn from_thetas(
        layout: &Layout,
        activation: Activation,
        thetas: ArrayView2<f32>,
        device: &Device,
    ) -> Result<Self, Error> {
        let runs = thetas.nrows();
        if thetas.ncols() != layout.dim() {
            return Err(crate::space::Error::Dim { expected: layout.dim(), got: thetas.ncols() }.into());
        }
        let mut weights = Vec::with_capacity(layout.n_layers());
        let mut biases = Vec::with_capacity(layout.n_layers());
        for i in 0..layout.n_layers() {
            let (w, b) = layout.layer(i);
            let (out, inp) = (w.shape[0], w.shape[1]);
            let gather = |spec: &crate::space::TensorSpec| -> Vec<f32> {
                thetas.rows().into_iter().flat_map(|row| row.slice(ndarray::s![spec.range()]).to_vec()).collect()
            };
            let wt = Tensor::from_vec(gather(w), (runs, out, inp), device).op("creating weights")?;
            let bt = Tensor::from_vec(gather(b), (runs, 1, out), device).op("creating biases")?;
            weights.push(Var::from_tensor(&wt).op("creating weight variable")?);
            biases.push(Var::from_tensor(&bt).op("creating bias variable")?);
        }
        Ok(Self { layout: layout.clone(), activation, runs, weights, biases })
    }

    /// Number of classifiers R.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// The trainable variables, weights and biases layer by layer.
    pub fn vars(&self) -> Vec<Var> {
        self.weights.iter().zip(&self.biases).flat_map(|(w, b)| [w.clone(), b.clone()]).collect()
    }

    /// Logits `[R, B, C]` for per-run inputs `x: [R, B, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, Error> {
        let layers = self.weights.iter().zip(&self.biases).map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone()));
        forward_layers(self.activation, layers, x.clone())
    }

    /// Logits `[R, N, C]` of the R classifiers in the rows of `thetas` `[R, D]` (a tensor, so gradients flow
    /// back to whatever computed it, e.g. a decoder) on shared inputs `x` `[N, in]`.
    pub fn logits_of_flat(
        layout: &Layout,
        activation: Activation,
        thetas: &Tensor,
        x: &Tensor,
    ) -> Result<Tensor, Error> {
        let (r, d) = thetas.dims2().op("thetas shape")?;
        if d != layout.dim() {
            return Err(crate::space::Error::Dim { expected: layout.dim(), got: d }.into());
        }
        let (n, inp) = x.dims2().op("inputs shape")?;
        let layers = (0..layout.n_layers())
            .map(|i| {
                let (w, b) = layout.layer(i);
                let wt = thetas.narrow(1, w.offset, w.len())?.reshape((r, w.shape[0], w.shape[1]))?;
                let bt = thetas.narrow(1, b.offset, b.len())?.reshape((r, 1, b.len()))?;
                Ok((wt, bt))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .op("slicing flat weights")?;
        let x = x.unsqueeze(0).and_then(|x| x.broadcast_as((r, n, inp))).and_then(|x| x.contiguous()).op("inputs")?;
        forward_layers(activation, layers.into_iter(), x)
    }

    /// Sum over runs of each run's mean cross entropy, for logits `[R, B, C]` and labels `[R, B]` (u32).
    /// Summing (not averaging) over runs gives every run exactly the gradient of its own loss.
    pub fn cross_entropy_sum(logits: &Tensor, labels: &Tensor) -> Result<Tensor, Error> {
        let b = logits.dim(1).op("logits shape")? as f64;
        let logp = candle_nn::ops::log_softmax(logits, D::Minus1).op("log_softmax")?;
        let picked = logp.gather(&labels.unsqueeze(2).op("labels")?, 2).op("gathering label log-probabilities")?;
        (picked.sum_all().op("summing")? * (-1.0 / b)).op("scaling")
    }

    /// `Σ_r ‖θ_r‖² / 2` over all variables: the coupled L2 penalty's unscaled value.
    pub fn half_sq_norm(&self) -> Result<Tensor, Error> {
        let mut total: Option<Tensor> = None;
        for v in self.vars() {
            let s = v.as_tensor().sqr().op("squaring")?.sum_all().op("summing")?;
            total = Some(match total {
                None => s,
                Some(t) => (t + s).op("adding")?,
            });
        }
        (total.expect("an MLP has at least one layer") * 0.5).op("scaling")
    }

    /// The current parameters as `[R, D]` rows in the flat layout.
    pub fn thetas(&self) -> Result<Array2<f32>, Error> {
        let mut out = Array2::<f32>::zeros((self.runs, self.layout.dim()));
        for i in 0..self.layout.n_layers() {
            let (ws, bs) = self.layout.layer(i);
            for (spec, var) in [(ws, &self.weights[i]), (bs, &self.biases[i])] {
                let flat: Vec<f32> = var
                    .as_tensor()
                    .to_dtype(DType::F32)
                    .op("dtype")?
                    .flatten_all()
                    .op("flatten")?
                    .to_vec1()
                    .op("copy to host")?;
                let n = spec.len();
                for (r, mut row) in out.rows_mut().into_iter().enumerate() {
                    row.slice_mut(ndarray::s![spec.range()])
                        .as_slice_mut()
                        .expect("a row slice of a standard-layout array is contiguous")
                        .copy_from_slice(&flat[r * n..(r + 1) * n]);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use ndarray::Array2;
    use rand::Rng as _;

    use super::*;
    use crate::classifier::Mlp;
    use crate::rng;

    #[test]
    fn logits_of_flat_weights_equal_the_native_forward() {
        let layout = Layout::parse("5-7-3-4").unwrap();
        let mut r = rng::rng(8);
        let thetas = Array2::from_shape_fn((6, layout.dim()), |_| r.random_range(-1.0f32..1.0));
        let x = Array2::from_shape_fn((9, 5), |_| r.random_range(-2.0f32..2.0));
        for act in [Activation::Relu, Activation::Tanh, Activation::Silu] {
            let want = Mlp::new(layout.clone(), act).logits(thetas.view(), x.view()).unwrap();
            let t = Tensor::from_slice(thetas.as_slice().unwrap(), thetas.dim(), &Device::Cpu).unwrap();
            let xt = Tensor::from_slice(x.as_slice().unwrap(), x.dim(), &Device::Cpu).unwrap();
            let got = BatchedMlp::logits_of_flat(&layout, act, &t, &xt).unwrap().to_vec3::<f32>().unwrap();
            for (m, rows) in got.iter().enumerate() {
                for (b, row) in rows.iter().enumerate() {
                    for (c, v) in row.iter().enumerate() {
                        let w = want[[m, b, c]];
                        assert!((v - w).abs() <= 1e-5 * (1.0 + w.abs()), "{act:?} [{m},{b},{c}]: {v} vs {w}");
                    }
                }
            }
        }
        let bad = Tensor::zeros((2, layout.dim() + 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::zeros((1, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(BatchedMlp::logits_of_flat(&layout, Activation::Relu, &bad, &x).is_err());
    }
}
