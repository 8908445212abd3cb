//! Bounded load test of a running sidecar (`examples/sidecar`), outside CI.
//!
//! ```text
//! cargo run --release --example sidecar -- --bundle B --listen 127.0.0.1:8080 &
//! cargo run --release --example sidecar_load -- --bundle B --addr 127.0.0.1:8080 [--seconds 60] [--window 20]
//!     [--clients 8] [--connection keep-alive|close] [--json]
//! ```
//!
//! First it opens the same bundle in-process and times 200 sequential windows (the single-window benchmark's
//! median), which predicts the throughput the machine can reach: cores ÷ median window time. Then `--clients`
//! threads post UCI-heart windows of `--window` rows (shifted and in-distribution, alternating) for `--seconds`
//! and it reports requests/s, the fraction of the prediction reached, p50/p99 latency and failed requests.
//! Each client keeps one HTTP/1.1 connection open, as a service calling its sidecar does
//! (`--connection close` opens a new connection per request instead: the loopback TCP handshake and teardown
//! then cost both sides as much CPU as a UCI window's scoring, docs/PERFORMANCE.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use weightflow::data::{DatasetSpec, WindowSampler};
use weightflow::runtime::{Detector, OpenOptions};

struct Args {
    bundle: PathBuf,
    addr: SocketAddr,
    seconds: u64,
    window: usize,
    clients: usize,
    keep_alive: bool,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        bundle: PathBuf::new(),
        addr: "127.0.0.1:8080".parse().expect("a literal address"),
        seconds: 60,
        window: 20,
        clients: 2 * std::thread::available_parallelism().map_or(1, usize::from),
        keep_alive: true,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--bundle" => a.bundle = value.into(),
            "--addr" => a.addr = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(&e))?,
            "--window" => a.window = value.parse().map_err(|e| bad(&e))?,
            "--clients" => a.clients = value.parse().map_err(|e| bad(&e))?,
            "--connection" => {
                a.keep_alive = match value.as_str() {
                    "keep-alive" => true,
                    "close" => false,
                    _ => return Err(bad(&"expected keep-alive or close")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.bundle.as_os_str().is_empty() {
        return Err("--bundle PATH is required (the bundle the sidecar serves)".into());
    }
    Ok(a)
}

/// One client's connection to the sidecar: kept open across requests (keep-alive), or opened per request.
struct Client {
    addr: SocketAddr,
    keep_alive: bool,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// POST `body` to /score and read the whole response; Ok on status 200. A kept connection that fails is
    /// dropped, so the next request opens a new one.
    fn post(&mut self, body: &str) -> Result<(), String> {
        let result = self.exchange(body);
        if result.is_err() || !self.keep_alive {
            self.conn = None;
        }
        result
    }

    fn exchange(&mut self, body: &str) -> Result<(), String> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let stream = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
                // No Nagle: on a kept connection a request held back for the server's delayed ACK waits 40 ms.
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                self.conn.insert(BufReader::new(stream))
            }
        };
        let head = format!(
            "POST /score HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: {}\r\n\r\n",
            self.addr,
            body.len(),
            if self.keep_alive { "keep-alive" } else { "close" }
        );
        // One write for head and body: one segment per request.
        conn.get_mut().write_all((head + body).as_bytes()).map_err(|e| e.to_string())?;
        // Status line and headers up to the blank line, then exactly Content-Length bytes of body.
        let mut line = String::new();
        let (mut status, mut length) = (None, None);
        loop {
            line.clear();
            if conn.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the sidecar closed the connection mid-response".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status.is_none() {
                status = l.split(' ').nth(1).map(str::to_owned);
            } else if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let mut response = vec![0u8; length.ok_or("a response without Content-Length")?];
        conn.read_exact(&mut response).map_err(|e| e.to_string())?;
        match status.as_deref() {
            Some("200") => Ok(()),
            other => Err(format!("status {other:?}: {}", String::from_utf8_lossy(&response))),
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    if let Err(e) = run() {
        eprintln!("sidecar_load: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let a = args()?;
    let splits = DatasetSpec::UciHeart.load(0).map_err(|e| e.to_string())?;
    let pools = [splits.shifted.as_ref().ok_or("uci-heart has no shifted split")?, &splits.test];
    let samplers: Vec<WindowSampler> = pools
        .iter()
        .map(|p| WindowSampler::new(p, a.window, 1))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let bodies: Vec<String> = (0..64u64)
        .map(|i| {
            let w = samplers[i as usize % 2].window(i);
            let rows: Vec<Vec<f32>> = w.x.rows().into_iter().map(|r| r.to_vec()).collect();
            serde_json::json!({ "rows": rows, "seed": i }).to_string()
        })
        .collect();

    // The single-window benchmark, in-process on the same bundle.
    let detector = Detector::open(&a.bundle, &OpenOptions::default()).map_err(|e| e.to_string())?;
    let mut single: Vec<f64> = (0..200u64)
        .map(|i| {
            let w = samplers[i as usize % 2].window(i);
            let t = Instant::now();
            detector.score(w.x.view(), i).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    single.sort_by(f64::total_cmp);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let predicted = cores as f64 / quantile(&single, 0.5);
    drop(detector);

    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..a.clients)
            .map(|c| {
                let bodies = &bodies;
                scope.spawn(move || {
                    let (mut latencies, mut failed) = (Vec::new(), 0);
                    let mut client = Client { addr: a.addr, keep_alive: a.keep_alive, conn: None };
                    let mut i = c;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        match client.post(&bodies[i % bodies.len()]) {
                            Ok(()) => latencies.push(t.elapsed().as_secs_f64()),
                            Err(e) => {
                                failed += 1;
                                eprintln!("failed request: {e}");
                            }
                        }
                        i += a.clients;
                    }
                    (latencies, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client thread")).collect()
    });
    let failed: usize = results.iter().map(|r| r.1).sum();
    let mut latencies: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    if latencies.is_empty() {
        return Err(format!("no request succeeded ({failed} failed): is the sidecar listening on {}?", a.addr));
    }
    latencies.sort_by(f64::total_cmp);
    let throughput = latencies.len() as f64 / a.seconds as f64;
    let (p50, p99) = (quantile(&latencies, 0.5), quantile(&latencies, 0.99));
    let report = serde_json::json!({
        "window": a.window, "clients": a.clients, "seconds": a.seconds, "cores": cores,
        "connection": if a.keep_alive { "keep-alive" } else { "close" },
        "single_window_ms_median": quantile(&single, 0.5) * 1e3, "predicted_rps": predicted,
        "requests": latencies.len(), "failed": failed, "rps": throughput, "fraction_of_predicted": throughput / predicted,
        "latency_ms_p50": p50 * 1e3, "latency_ms_p99": p99 * 1e3, "p99_over_p50": p99 / p50,
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "{} requests in {} s with {} clients: {throughput:.1} req/s = {:.0}% of the predicted {predicted:.1} \
             (cores {cores} / single-window median {:.2} ms); latency p50 {:.2} ms, p99 {:.2} ms ({:.1}×); {failed} failed",
            latencies.len(),
            a.seconds,
            a.clients,
            100.0 * throughput / predicted,
            quantile(&single, 0.5) * 1e3,
            p50 * 1e3,
            p99 * 1e3,
            p99 / p50
        );
    }
    Ok(())
}
