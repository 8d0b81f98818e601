//! The Helm chart, rendered and linted by a real helm 3 with every value combination that
//! matters; the server accepts the config file each one renders.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use support::helm::{self, Values};
use support::proc::run;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

const TOKEN: &str = "an-admin-token-of-32-characters!";

/// Every combination an operator picks between, by name.
fn combinations() -> Vec<(&'static str, Values)> {
    vec![
        ("defaults (pvc, health)", Values::default()),
        ("hostPath", Values::set(&["persistence.type=hostPath"])),
        (
            "hostPath prepared on the node",
            Values::set(&["persistence.type=hostPath", "persistence.hostPathInit=false"]),
        ),
        ("emptyDir", Values::set(&["persistence.type=emptyDir"])),
        (
            "emptyDir with a size limit",
            Values::set(&["persistence.type=emptyDir", "persistence.emptyDir.sizeLimit=2Gi"]),
        ),
        (
            "TLS",
            Values::set(&["serverTls.enabled=true", "serverTls.secretName=cache-tls"]),
        ),
        (
            "mutual TLS",
            Values::set(&[
                "serverTls.enabled=true",
                "serverTls.secretName=cache-tls",
                "serverTls.clientAuth=verify",
            ]),
        ),
        (
            "admin token in a chart Secret",
            Values::set(&[&format!("adminApi.token.value={TOKEN}")]),
        ),
        (
            "admin token in an existing Secret, more addresses",
            Values::yaml(
                "adminApi:\n  allow: [127.0.0.1, 10.0.0.5]\n  token:\n    existingSecret: ops\n    key: admin\n",
            ),
        ),
        (
            "preload",
            Values::yaml("preload:\n  images: [registry.k8s.io/pause:3.8, docker.io/library/nginx:1.27]\n"),
        ),
        ("health disabled", Values::set(&["health.enabled=false"])),
        (
            "metrics service and ServiceMonitor",
            Values::set(&["metrics.serviceMonitor.enabled=true"]),
        ),
        ("ClusterIP service", Values::set(&["service.type=ClusterIP"])),
        (
            "ingress",
            Values::set(&["ingress.enabled=true", "ingress.className=nginx"]),
        ),
        (
            "existing service account",
            Values::set(&["serviceAccount.create=false", "serviceAccount.name=builder"]),
        ),
        ("Go chart values", go_chart_values()),
    ]
}

fn go_chart_values() -> Values {
    Values::yaml(
        "nameOverride: mirror\n\
         podAnnotations: {team: platform}\n\
         podLabels: {tier: cache}\n\
         volumes:\n  - name: upstream-ca\n    configMap: {name: upstream-ca}\n\
         volumeMounts:\n  - name: upstream-ca\n    mountPath: /etc/upstream-ca\n    readOnly: true\n\
         extraManifests:\n\
         \x20 - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: upstream-ca}\n    data: {ca.crt: none}\n\
         \x20 - |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: {{ .Release.Name }}-extra\n    data: {}\n",
    )
}

#[test]
fn helm_lint_strict_passes_for_every_value_combination() {
    for (name, values) in combinations() {
        let out = helm::lint(&values);
        assert!(out.success(), "{name}: {out}");
    }
}

#[test]
fn every_object_carries_the_standard_labels_and_selectors_match_the_pod() {
    for (name, values) in combinations() {
        let r = helm::template("r", &values);
        for o in &r.objects {
            let labels = &o["metadata"]["labels"];
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ] {
                // Extra manifests are the operator's own objects.
                if o["kind"] == "ConfigMap" && o["data"].get("config.yaml").is_none() {
                    continue;
                }
                assert!(
                    labels.get(key).is_some(),
                    "{name}: {} lacks {key}",
                    o["kind"]
                );
            }
        }
        let pod_labels = &r.one("Deployment")["spec"]["template"]["metadata"]["labels"];
        let selector = &r.one("Deployment")["spec"]["selector"]["matchLabels"];
        for service in r.all("Service") {
            for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
                assert_eq!(&pod_labels[k], v, "{name}: service selector {k}");
            }
        }
        for (k, v) in selector.as_object().expect("matchLabels") {
            assert_eq!(&pod_labels[k], v, "{name}: deployment selector {k}");
            assert!(
                k != "app.kubernetes.io/version",
                "{name}: a selector must not change with the version"
            );
        }
    }
}

#[test]
fn the_server_accepts_the_config_file_every_combination_renders() {
    let pki = test_pki::Pki::new();
    for (name, values) in combinations() {
        let r = helm::template("r", &values);
        let dir = tempfile::Builder::new()
            .prefix("e2e-chart-config-")
            .tempdir()
            .expect("temp dir");
        // The pod's files, where the rendered config names them, moved under `dir`.
        let root = dir.path().join("etc");
        let config = r
            .config_text()
            .replace("/etc/ociregistry/", &format!("{}/", root.display()));
        std::fs::create_dir_all(root.join("tls")).unwrap();
        std::fs::create_dir_all(root.join("admin")).unwrap();
        std::fs::create_dir_all(dir.path().join("cache")).unwrap();
        std::fs::write(root.join("config.yaml"), &config).unwrap();
        if let Some(list) = r.server_configmap()["data"]["preload.txt"].as_str() {
            std::fs::write(root.join("preload.txt"), list).unwrap();
        }
        for (from, to) in [
            ("server.crt", "tls.crt"),
            ("server.key", "tls.key"),
            ("ca.crt", "ca.crt"),
        ] {
            std::fs::copy(pki.path(from), root.join("tls").join(to)).unwrap();
        }
        for key in ["token", "admin"] {
            std::fs::write(root.join("admin").join(key), TOKEN).unwrap();
        }
        let out = run(
            Command::new(env!("CARGO_BIN_EXE_ociregistry"))
                .arg("--config-file")
                .arg(root.join("config.yaml"))
                .arg("--image-path")
                .arg(dir.path().join("cache"))
                .arg("list"),
            Duration::from_secs(30),
        );
        assert!(
            out.success(),
            "{name}: the server refuses the rendered config:\n{config}\n{out}"
        );
    }
}

#[test]
fn a_mistyped_or_wrongly_typed_value_fails_the_render() {
    for (what, values) in [
        ("a misspelt key", Values::set(&["persistance.type=pvc"])),
        (
            "a misspelt nested key",
            Values::set(&["serviceAccount.crate=false"]),
        ),
        (
            "an unknown storage type",
            Values::set(&["persistence.type=nfs"]),
        ),
        ("a port as text", Values::set(&["health.port=eighty"])),
        (
            "TLS without a secret",
            Values::set(&["serverTls.enabled=true"]),
        ),
        (
            "a short admin token",
            Values::set(&["adminApi.token.value=short"]),
        ),
    ] {
        let out = helm::try_template("r", &values);
        assert!(!out.success(), "{what} was accepted: {out}");
        assert!(
            out.stderr.contains("schema"),
            "{what}: not a schema error: {out}"
        );
    }
}

#[test]
fn pvc_is_the_default_cache_and_probes_use_the_health_port() {
    let r = helm::template("ociregistry", &Values::default());
    assert_eq!(
        r.kinds(),
        [
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "Service",
            "ServiceAccount"
        ]
    );
    let claim = r.one("PersistentVolumeClaim")["metadata"]["name"].clone();
    assert_eq!(
        claim, "ociregistry",
        "a release named like the chart keeps its name"
    );
    assert_eq!(
        r.volume("cache")["persistentVolumeClaim"]["claimName"],
        claim
    );
    assert_eq!(r.mount_path("cache"), "/var/lib/ociregistry");
    let c = r.server_container();
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "--config-file",
            "/etc/ociregistry/config.yaml",
            "serve",
            "--health",
            "8081"
        ]
    );
    for (probe, path) in [
        ("startupProbe", "/health"),
        ("livenessProbe", "/health"),
        ("readinessProbe", "/health/ready"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "health", "{probe}");
    }
    assert!(
        c["resources"]["requests"]["memory"].is_string(),
        "resources set: {}",
        c["resources"]
    );
    assert!(
        r.pod()["initContainers"].is_null(),
        "no init container without hostPath"
    );
    let sa = r.one("ServiceAccount");
    assert_eq!(r.pod()["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert_eq!(r.pod()["automountServiceAccountToken"], false);
}

#[test]
fn hostpath_cache_is_handed_to_the_server_user_by_a_root_init_container() {
    let r = helm::template("r", &Values::set(&["persistence.type=hostPath"]));
    assert!(r.all("PersistentVolumeClaim").is_empty());
    assert_eq!(
        r.volume("cache")["hostPath"]["path"],
        "/var/lib/ociregistry"
    );
    let init = &r.pod()["initContainers"][0];
    let command: Vec<&str> = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["chown", "10001:10001", "/var/lib/ociregistry"]);
    assert_eq!(init["securityContext"]["runAsUser"], 0);
    assert_eq!(init["securityContext"]["capabilities"]["add"][0], "CHOWN");
    assert_eq!(init["volumeMounts"][0]["name"], "cache");
    assert_eq!(
        init["image"],
        r.server_container()["image"],
        "no second image to pull"
    );
    assert_eq!(
        r.pod()["securityContext"]["runAsUser"],
        10001,
        "the server stays non-root"
    );

    let prepared = helm::template(
        "r",
        &Values::set(&[
            "persistence.type=hostPath",
            "persistence.hostPathInit=false",
        ]),
    );
    assert!(prepared.pod()["initContainers"].is_null());
}

#[test]
fn emptydir_cache_has_no_claim() {
    let r = helm::template("r", &Values::set(&["persistence.type=emptyDir"]));
    assert!(r.all("PersistentVolumeClaim").is_empty());
    assert!(r.volume("cache")["emptyDir"].is_object());
    assert!(helm::notes(&Values::set(&["persistence.type=emptyDir"])).contains("lost with the pod"));
}

#[test]
fn tls_secret_is_mounted_where_the_rendered_config_points() {
    let r = helm::template(
        "r",
        &Values::set(&[
            "serverTls.enabled=true",
            "serverTls.secretName=cache-tls",
            "serverTls.clientAuth=verify",
            "metrics.serviceMonitor.enabled=true",
        ]),
    );
    assert_eq!(r.volume("tls")["secret"]["secretName"], "cache-tls");
    let dir = r.mount_path("tls");
    let tls = &r.config()["serverTlsConfig"];
    for (key, file) in [("cert", "tls.crt"), ("key", "tls.key"), ("ca", "ca.crt")] {
        assert_eq!(tls[key], format!("{dir}/{file}"), "serverTlsConfig.{key}");
    }
    assert_eq!(tls["clientAuth"], "verify");
    assert_eq!(
        r.one("ServiceMonitor")["spec"]["endpoints"][0]["scheme"],
        "https"
    );
}

#[test]
fn admin_token_is_read_from_a_mounted_secret() {
    let r = helm::template(
        "r",
        &Values::set(&[&format!("adminApi.token.value={TOKEN}")]),
    );
    let secret = r.one("Secret");
    let name = secret["metadata"]["name"].as_str().unwrap();
    assert_eq!(r.volume("admin-token")["secret"]["secretName"], name);
    let token_file = r.config()["adminApi"]["tokenFile"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(token_file, format!("{}/token", r.mount_path("admin-token")));
    assert!(secret["data"]["token"].is_string());
    assert!(
        !r.config_text().contains(TOKEN),
        "the token stays out of the ConfigMap"
    );

    let existing = helm::template(
        "r",
        &Values::yaml("adminApi:\n  token:\n    existingSecret: ops\n    key: admin\n"),
    );
    assert!(existing.all("Secret").is_empty());
    assert_eq!(
        existing.volume("admin-token")["secret"]["secretName"],
        "ops"
    );
    assert_eq!(
        existing.config()["adminApi"]["tokenFile"],
        "/etc/ociregistry/admin/admin"
    );
}

#[test]
fn preload_list_is_rendered_beside_the_config_that_names_it() {
    let images = ["registry.k8s.io/pause:3.8", "docker.io/library/nginx:1.27"];
    let values = Values::yaml(&format!("preload:\n  images: [{}]\n", images.join(", ")));
    let r = helm::template("r", &values);
    assert_eq!(r.config()["preloadImages"], "/etc/ociregistry/preload.txt");
    assert_eq!(r.mount_path("config"), "/etc/ociregistry");
    let list = r.server_configmap()["data"]["preload.txt"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines, images);
    assert!(helm::notes(&values).contains("2 image(s) are loaded"));
}

#[test]
fn without_the_health_port_probes_open_the_pull_port() {
    let r = helm::template("r", &Values::set(&["health.enabled=false"]));
    let c = r.server_container();
    assert!(!c["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--health"));
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["tcpSocket"]["port"], "http", "{probe}");
    }
}

#[test]
fn config_checksum_changes_with_everything_the_server_reads_at_start() {
    let checksum = |values: &Values| {
        helm::template("r", values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/config"]
            .as_str()
            .expect("checksum/config")
            .to_string()
    };
    let base = checksum(&Values::default());
    assert_eq!(
        base,
        checksum(&Values::default()),
        "stable for the same values"
    );
    for (what, values) in [
        (
            "a preloaded image",
            Values::yaml("preload:\n  images: [registry.k8s.io/pause:3.8]\n"),
        ),
        (
            "TLS",
            Values::set(&["serverTls.enabled=true", "serverTls.secretName=t"]),
        ),
        (
            "the log level",
            Values::set(&["serverConfig.configuration.logLevel=debug"]),
        ),
        (
            "the admin token",
            Values::set(&[&format!("adminApi.token.value={TOKEN}")]),
        ),
    ] {
        assert_ne!(base, checksum(&values), "changing {what} restarts the pod");
    }
}

#[test]
fn go_chart_values_name_overrides_pod_metadata_volumes_and_extra_manifests() {
    let r = helm::template("r", &go_chart_values());
    assert_eq!(r.one("Deployment")["metadata"]["name"], "r-mirror");
    let meta = &r.one("Deployment")["spec"]["template"]["metadata"];
    assert_eq!(meta["annotations"]["team"], "platform");
    assert_eq!(meta["labels"]["tier"], "cache");
    assert_eq!(r.volume("upstream-ca")["configMap"]["name"], "upstream-ca");
    assert_eq!(r.mount_path("upstream-ca"), "/etc/upstream-ca");
    let names: Vec<&str> = r
        .all("ConfigMap")
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"upstream-ca") && names.contains(&"r-extra"),
        "{names:?}"
    );

    let full = helm::template("r", &Values::set(&["fullnameOverride=edge-cache"]));
    for o in &full.objects {
        assert_eq!(o["metadata"]["name"], "edge-cache", "{}", o["kind"]);
    }
    let existing = helm::template(
        "r",
        &Values::set(&["serviceAccount.create=false", "serviceAccount.name=builder"]),
    );
    assert!(existing.all("ServiceAccount").is_empty());
    assert_eq!(existing.pod()["serviceAccountName"], "builder");
}

#[test]
fn service_monitor_selects_the_metrics_service() {
    let r = helm::template("r", &Values::set(&["metrics.serviceMonitor.enabled=true"]));
    let monitor = r.one("ServiceMonitor");
    let metrics = r
        .all("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "r-ociregistry-metrics")
        .expect("the metrics service comes with the ServiceMonitor");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&metrics["metadata"]["labels"][k], v, "label {k}");
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        metrics["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn notes_tell_how_to_point_containerd_at_the_node_port() {
    let notes = helm::notes(&Values::default());
    assert!(
        notes.contains("[host.\"http://127.0.0.1:31080\"]"),
        "{notes}"
    );
    assert!(
        notes.contains("capabilities = [\"pull\", \"resolve\"]"),
        "{notes}"
    );
}

#[test]
fn every_value_a_template_references_exists_in_values_yaml_and_the_schema() {
    let values = helm::to_json(
        &yaml_rust2::YamlLoader::load_from_str(
            &std::fs::read_to_string(repo("helm/ociregistry/values.yaml")).unwrap(),
        )
        .expect("values.yaml is YAML")[0],
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("helm/ociregistry/values.schema.json")).unwrap(),
    )
    .expect("values.schema.json is JSON");
    let reference = Regex::new(r"\.Values((?:\.[A-Za-z0-9_]+)+)").unwrap();
    let mut missing = Vec::new();
    let mut templates = 0;
    for entry in std::fs::read_dir(repo("helm/ociregistry/templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        templates += 1;
        for cap in reference.captures_iter(&text) {
            let mut node = &values;
            let mut schema_node = &schema;
            for key in cap[1].trim_start_matches('.').split('.') {
                // A map the schema leaves open (the server's configuration, security
                // contexts) is checked by what reads it.
                if schema_node["properties"].is_null() && schema_node["type"] == "object" {
                    break;
                }
                schema_node = &schema_node["properties"][key];
                if schema_node.is_null() {
                    missing.push(format!(
                        "{}: .Values{} not in the schema",
                        path.display(),
                        &cap[1]
                    ));
                    break;
                }
                match node.get(key) {
                    Some(n) => node = n,
                    None => {
                        missing.push(format!("{}: .Values{}", path.display(), &cap[1]));
                        break;
                    }
                }
            }
        }
    }
    assert!(templates >= 8, "only {templates} templates found");
    assert!(
        missing.is_empty(),
        "undefined values:\n{}",
        missing.join("\n")
    );
}

#[test]
fn fleet_mode_runs_replicas_on_the_bucket_each_advertising_its_pod_ip() {
    let values = Values::set(&[
        "fleet.enabled=true",
        "fleet.s3.endpoint=https://s3.example:7480",
        "fleet.s3.bucket=ocicache",
        "fleet.s3.credentialsSecret=cache-s3",
        "fleet.fleetSecretName=cache-fleet",
    ]);
    let out = helm::lint(&values);
    assert!(out.success(), "{out}");
    let r = helm::template("r", &values);

    let deployment = r.one("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects_the_pods = |selector: &Value| {
        let map = selector.as_object().expect("matchLabels");
        !map.is_empty() && map.iter().all(|(k, v)| &pod_labels[k] == v)
    };
    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(
        selects_the_pods(&pdb["spec"]["selector"]["matchLabels"]),
        "the disruption budget selects other pods: {pdb:#}"
    );
    let spread = &r.pod()["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert!(
        selects_the_pods(&spread["labelSelector"]["matchLabels"]),
        "the anti-affinity selects other pods: {spread:#}"
    );

    // Each pod names itself by its IP, signs in with the Secret's keys, and stages downloads in
    // an emptyDir: the cache is the bucket.
    let container = r.server_container();
    let env = container["env"].as_array().expect("env");
    let advertise = env
        .iter()
        .find(|e| e["name"] == "OCIREGISTRY_ADVERTISE")
        .expect("OCIREGISTRY_ADVERTISE");
    assert_eq!(advertise["value"], "http://$(POD_IP):8080");
    assert!(env.iter().any(
        |e| e["name"] == "POD_IP" && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    ));
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "cache-s3");
    assert!(r.volume("cache")["emptyDir"].is_object());
    assert!(r.all("PersistentVolumeClaim").is_empty());
    assert_eq!(r.volume("fleet")["secret"]["secretName"], "cache-fleet");

    let config = r.config();
    assert_eq!(config["storage"]["s3"]["bucket"], "ocicache");
    assert_eq!(
        config["storage"]["s3"]["endpoint"],
        "https://s3.example:7480"
    );
    assert_eq!(
        config["fleetSecretFile"],
        format!("{}/fleetSecret", r.mount_path("fleet"))
    );

    // The server reads the rendered file: the directory commands then say the cache is the
    // bucket, which they say only after the file was accepted.
    let dir = tempfile::Builder::new()
        .prefix("e2e-chart-fleet-")
        .tempdir()
        .expect("temp dir");
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        r.config_text()
            .replace("fleetSecretFile", "# fleetSecretFile"),
    )
    .unwrap();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_ociregistry"))
            .arg("--config-file")
            .arg(&file)
            .arg("list"),
        Duration::from_secs(30),
    );
    assert!(
        !out.success() && out.stderr.contains("the bucket ocicache (storage.s3)"),
        "the server did not read the rendered fleet config: {out}"
    );

    let single = helm::template("r", &Values::set(&[]));
    assert!(single.all("PodDisruptionBudget").is_empty());
    assert_eq!(
        single.one("Deployment")["spec"]["strategy"]["type"],
        "Recreate"
    );
}
