//! What the engine's integration tests share: an engine whose one upstream, `fake.test`, is an
//! in-process fake listening on loopback ([`engine_with`]), and that fake ([`fake::Fake`]).

// Each test file uses a different part of the fake.
#![allow(dead_code)]

pub mod cache;
pub mod fake;

use std::time::Duration;

use actors::config::{EngineConfig, Scheme, UpstreamConfig};
use actors::Engine;

/// The settings of an engine caching under `dir` whose one upstream, `fake.test`, is
/// `endpoint`.
pub fn config(dir: &std::path::Path, endpoint: String) -> EngineConfig {
    let mut cfg = EngineConfig::new(dir.to_path_buf());
    cfg.upstreams.push(UpstreamConfig {
        name: "fake.test".into(),
        scheme: Scheme::Http,
        endpoint: Some(endpoint),
        auth: None,
        tls: Default::default(),
    });
    cfg.pull_timeout = Duration::from_secs(10);
    cfg
}

/// An engine caching under `dir` whose `fake.test` upstream is `endpoint`, with settings
/// adjusted by `tweak`.
pub async fn engine_with(
    dir: &std::path::Path,
    endpoint: String,
    tweak: impl FnOnce(&mut EngineConfig),
) -> Engine {
    let mut cfg = config(dir, endpoint);
    tweak(&mut cfg);
    Engine::start(cfg).await.unwrap()
}
