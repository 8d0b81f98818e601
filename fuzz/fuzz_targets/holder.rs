//! The Go-compatible ManifestHolder reader: any input is refused or read, and a holder read
//! is written back and read again with the same content. (Tags are not compared: an empty
//! tag list is not persisted yet, see `tests/hardening/properties.rs`.)
#![no_main]

use actors::store::ManifestHolder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = serde_json::from_slice::<ManifestHolder>(data) {
        let written = serde_json::to_vec(&h).expect("a holder that was read can be written");
        let again: ManifestHolder =
            serde_json::from_slice(&written).expect("a written holder can be read");
        assert_eq!(again.kind(), h.kind());
        assert_eq!(again.digest(), h.digest());
        assert_eq!(again.image_url(), h.image_url());
        assert_eq!(again.bytes(), h.bytes());
        assert_eq!(again.manifest(), h.manifest());
        assert_eq!(again.created(), h.created());
        assert_eq!(again.pulled(), h.pulled());
    }
});
