//! The ociregistry cache engine.
pub mod config;
pub mod oci;
pub mod store;
