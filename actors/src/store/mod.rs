//! The on-disk cache.
