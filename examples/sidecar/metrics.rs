//! Prometheus counters and a latency histogram, updated lock-free from every worker thread.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the scoring-latency histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// The HTTP status classes the sidecar answers with, one counter each.
const CODES: [u16; 6] = [200, 400, 404, 405, 413, 500];

/// Everything `/metrics` reports. All counters only grow.
#[derive(Default)]
pub struct Metrics {
    responses: [AtomicU64; CODES.len()],
    windows_scored: AtomicU64,
    shifts_flagged: AtomicU64,
    rows_scored: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// Count one response with this status code (codes outside [`CODES`] count as 500).
    pub fn response(&self, code: u16) {
        let slot = CODES.iter().position(|&c| c == code).unwrap_or(CODES.len() - 1);
        self.responses[slot].fetch_add(1, Relaxed);
    }

    /// Count one scored window: its size, whether it was flagged, and how long scoring took.
    pub fn scored(&self, rows: usize, is_shift: bool, took: Duration) {
        self.windows_scored.fetch_add(1, Relaxed);
        self.rows_scored.fetch_add(rows as u64, Relaxed);
        if is_shift {
            self.shifts_flagged.fetch_add(1, Relaxed);
        }
        let seconds = took.as_secs_f64();
        for (bucket, &bound) in self.latency_buckets.iter().zip(&BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("weightflow_windows_scored_total", "Windows scored.", self.windows_scored.load(Relaxed));
        counter(
            "weightflow_shifts_flagged_total",
            "Windows flagged as harmfully shifted.",
            self.shifts_flagged.load(Relaxed),
        );
        counter("weightflow_rows_scored_total", "Input rows scored.", self.rows_scored.load(Relaxed));
        let _ = writeln!(out, "# HELP weightflow_http_responses_total HTTP responses by status code.");
        let _ = writeln!(out, "# TYPE weightflow_http_responses_total counter");
        for (code, n) in CODES.iter().zip(&self.responses) {
            let _ = writeln!(out, "weightflow_http_responses_total{{code=\"{code}\"}} {}", n.load(Relaxed));
        }
        let name = "weightflow_score_seconds";
        let _ = writeln!(out, "# HELP {name} Wall time to score one window.\n# TYPE {name} histogram");
        for (bound, n) in BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", n.load(Relaxed));
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.latency_sum_micros.load(Relaxed) as f64 * 1e-6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counters_add_up() {
        let m = Metrics::default();
        m.scored(20, true, Duration::from_micros(1500));
        m.scored(20, false, Duration::from_millis(30));
        m.response(200);
        m.response(200);
        m.response(400);
        m.response(418);
        let text = m.render();
        for line in [
            "weightflow_windows_scored_total 2",
            "weightflow_shifts_flagged_total 1",
            "weightflow_rows_scored_total 40",
            "weightflow_http_responses_total{code=\"200\"} 2",
            "weightflow_http_responses_total{code=\"400\"} 1",
            "weightflow_http_responses_total{code=\"500\"} 1",
            "weightflow_score_seconds_bucket{le=\"0.001\"} 0",
            "weightflow_score_seconds_bucket{le=\"0.002\"} 1",
            "weightflow_score_seconds_bucket{le=\"0.05\"} 2",
            "weightflow_score_seconds_bucket{le=\"+Inf\"} 2",
            "weightflow_score_seconds_sum 0.0315",
            "weightflow_score_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
