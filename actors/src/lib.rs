//! The ociregistry cache engine: the actors that own the cache's state, and the store,
//! upstream client and OCI vocabulary they drive.
//!
//! # Layout
//!
//! Each floor imports only the floors below it; read from the top.
//! - [`engine`]: the façade the HTTP edge holds; starts the actors, asks them questions, hands
//!   out blob readers.
//! - The actors, one per file: [`manifest_index`] (tag -> digest -> manifest, created/pulled
//!   times; and the snapshot it publishes, which handlers read without a message), [`blob_table`] (digest -> present | being fetched | being removed; reference
//!   counts), [`puller_pool`] (upstream clients, single-flight manifest fetches, the downloads
//!   the table starts, the breakers), [`pruner`] (prunes on a schedule or when asked).
//! - [`fleet`]: one replica among several on a shared store: the sync with the others, and the
//!   lease under which one of them prunes.
//! - [`proxy`]: the blob proxy, "fetched once, streamed to every waiter", in two files:
//!   [`proxy::download`] and [`proxy::reader`].
//! - [`preload`] and [`bundle`]: completing images in the cache; OCI image layout archives.
//! - [`store`] and [`upstream`], side by side, neither importing the other: the `Store` trait
//!   with the filesystem store, and the registry client (auth, TLS, timeouts).
//! - Vocabulary at the bottom: [`blob`] (what the blob actors and the proxy share), [`breaker`]
//!   (when an upstream is not asked), [`prune`] (what a prune removes, pure), [`oci`] (digests,
//!   names, references, media types, manifests), [`duration`] (the one duration syntax),
//!   [`allowlist`], [`config`], [`error`], [`metrics`].

pub mod allowlist;
pub mod blob;
pub mod blob_table;
pub mod breaker;
pub mod bundle;
pub mod config;
pub mod duration;
pub mod engine;
pub mod error;
pub mod fleet;
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
