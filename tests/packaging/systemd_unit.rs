//! The example systemd unit is one systemd accepts.

// Needs root and the tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

use std::path::Path;
use std::process::Command;

#[test]
fn the_example_systemd_unit_passes_systemd_analyze_verify() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        // systemd-analyze is part of systemd; every Debian machine this suite targets has it.
        panic!("systemd-analyze not found: install systemd");
    };
    assert!(out.status.success());
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd/ociregistry.service"),
    )
    .unwrap();
    // Point ExecStart at the binary under test: verify checks that it exists.
    let unit = unit.replace(
        "/usr/local/bin/ociregistry",
        env!("CARGO_BIN_EXE_ociregistry"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ociregistry.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ociregistry.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}
