//! Digest parsing: whatever is accepted is `sha256:` and 64 lowercase hex digits, safe to use
//! as a file name, and prints back to the input.
#![no_main]

use actors::oci::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(text) {
        assert_eq!(d.to_string(), text);
        assert_eq!(d.hex().len(), 64);
        assert!(d
            .hex()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
    if let Ok(d) = Digest::from_hex(text) {
        assert_eq!(d.hex(), text);
    }
});
