//! A small HTTP/1.1 server over `std::net`: one thread per connection reads a request, has it handled and writes
//! the response itself, then waits for the next request on the same (kept-alive) connection.
//!
//! Why not a crate's server: the sidecar scores a window in ≈ 0.4 ms, so what a request costs besides scoring
//! shows in its throughput. `tiny_http` (the sidecar's server until 2026-12-05) parses on one thread and hands
//! each request to a worker through a queue, one more thread wake-up per request; here the thread that read a
//! request scores it. What this server accepts is deliberately narrow:
//!
//! * a request line `METHOD TARGET HTTP/1.x`, headers up to [`MAX_HEAD_BYTES`], and a body only with
//!   `Content-Length` (a `Transfer-Encoding` body gets 501 and the connection is closed);
//! * bodies over the handler's limit get 413 (read and discarded up to [`MAX_DRAIN_BYTES`] so the client sees
//!   the answer; larger ones close the connection after it);
//! * keep-alive by default for HTTP/1.1, `Connection: close` honoured, HTTP/1.0 closes unless it asks to keep
//!   the connection; an idle connection is closed after [`IDLE_TIMEOUT`];
//! * at most `max_connections` at once: the next one gets 503 and is closed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The largest request line plus headers read.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// A body too large for the handler is still read (and dropped) up to this size, so that the client, which is
/// still sending it, reads the 413 instead of a reset connection.
pub const MAX_DRAIN_BYTES: usize = 64 << 20;
/// How long a kept-alive connection may stay silent before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the client's end ([`linger_close`]).
const LINGER: Duration = Duration::from_millis(100);

/// A parsed request, as the handler sees it.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The `Content-Type` header's value ("" when absent).
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A response: status code, body and its content type.
pub type Response = (u16, String, &'static str);

/// What answers requests (shared by every connection thread).
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`.
    fn handle(&self, request: Request) -> Response;
    /// The largest body the handler takes; a longer one gets 413 without reaching [`Handler::handle`].
    fn max_body(&self) -> usize;
    /// Called for every response written, the ones the server makes itself (4xx/5xx) included.
    fn responded(&self, code: u16);
}

/// A running server. Dropping it without [`Server::shutdown`] leaves it serving until the process exits.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
}

/// Listen on `addr` and serve with `handler`, at most `max_connections` connections at once.
pub fn listen(handler: Arc<dyn Handler>, addr: &str, max_connections: usize) -> Result<Server, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("{addr}: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let acceptor = std::thread::spawn(move || accept(listener, handler, max_connections.max(1), stop_flag));
    Ok(Server { addr, stop, acceptor })
}

impl Server {
    /// Serve until the process is stopped.
    pub fn wait(self) {
        let _ = self.acceptor.join();
    }

    /// Stop accepting, close every open connection (a request being handled then goes unanswered) and join the
    /// connection threads.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        // The acceptor is blocked in accept(): a connection wakes it to see the flag.
        let _ = TcpStream::connect(self.addr);
        let _ = self.acceptor.join();
    }
}

fn accept(listener: TcpListener, handler: Arc<dyn Handler>, max_connections: usize, stop: Arc<AtomicBool>) {
    // The open connections' sockets, so that shutdown can close them under their threads.
    let open: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
    let mut next_id = 0u64;
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        threads.retain(|t| !t.is_finished());
        if threads.len() >= max_connections {
            write_response(
                &mut stream,
                (503, error_json("too many connections: retry later"), "application/json"),
                true,
            );
            handler.responded(503);
            linger_close(&mut stream);
            continue;
        }
        let id = next_id;
        next_id += 1;
        if let Ok(copy) = stream.try_clone() {
            open.lock().expect("connection registry").insert(id, copy);
        }
        let (handler, open) = (Arc::clone(&handler), Arc::clone(&open));
        threads.push(std::thread::spawn(move || {
            serve_connection(stream, handler.as_ref());
            open.lock().expect("connection registry").remove(&id);
        }));
    }
    for stream in open.lock().expect("connection registry").values() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for t in threads {
        let _ = t.join();
    }
}

/// A JSON error body `{"error": message}`.
pub fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Requests on one connection until it closes, errs, idles out or asks to close.
fn serve_connection(stream: TcpStream, handler: &dyn Handler) {
    // Without TCP_NODELAY a response written after the request's body arrived in two segments waits for the
    // client's delayed ACK (40 ms on Linux).
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let (response, close) = match read_request(&mut reader, handler.max_body()) {
            Ok(None) => return,
            Ok(Some((request, keep_alive))) => (handler.handle(request), !keep_alive),
            Err(Refusal { code, message }) => ((code, error_json(&message), "application/json"), true),
        };
        handler.responded(response.0);
        if !write_response(&mut writer, response, close) {
            return;
        }
        if close {
            linger_close(&mut writer);
            return;
        }
    }
}

/// Closes a connection whose client may still be sending (a refused request's rest, a body not read): closing
/// a socket with unread input resets it, and the client could lose the response it has not read yet. So the
/// write side is shut first (the client reads the response, then end of file) and what arrives is read and
/// dropped until the client closes, [`LINGER`] passes or [`MAX_DRAIN_BYTES`] have come.
fn linger_close(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let _ = std::io::copy(&mut stream.take(MAX_DRAIN_BYTES as u64), &mut std::io::sink());
}

/// Why a request is answered by the server itself, after which the connection closes.
struct Refusal {
    code: u16,
    message: String,
}

fn refuse(code: u16, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// The next request and whether the connection stays open after it; `None` when the client closed (or went
/// silent) between requests.
fn read_request(reader: &mut BufReader<TcpStream>, max_body: usize) -> Result<Option<(Request, bool)>, Refusal> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let read = (&mut *reader).take((MAX_HEAD_BYTES + 1 - start) as u64).read_until(b'\n', &mut head);
        match read {
            Ok(0) if start == 0 => return Ok(None),
            Ok(0) => return Err(refuse(400, "the connection closed inside the request head")),
            Ok(_) if head.len() > MAX_HEAD_BYTES => {
                return Err(refuse(431, format!("the request head is larger than {MAX_HEAD_BYTES} bytes")))
            }
            Ok(_) if !head.ends_with(b"\n") => {
                return Err(refuse(400, "the connection closed inside the request head"))
            }
            // A blank line ends the head (leading blank lines before a request line are skipped, RFC 9112 §2.2).
            Ok(_) if head[start..] == *b"\r\n" || head[start..] == *b"\n" => {
                if start == 0 {
                    head.clear();
                    continue;
                }
                break;
            }
            Ok(_) => {}
            Err(_) if start == 0 => return Ok(None),
            Err(e) => return Err(refuse(400, format!("cannot read the request: {e}"))),
        }
    }
    let head = std::str::from_utf8(&head).map_err(|_| refuse(400, "the request head is not UTF-8"))?;
    let mut lines = head.lines();
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(400, format!("bad request line {line:?}")));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        other => return Err(refuse(505, format!("{other:?} is not supported: speak HTTP/1.1"))),
    };
    let (mut length, mut content_type, mut connection) = (None, String::new(), String::new());
    for header in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = header.split_once(':') else {
            return Err(refuse(400, format!("bad header line {header:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| refuse(400, format!("bad Content-Length {value:?}")))?;
            if length.is_some_and(|m| m != n) {
                return Err(refuse(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(refuse(501, "Transfer-Encoding bodies are not supported: send Content-Length"));
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = value.to_owned();
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        }
    }
    let length = length.unwrap_or(0);
    if length > max_body {
        if length <= MAX_DRAIN_BYTES {
            // Best effort: the answer is the same whether the drain completes or not.
            let _ = std::io::copy(&mut (&mut *reader).take(length as u64), &mut std::io::sink());
        }
        return Err(refuse(413, format!("the body is larger than {max_body} bytes")));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| refuse(400, format!("cannot read the body: {e}")))?;
    let keep_alive = if http10 { connection.contains("keep-alive") } else { !connection.contains("close") };
    let path = target.split('?').next().unwrap_or_default().to_owned();
    Ok(Some((Request { method: method.to_owned(), path, content_type, body }, keep_alive)))
}

/// Writes `response` in one write (head and body together); false when the client is gone.
fn write_response(stream: &mut TcpStream, (code, body, content_type): Response, close: bool) -> bool {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{connection}\r\n{body}",
        reason(code),
        body.len()
    );
    stream.write_all(out.as_bytes()).is_ok()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
