//! A fault-injecting HTTP proxy on loopback, run in the test process, in front of the real
//! upstream registry.
//!
//! Requests pass through unchanged (one request per connection: the proxy asks the upstream
//! to close after answering and closes the client connection after the response), except
//! those matching a [`Rule`], which get the rule's [`Fault`] instead: wrong bytes, a cut or
//! stalled body, a body longer than announced or without end, an oversized manifest, a
//! redirect loop, an error status, or a reset connection. Rules can be added and cleared while
//! the proxy runs, so a test can break the upstream, watch what the server does, then let the
//! next request through.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::free_port;

/// What a matching request gets instead of the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The upstream's response with one byte in the middle of the body inverted.
    FlipBytes,
    /// The upstream's head (its `Content-Length` included), half the body, then the
    /// connection is closed.
    Truncate,
    /// The upstream's head and half the body, then nothing more while the socket stays open
    /// (until the proxy is dropped, at most two minutes).
    Stall,
    /// `200` with a manifest media type and a body of this many bytes.
    HugeManifest(usize),
    /// `307` back to the same URL, forever.
    RedirectLoop,
    /// This status with a small OCI error body and, if given, a `Retry-After` header.
    Status(u16, Option<u32>),
    /// The connection is reset (RST) without an answer.
    Reset,
    /// The upstream's response with this many zero bytes after its body, counted in its
    /// `Content-Length`.
    ExtraBytes(usize),
    /// The upstream's head without its `Content-Length`, then its body, chunked, followed by
    /// zeros without end: until the peer closes the connection or the proxy is dropped (or
    /// [`ENDLESS_CAP`] bytes, so that a server that never stops reading cannot fill the disk).
    Endless,
}

/// The most bytes one [`Fault::Endless`] body sends.
pub const ENDLESS_CAP: u64 = 256 * 1024 * 1024;

/// Applies `fault` to requests whose target contains `path_contains`, `times` times
/// (`usize::MAX`: until cleared).
#[derive(Debug, Clone)]
pub struct Rule {
    pub path_contains: String,
    pub fault: Fault,
    pub times: usize,
}

/// One request the proxy saw: method, target, and the fault it got (`None`: passed through).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    held: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    /// [`Fault::Endless`] bodies still being sent, and the bytes they sent in all.
    endless_open: AtomicUsize,
    endless_sent: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Proxies `127.0.0.1:<new port>` to the registry at `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> FaultProxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind fault proxy port");
        let shared = Arc::new(Shared::default());
        let accept_thread = {
            let shared = shared.clone();
            thread::spawn(move || {
                for incoming in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = incoming else { continue };
                    let shared = shared.clone();
                    thread::spawn(move || serve(client, target_port, port, &shared));
                }
            })
        };
        FaultProxy {
            port,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn add_rule(&self, path_contains: &str, fault: Fault, times: usize) {
        lock(&self.shared.rules).push(Rule {
            path_contains: path_contains.to_string(),
            fault,
            times,
        });
    }

    /// Removes every rule; stalled connections stay stalled.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Cuts every stalled connection.
    pub fn release_stalled(&self) {
        for c in lock(&self.shared.held).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many [`Fault::Endless`] bodies are still being sent (their peer has not closed).
    pub fn endless_bodies_open(&self) -> usize {
        self.shared.endless_open.load(Ordering::SeqCst)
    }

    /// The bytes every [`Fault::Endless`] body has sent so far, heads not counted.
    pub fn endless_bytes_sent(&self) -> u64 {
        self.shared.endless_sent.load(Ordering::SeqCst)
    }

    /// How many requests got `fault`.
    pub fn faults_applied(&self, fault: &Fault) -> usize {
        lock(&self.shared.seen)
            .iter()
            .filter(|s| s.fault.as_ref() == Some(fault))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
        self.release_stalled();
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the first rule matching `target`, counting it down.
fn take_fault(shared: &Shared, target: &str) -> Option<Fault> {
    let mut rules = lock(&shared.rules);
    let i = rules
        .iter()
        .position(|r| r.times > 0 && target.contains(&r.path_contains))?;
    let fault = rules[i].fault.clone();
    if rules[i].times != usize::MAX {
        rules[i].times -= 1;
    }
    Some(fault)
}

fn serve(client: TcpStream, target_port: u16, own_port: u16, shared: &Shared) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = client.set_write_timeout(Some(Duration::from_secs(30)));
    // Peek rather than read, so a reset can leave the request unread: closing a socket with
    // unread input makes the kernel send RST instead of FIN.
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    let head_len = loop {
        let n = match client.peek(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
            break end + 4;
        }
        if n == buf.len() || Instant::now() > deadline {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut parts = head.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let fault = take_fault(shared, &target);
    lock(&shared.seen).push(Seen {
        method: method.clone(),
        target: target.clone(),
        fault: fault.clone(),
    });
    if fault == Some(Fault::Reset) {
        drop(client);
        return;
    }
    let mut client = client;
    let mut consumed = vec![0u8; head_len];
    if client.read_exact(&mut consumed).is_err() {
        return;
    }
    let has_body = method != "HEAD";
    match fault {
        None => {
            if let Some(resp) = forward(&head, target_port) {
                let _ = client.write_all(&resp);
            }
        }
        Some(Fault::Reset) => unreachable!("handled above"),
        Some(Fault::Status(code, retry_after)) => {
            let body = format!(
                "{{\"errors\":[{{\"code\":\"UNKNOWN\",\"message\":\"injected {code}\"}}]}}"
            );
            let retry = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let resp = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n{retry}Connection: close\r\n\r\n{}",
                body.len(),
                if has_body { body.as_str() } else { "" }
            );
            let _ = client.write_all(resp.as_bytes());
        }
        Some(Fault::RedirectLoop) => {
            let resp = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{own_port}{target}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = client.write_all(resp.as_bytes());
        }
        Some(Fault::HugeManifest(size)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                 Content-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            if client.write_all(head.as_bytes()).is_ok() && has_body {
                let chunk = vec![b' '; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if client.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        }
        Some(Fault::ExtraBytes(extra)) => {
            let Some(resp) = forward(&head, target_port) else {
                return;
            };
            let split = find(&resp, b"\r\n\r\n").map_or(resp.len(), |e| e + 4);
            let (resp_head, body) = resp.split_at(split);
            let length = (body.len() + if has_body { extra } else { 0 }) as u64;
            let _ = client.write_all(&with_length(resp_head, Some(length)));
            if has_body {
                let _ = client.write_all(body);
                let _ = client.write_all(&vec![0u8; extra]);
            }
        }
        Some(Fault::Endless) => {
            let Some(resp) = forward(&head, target_port) else {
                return;
            };
            let split = find(&resp, b"\r\n\r\n").map_or(resp.len(), |e| e + 4);
            let (resp_head, body) = resp.split_at(split);
            if client.write_all(&with_length(resp_head, None)).is_err() || !has_body {
                return;
            }
            shared.endless_open.fetch_add(1, Ordering::SeqCst);
            let zeros = vec![0u8; 64 * 1024];
            // An empty chunk would be the last one: an empty body goes straight to the zeros.
            let mut next: &[u8] = if body.is_empty() { &zeros } else { body };
            let mut sent = 0u64;
            while sent < ENDLESS_CAP && !shared.stop.load(Ordering::SeqCst) {
                let chunk = format!("{:x}\r\n", next.len());
                let written = client
                    .write_all(chunk.as_bytes())
                    .and_then(|_| client.write_all(next))
                    .and_then(|_| client.write_all(b"\r\n"));
                if written.is_err() {
                    break;
                }
                sent += next.len() as u64;
                shared
                    .endless_sent
                    .fetch_add(next.len() as u64, Ordering::SeqCst);
                next = &zeros;
            }
            shared.endless_open.fetch_sub(1, Ordering::SeqCst);
            // No last chunk: the body never ends properly.
            return;
        }
        Some(fault @ (Fault::FlipBytes | Fault::Truncate | Fault::Stall)) => {
            let Some(resp) = forward(&head, target_port) else {
                return;
            };
            let split = find(&resp, b"\r\n\r\n").map_or(resp.len(), |e| e + 4);
            let (resp_head, body) = resp.split_at(split);
            if !has_body || body.is_empty() {
                let _ = client.write_all(&resp);
                return;
            }
            let _ = client.write_all(resp_head);
            match fault {
                Fault::FlipBytes => {
                    let mut body = body.to_vec();
                    let mid = body.len() / 2;
                    body[mid] ^= 0xff;
                    let _ = client.write_all(&body);
                }
                Fault::Truncate => {
                    let _ = client.write_all(&body[..body.len() / 2]);
                }
                _ => {
                    let _ = client.write_all(&body[..body.len() / 2]);
                    let _ = client.flush();
                    if let Ok(c) = client.try_clone() {
                        lock(&shared.held).push(c);
                    }
                    let until = Instant::now() + Duration::from_secs(120);
                    while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                        // Returns once the peer closes or the connection is released.
                        let mut one = [0u8; 1];
                        let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
                        match client.read(&mut one) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    return;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// A response head with its `Content-Length` and `Transfer-Encoding` replaced: by
/// `Content-Length: n`, or by `Transfer-Encoding: chunked` when `length` is `None`.
fn with_length(head: &[u8], length: Option<u64>) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-length:") || lower.starts_with("transfer-encoding:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    match length {
        Some(n) => out.push_str(&format!("Content-Length: {n}\r\n")),
        None => out.push_str("Transfer-Encoding: chunked\r\n"),
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Sends the request head to the upstream with `Connection: close` and returns its whole
/// response.
fn forward(head: &str, target_port: u16) -> Option<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], target_port));
    let mut upstream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    let _ = upstream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes()).ok()?;
    let mut resp = Vec::new();
    upstream.read_to_end(&mut resp).ok()?;
    Some(resp)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
