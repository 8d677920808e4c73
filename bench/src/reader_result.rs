//! What a reader run measured: the steady state's counts, latencies, CPU
//! and calls per account, and the catch-up's, as the report and the table
//! read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Latency figures (ms).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Latency {
    /// Posts measured.
    pub(crate) n: u64,
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Largest.
    pub(crate) max: f64,
}

impl Latency {
    /// The figures of a set of latencies (ms); all zero when empty.
    pub(crate) fn of(mut ms: Vec<f64>) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
        Self {
            n: ms.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            max: ms[ms.len() - 1],
        }
    }
}

/// Calls of one method per account per minute.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct CallRate {
    /// Mean over the accounts.
    pub(crate) mean_per_min: f64,
    /// The busiest account.
    pub(crate) max_per_min: f64,
    /// FLOOD_WAIT answers over all accounts in the window.
    pub(crate) flood_waits: u64,
}

/// The catch-up part.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct CatchUp {
    /// Posts published while down.
    pub(crate) posts: u64,
    /// Of them recorded.
    pub(crate) recorded: u64,
    /// Not recorded.
    pub(crate) lost: u64,
    /// Recorded twice.
    pub(crate) duplicates: u64,
    /// From the start call until the last one was committed (s).
    pub(crate) seconds: f64,
    /// Posts recorded a second.
    pub(crate) per_s: f64,
    /// Calls by method over all accounts during the catch-up.
    pub(crate) calls: BTreeMap<String, u64>,
    /// FLOOD_WAIT answers during the catch-up.
    pub(crate) flood_waits: u64,
    /// Calls made while a flood wait ran, during the catch-up.
    pub(crate) calls_during_flood_wait: u64,
}

/// What one reader run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct ReaderResult {
    /// The spec's label.
    pub(crate) label: String,
    /// Channels.
    pub(crate) channels: u32,
    /// Accounts.
    pub(crate) accounts: u32,
    /// Channels joined at the start.
    pub(crate) joined: u32,
    /// Channels polled at the start (assigned, not joined).
    pub(crate) polled: u32,
    /// `reader.history_per_second` / `reader.poll_interval_s` used.
    pub(crate) history_per_second: f64,
    /// `reader.poll_interval_s` used.
    pub(crate) poll_interval_s: u64,
    /// Creating the data centre, channels, accounts and assignments (s).
    pub(crate) setup_s: f64,
    /// From the pipeline's start until every channel had its first read
    /// (a getHistory from its mark, at the accounts' pace) (s).
    pub(crate) first_reads_s: f64,
    /// Steady state: posts published.
    pub(crate) posts: u64,
    /// Of them recorded.
    pub(crate) recorded: u64,
    /// Not recorded.
    pub(crate) lost: u64,
    /// Recorded twice.
    pub(crate) duplicates: u64,
    /// Publish → committed, posts of joined channels (pushed).
    pub(crate) latency_joined: Latency,
    /// Publish → committed, posts of polled channels.
    pub(crate) latency_polled: Latency,
    /// The steady window: first publish → last commit (s).
    pub(crate) window_s: f64,
    /// CPU of kuryer (the process without the fake's, the publisher's and
    /// the observer's threads) per post in the window (µs).
    pub(crate) cpu_us_per_post: f64,
    /// The fake data centre's CPU in the window (s).
    pub(crate) fake_cpu_s: f64,
    /// RSS before the pipeline started (the fake's world included) (MiB).
    pub(crate) rss_before_mb: f64,
    /// Peak RSS of the process from the pipeline's start (MiB).
    pub(crate) peak_rss_mb: f64,
    /// Calls per account per minute by method in the window.
    pub(crate) calls: BTreeMap<String, CallRate>,
    /// FLOOD_WAIT answers in the steady window, all methods and accounts.
    pub(crate) flood_waits: u64,
    /// Calls made while a flood wait ran (the fake counts them apart).
    pub(crate) calls_during_flood_wait: u64,
    /// The catch-up, when run.
    pub(crate) catch_up: Option<CatchUp>,
}
