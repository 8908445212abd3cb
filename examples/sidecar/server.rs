//! The HTTP side: a `tiny_http` server with a fixed pool of worker threads, each taking requests from the one
//! listening socket and scoring on the shared, immutable detector (scoring is thread-safe by contract).

use std::io::Read;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use ndarray::ArrayView2;
use tiny_http::{Header, Method, Request, Response, Server};
use weightflow::detect::Score;

use crate::body::{self, MAX_BODY_BYTES};
use crate::metrics::Metrics;

/// What the sidecar scores with: the runtime's detector in production, a stand-in in tests of the HTTP layer.
pub trait Scorer: Send + Sync + 'static {
    /// Score one window of raw rows; a refusal carries the HTTP status (4xx: the request's fault) and a message.
    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<Score, (u16, String)>;
}

/// A running sidecar: its address and workers. Dropping it without [`Sidecar::shutdown`] leaves the workers
/// serving until the process exits.
pub struct Sidecar {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    /// The address it listens on (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// The counters `/metrics` reports (read by the tests; the binary serves them over HTTP only).
    #[cfg_attr(not(test), allow(dead_code))]
    pub metrics: Arc<Metrics>,
}

/// Listen on `addr` and serve with `threads` workers.
pub fn serve(scorer: Arc<dyn Scorer>, addr: &str, threads: usize) -> Result<Sidecar, String> {
    let server = Arc::new(Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
    let addr = server.server_addr().to_ip().ok_or_else(|| format!("{addr} is not an IP address"))?;
    let metrics = Arc::new(Metrics::default());
    let workers = (0..threads.max(1))
        .map(|_| {
            let (server, scorer, metrics) = (Arc::clone(&server), Arc::clone(&scorer), Arc::clone(&metrics));
            std::thread::spawn(move || {
                // `recv` fails only once the server is unblocked for shutdown.
                while let Ok(request) = server.recv() {
                    handle(request, scorer.as_ref(), &metrics);
                }
            })
        })
        .collect();
    Ok(Sidecar { server, workers, addr, metrics })
}

impl Sidecar {
    /// Serve until the process is stopped: the workers never return while the server listens.
    pub fn wait(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }

    /// Stop accepting, let every worker finish its request, and join them.
    #[cfg_attr(not(test), allow(dead_code))] // the binary runs until it is killed
    pub fn shutdown(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

fn json_error(code: u16, message: &str) -> (u16, String, &'static str) {
    (code, serde_json::json!({ "error": message }).to_string(), "application/json")
}

fn handle(mut request: Request, scorer: &dyn Scorer, metrics: &Metrics) {
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let (code, body, content_type) = match (request.method(), path.as_str()) {
        (Method::Get, "/healthz") => (200, "ok\n".to_owned(), "text/plain"),
        (Method::Get, "/metrics") => (200, metrics.render(), "text/plain; version=0.0.4"),
        (Method::Post, "/score") => score(&mut request, scorer, metrics),
        (_, "/healthz" | "/metrics" | "/score") => {
            json_error(405, &format!("{} {path} is not allowed", request.method()))
        }
        _ => json_error(404, &format!("no route {path}: try POST /score, GET /metrics or GET /healthz")),
    };
    metrics.response(code);
    let response = Response::from_string(body).with_status_code(code).with_header(header("Content-Type", content_type));
    // A client that hung up is not the sidecar's problem.
    let _ = request.respond(response);
}

fn score(request: &mut Request, scorer: &dyn Scorer, metrics: &Metrics) -> (u16, String, &'static str) {
    let content_type = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_owned())
        .unwrap_or_default();
    let mut bytes = Vec::new();
    if let Err(e) = request.as_reader().take(MAX_BODY_BYTES as u64 + 1).read_to_end(&mut bytes) {
        return json_error(400, &format!("cannot read the body: {e}"));
    }
    if bytes.len() > MAX_BODY_BYTES {
        return json_error(413, &format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    }
    let window = match body::parse(&content_type, &bytes) {
        Ok(w) => w,
        Err(message) => return json_error(400, &message),
    };
    let start = Instant::now();
    match scorer.score(window.rows.view(), window.seed) {
        Ok(s) => {
            metrics.scored(window.rows.nrows(), s.is_shift, start.elapsed());
            let body = serde_json::json!({
                "p_value": s.p_value, "statistic": s.statistic, "threshold": s.threshold, "is_shift": s.is_shift,
                "disagreement": s.disagreement, "entropy_p": s.entropy_p, "ensemble_size": s.ensemble_size,
                "rows": window.rows.nrows(), "seed": window.seed,
            });
            (200, body.to_string(), "application/json")
        }
        Err((code, message)) => json_error(code, &message),
    }
}
