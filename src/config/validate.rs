//! Checks of single values, shared by the config file and the command line so both accept
//! and refuse the same things with the same words.

use std::net::IpAddr;
use std::time::Duration;

use actors::config::{FreeSpace, Ttl};
use actors::prune::parse_size;

/// The most `maxConnections` may ask for.
const MAX_CONNECTIONS_CEILING: u64 = 1_000_000;

/// `maxConnections`: bounded so a typo cannot ask for more descriptors than any host has.
pub(super) fn max_connections(n: u64) -> Result<usize, String> {
    if !(1..=MAX_CONNECTIONS_CEILING).contains(&n) {
        return Err(format!(
            "{n} is not a connection count: use 1 to {MAX_CONNECTIONS_CEILING}"
        ));
    }
    usize::try_from(n).map_err(|_| format!("{n} connections do not fit this machine"))
}

/// `maxBlobSize`: a size as `maxCacheSize` writes it, more than 0 (a bound of nothing would
/// refuse every blob).
pub(super) fn max_blob_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("must be more than 0 bytes".into()),
        n => Ok(n),
    }
}

/// `minFreeSpace`: a size as `maxCacheSize` writes it (`10GiB`; `0` keeps no floor), or a whole
/// percentage of the filesystem (`5%`).
pub(super) fn min_free_space(text: &str) -> Result<FreeSpace, String> {
    let t = text.trim();
    let Some(number) = t.strip_suffix('%') else {
        return parse_size(t).map(FreeSpace::Bytes);
    };
    match number.trim().parse::<u8>() {
        Ok(p) if p <= 100 => Ok(FreeSpace::Percent(p)),
        _ => Err(format!(
            "\"{text}\" is not a share of the disk: use a whole percentage from 0% to 100%, \
             or a size such as 10GiB"
        )),
    }
}

/// A timeout in milliseconds (`pullTimeout`, `upstreamIdleTimeout`): 0 would fail every pull.
pub(super) fn pull_timeout(ms: u64) -> Result<Duration, String> {
    if ms == 0 {
        return Err("must be greater than 0 milliseconds".into());
    }
    Ok(Duration::from_millis(ms))
}

/// A registry as it appears in image references: `host` or `host:port`, where the host is
/// letters, digits, `.` and `-`.
pub(super) fn check_registry_host(value: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "\"{value}\" is not a registry host: {why}; expected host or host:port, e.g. \
             docker.io or myreg:5000"
        ))
    };
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.contains("://") {
        return bad("remove the scheme (use the registry's `scheme` or `endpoint` key)");
    }
    if value.contains('/') {
        return bad("it contains '/'");
    }
    if value.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    let (host, port) = match value.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("the port must be a number from 1 to 65535");
        }
    }
    if !is_hostname(host) {
        return bad("the host may only contain letters, digits, '.' and '-'");
    }
    Ok(())
}

pub(super) fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The listening address: an IP address or a host name.
pub(super) fn check_listen_host(value: &str) -> Result<(), String> {
    if value.parse::<IpAddr>().is_ok() || is_hostname(value) {
        Ok(())
    } else {
        Err(format!(
            "\"{value}\" is not an IP address or host name to listen on, e.g. 0.0.0.0 or \
             127.0.0.1"
        ))
    }
}

/// Checks an `endpoint`: `http(s)://host[:port]`, optionally with a trailing `/`, and nothing
/// else. Returns it without the trailing `/`.
pub(super) fn parse_endpoint(value: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "\"{value}\" is not a valid endpoint: {why}; expected http://host[:port] or \
             https://host[:port], e.g. http://127.0.0.1:5000"
        ))
    };
    let Some((scheme, rest)) = value.split_once("://") else {
        return bad("it has no http:// or https:// scheme");
    };
    if scheme != "http" && scheme != "https" {
        return bad("the scheme must be http or https");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return bad("credentials are not allowed (use the registry's `auth` key)");
    }
    if authority.contains('/') {
        return bad("a path is not allowed");
    }
    if authority.contains('?') || authority.contains('#') {
        return bad("a query or fragment is not allowed");
    }
    let (_host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // IPv6 literal: [addr] or [addr]:port
        let Some((addr, after)) = bracketed.split_once(']') else {
            return bad("unterminated IPv6 address");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("invalid IPv6 address");
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return bad("unexpected text after the IPv6 address"),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => {
                if !is_hostname(h) {
                    return bad("invalid host");
                }
                (h, Some(p))
            }
            None => {
                if !is_hostname(authority) {
                    return bad("invalid host");
                }
                (authority, None)
            }
        }
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return bad("the port must be a number from 1 to 65535");
        }
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `never`, or a duration such as `30s`, `10m`, `12h`, `1d`.
pub(super) fn parse_ttl(value: &str) -> Result<Ttl, String> {
    if value.trim() == "never" {
        return Ok(Ttl::Never);
    }
    actors::duration::parse(value)
        .map(Ttl::After)
        .map_err(|e| format!("neither `never` nor a duration: {e}"))
}
