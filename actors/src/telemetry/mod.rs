//! Telemetry: every metric kuryer exports, declared once ([`registry`]),
//! and the named events that report what the actors did ([`events`]): one
//! call writes the log line and records the metric together.
//!
//! Counters and histograms are recorded only by event functions; a gauge is
//! set by the one component that owns the state it shows (the supervisor's
//! channel count, the registry's subscribed channels, the daemon's queue
//! depths and leases). `tests/it/ops/metrics.rs` holds the rule that no
//! metric name is written anywhere else.

/// The events the actors report: a log line and its metrics in one call.
pub mod events;
/// The declaration of every metric: name, kind, unit, help, labels.
#[allow(missing_docs)] // a metric's documentation is its `help` text
pub mod registry;
