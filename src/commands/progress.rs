//! What `load`, `export` and `import` show while they work. On a terminal: a bar of bytes over
//! every image (done, total as far as the manifests state it, rate) and, under it, a line per
//! image in flight with its own bytes and rate, so that a multi-gigabyte layer on a slow link
//! shows it is moving. Elsewhere (a log, a pipe, `kubectl exec` without a tty) nothing is
//! drawn: each finished image is one log line with its bytes, time and rate.

use std::future::Future;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::preload::LoadMeter;
use futures_util::future::{self, Either};
use indicatif::{BinaryBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bars take the meters' counts.
const TICK: Duration = Duration::from_millis(200);

/// The display of one command over `images` images.
#[derive(Clone)]
pub struct Board {
    multi: MultiProgress,
    /// Bytes over every image; its length grows as manifests state more.
    overall: ProgressBar,
    images: usize,
    /// Images finished, for the overall bar's message.
    finished: Arc<AtomicUsize>,
}

impl Board {
    /// Drawn on standard error when it is a terminal; hidden otherwise.
    pub fn new(images: usize) -> Board {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Board::with_target(images, target)
    }

    /// A board that draws nothing: for a load the server runs for a client, which gets the
    /// lines instead.
    pub fn hidden() -> Board {
        Board::with_target(0, ProgressDrawTarget::hidden())
    }

    fn with_target(images: usize, target: ProgressDrawTarget) -> Board {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(style(
            "[{elapsed_precise}] {bar:30} {binary_bytes}/{binary_total_bytes} \
             {binary_bytes_per_sec} {msg}",
        ));
        overall.set_message(format!("0/{images} images"));
        Board {
            multi,
            overall,
            images,
            finished: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn is_hidden(&self) -> bool {
        self.multi.is_hidden()
    }

    /// A line for one image in flight, under the overall bar.
    pub fn image(&self, name: &str) -> ImageLine {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(style(
            "  {spinner} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
        ));
        bar.set_message(name.to_string());
        ImageLine {
            bar,
            overall: self.overall.clone(),
            started: Instant::now(),
            counted: (0, 0),
        }
    }

    /// One finished image: printed above the bars on a terminal, logged otherwise (and
    /// failures also on standard error, where a script sees them).
    pub fn report(&self, line: &str, failed: bool) {
        if self.is_hidden() {
            log_line(line, failed);
        } else {
            let _ = self.multi.println(line);
        }
        let finished = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        self.overall
            .set_message(format!("{finished}/{} images", self.images));
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// One finished image where nothing is drawn: in the log, and failures also on standard error.
pub fn log_line(line: &str, failed: bool) {
    log::info!("{line}");
    if failed {
        eprintln!("{line}");
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The line of one image: follows its [`LoadMeter`] and feeds the overall bar.
pub struct ImageLine {
    bar: ProgressBar,
    overall: ProgressBar,
    started: Instant,
    /// The meter's (total, done) already passed on to the overall bar.
    counted: (u64, u64),
}

impl ImageLine {
    /// Runs `work`, taking `meter`'s counts every [`TICK`] and once at its end.
    pub async fn follow<F: Future>(&mut self, meter: &LoadMeter, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        loop {
            let tick = std::pin::pin!(actix_web::rt::time::sleep(TICK));
            match future::select(work, tick).await {
                Either::Left((out, _)) => {
                    self.take(meter);
                    return out;
                }
                Either::Right((_, pending)) => {
                    self.take(meter);
                    work = pending;
                }
            }
        }
    }

    fn take(&mut self, meter: &LoadMeter) {
        let (total, done) = (meter.total(), meter.done());
        self.bar.set_length(total);
        self.bar.set_position(done);
        let (counted_total, counted_done) = self.counted;
        self.overall.inc_length(total.saturating_sub(counted_total));
        self.overall.inc(done.saturating_sub(counted_done));
        self.counted = (total.max(counted_total), done.max(counted_done));
    }

    /// Removes the line; what it measured, for the report.
    pub fn finish(self, meter: &LoadMeter) -> Measured {
        self.bar.finish_and_clear();
        Measured {
            total: meter.total(),
            fetched: meter.fetched(),
            took: self.started.elapsed(),
        }
    }
}

/// A bar of `total` bytes for one long read (an archive), drawn on standard error when it is a
/// terminal, hidden otherwise.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(style(
        "[{elapsed_precise}] {bar:30} {binary_bytes}/{binary_total_bytes} \
         {binary_bytes_per_sec} {msg}",
    ));
    bar.set_message(what.to_string());
    bar
}

/// `8.00 MiB in 2.0 s, 4.00 MiB/s`.
pub fn amount_and_rate(bytes: u64, took: Duration) -> String {
    format!("{} in {}", BinaryBytes(bytes), time_and_rate(bytes, took))
}

/// `2.0 s, 4.00 MiB/s` for `bytes` in `took` (a time too short to measure counts as a second).
fn time_and_rate(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    let rate = if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        bytes
    };
    format!("{secs:.1} s, {}/s", BinaryBytes(rate))
}

/// What one image weighed and how fast its fetched part came.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Its blobs' bytes.
    pub total: u64,
    /// Of those, what came from the upstream.
    pub fetched: u64,
    pub took: Duration,
}

impl std::fmt::Display for Measured {
    /// `12.00 MiB; 8.00 MiB fetched in 2.0 s, 4.00 MiB/s`, or `12.00 MiB` when nothing was
    /// fetched.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", BinaryBytes(self.total))?;
        if self.fetched == 0 {
            return Ok(());
        }
        write!(
            f,
            "; {} fetched in {}",
            BinaryBytes(self.fetched),
            time_and_rate(self.fetched, self.took)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_report_gives_its_bytes_and_the_rate_of_what_was_fetched() {
        let m = Measured {
            total: 12 * 1024 * 1024,
            fetched: 8 * 1024 * 1024,
            took: Duration::from_secs(2),
        };
        assert_eq!(
            m.to_string(),
            "12.00 MiB; 8.00 MiB fetched in 2.0 s, 4.00 MiB/s"
        );
        let cached = Measured { fetched: 0, ..m };
        assert_eq!(cached.to_string(), "12.00 MiB");
    }

    #[actix_web::test]
    async fn an_image_line_passes_its_bytes_on_to_the_overall_bar_once() {
        let board = Board::with_target(1, ProgressDrawTarget::hidden());
        let meter = LoadMeter::default();
        let mut line = board.image("reg.test/a:v1");
        meter.expect(1000);
        meter.landed(400, true);
        line.take(&meter);
        line.take(&meter);
        meter.landed(600, false);
        line.follow(&meter, async {}).await;
        assert_eq!(board.overall.length(), Some(1000));
        assert_eq!(board.overall.position(), 1000);
        let measured = line.finish(&meter);
        assert_eq!((measured.total, measured.fetched), (1000, 400));
    }
}
