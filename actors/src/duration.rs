//! Durations as people write them: in the config file, on the command line and in admin
//! requests. One syntax everywhere, so `30d` means the same in `pruneConfig.duration`, a tag
//! rule's `ttl`, `evictionGrace` and `prune --dur`.
//!
//! It is humantime's: a number and a unit, several in a row (`1d12h`, `1h 30m`), with the
//! units the Go server's configuration uses (`30d`, `12h`, `10m`, `90s`) among them. A bare
//! number is refused rather than guessed at: the timeouts the Go server gives in milliseconds
//! are plain numbers in their own keys and flags, and are read as such there.

use std::time::Duration;

/// Reads a duration such as `30d`, `12h`, `10m`, `1d12h` or `1h 30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty duration; use e.g. 30d, 12h or 10m".into());
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("\"{text}\" is not a duration like 30d, 12h, 10m or 1d12h ({e})"))
}

/// `90061s` -> `1d1h1m1s`: whole seconds in the units [`parse`] reads back, largest first.
pub fn format(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_go_servers_units_and_combinations_are_read() {
        assert_eq!(parse("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1d12h").unwrap(), Duration::from_secs(36 * 3_600));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse(" 5s ").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5_400));
    }

    #[test]
    fn bare_numbers_signs_and_overflow_are_refused_with_the_text() {
        for bad in ["", "30", "d", "-1d", "3x", "1h30", "99999999999999999999d"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(bad.trim()), "{bad:?}: {err}");
        }
    }

    #[test]
    fn formatted_durations_read_back_to_the_same_seconds() {
        for secs in [0, 1, 59, 60, 3_599, 90_061, 30 * 86_400] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(90_061)), "1d1h1m1s");
    }
}
