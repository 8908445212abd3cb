//! [`Dataset`]: a labelled feature matrix and where it came from.

use ndarray::{Array2, Axis};

use super::error::{Error, Result};

/// A labelled data set: row `i` of `x` has class `y[i]`.
///
/// Shapes: `x` is `[n, d]` (n rows, d features), `y` has n entries, each below `n_classes`, and
/// `feature_names` has d entries. [`Dataset::new`] checks all of that; the fields are public for reading and
/// for code that keeps them consistent itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Features, `[n, d]`.
    pub x: Array2<f32>,
    /// Class labels in `0..n_classes`, one per row.
    pub y: Vec<usize>,
    /// The number of classes (labels need not all occur).
    pub n_classes: usize,
    /// One name per feature column (generated as `x0`…`x{d-1}` where the file has none).
    pub feature_names: Vec<String>,
    /// Where the rows came from: a path, or `embedded:<name>` for data compiled into the library.
    pub source: String,
}

/// Feature names `x0`…`x{d-1}`, for files without a header.
pub fn default_feature_names(d: usize) -> Vec<String> {
    (0..d).map(|j| format!("x{j}")).collect()
}

impl Dataset {
    /// A data set with generated feature names, after checking that `y` has one label below `n_classes` per row.
    pub fn new(x: Array2<f32>, y: Vec<usize>, n_classes: usize, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        if y.len() != x.nrows() {
            return Err(Error::Shape {
                file: source,
                what: "labels (one per row of x)",
                expected: x.nrows(),
                found: y.len(),
            });
        }
        if let Some((row, &label)) = y.iter().enumerate().find(|(_, &l)| l >= n_classes) {
            return Err(Error::LabelRange { file: source, row, label, n_classes });
        }
        let feature_names = default_feature_names(x.ncols());
        Ok(Dataset { x, y, n_classes, feature_names, source })
    }

    /// The same data set with these feature names, one per column.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.x.ncols() {
            return Err(Error::Shape {
                file: self.source,
                what: "feature names (one per column of x)",
                expected: self.x.ncols(),
                found: names.len(),
            });
        }
        self.feature_names = names;
        Ok(self)
    }

    /// The number of rows n.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The number of features d.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// The rows at `indices`, in that order (repeats allowed), with the same classes, names and source.
    ///
    /// # Panics
    /// If an index is `>= self.len()`, as [`ndarray::ArrayBase::select`] does.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(Axis(0), indices),
            y: indices.iter().map(|&i| self.y[i]).collect(),
            n_classes: self.n_classes,
            feature_names: self.feature_names.clone(),
            source: self.source.clone(),
        }
    }

    /// How many rows each class has: entry `c` counts the rows labelled `c` (length `n_classes`).
    ///
    /// # Panics
    /// If a label is `>= n_classes` (which [`Dataset::new`] rules out).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_classes];
        for &label in &self.y {
            counts[label] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn new_checks_labels_and_select_keeps_order() -> Result<()> {
        let x = array![[0.0f32, 1.0], [2.0, 3.0], [4.0, 5.0]];
        let ds = Dataset::new(x.clone(), vec![0, 2, 1], 3, "t")?;
        assert_eq!(ds.feature_names, ["x0", "x1"]);
        assert_eq!((ds.len(), ds.n_features()), (3, 2));
        assert_eq!(ds.class_counts(), [1, 1, 1]);
        let sub = ds.select(&[2, 0]);
        assert_eq!(sub.x, array![[4.0f32, 5.0], [0.0, 1.0]]);
        assert_eq!(sub.y, [1, 0]);

        let err = Dataset::new(x.clone(), vec![0, 3, 1], 3, "t").unwrap_err();
        assert_eq!(err.to_string(), "t: row 1: expected a label below 3, found 3");
        let err = Dataset::new(x, vec![0], 3, "t").unwrap_err();
        assert_eq!(err.to_string(), "t: labels (one per row of x): expected 3, found 1");
        let err = ds.with_feature_names(vec!["a".into()]).unwrap_err();
        assert!(err.to_string().contains("feature names (one per column of x): expected 2, found 1"));
        Ok(())
    }
}
