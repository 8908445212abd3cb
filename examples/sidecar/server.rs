//! The sidecar's routes over the HTTP server of [`crate::http`]: each connection's thread scores its own
//! requests on the shared, immutable detector (scoring is thread-safe by contract).

use std::sync::Arc;
use std::time::Instant;

use ndarray::ArrayView2;
use weightflow::detect::Score;

use crate::body::{self, MAX_BODY_BYTES};
use crate::http::{self, error_json, Handler, Request, Response};
use crate::metrics::Metrics;

/// What the sidecar scores with: the runtime's detector in production, a stand-in in tests of the HTTP layer.
pub trait Scorer: Send + Sync + 'static {
    /// Score one window of raw rows; a refusal carries the HTTP status (4xx: the request's fault) and a message.
    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<Score, (u16, String)>;
}

/// A running sidecar: its address and counters. Dropping it without [`Sidecar::shutdown`] leaves it serving
/// until the process exits.
pub struct Sidecar {
    server: http::Server,
    /// The address it listens on (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// The counters `/metrics` reports (read by the tests; the binary serves them over HTTP only).
    #[cfg_attr(not(test), allow(dead_code))]
    pub metrics: Arc<Metrics>,
}

/// Listen on `addr`, serving at most `max_connections` connections at once (each on its own thread).
pub fn serve(scorer: Arc<dyn Scorer>, addr: &str, max_connections: usize) -> Result<Sidecar, String> {
    let metrics = Arc::new(Metrics::default());
    let routes = Arc::new(Routes { scorer, metrics: Arc::clone(&metrics) });
    let server = http::listen(routes, addr, max_connections)?;
    Ok(Sidecar { addr: server.addr, server, metrics })
}

impl Sidecar {
    /// Serve until the process is stopped.
    pub fn wait(self) {
        self.server.wait();
    }

    /// Stop accepting, close the connections and join their threads.
    #[cfg_attr(not(test), allow(dead_code))] // the binary runs until it is killed
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

struct Routes {
    scorer: Arc<dyn Scorer>,
    metrics: Arc<Metrics>,
}

impl Handler for Routes {
    fn handle(&self, request: Request) -> Response {
        let path = request.path.as_str();
        match (request.method.as_str(), path) {
            ("GET", "/healthz") => (200, "ok\n".to_owned(), "text/plain"),
            ("GET", "/metrics") => (200, self.metrics.render(), "text/plain; version=0.0.4"),
            ("POST", "/score") => self.score(&request),
            (method, "/healthz" | "/metrics" | "/score") => json_error(405, &format!("{method} {path} is not allowed")),
            _ => json_error(404, &format!("no route {path}: try POST /score, GET /metrics or GET /healthz")),
        }
    }

    fn max_body(&self) -> usize {
        MAX_BODY_BYTES
    }

    fn responded(&self, code: u16) {
        self.metrics.response(code);
    }
}

fn json_error(code: u16, message: &str) -> Response {
    (code, error_json(message), "application/json")
}

impl Routes {
    fn score(&self, request: &Request) -> Response {
        let window = match body::parse(&request.content_type, &request.body) {
            Ok(w) => w,
            Err(message) => return json_error(400, &message),
        };
        let start = Instant::now();
        match self.scorer.score(window.rows.view(), window.seed) {
            Ok(s) => {
                self.metrics.scored(window.rows.nrows(), s.is_shift, start.elapsed());
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
}
