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
        let mut h = x.clone();
        let last = self.layout.n_layers() - 1;
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            // [R, B, in] · [R, in, out]: the transposed view is a strided batched GEMM, no copy.
            h = h.matmul(&w.as_tensor().transpose(1, 2).op("transposing weights")?).op("batched matmul")?;
            h = h.broadcast_add(b.as_tensor()).op("adding bias")?;
            if i < last {
                h = match self.activation {
                    Activation::Relu => h.relu(),
                    Activation::Tanh => h.tanh(),
                    Activation::Silu => h.silu(),
                }
                .op("activation")?;
            }
        }
        Ok(h)
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
