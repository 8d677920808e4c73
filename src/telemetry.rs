//! Logging and metrics set-up, and the named events the daemon reports.
//!
//! Log lines go to journald under systemd, else to stderr as pretty text or
//! JSON; metrics are kept in-process and rendered by `GET /metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Sets up the global tracing subscriber. `RUST_LOG`, when set, overrides
/// `log.level`. Returns the format actually chosen.
pub fn init_tracing(cfg: &LogConfig) -> LogFormat {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = choose_format(
        cfg.format,
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_id(),
    );
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(
                    layer
                        .with_syslog_identifier("kuryer".to_owned())
                        // `CHANNEL_ID=…`, not `F_CHANNEL_ID=…`: the names operators
                        // type in `journalctl -u kuryer CHANNEL_ID=…`. kuryer uses
                        // no field that collides with a journal one.
                        .with_field_prefix(None),
                )
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
                    .with_span_events(FmtSpan::CLOSE)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty | LogFormat::Auto => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_span_events(FmtSpan::CLOSE)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = result;
    format
}

/// The format `auto` means: journald when stderr *is* the journal stream
/// systemd connected (`JOURNAL_STREAM` = `<dev>:<inode>` of that stream, as
/// systemd's documentation says to check — the variable alone is inherited
/// by children whose stderr was redirected), else pretty text.
pub fn choose_format(
    configured: LogFormat,
    journal_stream: Option<&str>,
    stderr: Option<(u64, u64)>,
) -> LogFormat {
    match configured {
        LogFormat::Auto => {
            let matches = journal_stream
                .and_then(|v| v.split_once(':'))
                .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
                .is_some_and(|id| Some(id) == stderr);
            if matches {
                LogFormat::Journald
            } else {
                LogFormat::Pretty
            }
        }
        other => other,
    }
}

/// Device and inode of this process's stderr.
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    // stat() through /proc follows the descriptor to its socket or file.
    let m = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((m.dev(), m.ino()))
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
            .set_buckets_for_metric(
                Matcher::Full(names::DB_BATCH_SECONDS.to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(names::DB_BATCH_ROWS.to_owned()),
                &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0],
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(names::UPDATE_LOOP_LAG_SECONDS.to_owned()),
                &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let _ = started();
        // Fails only when another recorder is installed (never, in this
        // binary); the handle still renders our own metrics then.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// When the process started (first call: the recorder's installation,
/// the first thing `main` does).
fn started() -> std::time::Instant {
    static STARTED: OnceLock<std::time::Instant> = OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// `/metrics`: the process gauges refreshed, then everything rendered.
pub fn render() -> String {
    let handle = metrics_handle();
    metrics::gauge!(names::UPTIME_SECONDS).set(started().elapsed().as_secs_f64());
    if let Some(rss) = resident_memory_bytes() {
        metrics::gauge!(names::PROCESS_RESIDENT_MEMORY_BYTES).set(rss as f64);
    }
    handle.render()
}

/// Resident set size from `/proc/self/statm` (pages × page size).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Every platform kuryer is packaged for (Debian amd64/arm64) uses 4 KiB
    // pages by default; sysconf would need unsafe code for a rounding error.
    Some(pages * 4096)
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
        "Channels being read (a poller runs for each); pending channels are not counted."
    );
    describe_gauge!(
        names::SUBSCRIBED_CHANNELS,
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
    describe_counter!(
        names::DELIVERIES_FAILED_TOTAL,
        Unit::Count,
        "Deliveries that failed for good, by reason."
    );
    describe_counter!(
        names::TELEGRAM_429_TOTAL,
        Unit::Count,
        "429 answers from Telegram by what they paused (chat or bot)."
    );
    describe_counter!(
        names::FLOOD_WAIT_SECONDS_TOTAL,
        Unit::Seconds,
        "Seconds Telegram told us to wait, by account."
    );
    describe_gauge!(
        names::QUEUE_DEPTH,
        Unit::Count,
        "Work waiting in a stage of the pipeline."
    );
    describe_histogram!(
        names::DB_BATCH_ROWS,
        Unit::Count,
        "Rows in one DbWriter batch."
    );
    describe_histogram!(
        names::DB_BATCH_SECONDS,
        Unit::Seconds,
        "Time to write one DbWriter batch."
    );
    describe_counter!(
        names::DEDUP_HITS_TOTAL,
        Unit::Count,
        "Deliveries found already sent and not sent again, by layer."
    );
    describe_gauge!(
        names::READER_ACCOUNTS,
        Unit::Count,
        "MTProto reader accounts by state."
    );
    describe_histogram!(
        names::UPDATE_LOOP_LAG_SECONDS,
        Unit::Seconds,
        "Age of a channel post when the bot's update loop received it."
    );
    describe_gauge!(
        names::PROCESS_RESIDENT_MEMORY_BYTES,
        Unit::Bytes,
        "Resident memory of the process."
    );
    describe_gauge!(
        names::UPTIME_SECONDS,
        Unit::Seconds,
        "Seconds since the process started."
    );
    // Register the series dashboards plot at zero, so a graph has a line
    // from the first scrape instead of "no data" until the first event.
    // This runs when the recorder is installed, which `daemon::run` does
    // before anything records: the gauges' owners set them after this
    // (setting one here used to overwrite the value the pipeline had set).
    metrics::counter!(names::MESSAGES_FORWARDED_TOTAL).absolute(0);
    metrics::gauge!(names::ACTIVE_CHANNELS).set(0.0);
    for reason in ["refused", "gone", "failing"] {
        metrics::counter!(names::DELIVERIES_FAILED_TOTAL, "reason" => reason).absolute(0);
    }
    for scope in ["chat", "bot"] {
        metrics::counter!(names::TELEGRAM_429_TOTAL, "scope" => scope).absolute(0);
    }
    metrics::counter!(names::DEDUP_HITS_TOTAL, "layer" => "redis").absolute(0);
    for state in ["active", "flood_wait", "broken"] {
        metrics::gauge!(names::READER_ACCOUNTS, "state" => state).set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_journald_only_when_the_journal_stream_is_our_stderr() {
        let me = Some((23, 4567));
        assert_eq!(
            choose_format(LogFormat::Auto, Some("23:4567"), me),
            LogFormat::Journald
        );
        // Inherited by a child whose stderr was redirected elsewhere.
        assert_eq!(
            choose_format(LogFormat::Auto, Some("23:9999"), me),
            LogFormat::Pretty
        );
        assert_eq!(choose_format(LogFormat::Auto, None, me), LogFormat::Pretty);
        assert_eq!(
            choose_format(LogFormat::Auto, Some("garbage"), me),
            LogFormat::Pretty
        );
        // An explicit choice is kept.
        assert_eq!(
            choose_format(LogFormat::Json, Some("23:4567"), me),
            LogFormat::Json
        );
    }
}
