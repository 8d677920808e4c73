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
    /// Channels posted to while down.
    pub(crate) channels: u32,
    /// Posts recorded after a later post of the same channel.
    pub(crate) out_of_order: u64,
    /// Messages the fake Bot API received in the catch-up (one subscriber a
    /// channel: one a post).
    pub(crate) sent: u64,
    /// getHistory pages the restart read (answered, not refused with a
    /// flood wait) per channel posted to while down (counted per channel
    /// by the fake).
    pub(crate) history_per_channel: f64,
    /// The same per channel with nothing new (0 when every channel was
    /// posted to).
    pub(crate) history_per_quiet_channel: f64,
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
    /// What the daily budgets allow for channels not yet joined.
    pub(crate) projection: Projection,
    /// The fake's getHistory limit: calls an account per window (s).
    pub(crate) history_limit: (u32, u64),
    /// The whole run (first reads, steady state, catch-up): FLOOD_WAIT answers.
    pub(crate) run_flood_waits: u64,
    /// The whole run: calls made while a flood wait ran (counted by the fake).
    pub(crate) run_calls_during_flood_wait: u64,
    /// The whole run: look-ups of the busiest account.
    pub(crate) run_resolves_max: u64,
    /// The whole run: joins of the busiest account.
    pub(crate) run_joins_max: u64,
}

/// The days the daily budgets need before every channel is read and
/// joined, when none is yet: computed from the budgets (a bench cannot wait
/// out the fake's day-long limits). A channel is read (polled) once its
/// account has looked it up — access hashes are per account, so the
/// account that reads a channel looks it up itself: once when the resolver
/// asked it, twice when another account resolved the name first — and
/// pushed to once joined.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Projection {
    /// Channels an account reads (the busiest).
    pub(crate) per_account: u32,
    /// Of them it joins (at most `reader.max_channels_per_account`).
    pub(crate) joined_per_account: u32,
    /// Look-ups an account makes a day: `reader.resolves_per_day`, or less
    /// when `reader.resolve_interval_ms` (over all accounts) allows fewer.
    pub(crate) resolves_per_day: f64,
    /// Joins an account makes on its days 1, 2, … (the ramp), until full.
    pub(crate) joins_by_day: Vec<u32>,
    /// Days until every channel is read: one look-up a channel.
    pub(crate) days_to_read_min: u32,
    /// The same at two look-ups a channel.
    pub(crate) days_to_read_max: u32,
    /// Days until every channel an account may join is joined (after its
    /// look-up, so at least `days_to_read_min`).
    pub(crate) days_to_join: u32,
}

impl Projection {
    /// The projection of `channels` over `accounts` under the budgets of `cfg`.
    pub(crate) fn of(channels: u32, accounts: u32, cfg: &kuryer::config::ReaderConfig) -> Self {
        let accounts = accounts.max(1);
        let per_account = channels.div_ceil(accounts);
        let joined_per_account = per_account.min(cfg.max_channels_per_account);
        let pool_cap = 86_400_000.0 / (cfg.resolve_interval_ms.max(1) as f64);
        let resolves_per_day = f64::from(cfg.resolves_per_day).min(pool_cap / f64::from(accounts));
        let days = |lookups: f64| (lookups / resolves_per_day.max(1e-9)).ceil() as u32;
        // As `reader::budget` ramps them: evenly from the first day's to the
        // full number over the ramp.
        let joins_on = |age: u32| {
            let (first, full, ramp) = (cfg.joins_first_day, cfg.joins_per_day, cfg.join_ramp_days);
            if ramp == 0 || age >= ramp {
                full
            } else {
                first + full.saturating_sub(first) * age / ramp
            }
        };
        // Day by day: a channel is joined only once looked up (one look-up
        // a channel), and at most the day's joins.
        let (mut joins_by_day, mut joined, mut age) = (Vec::new(), 0.0f64, 0u32);
        while joined < f64::from(joined_per_account) && age < 3_650 {
            let j = joins_on(age).max(1);
            joins_by_day.push(j);
            let looked_up = (resolves_per_day * f64::from(age + 1)).min(f64::from(per_account));
            joined = (joined + f64::from(j))
                .min(looked_up)
                .min(f64::from(joined_per_account));
            age += 1;
        }
        Self {
            per_account,
            joined_per_account,
            resolves_per_day,
            joins_by_day,
            days_to_read_min: days(f64::from(per_account)),
            days_to_read_max: days(2.0 * f64::from(per_account)),
            days_to_join: age,
        }
    }
}
