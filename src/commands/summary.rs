//! What `load`, `export`, `import` and `serve --preload-images` report per image. Its own module
//! because `load --archive` runs `import`, and both print the same report.

use std::fmt::Write as _;

/// What happened to each image.
#[derive(Debug, Default)]
pub struct Summary {
    pub loaded: Vec<String>,
    pub cached: Vec<String>,
    /// `(what, why)`: a bad line names its line number.
    pub failed: Vec<(String, String)>,
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
