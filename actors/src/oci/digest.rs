//! Content digests.
//!
//! Every digest that reaches the engine has been through [`Digest::parse`], so code past the
//! HTTP edge can use [`Digest::hex`] as a file name without re-checking it: the hex part is
//! exactly 64 lowercase hex characters and can never contain a path separator.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::OciError;

/// A validated `sha256:<64 hex>` content digest.
///
/// Only sha256 is accepted: it is what every registry produces, and it is what the on-disk
/// layout (`blobs/<hex>`) shared with the Go server assumes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; anything else is a `DIGEST_INVALID` error naming the input.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(OciError::DigestInvalid(format!(
                "{s:?} is not <algorithm>:<hex>"
            )));
        };
        if algo != "sha256" {
            return Err(OciError::DigestInvalid(format!(
                "unsupported digest algorithm {algo:?} (only sha256)"
            )));
        }
        Self::from_hex(hex).map_err(|_| {
            OciError::DigestInvalid(format!("{s:?}: sha256 needs 64 lowercase hex characters"))
        })
    }

    /// Parses a bare 64-character hex string, as found in cache file names and in the Go
    /// server's `digest` field.
    pub fn from_hex(hex: &str) -> Result<Self, OciError> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(OciError::DigestInvalid(format!(
                "{hex:?} is not 64 lowercase hex characters"
            )))
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finishes a running hash, for data that was streamed through it.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Digest {
            hex: format!("{:x}", hasher.finalize()),
        }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `needle` (a hex fragment, optionally `sha256:`-prefixed) occurs in this digest;
    /// the admin listings search blobs this way.
    pub fn contains(&self, needle: &str) -> bool {
        let needle = needle.strip_prefix("sha256:").unwrap_or(needle);
        self.hex.contains(needle)
    }
}

/// Written piece by piece when no width or precision is asked for, rather than through
/// `write!`: a digest is spelled into the headers of every cache hit.
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() || f.precision().is_some() {
            return f.pad(&format!("sha256:{}", self.hex));
        }
        f.write_str("sha256:")?;
        f.write_str(&self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self, OciError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn empty_input_hashes_to_the_well_known_sha256() {
        assert_eq!(Digest::of(b"").hex(), HEX);
        assert_eq!(Digest::of(b"").to_string(), format!("sha256:{HEX}"));
    }

    #[test]
    fn display_spells_the_digest_and_honours_width_and_precision() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{HEX}"));
        assert_eq!(format!("{d:>73}"), format!("  sha256:{HEX}"));
        assert_eq!(format!("{d:<72}|"), format!("sha256:{HEX} |"));
        assert_eq!(format!("{d:.12}"), "sha256:e3b0c");
    }

    #[test]
    fn parse_round_trips_a_valid_digest() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.hex(), HEX);
    }

    #[test]
    fn parse_rejects_what_could_escape_a_path_or_is_not_sha256() {
        for bad in [
            "",
            "sha256:",
            HEX,
            "sha512:abcd",
            "sha256:../../etc/passwd",
            &format!("sha256:{}", HEX.to_uppercase()),
            &format!("sha256:{HEX}0"),
            &format!("sha256:{}/", &HEX[..63]),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn contains_matches_fragments_with_or_without_prefix() {
        let d = Digest::of(b"");
        assert!(d.contains("98fc1c"));
        assert!(d.contains("sha256:e3b0"));
        assert!(!d.contains("zzz"));
    }
}
