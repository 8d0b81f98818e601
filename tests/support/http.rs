//! A deliberately small HTTP/1.1 client over a plain `TcpStream`.
//!
//! It sends the request target exactly as given (no normalisation of `..` or `//`, which the
//! malformed-request tests need), one request per connection, and can hand the body to a
//! callback as it arrives (which the streaming tests need to time first bytes).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Accept header listing all four manifest media types a pull client accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

const IO_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The `code` of every entry of an OCI error body, or `None` when the body is not one.
    pub fn oci_error_codes(&self) -> Option<Vec<String>> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let errors = value.get("errors")?.as_array()?;
        if errors.is_empty() {
            return None;
        }
        errors
            .iter()
            .map(|e| e.get("code")?.as_str().map(str::to_string))
            .collect()
    }

    /// Panics unless this is `status` with an OCI error body of the one code `code`.
    #[track_caller]
    pub fn assert_oci_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.summary());
        assert_eq!(
            self.oci_error_codes(),
            Some(vec![code.to_string()]),
            "{}",
            self.summary()
        );
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        let body = self.text();
        let body: String = body.chars().take(600).collect();
        format!(
            "status {} headers {:?} body {body:?}",
            self.status, self.headers
        )
    }
}

pub fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends one request to `127.0.0.1:port` and reads the whole response.
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    let mut body = Vec::new();
    let (status, headers) = request_streaming(port, method, target, headers, |chunk| {
        body.extend_from_slice(chunk);
    })?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `GET`, panicking on I/O errors.
pub fn get(port: u16, target: &str) -> Response {
    request(port, "GET", target, &[]).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// `GET` with extra headers, panicking on I/O errors.
pub fn get_with(port: u16, target: &str, headers: &[(&str, &str)]) -> Response {
    request(port, "GET", target, headers).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// `GET` of a manifest with the Accept header of a pull client, panicking on I/O errors.
pub fn get_manifest(port: u16, target: &str) -> Response {
    get_with(port, target, &[("Accept", MANIFEST_ACCEPT)])
}

/// Sends one request and passes the body to `on_data` chunk by chunk as it arrives.
/// Returns the status and headers once the body is complete.
pub fn request_streaming(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    mut on_data: impl FnMut(&[u8]),
) -> io::Result<(u16, Vec<(String, String)>)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: ociregistry-e2e\r\nConnection: close\r\n"
    );
    let mut has_body = false;
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
        has_body |= k.eq_ignore_ascii_case("content-length");
    }
    if !has_body && matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    (&stream).write_all(head.as_bytes())?;

    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let (status, headers) = read_head(&mut reader)?;
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok((status, headers));
    }
    let chunked = header_in(&headers, "transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    if chunked {
        read_chunked(&mut reader, &mut on_data)?;
    } else if let Some(len) = header_in(&headers, "content-length") {
        let len: u64 = len
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        copy_exact(&mut reader, len, &mut on_data)?;
    } else {
        copy_to_end(&mut reader, &mut on_data)?;
    }
    Ok((status, headers))
}

fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut total = 0;
    let mut status_line = String::new();
    total += reader.read_line(&mut status_line)?;
    if status_line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a status line",
        ));
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        total += n;
        if n == 0 || total > MAX_HEADER_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated or oversized header block",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn copy_exact(
    reader: &mut impl Read,
    mut left: u64,
    on_data: &mut impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body ended {left} bytes early"),
            ));
        }
        on_data(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

fn copy_to_end(reader: &mut impl Read, on_data: &mut impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        on_data(&buf[..n]);
    }
}

fn read_chunked(reader: &mut impl BufRead, on_data: &mut impl FnMut(&[u8])) -> io::Result<()> {
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body ended without a last chunk",
            ));
        }
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_text, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {size_line:?}"),
            )
        })?;
        if size == 0 {
            // Trailers, then the final empty line.
            for _ in 0..64 {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
            return Ok(());
        }
        copy_exact(reader, size, on_data)?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
