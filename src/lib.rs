//! ociregistry: the edges of the server (command line, configuration, HTTP front end).
pub mod cli;
pub mod config;
pub mod server;
