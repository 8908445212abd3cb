//! The linear assignment problem: a permutation σ minimising Σ_i C[i, σ(i)] for a square cost matrix.
//!
//! Used for weight matching of hidden units ([`super::align`]), minibatch optimal-transport couplings and
//! exact W1 distances between equal-sized samples. Shortest augmenting paths with potentials (the
//! Hungarian method in the Jonker–Volgenant form), O(n³) in f64.

/// Solves `min_σ Σ_i cost[i][σ(i)]` for an `n × n` cost matrix given row-major (`cost[i * n + j]`).
/// Returns σ as `assignment[i] = j`. Costs must be finite; `n = 0` gives an empty assignment.
///
/// # Panics
/// If `cost.len() != n * n` or a cost is not finite (callers build the matrix themselves; a NaN there is a
/// bug upstream, not an input error).
pub fn linear_sum_assignment(cost: &[f64], n: usize) -> Vec<usize> {
    assert_eq!(cost.len(), n * n, "cost matrix must be n × n");
    assert!(cost.iter().all(|c| c.is_finite()), "assignment costs must be finite");
    if n == 0 {
        return Vec::new();
    }
    // 1-based arrays as in the classic formulation: u, v are row/column potentials, p[j] the row matched to
    // column j (0 = none), way[j] the previous column on the augmenting path.
    let mut u = vec![0f64; n + 1];
    let mut v = vec![0f64; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    let mut minv = vec![0f64; n + 1];
    let mut used = vec![false; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|m| *m = f64::INFINITY);
        used.iter_mut().for_each(|u| *u = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0usize; n];
    for j in 1..=n {
        assignment[p[j] - 1] = j - 1;
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    fn total(cost: &[f64], n: usize, a: &[usize]) -> f64 {
        a.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum()
    }

    fn brute_force(cost: &[f64], n: usize) -> f64 {
        fn rec(cost: &[f64], n: usize, i: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
            if i == n {
                *best = best.min(acc);
                return;
            }
            for j in 0..n {
                if !used[j] {
                    used[j] = true;
                    rec(cost, n, i + 1, used, acc + cost[i * n + j], best);
                    used[j] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        rec(cost, n, 0, &mut vec![false; n], 0.0, &mut best);
        best
    }

    #[test]
    fn matches_brute_force_on_random_matrices() {
        let mut rng = crate::rng::rng(11);
        for n in 0..=7 {
            for _ in 0..20 {
                let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(-5.0..5.0)).collect();
                let a = linear_sum_assignment(&cost, n);
                let mut seen = a.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "not a permutation");
                if n > 0 {
                    assert!((total(&cost, n, &a) - brute_force(&cost, n)).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn recovers_a_hidden_permutation() {
        // cost[i][j] = 0 on the hidden permutation, 1 elsewhere.
        let perm = [3usize, 0, 4, 1, 2];
        let n = perm.len();
        let cost: Vec<f64> = (0..n * n).map(|k| if perm[k / n] == k % n { 0.0 } else { 1.0 }).collect();
        assert_eq!(linear_sum_assignment(&cost, n), perm);
    }
}
