//! The HTTP layer over loopback with a stand-in scorer whose answer is a known function of the window, so
//! every response can be checked against its own request (no cross-talk between concurrent clients).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use ndarray::ArrayView2;
use weightflow::detect::Score;

use super::server::{serve, Scorer};

/// Scores a window by the mean of its values; refuses windows that are not 3 features wide.
struct MeanScorer;

impl Scorer for MeanScorer {
    fn score(&self, rows: ArrayView2<'_, f32>, seed: u64) -> Result<Score, (u16, String)> {
        if rows.ncols() != 3 {
            return Err((400, format!("expected 3 features, found {}", rows.ncols())));
        }
        let mean = rows.iter().map(|&v| f64::from(v)).sum::<f64>() / rows.len() as f64;
        Ok(Score {
            p_value: mean,
            statistic: seed as f64,
            threshold: 0.5,
            is_shift: mean > 0.5,
            disagreement: 0.0,
            entropy_p: 1.0,
            ensemble_size: rows.nrows(),
        })
    }
}

/// One HTTP/1.1 exchange: (status code, body).
fn request(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("receive");
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (code, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn routes_answer_and_bad_requests_get_4xx_with_a_message() {
    let sidecar = serve(Arc::new(MeanScorer), "127.0.0.1:0", 64).unwrap();
    let addr = sidecar.addr;
    assert_eq!(request(addr, "GET", "/healthz", "text/plain", b""), (200, "ok\n".into()));

    let (code, body) =
        request(addr, "POST", "/score", "application/json", br#"{"rows": [[0,0,1],[0,0,1]], "seed": 4}"#);
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        (v["p_value"].as_f64(), v["statistic"].as_f64(), v["rows"].as_u64()),
        (Some(1.0 / 3.0), Some(4.0), Some(2))
    );
    let (code, body) = request(addr, "POST", "/score", "text/csv", b"a,b,c\n1,1,1\n");
    assert_eq!((code, json(&body)["is_shift"].as_bool()), (200, Some(true)));

    for (method, path, ct, body, want, needle) in [
        ("POST", "/score", "application/json", &b"{\"rows\": [[1,2]]}"[..], 400, "expected 3 features"),
        ("POST", "/score", "application/json", b"not json", 400, "bad JSON"),
        ("POST", "/score", "text/csv", b"1,2,3\n4,x,6\n", 400, "CSV line 2"),
        ("GET", "/score", "text/plain", b"", 405, "not allowed"),
        ("GET", "/nowhere", "text/plain", b"", 404, "no route"),
    ] {
        let (code, body) = request(addr, method, path, ct, body);
        assert_eq!(code, want, "{method} {path}: {body}");
        assert!(json(&body)["error"].as_str().unwrap().contains(needle), "{body}");
    }
    let big = vec![b'1'; super::body::MAX_BODY_BYTES + 10];
    assert_eq!(request(addr, "POST", "/score", "text/csv", &big).0, 413);

    let (code, text) = request(addr, "GET", "/metrics", "text/plain", b"");
    assert_eq!(code, 200);
    for line in ["weightflow_windows_scored_total 2", "weightflow_http_responses_total{code=\"400\"} 3"] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    sidecar.shutdown();
}

#[test]
fn concurrent_clients_each_get_their_own_answer() {
    let sidecar = serve(Arc::new(MeanScorer), "127.0.0.1:0", 64).unwrap();
    let addr = sidecar.addr;
    let clients: Vec<_> = (0..8)
        .map(|client| {
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    let value = (client * 100 + i) as f32 / 1000.0;
                    let body = format!(r#"{{"rows": [[{value},{value},{value}]], "seed": {i}}}"#);
                    let (code, text) = request(addr, "POST", "/score", "application/json", body.as_bytes());
                    assert_eq!(code, 200, "{text}");
                    let v = json(&text);
                    assert!((v["p_value"].as_f64().unwrap() - f64::from(value)).abs() < 1e-6, "{text}");
                    assert_eq!(v["statistic"].as_f64(), Some(i as f64));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client thread");
    }
    let text = sidecar.metrics.render();
    assert!(text.lines().any(|l| l == "weightflow_windows_scored_total 200"), "{text}");
    sidecar.shutdown();
}

/// The real thing: a calibrated bundle opened by the runtime, scored over HTTP by concurrent clients; every
/// response equals the in-process `Detector::score` of the same window and seed.
#[cfg(feature = "train")]
#[test]
fn a_real_bundle_scores_over_http_as_in_process() {
    #[path = "../../tests/support/ort.rs"]
    mod ort_support;
    #[path = "../../tests/support/tiny_bundle.rs"]
    mod tiny_bundle;
    use rand::Rng as _;
    use weightflow::runtime::{Detector, OpenOptions};

    let Some(lib) = ort_support::library_or_skip("a_real_bundle_scores_over_http_as_in_process") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_bundle::write_bundle(dir.path());
    let detector = Arc::new(
        Detector::open(&path, &OpenOptions { onnxruntime: Some(lib), threads: 1, ..OpenOptions::default() }).unwrap(),
    );
    let sidecar = serve(Arc::clone(&detector) as Arc<dyn Scorer>, "127.0.0.1:0", 64).unwrap();
    let addr = sidecar.addr;

    let mut r = weightflow::rng::rng(5);
    let windows: Vec<Vec<Vec<f32>>> =
        (0..24).map(|_| (0..5).map(|_| (0..3).map(|_| r.random_range(-3.0f32..3.0)).collect()).collect()).collect();
    std::thread::scope(|scope| {
        for (i, w) in windows.iter().enumerate() {
            let detector = &detector;
            scope.spawn(move || {
                let body = serde_json::json!({ "rows": w, "seed": i }).to_string();
                let (code, text) = request(addr, "POST", "/score", "application/json", body.as_bytes());
                assert_eq!(code, 200, "{text}");
                let flat: Vec<f32> = w.iter().flatten().copied().collect();
                let want = detector.score(ArrayView2::from_shape((5, 3), &flat).unwrap(), i as u64).unwrap();
                let v = json(&text);
                assert_eq!(v["p_value"].as_f64(), Some(want.p_value), "{text}");
                assert_eq!(v["is_shift"].as_bool(), Some(want.is_shift));
                assert_eq!(v["ensemble_size"].as_u64(), Some(want.ensemble_size as u64));
            });
        }
    });
    // A window of a size the bundle was not calibrated for, and one with the wrong width: 400 with the reason.
    let (code, text) = request(addr, "POST", "/score", "text/csv", b"1,2,3\n4,5,6\n");
    assert_eq!(code, 400, "{text}");
    let (code, text) = request(addr, "POST", "/score", "text/csv", b"1,2\n3,4\n5,6\n7,8\n9,10\n");
    assert!(code == 400 && json(&text)["error"].as_str().unwrap().contains("takes 3"), "{text}");
    sidecar.shutdown();
}

/// Reads one response from a kept-open connection: (status code, headers, body), by its Content-Length.
fn read_response(reader: &mut std::io::BufReader<TcpStream>) -> (u16, String, String) {
    use std::io::BufRead;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("a response line") > 0, "closed inside a response: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    (code, head, String::from_utf8(body).expect("UTF-8"))
}

/// Sends `raw` on a fresh connection and reads everything until the server closes it.
fn exchange_raw(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(raw).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("receive");
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn a_kept_connection_serves_requests_in_turn_and_the_server_refuses_what_it_does_not_speak() {
    let sidecar = serve(Arc::new(MeanScorer), "127.0.0.1:0", 64).unwrap();
    let addr = sidecar.addr;
    // Three requests on one HTTP/1.1 connection, each answered on it, in order.
    let stream = TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    for seed in 0..3 {
        let body = format!(r#"{{"rows": [[0.25,0.25,0.25]], "seed": {seed}}}"#);
        let head =
            format!("POST /score HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        writer.write_all((head + &body).as_bytes()).unwrap();
        let (code, head, body) = read_response(&mut reader);
        assert_eq!(code, 200, "{body}");
        assert!(!head.contains("Connection: close"), "{head}");
        assert_eq!(json(&body)["statistic"].as_f64(), Some(seed as f64));
    }
    // HTTP/1.0 without keep-alive: answered, then closed (read_to_end returned).
    let answer = exchange_raw(addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("Connection: close") && answer.ends_with("ok\n"));

    let huge_header = format!("GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(super::http::MAX_HEAD_BYTES));
    for (raw, code, needle) in [
        (&b"POST /score HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..], "501", "Content-Length"),
        (huge_header.as_bytes(), "431", "request head"),
        (b"GET /healthz\r\n\r\n", "400", "bad request line"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", "505", "HTTP/1.1"),
        (b"POST /score HTTP/1.1\r\nContent-Length: ten\r\n\r\n", "400", "Content-Length"),
    ] {
        let response = exchange_raw(addr, raw);
        assert!(response.starts_with(&format!("HTTP/1.1 {code} ")), "{response}");
        assert!(response.contains("Connection: close") && response.contains(needle), "{response}");
    }
    drop((writer, reader));
    sidecar.shutdown();
}

#[test]
fn connections_over_the_cap_get_503_until_one_closes() {
    let sidecar = serve(Arc::new(MeanScorer), "127.0.0.1:0", 1).unwrap();
    let addr = sidecar.addr;
    let mut held = TcpStream::connect(addr).unwrap();
    held.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let (code, _, _) = read_response(&mut std::io::BufReader::new(held.try_clone().unwrap()));
    assert_eq!(code, 200);
    let busy = exchange_raw(addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert!(busy.starts_with("HTTP/1.1 503") && busy.contains("too many connections"), "{busy}");
    drop(held);
    // The held connection's thread ends once it sees the close; until then the cap still counts it.
    let served = (0..400).any(|_| {
        let answer = exchange_raw(addr, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
        answer.starts_with("HTTP/1.1 200") || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            false
        }
    });
    assert!(served, "no connection was served after the held one closed");
    sidecar.shutdown();
}
