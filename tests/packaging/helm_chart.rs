//! The Helm chart and the YAML examples are well-formed, and every value a template reads is
//! defined (and so documented) in values.yaml.

use std::path::{Path, PathBuf};

use regex::Regex;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn parse_yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
        .build()
        .and_then(|c| c.try_deserialize::<serde_json::Value>())
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

#[test]
fn chart_values_and_example_yaml_files_parse() {
    for f in [
        "helm/ociregistry/Chart.yaml",
        "helm/ociregistry/values.yaml",
        "examples/config.yaml",
    ] {
        let v = parse_yaml(&repo(f));
        assert!(v.is_object(), "{f} is not a mapping");
    }
    let chart = parse_yaml(&repo("helm/ociregistry/Chart.yaml"));
    for key in ["apiVersion", "name", "version", "appVersion"] {
        assert!(chart.get(key).is_some(), "Chart.yaml lacks {key}");
    }
}

#[test]
fn every_value_a_template_references_exists_in_values_yaml() {
    let values = parse_yaml(&repo("helm/ociregistry/values.yaml"));
    let reference = Regex::new(r"\.Values((?:\.[A-Za-z0-9_]+)+)").unwrap();
    let mut missing = Vec::new();
    let mut templates = 0;
    for entry in std::fs::read_dir(repo("helm/ociregistry/templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        templates += 1;
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{}: unbalanced template delimiters",
            path.display()
        );
        for cap in reference.captures_iter(&text) {
            let mut node = &values;
            for key in cap[1].trim_start_matches('.').split('.') {
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
    assert!(templates >= 5, "only {templates} templates found");
    assert!(
        missing.is_empty(),
        "undefined values:\n{}",
        missing.join("\n")
    );
}
