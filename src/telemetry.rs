//! Logging and metrics set-up, and the named events the daemon reports.
//!
//! Log lines go to journald under systemd, else to stderr as pretty text or
//! JSON; metrics are kept in-process and rendered by `GET /metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Sets up the global tracing subscriber. `RUST_LOG`, when set, overrides
/// `log.level`. Returns the format actually chosen.
pub fn init_tracing(cfg: &LogConfig) -> LogFormat {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match cfg.format {
        // systemd sets JOURNAL_STREAM when stdout/stderr are the journal.
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Pretty,
        other => other,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(layer.with_syslog_identifier("kuryer".to_owned()))
                .try_init(),
            Err(e) => {
                // No journal socket (not under systemd): fall back to stderr.
                let r = registry
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                    .try_init();
                tracing::warn!(error = %e, "journald is not reachable; logging to stderr.");
                return if r.is_ok() { LogFormat::Pretty } else { format };
            }
        },
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty | LogFormat::Auto => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = result;
    format
}

/// Names of the metrics kuryer exports (kept with the actors that emit most of them).
pub use kuryer_actors::metrics_names as names;

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::FORWARD_DURATION_SECONDS.to_owned()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed (never, in this
        // binary); the handle still renders our own metrics then.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::MESSAGES_FORWARDED_TOTAL,
        Unit::Count,
        "Posts delivered to a destination."
    );
    describe_histogram!(
        names::FORWARD_DURATION_SECONDS,
        Unit::Seconds,
        "Time from a post being detected to its delivery being accepted by Telegram."
    );
    describe_gauge!(
        names::ACTIVE_CHANNELS,
        Unit::Count,
        "Channels with at least one active subscription."
    );
    describe_counter!(
        names::HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP API requests by route and status."
    );
    describe_counter!(
        names::SUBSCRIPTIONS_CREATED_TOTAL,
        Unit::Count,
        "Subscriptions created."
    );
    // Register the seed's series at zero so dashboards see them from the start.
    metrics::counter!(names::MESSAGES_FORWARDED_TOTAL).absolute(0);
    metrics::gauge!(names::ACTIVE_CHANNELS).set(0.0);
}
