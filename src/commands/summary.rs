//! What `load`, `export`, `import` and `serve --preload-images` report per image. Its own module
//! because `load --archive` runs `import`, and both print the same report.

use std::fmt::Write as _;

/// What happened to each image. Serialized when a running server reports a `load` it ran for
/// the command line.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub loaded: Vec<String>,
    pub cached: Vec<String>,
    /// `(what, why)`: a bad line names its line number.
    pub failed: Vec<(String, String)>,
}

/// One line of what a running server streams back for a `load` it runs for the command line
/// (`POST /cmd/load`): each image's line as it ends, then the summary.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LoadEvent {
    Progress { line: String, failed: bool },
    Done(Summary),
}

impl LoadEvent {
    /// The event as one line of JSON.
    pub fn to_line(&self) -> String {
        // Strings, booleans and lists of them always serialize.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

impl Summary {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for i in &self.loaded {
            let _ = writeln!(out, "loaded          {i}");
        }
        for i in &self.cached {
            let _ = writeln!(out, "already cached  {i}");
        }
        for (what, why) in &self.failed {
            let _ = writeln!(out, "failed          {what}: {why}");
        }
        let _ = writeln!(
            out,
            "{} loaded, {} already cached, {} failed",
            self.loaded.len(),
            self.cached.len(),
            self.failed.len()
        );
        out
    }

    /// `Err` naming how many images failed, if any did, so the command exits non-zero.
    pub fn into_result(self, what: &str) -> Result<(), String> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} image(s) could not be {what}",
                self.failed.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_each_outcome() {
        let s = Summary {
            loaded: vec!["a".into()],
            cached: vec!["b".into(), "c".into()],
            failed: vec![("d".into(), "gone".into())],
        };
        let text = s.render();
        assert!(text.contains("failed          d: gone"));
        assert!(
            text.ends_with("1 loaded, 2 already cached, 1 failed\n"),
            "{text}"
        );
    }
}
