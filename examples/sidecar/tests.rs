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
    let sidecar = serve(Arc::new(MeanScorer), "127.0.0.1:0", 2).unwrap();
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
    let sidecar = serve(Arc::new(MeanScorer), "127.0.0.1:0", 4).unwrap();
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
    let sidecar = serve(Arc::clone(&detector) as Arc<dyn Scorer>, "127.0.0.1:0", 4).unwrap();
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
