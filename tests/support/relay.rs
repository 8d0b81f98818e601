//! A TCP relay on loopback, run in the test process.
//!
//! Placed in front of the upstream it throttles what the upstream sends (bytes per second), so
//! a download lasts long enough to join it or to kill the server in the middle of it. Placed in
//! front of our server it records the request line of every request a client sends (clients
//! here only send bodiless GET and HEAD requests, so each header block is one request).
//!
//! Told to drop ([`Relay::set_dropping`]), it behaves like a link that silently loses every
//! packet: open connections stop carrying bytes either way, and new ones are accepted but
//! never answered. When the link returns, everything flows again without loss, as TCP would
//! retransmit.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::free_port;

pub struct Relay {
    pub port: u16,
    rate: Arc<AtomicU64>,
    dropping: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    requests: Arc<Mutex<Vec<String>>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Relays `127.0.0.1:<new port>` to `127.0.0.1:target_port`, sending responses at most
    /// `bytes_per_second` (0 means unlimited).
    pub fn start(target_port: u16, bytes_per_second: u64) -> Relay {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind relay port");
        let rate = Arc::new(AtomicU64::new(bytes_per_second));
        let dropping = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accept_thread = {
            let (rate, dropping, stop, connections, requests) = (
                rate.clone(),
                dropping.clone(),
                stop.clone(),
                connections.clone(),
                requests.clone(),
            );
            thread::spawn(move || {
                for incoming in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = incoming else { continue };
                    let link = Link {
                        target_port,
                        rate: rate.clone(),
                        dropping: dropping.clone(),
                        connections: connections.clone(),
                        requests: requests.clone(),
                    };
                    if dropping.load(Ordering::SeqCst) {
                        // Accepted, but nothing reaches the other side until the link is back.
                        thread::spawn(move || {
                            wait_while(&link.dropping);
                            link.carry(client);
                        });
                    } else {
                        link.carry(client);
                    }
                }
            })
        };
        Relay {
            port,
            rate,
            dropping,
            stop,
            connections,
            requests,
            accept_thread: Some(accept_thread),
        }
    }

    /// Drops every packet (`true`) or carries them again (`false`).
    pub fn set_dropping(&self, dropping: bool) {
        self.dropping.store(dropping, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes the throttle for all connections, including those in progress (0 = unlimited).
    pub fn set_rate(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Request lines (`METHOD TARGET HTTP/1.1`) seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
        for c in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

/// What one relayed connection needs.
struct Link {
    target_port: u16,
    rate: Arc<AtomicU64>,
    dropping: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Link {
    /// Connects an accepted client to the target and pumps both ways.
    fn carry(self, client: TcpStream) {
        let target = SocketAddr::from(([127, 0, 0, 1], self.target_port));
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut list = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                list.push(c);
                list.push(s);
            }
        }
        let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        let (requests, drop_in) = (self.requests, self.dropping.clone());
        thread::spawn(move || pump_requests(client_r, server_w, requests, drop_in));
        let (rate, dropping) = (self.rate, self.dropping);
        thread::spawn(move || pump_throttled(server, client, rate, dropping));
    }
}

/// Holds on while the link drops packets.
fn wait_while(dropping: &AtomicBool) {
    while dropping.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Client to target, unthrottled, noting the first line of every header block.
fn pump_requests(
    mut from: TcpStream,
    mut to: TcpStream,
    requests: Arc<Mutex<Vec<String>>>,
    dropping: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        wait_while(&dropping);
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = find(&pending, b"\r\n\r\n") {
            let block = pending.drain(..end + 4).collect::<Vec<u8>>();
            let text = String::from_utf8_lossy(&block);
            if let Some(line) = text.lines().next() {
                requests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.to_string());
            }
        }
        if pending.len() > 1 << 20 {
            pending.clear();
        }
        // Bytes read as the link went down arrive when it is back.
        wait_while(&dropping);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Target to client, at most `rate` bytes per second.
fn pump_throttled(
    mut from: TcpStream,
    mut to: TcpStream,
    rate: Arc<AtomicU64>,
    dropping: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_while(&dropping);
        let limit = rate.load(Ordering::SeqCst);
        // Twenty slices per second keep the flow smooth.
        let want = if limit == 0 {
            buf.len()
        } else {
            ((limit / 20) as usize).clamp(512, buf.len())
        };
        let n = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_while(&dropping);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if limit > 0 {
            thread::sleep(Duration::from_secs_f64(n as f64 / limit as f64));
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Both);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
