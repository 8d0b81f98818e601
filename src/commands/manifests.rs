//! The images named by rendered Kubernetes manifests (`load --from-manifests`,
//! `export --from-manifests`): every `image:` of the containers, init containers and ephemeral
//! containers of the workload kinds, in multi-document YAML files, directories of them, or
//! standard input. Other documents (ConfigMaps, Services, ...) are skipped.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// Every image named in the manifests at `path` (a file, a directory searched recursively for
/// `*.yaml` and `*.yml`, or `-` for standard input), in the order found, duplicates included.
pub fn images_in(path: &Path) -> Result<Vec<String>, String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("standard input: {e}"))?;
        return images_in_yaml(&text).map_err(|e| format!("standard input: {e}"));
    }
    let files = if path.is_dir() {
        let mut files = Vec::new();
        yaml_files(path, &mut files)?;
        files
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(format!(
            "manifests {}: no such file or directory",
            path.display()
        ));
    };
    let mut images = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        images.extend(images_in_yaml(&text).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    Ok(images)
}

/// The `*.yaml` and `*.yml` files under `dir`, sorted, recursively.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Every workload image in a YAML stream of one or more documents.
pub fn images_in_yaml(text: &str) -> Result<Vec<String>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let mut images = Vec::new();
    for doc in &docs {
        collect(doc, &mut images);
    }
    Ok(images)
}

fn collect(doc: &Yaml, out: &mut Vec<String>) {
    let spec = &doc["spec"];
    match doc["kind"].as_str() {
        Some("Pod") => pod_spec(spec, out),
        Some(
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Job"
            | "ReplicationController",
        ) => pod_spec(&spec["template"]["spec"], out),
        Some("CronJob") => pod_spec(&spec["jobTemplate"]["spec"]["template"]["spec"], out),
        Some("PodTemplate") => pod_spec(&doc["template"]["spec"], out),
        // `kubectl get -o yaml` wraps objects in a List.
        Some(k) if k.ends_with("List") => {
            for item in doc["items"].as_vec().into_iter().flatten() {
                collect(item, out);
            }
        }
        _ => {}
    }
}

fn pod_spec(spec: &Yaml, out: &mut Vec<String>) {
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[key].as_vec().into_iter().flatten() {
            if let Some(image) = c["image"].as_str().map(str::trim).filter(|i| !i.is_empty()) {
                out.push(image.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_images_are_found_in_every_document() {
        let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  image: not/an-image:1
---
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: quay.io/a/init:1
      containers:
        - name: app
          image: nginx:1.27
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - image: "registry.k8s.io/job:2"
---
kind: Pod
spec:
  containers: [{name: a, image: nginx:1.27}]
  ephemeralContainers: [{name: debug, image: busybox}]
---
kind: List
items:
  - kind: DaemonSet
    spec: {template: {spec: {containers: [{image: "quay.io/ds:3"}]}}}
---
"#;
        assert_eq!(
            images_in_yaml(yaml).unwrap(),
            vec![
                "quay.io/a/init:1",
                "nginx:1.27",
                "registry.k8s.io/job:2",
                "nginx:1.27",
                "busybox",
                "quay.io/ds:3"
            ]
        );
    }

    #[test]
    fn broken_yaml_is_an_error() {
        assert!(images_in_yaml("kind: Pod\nspec: [\n").is_err());
        assert!(images_in_yaml("").unwrap().is_empty());
    }
}
