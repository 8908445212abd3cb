//! The layout of an MLP's parameters in a flat vector.

use serde::{Deserialize, Serialize};

use super::Error;

/// A borrowed tensor of a flat vector: `(name, shape, values)`.
pub type NamedTensor<'a> = (&'a str, &'a [usize], &'a [f32]);

/// One named tensor of a classifier, and where it sits in the flat vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Stable name, `l{i}.weight` or `l{i}.bias` for layer `i` (0-based).
    pub name: String,
    /// `[out, in]` for a weight, `[out]` for a bias.
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat vector.
    pub offset: usize,
    /// Fan-in of the layer the tensor belongs to (its input width); Kaiming-uniform bounds use it.
    pub fan_in: usize,
}

impl TensorSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a tensor with no elements (never the case for a valid layout).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range of this tensor in the flat vector.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The parameter layout of an MLP with layer widths `sizes = [d_in, h_1, …, h_L, n_classes]`.
///
/// Flattening order (stable; files and the C ABI depend on it): for layer `i = 0 … L`, first the weight
/// `W_i` of shape `[sizes[i+1], sizes[i]]` row-major, then the bias `b_i` of length `sizes[i+1]`.
/// `D = Σ_i (sizes[i] + 1) · sizes[i+1]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<usize>", into = "Vec<usize>")]
pub struct Layout {
    sizes: Vec<usize>,
    tensors: Vec<TensorSpec>,
    dim: usize,
}

impl Layout {
    /// The layout of an MLP with widths `sizes` (input, hidden…, output); at least two entries, all ≥ 1.
    pub fn mlp(sizes: &[usize]) -> Result<Self, Error> {
        let arch = || sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
        if sizes.len() < 2 {
            return Err(Error::Arch { arch: arch(), reason: "need at least an input and an output width".into() });
        }
        if sizes.contains(&0) {
            return Err(Error::Arch { arch: arch(), reason: "every width must be at least 1".into() });
        }
        let mut tensors = Vec::with_capacity(2 * (sizes.len() - 1));
        let mut offset = 0usize;
        for (i, w) in sizes.windows(2).enumerate() {
            let (fan_in, out) = (w[0], w[1]);
            for (name, shape) in [(format!("l{i}.weight"), vec![out, fan_in]), (format!("l{i}.bias"), vec![out])] {
                let spec = TensorSpec { name, shape, offset, fan_in };
                offset = offset
                    .checked_add(spec.len())
                    .ok_or_else(|| Error::Arch { arch: arch(), reason: "parameter count overflows".into() })?;
                tensors.push(spec);
            }
        }
        Ok(Self { sizes: sizes.to_vec(), tensors, dim: offset })
    }

    /// Parses an architecture string of widths joined by `-`, e.g. `9-16-16-2`.
    pub fn parse(arch: &str) -> Result<Self, Error> {
        let sizes = arch.split('-').map(|s| s.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>().map_err(|e| {
            Error::Arch { arch: arch.to_string(), reason: format!("{e} (expected widths like 9-16-16-2)") }
        })?;
        Self::mlp(&sizes).map_err(|e| match e {
            Error::Arch { reason, .. } => Error::Arch { arch: arch.to_string(), reason },
            other => other,
        })
    }

    /// The architecture string, e.g. `9-16-16-2`.
    pub fn arch(&self) -> String {
        self.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-")
    }

    /// Layer widths `[d_in, h_1, …, n_classes]`.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Number of linear layers.
    pub fn n_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Input width.
    pub fn n_inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Output width (number of classes).
    pub fn n_outputs(&self) -> usize {
        *self.sizes.last().expect("a layout has at least two widths")
    }

    /// The total number of parameters D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All tensors in flattening order.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// The weight and bias specs of layer `i`.
    pub fn layer(&self, i: usize) -> (&TensorSpec, &TensorSpec) {
        (&self.tensors[2 * i], &self.tensors[2 * i + 1])
    }

    /// Checks that a flat vector has this layout's dimension.
    pub fn check(&self, theta: &[f32]) -> Result<(), Error> {
        if theta.len() != self.dim {
            return Err(Error::Dim { expected: self.dim, got: theta.len() });
        }
        Ok(())
    }

    /// Splits a flat vector into `(name, shape, values)` per tensor, in flattening order.
    pub fn unflatten<'a>(&'a self, theta: &'a [f32]) -> Result<Vec<NamedTensor<'a>>, Error> {
        self.check(theta)?;
        Ok(self.tensors.iter().map(|t| (t.name.as_str(), t.shape.as_slice(), &theta[t.range()])).collect())
    }

    /// Concatenates named tensors (in any order) into a flat vector; every tensor must be present once with
    /// its exact shape.
    pub fn flatten(&self, tensors: &[NamedTensor<'_>]) -> Result<Vec<f32>, Error> {
        let mut theta = vec![0f32; self.dim];
        let mut seen = vec![false; self.tensors.len()];
        for (name, shape, values) in tensors {
            let idx = self
                .tensors
                .iter()
                .position(|t| t.name == *name)
                .ok_or_else(|| Error::Arch { arch: self.arch(), reason: format!("no tensor named {name:?}") })?;
            let spec = &self.tensors[idx];
            if spec.shape != *shape || values.len() != spec.len() || seen[idx] {
                return Err(Error::Arch {
                    arch: self.arch(),
                    reason: format!(
                        "tensor {name:?}: shape {shape:?} with {} values (expected {:?}, once)",
                        values.len(),
                        spec.shape
                    ),
                });
            }
            seen[idx] = true;
            theta[spec.range()].copy_from_slice(values);
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(Error::Arch {
                arch: self.arch(),
                reason: format!("tensor {:?} missing", self.tensors[missing].name),
            });
        }
        Ok(theta)
    }
}

impl TryFrom<Vec<usize>> for Layout {
    type Error = Error;
    fn try_from(sizes: Vec<usize>) -> Result<Self, Error> {
        Self::mlp(&sizes)
    }
}

impl From<Layout> for Vec<usize> {
    fn from(l: Layout) -> Self {
        l.sizes
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.arch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uci_heart_layout_has_the_documented_dimension() {
        // D = (9+1)·16 + (16+1)·16 + (16+1)·2 = 160 + 272 + 34 = 466 (METHOD.md §2).
        let l = Layout::parse("9-16-16-2").unwrap();
        assert_eq!(l.dim(), 466);
        let names: Vec<_> = l.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["l0.weight", "l0.bias", "l1.weight", "l1.bias", "l2.weight", "l2.bias"]);
        assert_eq!(l.tensors()[2].offset, 160);
        assert_eq!(l.tensors()[2].shape, [16, 16]);
        assert_eq!(l.tensors()[5].fan_in, 16);
        assert_eq!(l.arch(), "9-16-16-2");
    }

    #[test]
    fn flatten_inverts_unflatten() {
        let l = Layout::parse("3-4-2").unwrap();
        let theta: Vec<f32> = (0..l.dim()).map(|i| i as f32).collect();
        let parts = l.unflatten(&theta).unwrap();
        let mut shuffled = parts.clone();
        shuffled.reverse();
        assert_eq!(l.flatten(&shuffled).unwrap(), theta);
        // Row-major [out, in]: W0[1][2] is the 1·3+2 = 5th entry.
        assert_eq!(parts[0].2[5], 5.0);
    }

    #[test]
    fn bad_architectures_are_refused_with_a_reason() {
        for bad in ["", "9", "9-0-2", "9-x-2", "9--2"] {
            let e = Layout::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid architecture"), "{bad}: {e}");
        }
        let l = Layout::parse("2-2").unwrap();
        assert!(matches!(l.check(&[0.0; 5]), Err(Error::Dim { expected: 6, got: 5 })));
        assert!(l.flatten(&[("l0.weight", &[2, 2], &[0.0; 4])]).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn serde_round_trip_is_the_width_list() {
        let l = Layout::parse("4-8-3").unwrap();
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(s, "[4,8,3]");
        assert_eq!(serde_json::from_str::<Layout>(&s).unwrap(), l);
        assert!(serde_json::from_str::<Layout>("[4]").is_err());
    }
}
