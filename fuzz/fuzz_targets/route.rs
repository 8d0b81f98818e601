//! Request routing: `/v2/<name>/...` with `ns` and a default upstream, and manifest
//! references. Input: `path NUL ns NUL default NUL reference`, each part optional.
#![no_main]

use actors::oci::{is_registry_host, ImageRef, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let path = parts.next().unwrap_or("");
    let ns = parts.next();
    let default_ns = parts.next();
    let reference = parts.next().unwrap_or(path);
    if let Ok((registry, repo)) = ImageRef::route(path, ns, default_ns) {
        assert!(is_registry_host(&registry), "{registry:?}");
        let repo = repo.as_str();
        assert!(!repo.is_empty() && repo.len() <= 255, "{repo:?}");
        assert!(!repo.starts_with('/') && !repo.ends_with('/'), "{repo:?}");
        assert!(repo
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".."));
        assert!(!repo.contains('\\') && !repo.contains('%'), "{repo:?}");
    }
    if let Ok(r) = Reference::parse(reference) {
        let shown = r.to_string();
        assert!(
            !shown.contains('/') && shown != "." && shown != "..",
            "{shown:?}"
        );
        assert_eq!(Reference::parse(&shown).ok(), Some(r));
    }
    let _ = ImageRef::parse(text);
});
