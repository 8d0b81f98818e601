//! ociregistry: the edges of the server (command line, configuration, HTTP front end).
pub mod cli;
pub mod commands;
pub mod config;
pub mod hello_world;
pub mod listing;
pub mod logging;
pub mod server;
