//! The ociregistry cache engine: the actors that own the cache's state, and the store,
//! upstream client and OCI vocabulary they drive.
//!
//! # Layout
//! - [`engine`]: the façade the HTTP edge holds; starts the actors, asks them questions.
//! - [`manifest_index`] (actor): tag -> digest -> manifest, created/pulled times.
//! - [`blob_table`] (actor): digest -> present | being fetched; reference counts.
//! - [`puller_pool`] (actor): upstream clients, single-flight manifest fetches, blob downloads.
//! - [`pruner`] (actor): prunes the running cache on a schedule or when asked.
//! - [`prune`]: what a prune removes (selection, list expansion, blob reference counts).
//! - [`preload`]: completing an image in the cache (manifests for chosen platforms, blobs).
//! - [`bundle`]: images as OCI image layout tar archives (export, import).
//! - [`store`]: the on-disk cache, compatible with the Go server's layout.
//! - [`upstream`]: the registry client (auth, TLS, timeouts).
//! - [`oci`]: digests, names, references, media types, manifests.
//! - [`metrics`]: the process's Prometheus metrics.
//! - [`config`], [`error`]: what the engine is started with, and how it fails.
//! - [`allowlist`]: which upstreams clients may make us contact.
pub mod allowlist;
pub mod blob;
pub mod blob_table;
pub mod breaker;
pub mod bundle;
pub mod config;
pub mod engine;
pub mod error;
pub mod manifest_index;
pub mod metrics;
pub mod oci;
pub mod preload;
pub mod proxy;
pub mod prune;
pub mod pruner;
pub mod puller_pool;
pub mod store;
pub mod upstream;

pub use engine::Engine;
pub use error::EngineError;
