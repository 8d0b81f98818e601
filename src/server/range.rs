//! The `Range` header of a blob request: which bytes of the blob to send (RFC 9110). The bytes
//! themselves come from the engine's blob reader.

/// A satisfiable byte range, `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything (also for multi-range requests, which RFC 9110 lets a
    /// server answer in full).
    Full,
    Partial(ByteRange),
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(h) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let range = match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(b) {
            Some(0) | None => return RangeRequest::Unsatisfiable,
            Some(n) => ByteRange {
                start: size.saturating_sub(n),
                end: size,
            },
        },
        (false, true) => match parse(a) {
            Some(s) => ByteRange {
                start: s,
                end: size,
            },
            None => return RangeRequest::Unsatisfiable,
        },
        (false, false) => match (parse(a), parse(b)) {
            (Some(s), Some(e)) if s <= e => ByteRange {
                start: s,
                end: e.saturating_add(1).min(size),
            },
            _ => return RangeRequest::Unsatisfiable,
        },
        (true, true) => return RangeRequest::Unsatisfiable,
    };
    if range.start >= size || range.start >= range.end {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start: s, end: e })
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), r(0, 10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), r(90, 100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), r(90, 100));
        assert_eq!(parse_range(Some("bytes=-500"), 100), r(0, 100));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), r(50, 100));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Full);
        for bad in [
            "bytes=10-5",
            "bytes=100-",
            "bytes=999999999-",
            "bytes=x-y",
            "bytes=-0",
            "bytes=-",
        ] {
            assert_eq!(
                parse_range(Some(bad), 100),
                RangeRequest::Unsatisfiable,
                "{bad}"
            );
        }
    }
}
