//! A monitoring sidecar: loads one bundle at start and scores windows of live inputs over HTTP.
//!
//! ```text
//! cargo run --release --example sidecar -- --bundle runs/quickstart/detector.wfb [--listen 127.0.0.1:8080]
//!     [--max-connections N] [--onnxruntime PATH/libonnxruntime.so]
//! curl -s localhost:8080/score -H 'Content-Type: text/csv' --data-binary @window.csv
//! ```
//!
//! * `POST /score`: a window as JSON `{"rows": [[…], …], "seed": 7}` or CSV (`text/csv`, optional header line)
//!   → `{"p_value", "statistic", "threshold", "is_shift", "disagreement", "entropy_p", "ensemble_size", …}`;
//!   a bad window → 400 with `{"error": …}`, a body over 8 MiB → 413.
//! * `GET /metrics`: Prometheus text (windows scored, shifts flagged, responses by code, latency histogram).
//! * `GET /healthz`: `ok` once the bundle is loaded (the port opens only after that).

mod body;
mod http;
mod metrics;
mod server;

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::ArrayView2;
use weightflow::detect::Score;
use weightflow::runtime::{Detector, OpenOptions, RuntimeError};

use server::Scorer;

impl Scorer for Detector {
    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<Score, (u16, String)> {
        Detector::score(self, rows, seed).map_err(|e| {
            let code = match e {
                RuntimeError::InvalidArgument(_) | RuntimeError::Detect(_) => 400,
                _ => 500,
            };
            (code, e.to_string())
        })
    }
}

struct Args {
    bundle: PathBuf,
    listen: String,
    max_connections: usize,
    onnxruntime: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a =
        Args { bundle: PathBuf::new(), listen: "127.0.0.1:8080".into(), max_connections: 64, onnxruntime: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bundle" => a.bundle = value()?.into(),
            "--listen" => a.listen = value()?,
            "--max-connections" => {
                a.max_connections = value()?.parse().map_err(|e| format!("--max-connections: {e}"))?
            }
            "--onnxruntime" => a.onnxruntime = Some(value()?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.bundle.as_os_str().is_empty() {
        return Err("--bundle PATH is required".into());
    }
    Ok(a)
}

fn main() {
    if let Err(message) = run() {
        eprintln!("sidecar: {message}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let a = args()?;
    let options = OpenOptions { onnxruntime: a.onnxruntime, ..OpenOptions::default() };
    let detector = Detector::open(&a.bundle, &options).map_err(|e| e.to_string())?;
    let sidecar = server::serve(Arc::new(detector), &a.listen, a.max_connections)?;
    eprintln!(
        "sidecar: serving {} on http://{} (at most {} connections at once)",
        a.bundle.display(),
        sidecar.addr,
        a.max_connections
    );
    sidecar.wait();
    Ok(())
}

#[cfg(test)]
mod tests;
