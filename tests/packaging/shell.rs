//! Shell integration as a user installs it: the completion scripts loaded by real bash, zsh
//! and fish, and the manual pages rendered by real groff and man.

// Needs the shells and man tools `tests/run-all.sh` installs; see `tests/harness/gate.rs`.
#![cfg(not(e2e_skipped))]

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use support::clients::require_tool;
use support::proc::{run, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_ociregistry");
const LIMIT: Duration = Duration::from_secs(60);

/// `script` run by `shell -c`, with the binary's directory first on `PATH` so the scripts find
/// `ociregistry` by name, as after an install.
fn shell(shell: &str, script: &str) -> Output {
    require_tool(shell);
    let dir = std::path::Path::new(BINARY)
        .parent()
        .expect("binary directory");
    let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    run(
        Command::new(shell)
            .env("PATH", path)
            .env("HOME", tempfile::tempdir().expect("home").keep())
            .arg("-c")
            .arg(script),
        LIMIT,
    )
    .expect_success()
}

/// What bash's completion function offers for the words typed so far (the last is the one
/// being completed).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let out = shell(
        "bash",
        &format!(
            "source <(ociregistry completions bash) && complete -p ociregistry >/dev/null && \
             COMP_WORDS=({words}) COMP_CWORD={cword} COMP_LINE='{line}' COMP_POINT={point} && \
             _ociregistry ociregistry '{cur}' '{prev}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = quoted.join(" "),
            cword = words.len() - 1,
            line = words.join(" "),
            point = words.join(" ").len(),
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        ),
    );
    out.stdout.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    assert_eq!(bash_completes(&["ociregistry", "se"]), ["serve"]);
    let offered = bash_completes(&["ociregistry", "serve", "--pull-t"]);
    assert_eq!(offered, ["--pull-timeout"]);
    let shells = bash_completes(&["ociregistry", "completions", ""]);
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|o| o == s), "{s} not offered: {shells:?}");
    }
}

#[test]
fn fish_completes_subcommands_with_their_descriptions() {
    let out = shell(
        "fish",
        "ociregistry completions fish | source; complete -C 'ociregistry pru'; \
         complete -C 'ociregistry load --pull-t'",
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("prune\t") && l.contains("Remove manifests")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("--pull-timeout")),
        "{out}"
    );
}

#[test]
fn zsh_loads_the_completion_function() {
    let out = shell(
        "zsh",
        "autoload -U compinit && compinit -u -D && source <(ociregistry completions zsh) && \
         whence -w _ociregistry",
    );
    assert_eq!(out.stdout.trim(), "_ociregistry: function", "{out}");
}

/// The page of `ociregistry man ARGS`, rendered by groff as plain text, failing on any warning.
fn rendered(args: &[&str]) -> String {
    require_tool("groff");
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("page.1");
    let roff = run(Command::new(BINARY).arg("man").args(args), LIMIT).expect_success();
    std::fs::write(&page, &roff.stdout).expect("write page");
    let out = run(
        Command::new("groff")
            .args(["-man", "-Tascii", "-ww", "-P-cbou"])
            .arg(&page),
        LIMIT,
    )
    .expect_success();
    assert_eq!(
        out.stderr, "",
        "groff warns about `ociregistry man {args:?}`"
    );
    out.stdout
}

#[test]
fn the_manual_pages_render_without_warnings_and_name_options_and_variables() {
    let main = rendered(&[]);
    for needle in [
        "NAME",
        "ociregistry",
        "serve",
        "prune",
        "completions",
        "--log-level",
    ] {
        assert!(main.contains(needle), "{needle} missing:\n{main}");
    }
    let serve = rendered(&["serve"]);
    for needle in [
        "ociregistry-serve",
        "--pull-timeout",
        "OCIREGISTRY_PULL_TIMEOUT",
    ] {
        assert!(serve.contains(needle), "{needle} missing:\n{serve}");
    }
}

#[test]
fn man_reads_the_page_from_a_pipe_as_the_readme_says() {
    require_tool("man");
    let out = shell(
        "bash",
        "MANPAGER=cat MANWIDTH=80 ociregistry man load | man -l -",
    );
    assert!(out.stdout.contains("ociregistry-load"), "{out}");
    assert!(out.stdout.contains("--archive"), "{out}");
}

#[test]
fn an_unknown_page_is_refused_with_exit_code_2_and_the_known_ones() {
    let out = run(Command::new(BINARY).args(["man", "sever"]), LIMIT);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("serve, load"), "{out}");
}
