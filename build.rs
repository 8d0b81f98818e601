//! Decides whether the end-to-end test suites are compiled in. They start containerd, podman
//! and containers and need root; a contributor without it still gets the unit and in-process
//! tests from a plain `cargo test`, and the `e2e_gate` test says loudly what was left out.
//!
//! `OCIREGISTRY_E2E=1` compiles them in whoever builds (`tests/run-all.sh` sets it), `=0`
//! leaves them out; unset, they are in when the build runs as root.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=OCIREGISTRY_E2E");
    println!("cargo::rustc-check-cfg=cfg(e2e_skipped)");
    let skipped = match std::env::var("OCIREGISTRY_E2E").as_deref() {
        Ok("1") => None,
        Ok("0") => Some("OCIREGISTRY_E2E=0 was set"),
        _ if running_as_root() => None,
        _ => Some(
            "the build did not run as root, and the end-to-end suites drive containerd, podman, \
             the Docker Engine and debootstrap, which need it",
        ),
    };
    if let Some(why) = skipped {
        println!("cargo::rustc-cfg=e2e_skipped");
        println!("cargo::rustc-env=OCIREGISTRY_E2E_SKIPPED={why}");
    }
}

/// The real user id from `/proc/self/status` (`Uid:` real, effective, saved, fs); no `/proc`
/// (not Linux) counts as not root.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
