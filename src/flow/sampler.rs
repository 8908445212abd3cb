//! Fixed-step ODE integrators for dx/dt = v(x, t) on t ∈ [0, 1].

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::error::CandleContext;
use super::Result;

/// The integrator of the generation ODE; `steps` equal steps of h = 1/steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    /// x ← x + h v(x, t): one evaluation per step, global error O(h).
    #[default]
    Euler,
    /// Heun's (explicit trapezoidal) method: two evaluations per step, O(h²).
    Heun,
    /// Classic fourth-order Runge–Kutta: four evaluations per step, O(h⁴).
    Rk4,
}

impl Sampler {
    /// Velocity evaluations per step.
    pub fn evaluations_per_step(self) -> usize {
        match self {
            Self::Euler => 1,
            Self::Heun => 2,
            Self::Rk4 => 4,
        }
    }
}

/// Integrates from `x0` at t = 0 to t = 1 in `steps` steps; `on_step(i, t_i, x_i)` sees the state after each
/// step i = 1 … steps.
pub(crate) fn integrate(
    sampler: Sampler,
    steps: usize,
    x0: Tensor,
    mut v: impl FnMut(&Tensor, f64) -> Result<Tensor>,
    mut on_step: impl FnMut(usize, f64, &Tensor) -> Result<()>,
) -> Result<Tensor> {
    let h = 1.0 / steps.max(1) as f64;
    let mut x = x0;
    for i in 0..steps {
        let t = i as f64 * h;
        x = match sampler {
            Sampler::Euler => (&x + (v(&x, t)? * h).op("euler step")?).op("euler step")?,
            Sampler::Heun => {
                let k1 = v(&x, t)?;
                let xe = (&x + (&k1 * h).op("heun step")?).op("heun step")?;
                let k2 = v(&xe, t + h)?;
                (&x + ((k1 + k2).op("heun step")? * (h / 2.0)).op("heun step")?).op("heun step")?
            }
            Sampler::Rk4 => {
                let k1 = v(&x, t)?;
                let k2 = v(&(&x + (&k1 * (h / 2.0)).op("rk4 step")?).op("rk4 step")?, t + h / 2.0)?;
                let k3 = v(&(&x + (&k2 * (h / 2.0)).op("rk4 step")?).op("rk4 step")?, t + h / 2.0)?;
                let k4 = v(&(&x + (&k3 * h).op("rk4 step")?).op("rk4 step")?, t + h)?;
                let sum = (k1 + (k2 * 2.0).op("rk4 step")?)
                    .and_then(|s| s + (k3 * 2.0)?)
                    .and_then(|s| s + k4)
                    .op("rk4 step")?;
                (&x + (sum * (h / 6.0)).op("rk4 step")?).op("rk4 step")?
            }
        };
        on_step(i + 1, (i + 1) as f64 * h, &x)?;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::error::CandleContext;
    use candle_core::{DType, Device};

    /// Global error at t = 1 of dx/dt = −x from x0 = (1, −2) (exact x0·e^{−1}), in f64.
    fn error(sampler: Sampler, steps: usize) -> f64 {
        let x0 = Tensor::new(&[[1.0f64, -2.0]], &Device::Cpu).unwrap();
        let x = integrate(sampler, steps, x0, |x, _| x.neg().op("test"), |_, _, _| Ok(())).unwrap();
        let x = x.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
        let e = (-1f64).exp();
        ((x[0][0] - e).powi(2) + (x[0][1] + 2.0 * e).powi(2)).sqrt()
    }

    #[test]
    fn empirical_convergence_orders_match_the_methods() {
        for (sampler, order) in [(Sampler::Euler, 1.0), (Sampler::Heun, 2.0), (Sampler::Rk4, 4.0)] {
            let (e1, e2) = (error(sampler, 16), error(sampler, 32));
            let observed = (e1 / e2).log2();
            assert!((observed - order).abs() < 0.15, "{sampler:?}: errors {e1:e}, {e2:e}, order {observed}");
        }
    }

    #[test]
    fn time_dependent_field_is_integrated_at_the_right_times() {
        // dx/dt = 2t → x(1) = x0 + 1; Heun and RK4 are exact for a linear-in-t field.
        for sampler in [Sampler::Heun, Sampler::Rk4] {
            let x0 = Tensor::new(&[0.5f64], &Device::Cpu).unwrap();
            let mut seen = Vec::new();
            let x = integrate(
                sampler,
                4,
                x0,
                |x, t| x.ones_like().and_then(|o| o * (2.0 * t)).op("test"),
                |i, t, _| {
                    seen.push((i, t));
                    Ok(())
                },
            )
            .unwrap();
            assert!((x.to_vec1::<f64>().unwrap()[0] - 1.5).abs() < 1e-12);
            assert_eq!(seen.last(), Some(&(4, 1.0)));
        }
    }
}
