//! Natural cubic splines through batches of chains of knots, per coordinate.
//!
//! Knots t_0 < … < t_{n−1} are shared by the batch; values y are `[B, n, D]`. With M_i the second derivative
//! at knot i (M_0 = M_{n−1} = 0, "natural"), on [t_i, t_{i+1}] with h = t_{i+1} − t_i, a = (t_{i+1} − t)/h,
//! b = 1 − a:
//!
//! S(t)  = a y_i + b y_{i+1} + ((a³ − a) M_i + (b³ − b) M_{i+1}) h²/6
//! S'(t) = (y_{i+1} − y_i)/h + ((1 − 3a²) M_i + (3b² − 1) M_{i+1}) h/6
//!
//! and the M_i solve the tridiagonal system h_{i−1} M_{i−1} + 2(h_{i−1} + h_i) M_i + h_i M_{i+1} =
//! 6((y_{i+1} − y_i)/h_i − (y_i − y_{i−1})/h_{i−1}), i = 1 … n−2 (Thomas algorithm, factored once for all
//! coordinates). Two knots give the straight line.

use ndarray::{Array2, Array3, ArrayView3, Axis};

use super::{Error, Result};

/// A batch of natural cubic splines sharing their knot times.
#[derive(Debug, Clone)]
pub struct NaturalCubicSpline {
    t: Vec<f64>,
    y: Array3<f32>,
    m: Array3<f32>,
}

impl NaturalCubicSpline {
    /// Fits splines through `y` `[B, n, D]` at knot times `t` (length n ≥ 2, strictly increasing).
    pub fn fit(t: &[f64], y: ArrayView3<f32>) -> Result<Self> {
        let (b, n, d) = y.dim();
        if n != t.len() || n < 2 {
            return Err(Error::Shape {
                what: "spline knots",
                expected: format!("at least 2 knots, as many as times ({})", t.len()),
                got: format!("{:?}", y.shape()),
            });
        }
        if t.windows(2).any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater)) {
            return Err(Error::Config {
                field: "spline knots",
                reason: format!("times must increase strictly: {t:?}"),
            });
        }
        let h: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let mut m = Array3::<f32>::zeros((b, n, d));
        let inner = n - 2;
        if inner > 0 {
            // Thomas factorisation of the shared matrix: diag_i = 2(h_{i-1}+h_i), sub = h_{i-1}, sup = h_i.
            let mut cp = vec![0f64; inner];
            let mut denom = vec![0f64; inner];
            for j in 0..inner {
                let i = j + 1;
                let diag = 2.0 * (h[i - 1] + h[i]);
                let prev = if j == 0 { 0.0 } else { h[i - 1] * cp[j - 1] };
                denom[j] = diag - prev;
                cp[j] = h[i] / denom[j];
            }
            let mut dp = vec![0f64; inner];
            for bi in 0..b {
                for c in 0..d {
                    for j in 0..inner {
                        let i = j + 1;
                        let (y0, y1, y2) = (y[[bi, i - 1, c]] as f64, y[[bi, i, c]] as f64, y[[bi, i + 1, c]] as f64);
                        let rhs = 6.0 * ((y2 - y1) / h[i] - (y1 - y0) / h[i - 1]);
                        let prev = if j == 0 { 0.0 } else { h[i - 1] * dp[j - 1] };
                        dp[j] = (rhs - prev) / denom[j];
                    }
                    let mut next = 0.0;
                    for j in (0..inner).rev() {
                        let v = dp[j] - cp[j] * next;
                        m[[bi, j + 1, c]] = v as f32;
                        next = v;
                    }
                }
            }
        }
        Ok(Self { t: t.to_vec(), y: y.to_owned(), m })
    }

    /// Number of splines B.
    pub fn len(&self) -> usize {
        self.y.len_of(Axis(0))
    }

    /// True when the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value and first derivative of spline `i` at time `ts[i]` (clamped to the knot range), each `[B, D]`.
    pub fn eval(&self, ts: &[f64]) -> Result<(Array2<f32>, Array2<f32>)> {
        let (b, _, d) = self.y.dim();
        if ts.len() != b {
            return Err(Error::Shape { what: "spline times", expected: format!("{b}"), got: format!("{}", ts.len()) });
        }
        let mut val = Array2::zeros((b, d));
        let mut der = Array2::zeros((b, d));
        for (bi, &t) in ts.iter().enumerate() {
            let (i, a, bb, h) = self.segment(t);
            let (ca, cb) = ((a * a * a - a) * h * h / 6.0, (bb * bb * bb - bb) * h * h / 6.0);
            let (da, db) = ((1.0 - 3.0 * a * a) * h / 6.0, (3.0 * bb * bb - 1.0) * h / 6.0);
            for c in 0..d {
                let (y0, y1) = (self.y[[bi, i, c]] as f64, self.y[[bi, i + 1, c]] as f64);
                let (m0, m1) = (self.m[[bi, i, c]] as f64, self.m[[bi, i + 1, c]] as f64);
                val[[bi, c]] = (a * y0 + bb * y1 + ca * m0 + cb * m1) as f32;
                der[[bi, c]] = ((y1 - y0) / h + da * m0 + db * m1) as f32;
            }
        }
        Ok((val, der))
    }

    /// Second derivative of every spline at time `t`, `[B, D]` (for tests of the natural end condition).
    pub fn second_derivative(&self, t: f64) -> Array2<f32> {
        let (i, a, bb, _) = self.segment(t);
        let m = &self.m;
        let (m0, m1) = (m.index_axis(Axis(1), i), m.index_axis(Axis(1), i + 1));
        let mut out = m0.to_owned() * a as f32;
        out.scaled_add(bb as f32, &m1);
        out
    }

    /// Segment index i, weights a, b and width h for time t.
    fn segment(&self, t: f64) -> (usize, f64, f64, f64) {
        let n = self.t.len();
        let t = t.clamp(self.t[0], self.t[n - 1]);
        let i = self.t[..n - 1].iter().rposition(|&k| k <= t).unwrap_or(0);
        let h = self.t[i + 1] - self.t[i];
        let a = (self.t[i + 1] - t) / h;
        (i, a, 1.0 - a, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn knots() -> Vec<f64> {
        vec![0.0, 0.2, 0.5, 0.6, 1.0]
    }

    #[test]
    fn interpolates_the_knots_and_is_natural_at_the_ends() {
        let t = knots();
        let y = Array3::from_shape_fn((3, t.len(), 2), |(b, k, c)| ((b * 7 + k * 3 + c) as f32).sin() * 2.0);
        let s = NaturalCubicSpline::fit(&t, y.view()).unwrap();
        for (k, &tk) in t.iter().enumerate() {
            let (v, _) = s.eval(&[tk; 3]).unwrap();
            for b in 0..3 {
                for c in 0..2 {
                    assert!((v[[b, c]] - y[[b, k, c]]).abs() < 1e-5, "knot {k}");
                }
            }
        }
        for end in [0.0, 1.0] {
            assert!(s.second_derivative(end).iter().all(|v| v.abs() < 1e-6));
        }
        // The second derivative is continuous at interior knots (evaluated from both sides).
        let m = s.second_derivative(0.5);
        let left = s.second_derivative(0.5 - 1e-9);
        assert!(m.iter().zip(left.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn linear_data_gives_the_line_and_its_slope() {
        let t = knots();
        // y = 3 − 2t (coordinate 0), y = 0.5 t (coordinate 1).
        let y =
            Array3::from_shape_fn(
                (1, t.len(), 2),
                |(_, k, c)| {
                    if c == 0 {
                        3.0 - 2.0 * t[k] as f32
                    } else {
                        0.5 * t[k] as f32
                    }
                },
            );
        let s = NaturalCubicSpline::fit(&t, y.view()).unwrap();
        for q in [0.0, 0.1, 0.33, 0.55, 0.77, 1.0] {
            let (v, d) = s.eval(&[q]).unwrap();
            assert!((v[[0, 0]] - (3.0 - 2.0 * q as f32)).abs() < 1e-5);
            assert!((v[[0, 1]] - 0.5 * q as f32).abs() < 1e-6);
            assert!((d[[0, 0]] + 2.0).abs() < 1e-4 && (d[[0, 1]] - 0.5).abs() < 1e-4);
        }
    }

    #[test]
    fn derivative_matches_finite_differences() {
        let t = knots();
        let y = Array3::from_shape_fn((1, t.len(), 1), |(_, k, _)| (t[k] * 4.0).cos() as f32);
        let s = NaturalCubicSpline::fit(&t, y.view()).unwrap();
        for q in [0.05, 0.3, 0.58, 0.9] {
            let e = 1e-3;
            let (vp, _) = s.eval(&[q + e]).unwrap();
            let (vm, _) = s.eval(&[q - e]).unwrap();
            let (_, d) = s.eval(&[q]).unwrap();
            let fd = (vp[[0, 0]] - vm[[0, 0]]) / (2.0 * e as f32);
            assert!((fd - d[[0, 0]]).abs() < 2e-2, "t={q}: fd {fd} vs {}", d[[0, 0]]);
        }
        assert!(NaturalCubicSpline::fit(&[0.0, 0.0, 1.0], Array3::zeros((1, 3, 1)).view()).is_err());
    }
}
