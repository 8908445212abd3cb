//! The two-sample Kolmogorov–Smirnov test, with exact p-values for small samples.
//!
//! For samples a (n values) and b (m values) with empirical CDFs F_a, F_b, the statistic is
//! D = sup_x |F_a(x) − F_b(x)|, and the p-value is P(D ≥ d_obs) when both samples are i.i.d. draws of one
//! continuous law.
//!
//! * **Exact** (n·m ≤ [`EXACT_MAX_CELLS`]): under the null every interleaving of the pooled sample is equally
//!   likely, i.e. a uniformly random monotone lattice path from (0, 0) to (n, m); D ≥ d exactly when the path
//!   leaves the band |i·m − j·n| < d·n·m. A forward pass over the grid moves each cell's probability up with
//!   probability (n−i)/(n−i+m−j) and right otherwise, and collects the mass that first steps out of the band:
//!   that mass *is* the p-value, so small p-values keep their relative precision (no 1 − (1 − p)).
//! * **Asymptotic** otherwise: Q_KS(λ) = 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²) (the Kolmogorov distribution's
//!   survival function) at λ = (√e + 0.12 + 0.11/√e)·D with e = n·m/(n+m) (Stephens' small-sample
//!   correction, as in Numerical Recipes' `kstwo`).
//!
//! D is computed in integers (D·n·m), so the comparison with the band is exact. Ties between the samples are
//! handled in D (the ECDFs step together); the exact p-value then assumes no ties, as every KS table does.

use super::error::{check_finite_slice, DetectError};

/// The largest n·m for which [`ks_two_sample`] computes the exact p-value (the grid pass costs O(n·m)).
pub const EXACT_MAX_CELLS: usize = 100_000;

/// The outcome of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsTest {
    /// D = sup_x |F_a(x) − F_b(x)| ∈ [0, 1].
    pub statistic: f64,
    /// P(D ≥ observed) under the null, in (0, 1].
    pub p_value: f64,
    /// Whether the p-value is exact (else asymptotic).
    pub exact: bool,
}

/// The two-sample KS test of `a` against `b` (module docs). Errors on an empty or non-finite sample.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Result<KsTest, DetectError> {
    if a.is_empty() || b.is_empty() {
        return Err(DetectError::Empty { what: "KS sample" });
    }
    check_finite_slice("KS sample a", a)?;
    check_finite_slice("KS sample b", b)?;
    let (n, m) = (a.len(), b.len());
    let d = scaled_statistic(a, b);
    let statistic = d as f64 / (n as f64 * m as f64);
    if d == 0 {
        return Ok(KsTest { statistic, p_value: 1.0, exact: true });
    }
    let exact = n.saturating_mul(m) <= EXACT_MAX_CELLS;
    let p_value = if exact {
        exact_p_value(n, m, d)
    } else {
        let e = (n * m) as f64 / (n + m) as f64;
        kolmogorov_sf((e.sqrt() + 0.12 + 0.11 / e.sqrt()) * statistic)
    };
    Ok(KsTest { statistic, p_value: p_value.clamp(f64::MIN_POSITIVE, 1.0), exact })
}

/// D·n·m: the largest |i·m − j·n| where i, j count the values ≤ x of a and b, over every x of the pooled sample.
fn scaled_statistic(a: &[f64], b: &[f64]) -> usize {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j, mut d) = (0, 0, 0);
    // Once one sample is used up the gap only shrinks towards (n, m), so the loop may stop there.
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i * m).abs_diff(j * n));
    }
    d
}

/// P(a random lattice path from (0, 0) to (n, m) leaves the band |i·m − j·n| < d), for d ≥ 1.
///
/// Only the band's cells carry mass, so each row is swept over its band alone (O(d/n) cells instead of m;
/// the narrow bands of small statistics are the common case on null windows). Mass that steps out of the band
/// — up from the row below, or right past the band's last cell — is collected and not moved further.
fn exact_p_value(n: usize, m: usize, d: usize) -> f64 {
    // The band of row i: lo ≤ j ≤ hi ⇔ i·m − d < j·n < i·m + d (empty when lo > hi).
    let band = |i: usize| {
        let a = i * m;
        let lo = if a < d { 0 } else { (a - d) / n + 1 };
        (lo, ((a + d - 1) / n).min(m))
    };
    // 1/k for the steps' probabilities (n−i)/(n−i+m−j) and (m−j)/(n−i+m−j): no division per cell.
    let inv: Vec<f64> = (0..=n + m).map(|k| if k == 0 { 0.0 } else { 1.0 / k as f64 }).collect();
    // below[j]: the mass arriving at (i, j) from (i − 1, j); nonzero only on the previous row's band.
    let mut below = vec![0f64; m + 1];
    let mut up = vec![0f64; m + 1];
    below[0] = 1.0;
    let mut prev = (0, 0);
    let mut exited = 0.0;
    for i in 0..=n {
        let (lo, hi) = band(i);
        let arriving = prev.0..=prev.1.min(m);
        exited += arriving.clone().filter(|j| *j < lo || *j > hi).map(|j| below[j]).sum::<f64>();
        let mut from_left = 0.0;
        for j in lo..=hi {
            let mass = below[j] + from_left;
            let rest = inv[n - i + m - j];
            up[j] = mass * (n - i) as f64 * rest;
            from_left = mass * (m - j) as f64 * rest;
        }
        // The band's last cell passes its rightward mass out of the band (zero at j = m, where m − j = 0).
        if lo <= hi {
            exited += from_left;
        }
        below[arriving].fill(0.0);
        std::mem::swap(&mut below, &mut up);
        prev = (lo, hi);
    }
    exited
}

/// The Kolmogorov distribution's survival function Q_KS(λ) = 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²).
///
/// For λ < 0.2 it returns 1 (the true value differs by less than 1e−12, and the series converges slowly there).
pub fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda.is_nan() {
        return f64::NAN;
    }
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let term = (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        sum += sign * term;
        if term < 1e-18 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D by evaluating both ECDFs at every pooled value, O((n+m)²): a second implementation of the statistic.
    fn ecdf_statistic(a: &[f64], b: &[f64]) -> f64 {
        let ecdf = |s: &[f64], x: f64| s.iter().filter(|&&v| v <= x).count() as f64 / s.len() as f64;
        a.iter().chain(b).map(|&x| (ecdf(a, x) - ecdf(b, x)).abs()).fold(0.0, f64::max)
    }

    /// Every way of choosing which n of the n+m pooled ranks belong to sample a, as bit masks.
    fn subsets(total: usize, n: usize) -> Vec<u32> {
        (0u32..1 << total).filter(|s| s.count_ones() as usize == n).collect()
    }

    /// The same probability by a pass over every cell of the grid, dividing per cell: the straightforward form
    /// of the band-restricted pass, kept as its check.
    fn full_grid_p_value(n: usize, m: usize, d: usize) -> f64 {
        let inside = |i: usize, j: usize| (i * m).abs_diff(j * n) < d;
        let mut row = vec![0f64; m + 1];
        let mut next = vec![0f64; m + 1];
        row[0] = 1.0;
        let mut exited = 0.0;
        for i in 0..=n {
            next.fill(0.0);
            for j in 0..=m {
                let mass = row[j];
                if mass == 0.0 {
                    continue;
                }
                if !inside(i, j) {
                    exited += mass;
                    continue;
                }
                let rest = (n - i + m - j) as f64;
                if i < n {
                    next[j] += mass * (n - i) as f64 / rest;
                }
                if j < m {
                    row[j + 1] += mass * (m - j) as f64 / rest;
                }
            }
            std::mem::swap(&mut row, &mut next);
        }
        exited
    }

    #[test]
    fn the_band_pass_matches_the_full_grid_pass() {
        for (n, m) in [(1, 1), (1, 9), (10, 358), (20, 358), (50, 358), (7, 7), (33, 20), (300, 250)] {
            for d in (1..=n * m).step_by((n * m / 97).max(1)) {
                let (band, full) = (exact_p_value(n, m, d), full_grid_p_value(n, m, d));
                assert!((band - full).abs() <= 1e-12 * full.max(1e-300), "n={n} m={m} d={d}: {band} vs {full}");
            }
        }
    }

    #[test]
    fn exact_p_values_match_brute_force_enumeration() {
        // Distinct values; under the null all C(n+m, n) rank assignments are equally likely.
        for (n, m) in [(3, 3), (4, 3), (5, 5), (6, 4), (2, 7)] {
            let pooled: Vec<f64> = (0..n + m).map(|i| i as f64 * 1.5 + 0.25).collect();
            let all = subsets(n + m, n);
            let split = |mask: u32| -> (Vec<f64>, Vec<f64>) {
                let (a, b): (Vec<_>, Vec<_>) = pooled.iter().enumerate().partition(|(i, _)| mask >> i & 1 == 1);
                (a.into_iter().map(|p| *p.1).collect(), b.into_iter().map(|p| *p.1).collect())
            };
            let stats: Vec<f64> = all.iter().map(|&s| split(s)).map(|(a, b)| ecdf_statistic(&a, &b)).collect();
            for (k, &mask) in all.iter().enumerate().step_by(3) {
                let (a, b) = split(mask);
                let test = ks_two_sample(&a, &b).unwrap();
                assert!((test.statistic - stats[k]).abs() < 1e-12, "D for n={n} m={m}");
                let brute = stats.iter().filter(|&&s| s >= stats[k] - 1e-12).count() as f64 / all.len() as f64;
                assert!(test.exact);
                assert!((test.p_value - brute).abs() < 1e-12, "n={n} m={m}: exact {} vs brute {brute}", test.p_value);
            }
        }
    }

    #[test]
    fn ties_and_identical_samples() {
        let a = [0.1, 0.5, 0.5, 0.9];
        let t = ks_two_sample(&a, &a).unwrap();
        assert_eq!((t.statistic, t.p_value), (0.0, 1.0));
        // Tied values across the samples step both ECDFs together.
        let b = [0.5, 0.5, 2.0];
        let t = ks_two_sample(&a, &b).unwrap();
        assert!((t.statistic - ecdf_statistic(&a, &b)).abs() < 1e-12);
    }

    #[test]
    fn kolmogorov_series_matches_the_theta_function_form() {
        // Q_KS(λ) = 1 − (√(2π)/λ) Σ_{k≥1} exp(−(2k−1)²π²/(8λ²)), the other classical form of the distribution.
        for i in 0..60 {
            let lambda = 0.25 + i as f64 * 0.05;
            let theta: f64 = (1..50)
                .map(|k| (-((2 * k - 1) as f64).powi(2) * std::f64::consts::PI.powi(2) / (8.0 * lambda * lambda)).exp())
                .sum();
            let q = 1.0 - (2.0 * std::f64::consts::PI).sqrt() / lambda * theta;
            assert!((kolmogorov_sf(lambda) - q).abs() < 1e-10, "λ = {lambda}");
        }
        assert_eq!(kolmogorov_sf(0.1), 1.0);
        assert!(kolmogorov_sf(10.0) < 1e-80);
    }

    #[test]
    fn the_asymptotic_p_value_approaches_the_exact_one_for_large_samples() {
        let (n, m) = (300, 250);
        let e = (n * m) as f64 / (n + m) as f64;
        for k in [10usize, 20, 30, 40] {
            // D = k / 150 is attainable on this grid (lcm(300, 250) = 1500); D·n·m = k·500.
            let d = k * 500;
            let statistic = d as f64 / (n * m) as f64;
            let exact = exact_p_value(n, m, d);
            let asym = kolmogorov_sf((e.sqrt() + 0.12 + 0.11 / e.sqrt()) * statistic);
            assert!((exact - asym).abs() < 0.01 + 0.05 * exact, "D = {statistic}: exact {exact} vs asymptotic {asym}");
        }
        // Past the exact limit the test says so.
        let a: Vec<f64> = (0..400).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..300).map(|i| i as f64 + 0.5).collect();
        assert!(!ks_two_sample(&a, &b).unwrap().exact);
    }

    #[test]
    fn bad_samples_are_errors() {
        assert_eq!(ks_two_sample(&[], &[1.0]).unwrap_err(), DetectError::Empty { what: "KS sample" });
        assert!(matches!(ks_two_sample(&[1.0, f64::NAN], &[1.0]), Err(DetectError::NonFinite { col: 1, .. })));
    }
}
