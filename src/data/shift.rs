//! Synthetic covariate shifts of image data: the harmful and benign scenarios a shift detector is judged on.
//!
//! Rows are flattened square grey-scale images in row-major order (MNIST 28×28, digits 8×8), in the data's raw
//! units (before standardisation). Harmful shifts move inputs off the training manifold and cost the deployed
//! classifier accuracy (rotation, noise) or change the label mix (a class subset); the benign one
//! (blacked-out corners) changes pixels that handwritten digits never reach, so accuracy stays intact and a
//! detector *should not* flag it more often than its level allows.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView1, ArrayViewMut1};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use super::dataset::Dataset;
use super::error::{Error, Result};
use crate::rng::stream;

/// A synthetic shift of image rows. Parse one from `rotate:30-60`, `noise:SIGMA`, `classes:0,1,2` or
/// `corners:K` ([`FromStr`]); [`Shift::apply`] turns an in-distribution pool into a shifted one.
#[derive(Clone, Debug, PartialEq)]
pub enum Shift {
    /// Rotate each image about its centre by an angle drawn uniformly from `[min_degrees, max_degrees]` with a
    /// random sign (bilinear interpolation, zero outside the image).
    Rotate {
        /// The smallest rotation, in degrees (≥ 0).
        min_degrees: f32,
        /// The largest rotation, in degrees (≥ `min_degrees`).
        max_degrees: f32,
    },
    /// Add independent N(0, σ²) noise to every pixel, clamped to the pool's observed pixel range (so noisy
    /// images stay valid images).
    GaussianNoise {
        /// The noise's standard deviation, in the data's raw units (MNIST pixels are 0–255).
        sigma: f32,
    },
    /// Keep only rows of these classes: a label shift that leaves each class's inputs unchanged.
    ClassSubset {
        /// The classes kept (at least one).
        classes: Vec<usize>,
    },
    /// Set a `size`×`size` square in each of the four corners to zero (benign for digits).
    BlackCorners {
        /// The side of each blacked-out square, in pixels (1 ≤ size ≤ side / 2).
        size: usize,
    },
}

/// The accepted spellings, for error messages and `--help`.
pub const SHIFT_FORMS: &str = "rotate:MIN-MAX (degrees), noise:SIGMA, classes:C1,C2,…, corners:K";

fn bad(spec: &str, reason: impl Into<String>) -> Error {
    Error::Shift { file: format!("shift {spec:?}"), reason: format!("{} (accepted: {SHIFT_FORMS})", reason.into()) }
}

fn number<T: FromStr>(spec: &str, text: &str, what: &str) -> Result<T> {
    text.trim().parse().map_err(|_| bad(spec, format!("expected {what}, found {text:?}")))
}

impl FromStr for Shift {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let (kind, arg) = spec.split_once(':').ok_or_else(|| bad(spec, "expected KIND:ARGUMENT"))?;
        let shift = match kind {
            "rotate" if arg.trim_start().starts_with('-') => {
                return Err(bad(spec, "rotations are magnitudes (each image draws its sign): write e.g. rotate:5"));
            }
            "rotate" => {
                let (lo, hi) = arg.split_once('-').unwrap_or((arg, arg));
                Shift::Rotate {
                    min_degrees: number(spec, lo, "a rotation in degrees")?,
                    max_degrees: number(spec, hi, "a rotation in degrees")?,
                }
            }
            "noise" => Shift::GaussianNoise { sigma: number(spec, arg, "a noise standard deviation")? },
            "classes" => Shift::ClassSubset {
                classes: arg.split(',').map(|c| number(spec, c, "a class index")).collect::<Result<_>>()?,
            },
            "corners" => Shift::BlackCorners { size: number(spec, arg, "a corner size in pixels")? },
            _ => return Err(bad(spec, format!("unknown shift kind {kind:?}"))),
        };
        shift.validate().map_err(|reason| bad(spec, reason))?;
        Ok(shift)
    }
}

impl fmt::Display for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shift::Rotate { min_degrees, max_degrees } => write!(f, "rotate:{min_degrees}-{max_degrees}"),
            Shift::GaussianNoise { sigma } => write!(f, "noise:{sigma}"),
            Shift::ClassSubset { classes } => {
                let list: Vec<String> = classes.iter().map(usize::to_string).collect();
                write!(f, "classes:{}", list.join(","))
            }
            Shift::BlackCorners { size } => write!(f, "corners:{size}"),
        }
    }
}

impl Shift {
    fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Shift::Rotate { min_degrees: lo, max_degrees: hi } if !(0.0 <= *lo && lo <= hi && hi.is_finite()) => {
                Err(format!("expected 0 ≤ MIN ≤ MAX degrees, found {lo}-{hi}"))
            }
            Shift::GaussianNoise { sigma } if !(sigma.is_finite() && *sigma > 0.0) => {
                Err(format!("expected a positive finite noise level, found {sigma}"))
            }
            Shift::ClassSubset { classes } if classes.is_empty() => Err("expected at least one class".into()),
            Shift::BlackCorners { size: 0 } => Err("expected a corner size of at least 1 pixel".into()),
            _ => Ok(()),
        }
    }

    /// Whether this shift is expected to hurt a classifier trained on the unshifted data (the scenario's label
    /// in a detection report). Blacked-out corners are the benign control.
    pub fn is_harmful(&self) -> bool {
        !matches!(self, Shift::BlackCorners { .. })
    }

    /// The shifted pool: every row of `pool` transformed (row `i` with randomness from
    /// `crate::rng::stream(seed, i)`, so the result does not depend on thread count or order), or, for a class
    /// subset, the rows of those classes. Errors if the rows are not square images, a class is out of range or
    /// absent, or the corners do not fit.
    pub fn apply(&self, pool: &Dataset, seed: u64) -> Result<Dataset> {
        self.validate().map_err(|reason| Error::Shift { file: pool.source.clone(), reason })?;
        if let Shift::ClassSubset { classes } = self {
            return class_subset(pool, classes);
        }
        let side = image_side(pool)?;
        let mut out = pool.clone();
        out.source = format!("{} shifted by {self}", pool.source);
        match self {
            Shift::Rotate { min_degrees, max_degrees } => {
                for (i, mut row) in out.x.rows_mut().into_iter().enumerate() {
                    let mut r = stream(seed, i as u64);
                    let degrees = r.random_range(*min_degrees..=*max_degrees);
                    let sign = if r.random_bool(0.5) { 1.0 } else { -1.0 };
                    let rotated = rotate(pool.x.row(i), side, sign * degrees.to_radians());
                    row.assign(&ndarray::ArrayView1::from(&rotated));
                }
            }
            Shift::GaussianNoise { sigma } => {
                let (lo, hi) = pixel_range(&pool.x);
                for (i, row) in out.x.rows_mut().into_iter().enumerate() {
                    let mut r = stream(seed, i as u64);
                    add_noise(row, *sigma, lo, hi, &mut r);
                }
            }
            Shift::BlackCorners { size } => {
                if 2 * size > side {
                    let reason =
                        format!("corners of {size} pixels do not fit a {side}×{side} image (at most {})", side / 2);
                    return Err(Error::Shift { file: pool.source.clone(), reason });
                }
                for row in out.x.rows_mut() {
                    black_corners(row, side, *size);
                }
            }
            Shift::ClassSubset { .. } => unreachable!("handled above"),
        }
        Ok(out)
    }
}

fn image_side(pool: &Dataset) -> Result<usize> {
    let d = pool.n_features();
    let side = (d as f64).sqrt().round() as usize;
    if side * side != d || d == 0 {
        let reason = format!("expected square images (features = side²), found {d} features");
        return Err(Error::Shift { file: pool.source.clone(), reason });
    }
    Ok(side)
}

fn class_subset(pool: &Dataset, classes: &[usize]) -> Result<Dataset> {
    if let Some(&c) = classes.iter().find(|&&c| c >= pool.n_classes) {
        let reason = format!("class {c} is out of range (the data set has {} classes)", pool.n_classes);
        return Err(Error::Shift { file: pool.source.clone(), reason });
    }
    let rows: Vec<usize> = (0..pool.len()).filter(|&i| classes.contains(&pool.y[i])).collect();
    if rows.is_empty() {
        let reason = format!("no rows of classes {classes:?} in the pool");
        return Err(Error::Shift { file: pool.source.clone(), reason });
    }
    let mut out = pool.select(&rows);
    out.source = format!("{} (classes {classes:?})", pool.source);
    Ok(out)
}

fn pixel_range(x: &Array2<f32>) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

fn add_noise(mut row: ArrayViewMut1<'_, f32>, sigma: f32, lo: f32, hi: f32, rng: &mut crate::rng::Rng) {
    for v in row.iter_mut() {
        let z: f32 = StandardNormal.sample(rng);
        *v = (*v + sigma * z).clamp(lo, hi);
    }
}

/// The image rotated by `theta` radians about its centre: output pixel (r, c) takes the bilinear
/// interpolation of the input at the inversely rotated position; positions outside the image read 0.
fn rotate(img: ArrayView1<'_, f32>, side: usize, theta: f32) -> Vec<f32> {
    let centre = (side as f32 - 1.0) / 2.0;
    let (sin, cos) = theta.sin_cos();
    let at = |r: isize, c: isize| -> f32 {
        if r < 0 || c < 0 || r >= side as isize || c >= side as isize {
            0.0
        } else {
            img[r as usize * side + c as usize]
        }
    };
    let mut out = vec![0.0; side * side];
    for r in 0..side {
        for c in 0..side {
            let (dy, dx) = (r as f32 - centre, c as f32 - centre);
            let sy = -sin * dx + cos * dy + centre;
            let sx = cos * dx + sin * dy + centre;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            out[r * side + c] = (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                + fy * ((1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
        }
    }
    out
}

fn black_corners(mut row: ArrayViewMut1<'_, f32>, side: usize, size: usize) {
    let far = side - size;
    for r in (0..size).chain(far..side) {
        for c in (0..size).chain(far..side) {
            row[r * side + c] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn images(n: usize, side: usize) -> Dataset {
        let x = Array2::from_shape_fn((n, side * side), |(i, j)| ((i * 31 + j * 7) % 256) as f32);
        let y = (0..n).map(|i| i % 3).collect();
        Dataset::new(x, y, 3, "imgs").unwrap()
    }

    #[test]
    fn parses_and_prints_every_form() -> Result<()> {
        for spec in ["rotate:30-60", "noise:64", "classes:0,2", "corners:4"] {
            assert_eq!(spec.parse::<Shift>()?.to_string(), spec);
        }
        assert_eq!("rotate:45".parse::<Shift>()?, Shift::Rotate { min_degrees: 45.0, max_degrees: 45.0 });
        for bad in ["rotate", "spin:3", "rotate:60-30", "rotate:-5", "noise:-1", "noise:x", "classes:", "corners:0"] {
            let err = bad.parse::<Shift>().unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("accepted:"), "{bad}: {err}");
        }
        Ok(())
    }

    #[test]
    fn quarter_turn_is_the_exact_pixel_permutation() -> Result<()> {
        for side in [5, 8] {
            let pool = images(3, side);
            let turned = Shift::Rotate { min_degrees: 90.0, max_degrees: 90.0 }.apply(&pool, 1)?;
            for i in 0..3 {
                let img = pool.x.row(i);
                let out = turned.x.row(i);
                // A +90° turn maps (r, c) ← (side−1−c, r); a −90° turn maps (r, c) ← (c, side−1−r).
                let plus = (0..side * side).all(|k| {
                    let (r, c) = (k / side, k % side);
                    (out[k] - img[(side - 1 - c) * side + r]).abs() < 1e-3
                });
                let minus = (0..side * side).all(|k| {
                    let (r, c) = (k / side, k % side);
                    (out[k] - img[c * side + (side - 1 - r)]).abs() < 1e-3
                });
                assert!(plus ^ minus, "image {i} of side {side} is not a quarter turn");
            }
            let still = Shift::Rotate { min_degrees: 0.0, max_degrees: 0.0 }.apply(&pool, 1)?;
            assert!(still.x.iter().zip(&pool.x).all(|(a, b)| (a - b).abs() < 1e-3));
        }
        Ok(())
    }

    #[test]
    fn noise_has_the_asked_spread_and_stays_in_range() -> Result<()> {
        let x = Array2::from_elem((200, 64), 128.0f32);
        let mut x2 = x.clone();
        x2[[0, 0]] = 0.0;
        x2[[0, 1]] = 255.0;
        let pool = Dataset::new(x2, vec![0; 200], 1, "flat")?;
        let noisy = Shift::GaussianNoise { sigma: 10.0 }.apply(&pool, 3)?;
        let diffs: Vec<f64> = noisy.x.iter().zip(&x).skip(2).map(|(a, b)| f64::from(a - b)).collect();
        let n = diffs.len() as f64;
        let mean = diffs.iter().sum::<f64>() / n;
        let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.2 && (sd - 10.0).abs() < 0.2, "mean {mean}, sd {sd}");
        assert!(noisy.x.iter().all(|&v| (0.0..=255.0).contains(&v)));
        assert_eq!(noisy, Shift::GaussianNoise { sigma: 10.0 }.apply(&pool, 3)?, "same seed, same noise");
        Ok(())
    }

    #[test]
    fn corners_and_class_subsets() -> Result<()> {
        let pool = images(6, 8);
        let cut = Shift::BlackCorners { size: 2 }.apply(&pool, 0)?;
        for i in 0..6 {
            for k in 0..64 {
                let (r, c) = (k / 8, k % 8);
                let corner = !(2..6).contains(&r) && !(2..6).contains(&c);
                assert_eq!(cut.x[[i, k]], if corner { 0.0 } else { pool.x[[i, k]] });
            }
        }
        assert!(Shift::BlackCorners { size: 5 }.apply(&pool, 0).is_err());
        let sub = Shift::ClassSubset { classes: vec![2] }.apply(&pool, 0)?;
        assert_eq!(sub.y, [2, 2]);
        assert_eq!(sub.x.row(0), pool.x.row(2));
        assert!(Shift::ClassSubset { classes: vec![3] }.apply(&pool, 0).is_err());
        let not_square = Dataset::new(Array2::zeros((2, 10)), vec![0, 0], 1, "ragged")?;
        let err = Shift::BlackCorners { size: 1 }.apply(&not_square, 0).unwrap_err().to_string();
        assert!(err.contains("square images") && err.contains("10 features"), "{err}");
        assert!(!Shift::BlackCorners { size: 1 }.is_harmful() && Shift::GaussianNoise { sigma: 1.0 }.is_harmful());
        Ok(())
    }
}
