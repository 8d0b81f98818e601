//! Asking the running server: a command that finds the cache locked by a server that
//! advertises its admin API (`actors::store::CacheLock`) has the server do the work on its own
//! engine, so its cache changes at once and nobody stops it (`kubectl exec ... ociregistry
//! load` beside the only cache of a cluster). The output and exit codes are those of the
//! command run on disk; the admin API's access rules apply (the token comes from the same
//! config file).

use futures_util::StreamExt as _;

use super::summary::{LoadEvent, Summary};
use crate::config::Config;
use actors::preload::Platforms;

/// `load` beside a running server: `POST /cmd/load` at `admin_url` with `images` (one
/// reference each), each image's line given to `report` (with whether it failed) as the
/// server streams it; then the server's summary.
pub fn load(
    config: &Config,
    admin_url: &str,
    images: &[String],
    mut report: impl FnMut(&str, bool),
) -> Result<Summary, String> {
    let mut query = match &config.ops.platforms {
        Platforms::All => "allPlatforms=true".to_string(),
        Platforms::Only(specs) => {
            let names: Vec<String> = specs.iter().map(ToString::to_string).collect();
            format!("platform={}", names.join(","))
        }
    };
    query.push_str(&format!("&jobs={}", config.ops.load_jobs));
    let url = format!("{}/cmd/load?{query}", admin_url.trim_end_matches('/'));
    let body: String = images.iter().map(|i| format!("{i}\n")).collect();
    eprintln!(
        "the cache {} is in use by a running server: loading through it ({admin_url})",
        config.image_path.display()
    );
    let token = config.ops.admin.token.as_ref().map(|t| t.0.clone());
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let client = awc::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .finish();
        let mut request = client.post(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send_body(body)
            .await
            .map_err(|e| format!("cannot reach the running server at {admin_url}: {e}"))?;
        if !response.status().is_success() {
            let text = response.body().await.unwrap_or_default();
            return Err(format!(
                "the running server at {admin_url} refused the load: {} {}",
                response.status(),
                String::from_utf8_lossy(&text).trim()
            ));
        }
        let mut pending = Vec::new();
        while let Some(chunk) = response.next().await {
            let chunk = chunk.map_err(|e| format!("the running server at {admin_url}: {e}"))?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match serde_json::from_slice::<LoadEvent>(&line) {
                    Ok(LoadEvent::Progress { line, failed }) => report(&line, failed),
                    Ok(LoadEvent::Done(summary)) => return Ok(summary),
                    Err(e) => {
                        return Err(format!(
                            "the running server at {admin_url} answered what is not a load \
                             report: {e}"
                        ))
                    }
                }
            }
        }
        Err(format!(
            "the running server at {admin_url} stopped before the load ended; the images it \
             finished are cached"
        ))
    })
}
