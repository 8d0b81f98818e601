//! `completions` and `man`: generated from the command line's own description ([`cli::command`],
//! with the `OCIREGISTRY_*` variables attached), so they never fall behind an option that is
//! added or renamed.

use std::io::Write;
use std::process::ExitCode;

use crate::cli;

const NAME: &str = "ociregistry";

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), NAME, &mut out);
    write_out(&out)
}

/// Writes the manual page of the program, or of one of its subcommands, to standard output.
pub fn man(subcommand: Option<&str>) -> ExitCode {
    match man_page(subcommand) {
        Ok(page) => write_out(&page),
        Err(e) => {
            eprintln!("{NAME}: {e}");
            ExitCode::from(2)
        }
    }
}

/// The roff text of the page. A subcommand's page is named `ociregistry-SUB`, as `git` names
/// its pages, and shows the global options beside its own.
pub fn man_page(subcommand: Option<&str>) -> Result<Vec<u8>, String> {
    let mut root = cli::command();
    root.build();
    let cmd = match subcommand {
        None => root,
        Some(name) => {
            let names: Vec<String> = root
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = root.find_subcommand(name).cloned().ok_or_else(|| {
                format!(
                    "no subcommand {name:?}; pages exist for: {}",
                    names.join(", ")
                )
            })?;
            let name = format!("{NAME}-{}", sub.get_name());
            // `man ociregistry-serve` shows the full command in its synopsis.
            sub.name(name.clone())
                .bin_name(format!("{NAME} {}", &name[NAME.len() + 1..]))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| format!("rendering the manual page: {e}"))?;
    Ok(page)
}

/// A closed pipe (`| head`) ends the command quietly, as for other programs.
fn write_out(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{NAME}: writing to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sub: Option<&str>) -> String {
        String::from_utf8(man_page(sub).expect("page")).expect("utf-8")
    }

    #[test]
    fn the_main_page_names_every_subcommand() {
        let page = text(None);
        assert!(
            page.starts_with(".ie") || page.contains(".TH ociregistry"),
            "{page}"
        );
        for sub in [
            "serve",
            "load",
            "export",
            "import",
            "list",
            "prune",
            "completions",
        ] {
            assert!(page.contains(sub), "{sub} missing");
        }
    }

    #[test]
    fn a_subcommand_page_carries_its_options_and_their_environment_variables() {
        let page = text(Some("serve"));
        assert!(page.contains(".TH ociregistry-serve"), "{page}");
        assert!(page.contains("pull\\-timeout"), "{page}");
        assert!(page.contains("OCIREGISTRY_PULL_TIMEOUT"), "{page}");
    }

    #[test]
    fn an_unknown_subcommand_page_is_refused_with_the_known_ones() {
        let err = man_page(Some("serv")).expect_err("unknown");
        assert!(
            err.contains("\"serv\"") && err.contains("serve, load"),
            "{err}"
        );
    }
}
