//! Progress of long one-off work (`kuryer migrate`, the start-up resume): a
//! bar when stderr is a terminal, else a log line at most every few seconds
//! (journald under systemd), and under systemd a `STATUS=` with the figure
//! and `EXTEND_TIMEOUT_USEC=` so a long resume is not killed as a hung
//! start.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Lines (not bars) at most this often.
pub(crate) const LINE_EVERY: Duration = Duration::from_secs(5);
/// How much more start-up time each report asks systemd for.
const EXTEND_BY: Duration = Duration::from_secs(60);

/// One piece of long work with a known size.
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_report: Option<Instant>,
    bar: bool,
    notify: bool,
}

impl Progress {
    /// Starts reporting `what`, `total` units long.
    pub fn new(what: &'static str, total: u64) -> Self {
        Self {
            what,
            total,
            done: 0,
            started: Instant::now(),
            last_report: None,
            bar: std::io::stderr().is_terminal(),
            notify: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    /// `done` units are finished (a running total).
    pub fn set(&mut self, done: u64) {
        self.done = done.min(self.total);
        let due = self.last_report.is_none_or(|t| t.elapsed() >= LINE_EVERY);
        if self.bar {
            self.draw();
        } else if due {
            self.line();
        }
        if due {
            self.last_report = Some(Instant::now());
            self.tell_systemd();
        }
    }

    /// The work is over: the bar ends its line, the log says how long.
    pub fn finish(&mut self) {
        self.done = self.total;
        if self.bar {
            self.draw();
            eprintln!();
        }
        tracing::info!(
            what = self.what,
            total = self.total,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "Done."
        );
    }

    fn percent(&self) -> u64 {
        (self.done * 100).checked_div(self.total).unwrap_or(100)
    }

    fn draw(&self) {
        const WIDTH: u64 = 30;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {:>3}% {}/{} {:.0}s",
            self.what,
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            self.percent(),
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    fn line(&self) {
        tracing::info!(
            what = self.what,
            done = self.done,
            total = self.total,
            percent = self.percent(),
            elapsed_s = self.started.elapsed().as_secs(),
            "Progress."
        );
    }

    fn tell_systemd(&self) {
        if !self.notify {
            return;
        }
        let status = format!(
            "{}: {}/{} ({}%)",
            self.what,
            self.done,
            self.total,
            self.percent()
        );
        let extend = u32::try_from(EXTEND_BY.as_micros()).unwrap_or(u32::MAX);
        let _ = sd_notify::notify(&[
            NotifyState::Status(&status),
            NotifyState::ExtendTimeoutUsec(extend),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_bounded_and_empty_work_is_done() {
        let mut p = Progress::new("work", 200);
        p.bar = false;
        p.notify = false;
        p.set(50);
        assert_eq!(p.percent(), 25);
        p.set(500);
        assert_eq!(p.percent(), 100);
        let empty = Progress::new("nothing", 0);
        assert_eq!(empty.percent(), 100);
    }
}
