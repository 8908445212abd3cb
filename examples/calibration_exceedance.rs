//! How often eval-shift's calibration check, "fresh FPR ≤ α + 2 s.e.", fails for a test that is calibrated
//! perfectly (docs/DETECT.md, "Per-f windows").
//!
//! eval-shift calibrates each of K deployed classifiers f on B null windows, counts false positives on R fresh
//! null windows per f and reports their mean with the binomial s.e. √(Σ_k p_k(1 − p_k)/R)/K. That s.e. counts
//! the fresh windows only. The calibration draw moves each f's realised FPR too, by about √(α(1 − α)/B), and
//! when all f's share one draw (`eval-shift --shared-windows`) the K f's cannot average it away. This simulates
//! the protocol with a continuous statistic (uniform on [0, 1] under the null, so nothing depends on the test)
//! through the library's own `threshold`, and prints the fraction of protocol runs whose mean FPR exceeds the
//! bound, for shared and per-f windows at each B.
//!
//! ```sh
//! cargo run --release --example calibration_exceedance            # K = 10, R = 100, α = 0.05, 4,000 runs
//! ```

use rand::Rng as _;
use weightflow::detect::threshold;
use weightflow::rng::stream;

const K: usize = 10;
const FRESH: usize = 100;
const ALPHA: f64 = 0.05;
const PROTOCOL_RUNS: usize = 4_000;

/// One protocol run's mean FPR over the K f's and its binomial s.e. (eval-shift's `fpr_fresh`, `fpr_se`).
fn protocol(rng: &mut weightflow::rng::Rng, b: usize, shared: bool) -> (f64, f64) {
    let null = |rng: &mut weightflow::rng::Rng| -> Vec<f64> { (0..b).map(|_| rng.random::<f64>()).collect() };
    let shared_t = threshold(&null(rng), ALPHA);
    let fprs: Vec<f64> = (0..K)
        .map(|_| {
            let t = if shared { shared_t } else { threshold(&null(rng), ALPHA) };
            (0..FRESH).filter(|_| rng.random::<f64>() > t).count() as f64 / FRESH as f64
        })
        .collect();
    let mean = fprs.iter().sum::<f64>() / K as f64;
    let se = fprs.iter().map(|p| p * (1.0 - p) / FRESH as f64).sum::<f64>().sqrt() / K as f64;
    (mean, se)
}

fn main() {
    println!("K = {K} f's, R = {FRESH} fresh null windows per f, α = {ALPHA}, {PROTOCOL_RUNS} protocol runs each");
    println!("{:>6}  {:>8}  {:>10}  {:>24}", "B", "windows", "mean FPR", "P(FPR > α + 2 s.e.)");
    for (i, b) in [100usize, 1000].into_iter().enumerate() {
        for (j, shared) in [true, false].into_iter().enumerate() {
            let mut rng = stream(0, (i * 2 + j) as u64);
            let runs: Vec<(f64, f64)> = (0..PROTOCOL_RUNS).map(|_| protocol(&mut rng, b, shared)).collect();
            let mean = runs.iter().map(|r| r.0).sum::<f64>() / PROTOCOL_RUNS as f64;
            let over = runs.iter().filter(|(m, se)| *m > ALPHA + 2.0 * se).count() as f64 / PROTOCOL_RUNS as f64;
            let windows = if shared { "shared" } else { "per-f" };
            println!("{b:>6}  {windows:>8}  {mean:>10.4}  {over:>24.3}");
        }
    }
}
