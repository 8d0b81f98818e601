//! Asking the running server: `load`, `import`, `prune` or `list` finding the cache locked by a server that
//! advertises its admin API (`actors::store::CacheLock`) has the server do the work on its own
//! engine, so its cache changes at once and nobody stops it (`kubectl exec ... ociregistry
//! load` beside the only cache of a cluster). The output and exit codes are those of the
//! command run on disk; the admin API's access rules apply (the token comes from the same
//! config file).

use std::path::Path;

use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use futures_util::StreamExt as _;

use actors::oci::Digest;
use actors::preload::Platforms;
use actors::prune::Doomed;

use super::summary::{LoadEvent, Summary};
use crate::cli::PruneArgs;
use crate::config::Config;
use crate::listing::ManifestRow;

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
    let body: String = images.iter().map(|i| format!("{i}\n")).collect();
    eprintln!(
        "the cache {} is in use by a running server: loading through it ({admin_url})",
        config.image_path.display()
    );
    let token = config.ops.admin.token.as_ref().map(|t| t.0.clone());
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let (client, base) = client(admin_url, std::time::Duration::from_secs(30));
        let url = format!("{base}/cmd/load?{query}");
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

/// How long a running server may take to receive and import an archive.
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// `import` beside a running server: the archive is sent as the body of `POST /cmd/import` at
/// `admin_url` (so the server need not be able to read the file), read a chunk at a time;
/// the server answers its per-image report once the import has ended.
pub fn import(config: &Config, admin_url: &str, archive: &Path) -> Result<Summary, String> {
    use std::io::Read as _;
    let mut file =
        std::fs::File::open(archive).map_err(|e| format!("archive {}: {e}", archive.display()))?;
    eprintln!(
        "the cache {} is in use by a running server: importing through it ({admin_url})",
        config.image_path.display()
    );
    let token = config.ops.admin.token.as_ref().map(|t| t.0.clone());
    let name = archive.display().to_string();
    // The upload is the long part: its bytes and rate on a terminal, as for a local import.
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = super::progress::bytes_bar(size, &format!("sending {name}"));
    let sent = bar.clone();
    let chunks = futures_util::stream::poll_fn(move |_| {
        let mut buf = vec![0u8; 256 * 1024];
        std::task::Poll::Ready(match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                sent.inc(n as u64);
                Some(Ok::<_, std::io::Error>(bytes::Bytes::from(buf)))
            }
            Err(e) => Some(Err(std::io::Error::other(format!("reading {name}: {e}")))),
        })
    });
    let system = actix_web::rt::System::new();
    let answer = system.block_on(async move {
        let (client, base) = client(admin_url, IMPORT_TIMEOUT);
        let mut request = client
            .post(format!("{base}/cmd/import"))
            .insert_header(("Accept", "application/json"))
            .insert_header(("Content-Type", "application/x-tar"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send_stream(chunks).await.map_err(|e| {
            format!("cannot send the archive to the running server at {admin_url}: {e}")
        })?;
        let body = response
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| format!("the running server at {admin_url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the running server at {admin_url} refused the import: {} {}",
                response.status(),
                String::from_utf8_lossy(&body).trim()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            format!("the running server at {admin_url} answered no import report: {e}")
        })
    });
    bar.finish_and_clear();
    answer
}

/// What a running server's prune did (or, dry run, would do).
#[derive(Debug, Default)]
pub struct PruneOutcome {
    pub manifests: Vec<Doomed>,
    /// Blobs removed, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Blobs kept although they were chosen (named again, being downloaded), and why.
    pub kept: Vec<(String, String)>,
}

/// `prune` beside a running server: `DELETE /cmd/prune` at `admin_url` with the selection of
/// the command line (`--pattern`, `--date`, no count limit), answered in JSON.
pub fn prune(config: &Config, admin_url: &str, args: &PruneArgs) -> Result<PruneOutcome, String> {
    let mut query: Vec<(&str, String)> =
        vec![("count", "-1".into()), ("dryRun", args.dry_run.to_string())];
    match &args.pattern {
        Some(p) => query.extend([("type", "pattern".into()), ("expr", p.clone())]),
        None => query.push(("type", "date".into())),
    }
    if let Some(d) = &args.date {
        query.push(("before", d.clone()));
    }
    let url = format!("{}/cmd/prune", admin_url.trim_end_matches('/'));
    eprintln!(
        "the cache {} is in use by a running server: pruning through it ({admin_url})",
        config.image_path.display()
    );
    let report: serde_json::Value = ask_json(
        config,
        awc::http::Method::DELETE,
        &url,
        &query,
        Limits {
            timeout: std::time::Duration::from_secs(600),
            body: 64 << 20,
        },
        "prune",
    )?;
    let bad = |what: &str| format!("the running server at {admin_url}: a report without {what}");
    let mut out = PruneOutcome::default();
    for m in report["manifests"].as_array().into_iter().flatten() {
        out.manifests.push(Doomed {
            digest: m["digest"]
                .as_str()
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| bad("manifest digests"))?,
            url: m["url"].as_str().unwrap_or_default().to_string(),
            is_list: m["type"] == "list",
            reason: m["reason"].as_str().unwrap_or_default().to_string(),
        });
    }
    for b in report["blobs"].as_array().into_iter().flatten() {
        let digest = b["digest"]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| bad("blob digests"))?;
        out.blobs.push((digest, b["size"].as_u64().unwrap_or(0)));
    }
    for k in report["keptBlobs"].as_array().into_iter().flatten() {
        let text = |key: &str| k[key].as_str().unwrap_or_default().to_string();
        out.kept.push((text("digest"), text("reason")));
    }
    Ok(out)
}

/// `list` beside a running server: its manifests as it holds them in memory (pull times
/// included that it has not written to disk yet), from `GET /cmd/manifest/list` at
/// `admin_url`, filtered by `pattern` there as on disk.
pub fn manifests(
    config: &Config,
    admin_url: &str,
    pattern: Option<&str>,
) -> Result<Vec<ManifestRow>, String> {
    let mut query: Vec<(&str, String)> = vec![("count", "-1".into())];
    if let Some(p) = pattern {
        query.push(("pattern", p.to_string()));
    }
    let url = format!("{}/cmd/manifest/list", admin_url.trim_end_matches('/'));
    ask_json(
        config,
        awc::http::Method::GET,
        &url,
        &query,
        Limits {
            timeout: std::time::Duration::from_secs(60),
            body: 256 << 20,
        },
        "list",
    )
}

/// How long a request to the running server may take, and how large its answer may be.
struct Limits {
    timeout: std::time::Duration,
    body: usize,
}

/// One request to the running server's admin API at `url` (its admin token from the config
/// file, when set) whose JSON answer is a `T`; `what` names the operation in errors.
fn ask_json<T: serde::de::DeserializeOwned>(
    config: &Config,
    method: awc::http::Method,
    url: &str,
    query: &[(&str, String)],
    limits: Limits,
    what: &str,
) -> Result<T, String> {
    let token = config.ops.admin.token.as_ref().map(|t| t.0.clone());
    let at = url.split("/cmd/").next().unwrap_or(url);
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let (client, base) = client(at, limits.timeout);
        let path = &url[at.len()..];
        let mut request = client
            .request(method, format!("{base}{path}"))
            .insert_header(("Accept", "application/json"))
            .query(&query)
            .map_err(|e| e.to_string())?;
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach the running server at {at}: {e}"))?;
        let body = response
            .body()
            .limit(limits.body)
            .await
            .map_err(|e| format!("the running server at {at}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the running server at {at} refused the {what}: {} {}",
                response.status(),
                String::from_utf8_lossy(&body).trim()
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("the running server at {at} answered no {what} report: {e}"))
    })
}

/// The HTTP client for the running server's admin API at `admin_url`, and the base its request
/// URLs start with. `unix:PATH` (a server that serves HTTPS) is its admin socket in the cache
/// directory: every connection goes to the socket, and the URL's host is only a name.
fn client(admin_url: &str, timeout: std::time::Duration) -> (awc::Client, String) {
    let builder = awc::Client::builder().timeout(timeout);
    let Some(path) = admin_url.strip_prefix("unix:") else {
        return (
            builder.finish(),
            admin_url.trim_end_matches('/').to_string(),
        );
    };
    let path = std::path::PathBuf::from(path);
    let socket = actix_service::fn_service(move |req: ConnectInfo<awc::http::Uri>| {
        let path = path.clone();
        async move {
            let stream = actix_web::rt::net::UnixStream::connect(&path)
                .await
                .map_err(ConnectError::Io)?;
            Ok::<_, ConnectError>(Connection::new(req.request().clone(), stream))
        }
    });
    let connector = awc::Connector::new().connector(socket);
    (
        builder.connector(connector).finish(),
        "http://localhost".into(),
    )
}
