//! Hidden-layer activations σ, applied element-wise after every layer but the last.
//!
//! | name | σ(z) | σ'(z) |
//! |---|---|---|
//! | `relu` | max(z, 0) | 1[z > 0] |
//! | `tanh` | tanh z | 1 − tanh² z |
//! | `silu` | z·s(z), s = 1/(1+e^{−z}) | s(z)·(1 + z·(1 − s(z))) |

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use super::Error;

/// The activation after every hidden layer (none follows the output layer). Serialised in kebab case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Activation {
    /// max(z, 0); the default.
    #[default]
    Relu,
    /// tanh z.
    Tanh,
    /// z / (1 + e^{−z}) (a.k.a. swish).
    Silu,
}

impl Activation {
    /// All activations, in declaration order.
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Tanh, Activation::Silu];

    /// The stable name, as serialised: `relu`, `tanh` or `silu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Tanh => "tanh",
            Self::Silu => "silu",
        }
    }

    /// σ(z) for one value.
    pub fn eval(self, z: f32) -> f32 {
        match self {
            Self::Relu => z.max(0.0),
            Self::Tanh => z.tanh(),
            // z·s(z) written as z / (1 + e^{−z}): e^{−z} overflows to ∞ for very negative z and gives −0, not NaN.
            Self::Silu => z / (1.0 + (-z).exp()),
        }
    }

    /// Applies σ in place.
    pub(crate) fn apply(self, z: &mut Array2<f32>) {
        z.mapv_inplace(|v| self.eval(v));
    }

    /// Multiplies the upstream gradient `g` = ∂L/∂a in place by σ'(z), turning it into ∂L/∂z; `z` is the
    /// pre-activation and `a` = σ(z) (tanh reuses it).
    pub(crate) fn backprop(self, g: &mut Array2<f32>, z: &Array2<f32>, a: &Array2<f32>) {
        Zip::from(g).and(z).and(a).for_each(|g, &z, &a| *g = self.backprop_one(*g, z, a));
    }

    /// ∂L/∂z = g·σ'(z) for one value, from g = ∂L/∂a, the pre-activation z and a = σ(z) (tanh reuses it).
    /// ReLU's gradient is set to 0 where z ≤ 0, not multiplied by 0, so an infinite g there stays out.
    #[inline(always)]
    pub(crate) fn backprop_one(self, g: f32, z: f32, a: f32) -> f32 {
        match self {
            Self::Relu => {
                if z <= 0.0 {
                    0.0
                } else {
                    g
                }
            }
            Self::Tanh => g * (1.0 - a * a),
            Self::Silu => {
                let s = 1.0 / (1.0 + (-z).exp());
                g * (s * (1.0 + z * (1.0 - s)))
            }
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;

    /// Parses `relu`, `tanh` or `silu` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::UnknownActivation { name: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_from_str_and_serde() {
        for a in Activation::ALL {
            assert_eq!(a.to_string().parse::<Activation>().unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{a}\""));
            assert_eq!(serde_json::from_str::<Activation>(&json).unwrap(), a);
        }
        assert_eq!(Activation::default(), Activation::Relu);
        assert_eq!("SiLU".parse::<Activation>().unwrap(), Activation::Silu);
        let e = "gelu".parse::<Activation>().unwrap_err();
        assert_eq!(e, Error::UnknownActivation { name: "gelu".into() });
        assert!(e.to_string().contains("unknown activation \"gelu\""));
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for act in Activation::ALL {
            for z in [-3.0f32, -0.7, 0.3, 2.5] {
                let h = 1e-3f32;
                let fd = (act.eval(z + h) - act.eval(z - h)) / (2.0 * h);
                let zs = Array2::from_elem((1, 1), z);
                let a = zs.mapv(|v| act.eval(v));
                let mut g = Array2::from_elem((1, 1), 1.0f32);
                act.backprop(&mut g, &zs, &a);
                assert!((g[[0, 0]] - fd).abs() < 1e-3, "{act} at {z}: {} vs {fd}", g[[0, 0]]);
            }
        }
    }

    #[test]
    fn silu_is_finite_at_extremes() {
        assert_eq!(Activation::Silu.eval(-1e4), 0.0);
        assert_eq!(Activation::Silu.eval(1e4), 1e4);
        let z = Array2::from_shape_vec((1, 2), vec![-1e4f32, 1e4]).unwrap();
        let mut g = Array2::from_elem((1, 2), 1.0f32);
        Activation::Silu.backprop(&mut g, &z, &z.mapv(|v| Activation::Silu.eval(v)));
        assert!(g.iter().all(|v| v.is_finite()), "{g}");
    }
}
