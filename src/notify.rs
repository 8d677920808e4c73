//! systemd's notify protocol: `READY=1` once the daemon serves, `STATUS=`
//! with live figures, `WATCHDOG=1` only while the actor system answers, and
//! `STOPPING=1` at shutdown. Outside systemd (no `NOTIFY_SOCKET`) every call
//! is a no-op.
//!
//! The watchdog ping is earned, not timed: each one follows a heartbeat that
//! went through the supervisor, the registry, the limiter and the writer
//! (`Pipeline::stats`, one message answered by each, in turn) within a
//! deadline. A wedged actor (a handler that never returns, a mailbox that is
//! never read) stops the pings, and systemd restarts kuryer after
//! `WatchdogSec=`; a timer on a spare thread would keep pinging a daemon
//! that delivers nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::pipeline::{Pipeline, PipelineStats};

/// How often the heartbeat runs (and `STATUS=` is refreshed) when systemd
/// asked for no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The daemon's side of the notify socket.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    enabled: bool,
    /// `WatchdogSec=` as systemd passed it (`WATCHDOG_USEC`), when set for
    /// this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog = if enabled {
            sd_notify::watchdog_enabled()
        } else {
            None
        };
        if enabled {
            tracing::debug!(
                watchdog_ms = watchdog.map(|d| d.as_millis() as u64),
                "systemd notify socket found."
            );
        }
        Self { enabled, watchdog }
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog period systemd expects, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        // A lost notification is systemd's problem to time out on, not a
        // reason to stop delivering; say it once at debug level.
        if let Err(e) = sd_notify::notify(states) {
            tracing::debug!(error = %e, "Could not write to the systemd notify socket.");
        }
    }

    /// `STATUS=` alone (start-up steps).
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `READY=1` with a first status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STOPPING=1`: the ordered shutdown has begun.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn ping(&self, status: &str) {
        self.send(&[NotifyState::Watchdog, NotifyState::Status(status)]);
    }
}

/// Deliveries dispatched in the last minute, from samples of the limiter's
/// running total.
#[derive(Debug, Default)]
struct LastMinute {
    samples: VecDeque<(Instant, u64)>,
}

impl LastMinute {
    fn record(&mut self, now: Instant, total: u64) -> u64 {
        self.samples.push_back((now, total));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.samples.pop_front();
        }
        let oldest = self.samples.front().map_or(total, |(_, n)| *n);
        total.saturating_sub(oldest)
    }
}

/// The `STATUS=` line: what an operator sees in `systemctl status kuryer`.
pub fn status_line(s: &PipelineStats, last_minute: u64) -> String {
    format!(
        "{} channels, {} subscriptions, {} deliveries in the last minute, {} queued",
        s.channels_polled,
        s.subscriptions,
        last_minute,
        s.queued + s.in_flight
    )
}

/// Runs until the task is dropped: a heartbeat through the pipeline's actors
/// every third of the watchdog period (or [`STATUS_EVERY`] without one); a
/// ping and a fresh status after each answered heartbeat, nothing after one
/// that did not answer in time.
pub async fn keepalive(notifier: Notifier, pipeline: Pipeline) {
    // Runs without systemd too: the heartbeat samples the queue depths for
    // the metrics and logs a wedge either way.
    let period = notifier.watchdog().map_or(STATUS_EVERY, |w| w / 3);
    let mut last_minute = LastMinute::default();
    let mut wedged = false;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(period, pipeline.stats()).await {
            Ok(Ok(stats)) => {
                if wedged {
                    tracing::warn!("The pipeline answers again; watchdog pings resumed.");
                    wedged = false;
                }
                let status =
                    status_line(&stats, last_minute.record(Instant::now(), stats.dispatched));
                let depth = &crate::telemetry::registry::QUEUE_DEPTH;
                depth.at(["limiter".into()]).set(stats.queued as f64);
                depth.at(["in_flight".into()]).set(stats.in_flight as f64);
                depth.at(["db_writer".into()]).set(stats.db_backlog as f64);
                if notifier.watchdog().is_some() {
                    notifier.ping(&status);
                } else {
                    notifier.status(&status);
                }
            }
            Ok(Err(_)) | Err(_) => {
                if !wedged {
                    tracing::error!(
                        deadline_ms = period.as_millis() as u64,
                        "The pipeline's actors did not answer a heartbeat; withholding the watchdog ping so that systemd restarts kuryer."
                    );
                    wedged = true;
                }
            }
        }
    }
}

/// Test hooks on the real binary, only in builds with `test-hooks`: on
/// SIGUSR1 the registry stops reading its mailbox for good (the wedge the
/// watchdog exists for); on SIGUSR2 the limiter stops (an actor gone).
#[cfg(any(test, feature = "test-hooks"))]
pub fn test_hooks_on_signals(pipeline: Pipeline) {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
        let pipeline = pipeline.clone();
        actix_rt::spawn(async move {
            if usr1.recv().await.is_some() {
                tracing::warn!("Wedging the subscriber registry on a test's request.");
                pipeline
                    .registry()
                    .do_send(kuryer_actors::test_hooks::WedgeForTest);
            }
        });
    }
    if let Ok(mut usr2) = signal(SignalKind::user_defined2()) {
        actix_rt::spawn(async move {
            if usr2.recv().await.is_some() {
                pipeline
                    .limiter()
                    .do_send(kuryer_actors::test_hooks::StopForTest);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_minute_counts_only_the_last_sixty_seconds() {
        let mut m = LastMinute::default();
        let t0 = Instant::now();
        assert_eq!(m.record(t0, 100), 0);
        assert_eq!(m.record(t0 + Duration::from_secs(30), 160), 60);
        assert_eq!(m.record(t0 + Duration::from_secs(61), 200), 40);
    }

    #[test]
    fn status_line_names_the_figures() {
        let s = PipelineStats {
            channels_polled: 3,
            subscriptions: 7,
            queued: 4,
            in_flight: 1,
            ..PipelineStats::default()
        };
        assert_eq!(
            status_line(&s, 12),
            "3 channels, 7 subscriptions, 12 deliveries in the last minute, 5 queued"
        );
    }
}
