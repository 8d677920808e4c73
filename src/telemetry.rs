//! Logging and metrics set-up, and the named events the daemon reports
//! ([`events`]).
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

/// What the daemon reports (reader accounts, bot updates, notices, the HTTP
/// API): one call writes the log line and records the metric.
pub mod events;

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

/// Every metric kuryer exports, declared once (with the actors, the lowest
/// crate): `actors/src/telemetry/registry.rs`.
pub use kuryer_actors::telemetry::registry;

/// The process-wide Prometheus recorder, installed on first use: every
/// metric of the registry described (its `# HELP` line), with its buckets.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for m in registry::ALL {
            if let Some(buckets) = m.buckets {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(m.name.to_owned()), buckets)
                    .expect("bucket list is not empty");
            }
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let _ = started();
        // Fails only when another recorder is installed (never, in this
        // binary); the handle still renders our own metrics then.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        // This runs when the recorder is installed, which `daemon::run` does
        // before anything records: the gauges' owners set them after this
        // (setting one here used to overwrite the value the pipeline had set).
        kuryer_actors::telemetry::events::register_at_zero();
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
    registry::UPTIME_SECONDS
        .get()
        .set(started().elapsed().as_secs_f64());
    if let Some(rss) = resident_memory_bytes() {
        registry::PROCESS_RESIDENT_MEMORY_BYTES
            .get()
            .set(rss as f64);
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

/// A `# HELP` line (and unit) for every metric of the registry.
fn describe() {
    use kuryer_actors::telemetry::registry::Kind;
    for m in registry::ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_the_registry_help_and_the_series_plotted_at_zero() {
        use kuryer_actors::telemetry::registry::Kind;
        let text = render();
        // Every metric rendered carries its registry HELP line; counters,
        // gauges and histograms all are among them. (Picked from the
        // registry, not named: only events name counters and histograms.)
        let mut kinds = Vec::new();
        for m in registry::ALL {
            if !text.contains(&format!("# TYPE {} ", m.name)) {
                continue;
            }
            assert!(
                text.contains(&format!("# HELP {} {}", m.name, m.help)),
                "no HELP line for {}:\n{text}",
                m.name
            );
            if !kinds.contains(&m.kind) {
                kinds.push(m.kind);
            }
        }
        for kind in [Kind::Counter, Kind::Gauge] {
            assert!(kinds.contains(&kind), "no {kind:?} rendered:\n{text}");
        }
        assert!(
            text.contains("kuryer_deliveries_failed_total{reason=\"gone\"} 0"),
            "{text}"
        );
    }

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
