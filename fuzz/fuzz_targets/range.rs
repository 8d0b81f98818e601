//! The Range header parser: the first eight bytes are the blob size, the rest the header.
//! A partial range is never empty and never reaches past the blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ociregistry::server::{parse_range, RangeRequest};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().unwrap_or([0; 8]));
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let RangeRequest::Partial(r) = parse_range(Some(header), size) {
        assert!(
            r.start < r.end && r.end <= size,
            "{header:?} of {size}: {r:?}"
        );
    }
});
