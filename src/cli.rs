//! Command line.
//!
//! The shape follows the Go server this project matches: global options that apply to every
//! subcommand, then a subcommand (`serve`, `version`).
//!
//! Every setting that can also come from the config file is an `Option` here: `None` means
//! "not given on the command line", so the value from the config file (or the built-in
//! default) is used. A value that is given always wins over the config file. Merging happens in
//! [`crate::config::load`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ociregistry: a pull-only, pull-through, caching OCI Distribution server.
///
/// Clients (containerd, podman, docker) pull images through it; it fetches anything it has not
/// cached yet from the upstream registry and keeps a copy on disk, so later pulls keep working
/// when the upstream is slow or unreachable.
///
/// Settings come from built-in defaults, then the config file (--config-file), then the command
/// line: a command line option always overrides the config file.
#[derive(Debug, Clone, Parser)]
#[command(name = "ociregistry", version, arg_required_else_help = true)]
pub struct Cli {
    /// Minimum severity of log messages; raise it to `info` or `debug` to see each pull and
    /// cache hit while troubleshooting. Names are taken in any case (`INFO`). [default: error]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        ignore_case = true,
        value_name = "LEVEL"
    )]
    pub log_level: Option<LogLevel>,

    /// YAML file to read settings from: upstream registries and every option listed here.
    /// Options given on the command line override the file. [default: none]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    pub config_file: Option<PathBuf>,

    /// Directory holding the image cache (blobs and manifests); created if missing. Put it on
    /// storage that survives restarts so cached images remain available offline.
    /// [default: /var/lib/ociregistry]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    pub image_path: Option<PathBuf>,

    /// Write log messages to this file instead of standard error, e.g. when running without a
    /// service manager that captures stderr. [default: standard error]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    pub log_file: Option<PathBuf>,

    /// How each log line is written: `text` for people, `json` (one object a line: time,
    /// level, target, message) for log pipelines. [default: text]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        value_name = "FORMAT"
    )]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Pull a list of images (or the images of Kubernetes manifests) into the cache and exit:
    /// fill a cache while connected, then move it (or the machine) into an air gap. With
    /// --archive, load an archive written by `export` instead. Beside a server running on the
    /// same cache, the server is asked to load them (and serves them at once).
    Load(LoadArgs),
    /// Write images (fetched first when not cached yet) to an OCI image layout tar archive, to
    /// carry them into an air gap: `import` (or `load --archive`) loads it there. Beside a
    /// server running on the same cache, the server fetches what is missing.
    Export(ExportArgs),
    /// Load an OCI image layout tar archive (written by `export`, or by `skopeo copy ...
    /// oci-archive:F:REF`) into the cache, verifying every digest. Beside a server running on the
    /// same cache, the archive is sent to the server, which imports it and serves it at once.
    Import(ImportArgs),
    /// List the manifests in the cache: as they are on disk, or as the server running on the
    /// same cache holds them.
    List(ListArgs),
    /// Remove manifests, the blobs only they use and the blobs no manifest names, from the
    /// cache on disk; beside a server running on the same cache, the server is asked to prune.
    Prune(PruneArgs),
    /// Print the version and exit.
    Version,
    /// Print a shell completion script: `source <(ociregistry completions bash)`, or save it
    /// where the shell looks (e.g. `/usr/share/bash-completion/completions/ociregistry`,
    /// `~/.config/fish/completions/ociregistry.fish`, a `_ociregistry` file on zsh's `fpath`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff: `ociregistry man | man -l -`, or save it as
    /// `ociregistry.1`. With a subcommand, that subcommand's page (`ociregistry-serve.1`).
    Man {
        /// The subcommand whose page to print, e.g. `serve`.
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Option<String>,
    },
}

/// `--NAME` alone is `true`; `--NAME=true` and `--NAME=false` set it either way, so that the
/// command line can override the config file in both directions. Used from the derive as
/// `#[arg(long, bool_flag())]` on an `Option<bool>` field.
trait BoolFlag {
    fn bool_flag(self) -> Self;
}

impl BoolFlag for clap::Arg {
    fn bool_flag(self) -> Self {
        self.value_name("BOOL")
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
    }
}

/// Options of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TCP port to listen on for pull requests; change it when 8080 is already taken.
    /// [default: 8080]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Address to listen on; use 127.0.0.1 to accept pulls from this machine only.
    /// [default: 0.0.0.0]
    #[arg(long, value_name = "ADDRESS")]
    pub host: Option<String>,

    /// How long one pull of a manifest from an upstream registry may take, in milliseconds,
    /// before the client gets an error; raise it on slow or high-latency links.
    /// [default: 60000]
    #[arg(
        long,
        value_name = "MILLISECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub pull_timeout: Option<u64>,

    /// Most client connections held open at once; more wait in the kernel's accept queue
    /// until one closes. Lowered, with a warning, to what the open-file limit allows (two
    /// descriptors a connection). [default: 10000]
    #[arg(long, value_name = "COUNT")]
    pub max_connections: Option<u64>,

    /// The largest blob the server downloads, as `maxCacheSize` writes sizes (`64GiB`,
    /// `500MB`): a larger `Content-Length` is refused before a byte is written, and a body that
    /// runs past it is cut, so no upstream can fill the disk through one request.
    /// [default: 64GiB]
    #[arg(long, value_name = "SIZE")]
    pub max_blob_size: Option<String>,

    /// Free space the cache's filesystem keeps: a size (`10GiB`, `0` for none) or a whole
    /// percentage of the filesystem (`5%`). Below it new downloads are refused (507) and
    /// running ones stop; everything cached is still served. [default: 5%]
    #[arg(long, value_name = "SIZE|PERCENT")]
    pub min_free_space: Option<String>,

    /// Never contact an upstream registry: serve only what is already cached and answer
    /// "not found" for everything else. For disconnected (air-gapped) sites.
    /// `--air-gapped=false` overrides `airGapped: true` in the config file. [default: false]
    #[arg(long, bool_flag())]
    pub air_gapped: Option<bool>,

    /// Always fetch `:latest` tags from the upstream instead of the cache, so clients see the
    /// newest image (useful in development where `latest` changes often).
    /// `--always-pull-latest=false` overrides the config file. [default: false]
    #[arg(long, bool_flag())]
    pub always_pull_latest: Option<bool>,

    /// Upstream registry (host or host:port, e.g. `docker.io`) to use for requests that name
    /// none, i.e. no `?ns=` parameter and no registry in the repository path. [default: none]
    #[arg(long, value_name = "HOST")]
    pub default_ns: Option<String>,

    /// Before serving, pull every image listed in this file (one reference per line, `#`
    /// comments) into the cache, as `load --image-file` does, so the first pulls are already
    /// local. [default: none]
    #[arg(long, value_name = "PATH")]
    pub preload_images: Option<PathBuf>,

    /// Also listen on this port for `/health` (liveness) and `/health/ready` (readiness:
    /// 503 until the cache index is loaded and any preload is done), for Kubernetes probes
    /// that should not share the pull port. [default: none]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub health: Option<u16>,

    /// Try the server without any network: serve only the embedded image
    /// docker.io/library/hello-world:latest (linux/amd64 and linux/arm64) from a temporary
    /// cache, air-gapped. `--image-path` is not used. [default: false]
    #[arg(long, bool_flag())]
    pub hello_world: Option<bool>,

    /// How the other replicas of a shared bucket (`storage.s3`) reach this one, e.g.
    /// `http://10.0.0.5:8080`: named in the leases it holds, so that they can stream its
    /// downloads (with `fleetSecret`). Overrides `advertise` in the config file; in Kubernetes
    /// set it from the pod's IP. [default: none]
    #[arg(long, value_name = "URL", env = "OCIREGISTRY_ADVERTISE")]
    pub advertise: Option<String>,

    #[command(flatten)]
    pub platforms: PlatformArgs,
}

/// Which platforms of a multi-platform image to pull (`load`, `serve --preload-images`).
#[derive(Debug, Clone, Default, Args)]
pub struct PlatformArgs {
    /// Operating system of the image manifests to pull from a multi-platform image, when the
    /// cache serves machines other than this one. [default: this host's, e.g. linux]
    #[arg(long, value_name = "OS", help_heading = "Platform selection")]
    pub os: Option<String>,

    /// Architecture (OCI names: amd64, arm64, ...) of the image manifests to pull.
    /// [default: this host's]
    #[arg(long, value_name = "ARCH", help_heading = "Platform selection")]
    pub arch: Option<String>,

    /// Several platforms at once, comma-separated `os/arch[/variant]`, e.g.
    /// `linux/amd64,linux/arm64/v8`, for a cache that serves a mixed cluster. Replaces --os
    /// and --arch.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with_all = ["os", "arch"],
        help_heading = "Platform selection"
    )]
    pub platform: Vec<String>,

    /// Pull every platform a multi-platform image offers.
    #[arg(
        long,
        conflicts_with_all = ["os", "arch", "platform"],
        help_heading = "Platform selection"
    )]
    pub all_platforms: bool,
}

/// Options of `load`.
#[derive(Debug, Clone, Default, Args)]
pub struct LoadArgs {
    /// File listing the images to load: one reference per line (`registry/repo:tag` or
    /// `registry/repo@sha256:...`); blank lines and `#` comments are ignored.
    /// [default: imageFile from the config file]
    #[arg(long, value_name = "PATH")]
    pub image_file: Option<PathBuf>,

    /// Load every image named by the workloads of rendered Kubernetes manifests instead of a
    /// list: a YAML file (several documents allowed), a directory (its `*.yaml` and `*.yml`
    /// files, recursively) or `-` for standard input, e.g. `helm template ... | ociregistry
    /// load --from-manifests -`. Containers, init and ephemeral containers of Pods,
    /// Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs are read.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["image_file", "archive"])]
    pub from_manifests: Option<PathBuf>,

    /// Load the images of an OCI image layout tar archive (as `import` does) instead of
    /// pulling a list: nothing is fetched, every digest is verified, and the archive's content
    /// is taken as it is (platform options do not apply).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["image_file", "jobs"])]
    pub archive: Option<PathBuf>,

    /// How many images to load at the same time; lower it for a slow or rate-limited
    /// upstream. [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// How long one pull of a manifest from an upstream registry may take, in milliseconds,
    /// as for `serve`. [default: pullTimeout from the config file, else 60000]
    #[arg(
        long,
        value_name = "MILLISECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub pull_timeout: Option<u64>,

    #[command(flatten)]
    pub platforms: PlatformArgs,
}

/// Options of `export`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExportArgs {
    /// File listing the images to export, in the format of `load --image-file`.
    /// [default: imageFile from the config file]
    #[arg(long, value_name = "PATH")]
    pub image_file: Option<PathBuf>,

    /// Export the images named by the workloads of rendered Kubernetes manifests instead of a
    /// list (a file, a directory or `-`, as for `load --from-manifests`).
    #[arg(long, value_name = "PATH", conflicts_with = "image_file")]
    pub from_manifests: Option<PathBuf>,

    /// The archive to write (an OCI image layout in a tar file); replaced only once complete.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: PathBuf,

    /// How many images to fetch at the same time. [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    #[command(flatten)]
    pub platforms: PlatformArgs,
}

/// Options of `import`.
#[derive(Debug, Clone, Default, Args)]
pub struct ImportArgs {
    /// The OCI image layout tar archive to load. Each image of its `index.json` must carry
    /// its full reference (`registry/repository:tag`) in `org.opencontainers.image.ref.name`.
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
}

/// Options of `list`.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Print a first line naming the columns (URL TYPE CREATED PULLED).
    /// [default: listConfig.header from the config file, else off]
    #[arg(long)]
    pub header: bool,

    /// Only manifests whose URL matches one of these comma-separated regular expressions,
    /// e.g. `docker.io,calico`; use it to find what a prune pattern would select.
    /// [default: listConfig.expr from the config file, else every manifest]
    #[arg(long, value_name = "REGEXES")]
    pub pattern: Option<String>,

    /// Output format: columns for reading, json for scripts.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// How `list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ListFormat {
    /// Whitespace-separated columns.
    #[default]
    Text,
    /// One JSON array of objects.
    Json,
}

/// Options of `prune`.
#[derive(Debug, Clone, Default, Args)]
pub struct PruneArgs {
    /// Remove manifests whose URL matches one of these comma-separated regular expressions,
    /// e.g. `kubernetesui/dashboard:v2.7.0` or `curl,cilium`. A matching manifest list takes
    /// its cached image manifests with it.
    #[arg(long, value_name = "REGEXES", required_unless_present = "date")]
    pub pattern: Option<String>,

    /// Remove manifests first cached before this local time, `YYYY-MM-DDTHH:MM:SS` (see the
    /// CREATED column of `list`). With --pattern, both must match.
    #[arg(long, value_name = "DATETIME")]
    pub date: Option<String>,

    /// Only print what would be removed; change nothing. Use it to develop the expression.
    #[arg(long)]
    pub dry_run: bool,
}

/// Minimum severity of log messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, ValueEnum)]
pub enum LogLevel {
    /// Only errors.
    #[default]
    Error,
    /// Errors and warnings.
    Warn,
    /// Also each pull and cache hit.
    Info,
    /// Also request details.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The names accepted on the command line and in the config file.
    pub const NAMES: &'static [&'static str] = &["error", "warn", "info", "debug", "trace"];

    /// Parses a level name as written in the config file (`error`, `WARN`, ...), in any case
    /// as the Go server does.
    pub fn from_name(name: &str) -> Option<LogLevel> {
        <LogLevel as ValueEnum>::from_str(name, true).ok()
    }

    /// The level name (`error`, `warn`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The matching filter for the `log` crate.
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, for people.
    #[default]
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

impl LogFormat {
    /// The names accepted on the command line and in the config file.
    pub const NAMES: &'static [&'static str] = &["text", "json"];

    pub fn from_name(name: &str) -> Option<LogFormat> {
        <LogFormat as ValueEnum>::from_str(name, false).ok()
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Cli {
    /// The `serve` options, if the subcommand is `serve`.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Command::Serve(args) => Some(args),
            _ => None,
        }
    }
}

/// The prefix of the environment variable of every option: `--pull-timeout` is also read
/// from `OCIREGISTRY_PULL_TIMEOUT`.
pub const ENV_PREFIX: &str = "OCIREGISTRY_";

/// The environment variable naming option `--long`.
pub fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// The command line definition with every option also read from its environment variable
/// (containers are configured that way). An option given on the command line wins over its
/// variable, and either wins over the config file, because both fill the same `Option` that
/// [`crate::config`] lays over the file.
pub fn command() -> clap::Command {
    fn with_env(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|arg| match arg.get_long().map(str::to_string) {
            Some(long) if long != "help" && long != "version" => arg.env(env_name(&long)),
            _ => arg,
        })
        .mut_subcommands(with_env)
    }
    with_env(<Cli as clap::CommandFactory>::command())
}

/// Parses the process's command line and environment; prints help or the error and exits
/// when they ask for it or make no sense.
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = command().try_get_matches_from(&args).unwrap_or_else(|e| {
        // clap names the option; say when its value came from the environment instead.
        if let Some(var) = variable_behind(&e, &args) {
            eprintln!("ociregistry: the value comes from the environment variable {var}");
        }
        e.exit()
    });
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The variable that gave the bad value of `error`, when the option is not on the command line
/// but its variable is set.
fn variable_behind(error: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '[', '=']).next()?;
    let flag = format!("--{long}");
    let on_command_line = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    let var = env_name(long);
    (!on_command_line && std::env::var_os(&var).is_some()).then_some(var)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_option_is_also_read_from_its_environment_variable() {
        fn check(cmd: &clap::Command, path: &str, seen: &mut usize) {
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else {
                    continue;
                };
                if long == "help" || long == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert_eq!(env, Some(env_name(long)), "{path} --{long}");
                *seen += 1;
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), seen);
            }
        }
        let mut cmd = command();
        cmd.build();
        let mut seen = 0;
        check(&cmd, "ociregistry", &mut seen);
        assert!(seen > 30, "only {seen} options");
        assert_eq!(env_name("pull-timeout"), "OCIREGISTRY_PULL_TIMEOUT");
        command().debug_assert();
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ociregistry").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        Cli::try_parse_from(std::iter::once("ociregistry").chain(args.iter().copied()))
            .expect_err("parse should fail")
    }

    fn render_help(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        cmd.build();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).expect("subcommand");
        }
        sub.render_long_help().to_string()
    }

    #[test]
    fn command_definition_passes_clap_debug_assert() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_renders_and_mentions_every_option_with_its_default() {
        let top = render_help(&[]);
        for needle in [
            "--log-level",
            "--config-file",
            "--image-path",
            "--log-file",
            "serve",
            "version",
            "[default: error]",
            "[default: /var/lib/ociregistry]",
        ] {
            assert!(
                top.contains(needle),
                "top-level help lacks {needle:?}:\n{top}"
            );
        }
        let serve = render_help(&["serve"]);
        for needle in [
            "--port",
            "--host",
            "--pull-timeout",
            "--air-gapped",
            "--always-pull-latest",
            "--default-ns",
            "[default: 8080]",
            "[default: 0.0.0.0]",
            "[default: 60000]",
            // global options are listed under the subcommand too
            "--config-file",
        ] {
            assert!(
                serve.contains(needle),
                "serve help lacks {needle:?}:\n{serve}"
            );
        }
    }

    #[test]
    fn absent_options_are_none_so_the_config_file_applies() {
        let cli = parse(&["serve"]);
        assert_eq!(cli.log_level, None);
        assert_eq!(cli.config_file, None);
        assert_eq!(cli.image_path, None);
        assert_eq!(cli.log_file, None);
        let serve = cli.serve_args().expect("serve");
        assert_eq!(serve.port, None);
        assert_eq!(serve.host, None);
        assert_eq!(serve.pull_timeout, None);
        assert_eq!(serve.air_gapped, None);
        assert_eq!(serve.always_pull_latest, None);
        assert_eq!(serve.default_ns, None);
    }

    #[test]
    fn global_options_work_before_and_after_the_subcommand() {
        let before = parse(&[
            "--log-level",
            "debug",
            "--image-path",
            "/tmp/img",
            "--config-file",
            "/etc/o.yaml",
            "--log-file",
            "/tmp/log",
            "serve",
        ]);
        assert_eq!(before.log_level, Some(LogLevel::Debug));
        assert_eq!(before.image_path, Some(PathBuf::from("/tmp/img")));
        assert_eq!(before.config_file, Some(PathBuf::from("/etc/o.yaml")));
        assert_eq!(before.log_file, Some(PathBuf::from("/tmp/log")));

        let after = parse(&["serve", "--log-level", "info", "--image-path", "/x"]);
        assert_eq!(after.log_level, Some(LogLevel::Info));
        assert_eq!(after.image_path, Some(PathBuf::from("/x")));
    }

    #[test]
    fn serve_options_parse() {
        let cli = parse(&[
            "serve",
            "--port",
            "5000",
            "--host",
            "127.0.0.1",
            "--pull-timeout",
            "1500",
            "--air-gapped",
            "--always-pull-latest",
            "--default-ns",
            "docker.io",
            "--max-connections",
            "64",
        ]);
        let serve = cli.serve_args().unwrap();
        assert_eq!(serve.max_connections, Some(64));
        assert_eq!(serve.port, Some(5000));
        assert_eq!(serve.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(serve.pull_timeout, Some(1500));
        assert_eq!(serve.air_gapped, Some(true));
        assert_eq!(serve.always_pull_latest, Some(true));
        assert_eq!(serve.default_ns.as_deref(), Some("docker.io"));
    }

    #[test]
    fn bool_flag_presence_means_true_and_explicit_false_is_kept() {
        let cli = parse(&["serve", "--air-gapped", "--always-pull-latest=false"]);
        let serve = cli.serve_args().unwrap();
        assert_eq!(serve.air_gapped, Some(true));
        assert_eq!(serve.always_pull_latest, Some(false));
    }

    #[test]
    fn bool_flag_does_not_swallow_the_next_argument() {
        // `--air-gapped serve` must not read "serve" as the flag's value.
        let cli = parse(&["serve", "--air-gapped", "--port", "1"]);
        assert_eq!(cli.serve_args().unwrap().air_gapped, Some(true));
        assert_eq!(cli.serve_args().unwrap().port, Some(1));
    }

    #[test]
    fn invalid_values_are_rejected() {
        parse_err(&["--log-level", "verbose", "serve"]);
        parse_err(&["serve", "--port", "70000"]);
        parse_err(&["serve", "--port", "abc"]);
        parse_err(&["serve", "--pull-timeout", "0"]);
        parse_err(&["serve", "--air-gapped=maybe"]);
    }

    #[test]
    fn version_subcommand_parses() {
        let cli = parse(&["version"]);
        assert!(matches!(cli.command, Command::Version));
        assert!(cli.serve_args().is_none());
    }

    #[test]
    fn no_arguments_shows_help() {
        let err = parse_err(&[]);
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn log_level_names_round_trip() {
        for name in LogLevel::NAMES {
            let level = LogLevel::from_name(name).expect(name);
            assert_eq!(level.name(), *name);
        }
        // Any case, as the Go server takes them.
        assert_eq!(LogLevel::from_name("ERROR"), Some(LogLevel::Error));
        assert_eq!(LogLevel::from_name("verbose"), None);
        assert_eq!(LogLevel::default(), LogLevel::Error);
        assert_eq!(LogLevel::Debug.to_filter(), log::LevelFilter::Debug);
    }
}
