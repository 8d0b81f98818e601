//! The end-to-end gate. Every end-to-end file starts with `#![cfg(not(e2e_skipped))]`, which
//! `build.rs` sets when the build cannot run them (not root, or `OCIREGISTRY_E2E=0`): a plain
//! `cargo test` then runs the unit and in-process tests, and this binary names, on standard
//! error and past cargo's output capture, every suite it left out and why.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

const GATE: &str = "#![cfg(not(e2e_skipped))]";

/// Files under `tests/` that run in the test process alone (no tool, no root).
const IN_PROCESS: &[&str] = &["tests/hardening/properties.rs", "tests/harness/gate.rs"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `(name, path)` of every `[[test]]` in the root Cargo.toml.
fn declared_tests() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
    let mut tests = Vec::new();
    let mut name = None;
    for line in manifest.lines().map(str::trim) {
        let value = |l: &str, key: &str| {
            l.strip_prefix(key).map(|v| {
                v.trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        };
        if line == "[[test]]" {
            name = None;
        } else if let Some(n) = value(line, "name") {
            name = Some(n);
        } else if let (Some(p), Some(n)) = (value(line, "path"), name.take()) {
            tests.push((n, p));
        }
    }
    tests
}

/// The suites behind the gate: declared tests whose file carries it.
fn gated_suites() -> Vec<String> {
    declared_tests()
        .into_iter()
        .filter(|(_, path)| {
            std::fs::read_to_string(root().join(path))
                .map(|text| text.lines().any(|l| l.trim() == GATE))
                .unwrap_or(false)
        })
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn end_to_end_suites_left_out_are_named_with_the_reason() {
    let suites = gated_suites();
    assert!(
        suites.len() >= 20,
        "only {} gated suites: {suites:?}",
        suites.len()
    );
    let Some(why) = option_env!("OCIREGISTRY_E2E_SKIPPED") else {
        return;
    };
    let rule = "=".repeat(78);
    // Straight to the file descriptor: cargo's capture only takes print! and eprint!.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n{rule}\nEND-TO-END SUITES SKIPPED ({}): {}\n\nwhy: {why}.\n\
         run them: `tests/run-all.sh` as root (installs the tools too), or \
         `OCIREGISTRY_E2E=1 cargo test` where root and the tools are at hand.\n{rule}\n",
        suites.len(),
        suites.join(", ")
    );
}

#[test]
fn every_test_file_that_needs_tools_carries_the_gate_and_is_declared() {
    let declared: BTreeSet<String> = declared_tests().into_iter().map(|(_, p)| p).collect();
    let mut problems = Vec::new();
    for dir in [
        "harness",
        "pull",
        "security",
        "ops",
        "hardening",
        "packaging",
    ] {
        let entries = std::fs::read_dir(root().join("tests").join(dir)).expect("read tests dir");
        for entry in entries.flatten() {
            let rel = format!("tests/{dir}/{}", entry.file_name().to_string_lossy());
            if !rel.ends_with(".rs") {
                continue;
            }
            if !declared.contains(&rel) {
                problems.push(format!("{rel} has no [[test]] entry in Cargo.toml"));
            }
            let text = std::fs::read_to_string(entry.path()).expect("read test file");
            let gated = text.lines().any(|l| l.trim() == GATE);
            if gated == IN_PROCESS.contains(&rel.as_str()) {
                problems.push(format!(
                    "{rel}: {}",
                    if gated {
                        "runs in-process, so it must not carry the gate"
                    } else {
                        "starts tools, so it must start with the gate line"
                    }
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
