//! The generation ODE on candle tensors: [`crate::ode`]'s integrators, stepped with tensor arithmetic.

use candle_core::Tensor;

use super::error::CandleContext;
use super::Error;
use crate::ode::OdeState;

pub use crate::ode::Sampler;

impl OdeState for Tensor {
    type Error = Error;
    fn add_scaled(&self, k: &Self, h: f64) -> Result<Self, Error> {
        (self + (k * h).op("ode step")?).op("ode step")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ode::integrate;
    use candle_core::{DType, Device};

    #[test]
    fn tensor_states_step_like_host_arrays() {
        // dx/dt = −x·t with RK4: candle tensors and ndarray arrays go through the same integrator.
        let x0 = [[1.0f32, -2.0], [0.5, 3.0]];
        let dev = Device::Cpu;
        let xt = integrate(
            Sampler::Rk4,
            5,
            Tensor::new(&x0, &dev).unwrap(),
            |x, t| (x.neg().and_then(|n| n * t)).op("test"),
            |_, _, _| Ok(()),
        )
        .unwrap();
        let xa = integrate(
            Sampler::Rk4,
            5,
            ndarray::arr2(&x0),
            |x, t| Ok::<_, std::convert::Infallible>(x.mapv(|v| -v * t as f32)),
            |_, _, _| Ok(()),
        )
        .unwrap();
        let xt: Vec<Vec<f32>> = xt.to_dtype(DType::F32).unwrap().to_vec2().unwrap();
        for (r, row) in xt.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                // Closed form x0·e^{−1/2}; RK4 with 5 steps is within 1e-5 of it.
                let exact = x0[r][c] as f64 * (-0.5f64).exp();
                assert!((*v as f64 - exact).abs() < 1e-5 && (v - xa[[r, c]]).abs() < 1e-6);
            }
        }
    }
}
