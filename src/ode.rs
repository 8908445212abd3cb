//! Fixed-step ODE integrators for dx/dt = v(x, t) on t ∈ [0, 1], generic over the state's type, so that the
//! candle meta-model ([`crate::flow`], tensors) and the onnxruntime runtime (`runtime`, `ndarray` arrays) step
//! exactly alike. No candle here: a scoring service links it.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

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

/// A state the integrators can step: the one operation they need is x + h·k.
pub trait OdeState: Sized {
    /// The error of the arithmetic (e.g. a device error); [`std::convert::Infallible`] for host arrays.
    type Error;
    /// x + h·k.
    fn add_scaled(&self, k: &Self, h: f64) -> Result<Self, Self::Error>;
}

impl OdeState for Array2<f32> {
    type Error = std::convert::Infallible;
    fn add_scaled(&self, k: &Self, h: f64) -> Result<Self, Self::Error> {
        let h = h as f32;
        let mut out = self.clone();
        out.zip_mut_with(k, |x, &k| *x += h * k);
        Ok(out)
    }
}

/// Integrates from `x0` at t = 0 to t = 1 in `steps` steps (at least one) of `sampler`; `on_step(i, t_i, x_i)`
/// sees the state after each step i = 1 … steps.
pub fn integrate<S, E>(
    sampler: Sampler,
    steps: usize,
    x0: S,
    mut v: impl FnMut(&S, f64) -> Result<S, E>,
    mut on_step: impl FnMut(usize, f64, &S) -> Result<(), E>,
) -> Result<S, E>
where
    S: OdeState,
    E: From<S::Error>,
{
    let steps = steps.max(1);
    let h = 1.0 / steps as f64;
    let mut x = x0;
    for i in 0..steps {
        let t = i as f64 * h;
        x = match sampler {
            Sampler::Euler => {
                let k1 = v(&x, t)?;
                x.add_scaled(&k1, h)?
            }
            Sampler::Heun => {
                let k1 = v(&x, t)?;
                let k2 = v(&x.add_scaled(&k1, h)?, t + h)?;
                x.add_scaled(&k1, h / 2.0)?.add_scaled(&k2, h / 2.0)?
            }
            Sampler::Rk4 => {
                let k1 = v(&x, t)?;
                let k2 = v(&x.add_scaled(&k1, h / 2.0)?, t + h / 2.0)?;
                let k3 = v(&x.add_scaled(&k2, h / 2.0)?, t + h / 2.0)?;
                let k4 = v(&x.add_scaled(&k3, h)?, t + h)?;
                let sixth = h / 6.0;
                x.add_scaled(&k1, sixth)?
                    .add_scaled(&k2, 2.0 * sixth)?
                    .add_scaled(&k3, 2.0 * sixth)?
                    .add_scaled(&k4, sixth)?
            }
        };
        on_step(i + 1, (i + 1) as f64 * h, &x)?;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A scalar f64 state, so the convergence orders are not hidden by f32 rounding.
    #[derive(Clone, Copy)]
    struct Scalar(f64);

    impl OdeState for Scalar {
        type Error = Infallible;
        fn add_scaled(&self, k: &Self, h: f64) -> Result<Self, Infallible> {
            Ok(Scalar(self.0 + h * k.0))
        }
    }

    /// Global error at t = 1 of dx/dt = −x from x0 = 1 (exact e^{−1}).
    fn error(sampler: Sampler, steps: usize) -> f64 {
        let x = integrate(sampler, steps, Scalar(1.0), |x, _| Ok::<_, Infallible>(Scalar(-x.0)), |_, _, _| Ok(()));
        (x.unwrap().0 - (-1f64).exp()).abs()
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
        // dx/dt = 2t → x(1) = x0 + 1; Heun and RK4 are exact for a field linear in t.
        for sampler in [Sampler::Heun, Sampler::Rk4] {
            let mut seen = Vec::new();
            let x = integrate(
                sampler,
                4,
                Scalar(0.5),
                |_, t| Ok::<_, Infallible>(Scalar(2.0 * t)),
                |i, t, _| {
                    seen.push((i, t));
                    Ok(())
                },
            )
            .unwrap();
            assert!((x.0 - 1.5).abs() < 1e-12);
            assert_eq!(seen.last(), Some(&(4, 1.0)));
        }
    }

    #[test]
    fn array_state_steps_like_the_scalar_one() {
        // dx/dt = −x on a 1×2 array, Euler with 4 steps: x0 (1 − 1/4)^4 exactly (in f32 rounding).
        let x0 = ndarray::arr2(&[[1.0f32, -2.0]]);
        let x = integrate(Sampler::Euler, 4, x0, |x, _| Ok::<_, Infallible>(x.mapv(|v| -v)), |_, _, _| Ok(())).unwrap();
        let want = 0.75f64.powi(4);
        assert!((x[[0, 0]] as f64 - want).abs() < 1e-6 && (x[[0, 1]] as f64 + 2.0 * want).abs() < 1e-6);
    }
}
