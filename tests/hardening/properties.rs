//! Property tests on the stable toolchain for the parsers that take input from the network or
//! the disk: request routing and references, digests, the Range header, and the Go-compatible
//! ManifestHolder reader. Each gets 100,000 inputs from a seeded generator that mixes
//! grammar fragments, random bytes and mutations of valid inputs; none may panic, and what
//! is accepted must be safe. The same properties are the cargo-fuzz targets in `fuzz/`.
//! Set `HARDENING_SEED` to repeat a run.

#[path = "../support/mod.rs"]
mod support;

use actors::oci::{is_registry_host, Digest, ImageRef, Reference};
use actors::store::ManifestHolder;
use base64::Engine as _;
use ociregistry::server::{parse_range, RangeRequest};
use support::{sha256_hex, Rng};

const ITERATIONS: usize = 100_000;

const FRAGMENTS: &[&str] = &[
    "/",
    ".",
    "..",
    "%2e",
    "%2E%2E",
    "%2f",
    "%00",
    ":",
    "@",
    "sha256:",
    "sha512:",
    "md5:",
    "a",
    "z",
    "A",
    "0",
    "9",
    "f",
    "-",
    "_",
    "__",
    "___",
    "upstream.test",
    "docker.io",
    "index.docker.io",
    "localhost",
    "127.0.0.1:5000",
    ":99999",
    "library",
    "\0",
    "\\",
    " ",
    "\t",
    "é",
    "\u{202e}",
    "bytes=",
    ",",
    "--",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "latest",
    "v1.2.3",
    "?",
    "#",
    "*",
];

/// A string of fragments, random characters and hex runs.
fn fuzz_text(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.range(0, 12) {
        match rng.below(10) {
            0..=5 => s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len() as u64) as usize]),
            6 => {
                let n = *rng.pick(&[1usize, 32, 63, 64, 65, 128]);
                for _ in 0..n {
                    s.push(*rng.pick(&['0', '7', 'a', 'f', 'F', 'g']));
                }
            }
            7 => s.push(char::from_u32(rng.below(0x800) as u32).unwrap_or('?')),
            8 => s.push_str(&"a".repeat(rng.range(1, 300) as usize)),
            _ => s.push(char::from(rng.range(0x20, 0x7f) as u8)),
        }
    }
    s
}

#[test]
fn routing_and_references_never_panic_and_accept_only_safe_names() {
    let mut rng = Rng::from_env("HARDENING_SEED");
    let mut accepted = 0;
    for _ in 0..ITERATIONS {
        let path = if rng.chance(30) {
            // Mostly valid names with an odd tail, so acceptance is exercised too.
            let host = *rng.pick(&["upstream.test", "docker.io", "localhost:5000", "a"]);
            let repo = *rng.pick(&["library/nginx", "e2e/x", "a-b/c_d", "x"]);
            let tail = if rng.chance(50) {
                fuzz_text(&mut rng)
            } else {
                String::new()
            };
            format!("{host}/{repo}{tail}")
        } else {
            fuzz_text(&mut rng)
        };
        let ns = rng.chance(40).then(|| fuzz_text(&mut rng));
        let default_ns = rng.chance(30).then(|| fuzz_text(&mut rng));
        if let Ok((registry, repo)) = ImageRef::route(&path, ns.as_deref(), default_ns.as_deref()) {
            accepted += 1;
            assert!(is_registry_host(&registry), "{path:?} -> {registry:?}");
            let repo = repo.as_str();
            assert!(
                !repo.is_empty() && repo.len() <= 255,
                "{path:?} -> {repo:?}"
            );
            assert!(
                repo.split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
                "{path:?} -> {repo:?}"
            );
            assert!(
                !repo.contains('\\') && !repo.contains('%') && !repo.contains('\0'),
                "{path:?} -> {repo:?}"
            );
        }
        let reference = fuzz_text(&mut rng);
        if let Ok(r) = Reference::parse(&reference) {
            let shown = r.to_string();
            assert!(
                !shown.contains('/') && shown != "." && shown != "..",
                "{reference:?}"
            );
            assert_eq!(Reference::parse(&shown).ok(), Some(r));
        }
        let _ = ImageRef::parse(&path);
    }
    assert!(
        accepted > 100,
        "the generator hardly reaches valid names ({accepted})"
    );
}

#[test]
fn digests_never_panic_and_accept_only_sha256_lowercase_hex() {
    let mut rng = Rng::from_env("HARDENING_SEED");
    let valid = format!("sha256:{}", sha256_hex(b"x"));
    let mut accepted = 0;
    for _ in 0..ITERATIONS {
        let text = if rng.chance(30) {
            mutate(valid.as_bytes(), &mut rng)
        } else {
            fuzz_text(&mut rng)
        };
        if let Ok(d) = Digest::parse(&text) {
            accepted += 1;
            assert_eq!(d.to_string(), text);
            assert_eq!(d.hex().len(), 64);
            assert!(d
                .hex()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        let hex = text.strip_prefix("sha256:").unwrap_or(&text);
        if let Ok(d) = Digest::from_hex(hex) {
            assert_eq!(d.hex(), hex);
        }
    }
    assert!(accepted > 0, "no mutation stayed a valid digest");
}

#[test]
fn ranges_never_panic_and_stay_inside_the_blob() {
    let mut rng = Rng::from_env("HARDENING_SEED");
    let mut partial = 0;
    for _ in 0..ITERATIONS {
        let size = match rng.below(4) {
            0 => 0,
            1 => rng.below(10),
            2 => rng.below(1 << 40),
            _ => u64::MAX - rng.below(3),
        };
        let header = match rng.below(3) {
            0 => format!(
                "bytes={}-{}",
                number(&mut rng, size),
                number(&mut rng, size)
            ),
            1 => format!("bytes={}", fuzz_text(&mut rng)),
            _ => fuzz_text(&mut rng),
        };
        if let RangeRequest::Partial(r) = parse_range(Some(&header), size) {
            partial += 1;
            assert!(
                r.start < r.end && r.end <= size,
                "{header:?} of {size}: {r:?}"
            );
        }
    }
    assert!(
        partial > 1000,
        "the generator hardly reaches valid ranges ({partial})"
    );
}

/// A number near the interesting edges of `size`, or empty, or not a number.
fn number(rng: &mut Rng, size: u64) -> String {
    match rng.below(6) {
        0 => String::new(),
        1 => size.saturating_sub(rng.below(3)).to_string(),
        2 => size.saturating_add(rng.below(3)).to_string(),
        3 => rng.below(size.max(1)).to_string(),
        4 => format!("{}0", u64::MAX),
        _ => fuzz_text(rng),
    }
}

#[test]
fn manifest_holders_are_refused_or_read_and_round_trip() {
    let mut rng = Rng::from_env("HARDENING_SEED");
    let mut read = 0;
    for _ in 0..ITERATIONS {
        let doc = if rng.chance(50) {
            mutate(&holder_json(&mut rng), &mut rng).into_bytes()
        } else {
            holder_json(&mut rng)
        };
        if let Ok(h) = serde_json::from_slice::<ManifestHolder>(&doc) {
            read += 1;
            let written = serde_json::to_vec(&h).expect("a holder that was read can be written");
            let again: ManifestHolder = serde_json::from_slice(&written).unwrap_or_else(|e| {
                panic!(
                    "a written holder cannot be read back ({e}):\n{}\nfrom\n{}",
                    String::from_utf8_lossy(&written),
                    String::from_utf8_lossy(&doc)
                )
            });
            assert_eq!(again.kind(), h.kind());
            assert_eq!(again.digest(), h.digest());
            assert_eq!(again.image_url(), h.image_url());
            assert_eq!(again.bytes(), h.bytes());
            assert_eq!(again.manifest(), h.manifest());
            assert_eq!(again.created(), h.created());
            assert_eq!(again.pulled(), h.pulled());
            // Tags: see `an_empty_tag_list_survives_a_write_and_read` below.
        }
    }
    assert!(
        read > 300,
        "the generator hardly reaches valid holders ({read})"
    );
}

/// A holder whose tag list is empty (its tag moved to another manifest) is written without
/// a `tags` field, and reading it back takes the tag from `imageUrl` again: the moved tag
/// returns to the old manifest.
#[test]
fn an_empty_tag_list_survives_a_write_and_read() {
    let bytes = br#"{"schemaVersion":2,"config":{"digest":"sha256:00","size":1},"layers":[]}"#;
    let doc = format!(
        r#"{{"type":3,"digest":"{}","imageUrl":"upstream.test/a:latest","bytes":"{}","tags":[""]}}"#,
        sha256_hex(bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    let h: ManifestHolder = serde_json::from_str(&doc).expect("holder");
    assert!(h.tags().is_empty());
    let again: ManifestHolder =
        serde_json::from_slice(&serde_json::to_vec(&h).unwrap()).expect("holder");
    assert_eq!(again.tags(), h.tags(), "the tag came back from imageUrl");
}

/// A ManifestHolder document with every field present, absent, or odd.
fn holder_json(rng: &mut Rng) -> Vec<u8> {
    let manifest = *rng.pick(&[
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        r#"{"schemaVersion":2,"config":{"digest":"sha256:00","size":1},"layers":[]}"#,
        "not json",
        "",
        "{}",
    ]);
    let mut fields = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD.encode(manifest);
    let digest = sha256_hex(manifest.as_bytes());
    let pick = |rng: &mut Rng, options: &[String]| {
        options[rng.below(options.len() as u64) as usize].clone()
    };
    if rng.chance(90) {
        let t = pick(
            rng,
            &["0", "1", "2", "3", "4", "-1", "256", "\"2\"", "null", "1.5"].map(String::from),
        );
        fields.push(format!("\"type\":{t}"));
    }
    if rng.chance(90) {
        let d = pick(
            rng,
            &[
                format!("\"{digest}\""),
                format!("\"sha256:{digest}\""),
                format!("\"{}\"", digest.to_uppercase()),
                "\"../../etc/passwd\"".into(),
                "\"\"".into(),
                "7".into(),
            ],
        );
        fields.push(format!("\"digest\":{d}"));
    }
    if rng.chance(90) {
        let u = format!("{:?}", fuzz_text(rng));
        fields.push(format!("\"imageUrl\":{u}"));
    }
    if rng.chance(90) {
        let b = pick(
            rng,
            &[
                format!("\"{b64}\""),
                format!("\"{}\"", b64.trim_end_matches('=')),
                "\"!!!\"".into(),
                "null".into(),
                "[1,2]".into(),
            ],
        );
        fields.push(format!("\"bytes\":{b}"));
    }
    for key in ["created", "pulled"] {
        if rng.chance(70) {
            let t = pick(
                rng,
                &[
                    "\"2025-04-01T22:07:01\"",
                    "\"2025-04-01T22:07:01.123456789+02:00\"",
                    "\"2025-13-45T99:99:99\"",
                    "\"9999-12-31T23:59:59\"",
                    "\"0000-01-01T00:00:00\"",
                    "\"\"",
                    "\"2025\"",
                    "12",
                ]
                .map(String::from),
            );
            fields.push(format!("\"{key}\":{t}"));
        }
    }
    if rng.chance(50) {
        let tags: Vec<String> = (0..rng.below(4))
            .map(|_| format!("{:?}", fuzz_text(rng)))
            .collect();
        fields.push(format!("\"tags\":[{}]", tags.join(",")));
    }
    for key in [
        "v1.oci.index",
        "v1.oci.manifest",
        "v2.docker.manifestList",
        "v2.docker.manifest",
    ] {
        if rng.chance(20) {
            fields.push(format!("\"{key}\":{manifest:?}"));
        }
    }
    if rng.chance(10) {
        fields.push("\"unknown\":{\"nested\":[1,2,3]}".into());
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// `input` with a few bytes flipped, inserted or removed, as (lossy) text.
fn mutate(input: &[u8], rng: &mut Rng) -> String {
    let mut bytes = input.to_vec();
    for _ in 0..rng.range(1, 4) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.below(bytes.len() as u64) as usize;
        match rng.below(3) {
            0 => bytes[i] ^= 1 << rng.below(7),
            1 => bytes.insert(i, *rng.pick(b":/.%0aF\"{}[]\\")),
            _ => {
                bytes.remove(i);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
