//! What a run of the real pipeline is asked for ([`PipelineSpec`], how it
//! reads the channels) and what it reports ([`PipelineResult`], the
//! ceiling's [`CeilingResult`]); `pipeline_run` runs it.

use serde::{Deserialize, Serialize};

/// What one pipeline run does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PipelineSpec {
    /// Name in the results (`seed`, `growth-1000`, `ceiling-3`…).
    pub(crate) label: String,
    /// Channels.
    pub(crate) channels: u32,
    /// Users (one private chat each).
    pub(crate) users: u32,
    /// Subscriptions of each user.
    pub(crate) subs: u32,
    /// Group chats subscribed to `group_subs` channels each.
    pub(crate) groups: u32,
    /// Channels a group subscribes to.
    pub(crate) group_subs: u32,
    /// Posts a channel published in the measured rounds.
    pub(crate) posts: u32,
    /// The first round (one post on every channel) measures the poll cycle.
    pub(crate) cycle: bool,
    /// Telegram's limits × this in the fake and the limiter; 0: no limits.
    pub(crate) limit_scale: f64,
    /// Bot tokens.
    pub(crate) bots: usize,
    /// Posts published one at a time afterwards, for latency without a backlog.
    pub(crate) paced_posts: u32,
    /// Interval between paced posts.
    pub(crate) paced_interval_ms: u64,
    /// > 0: a ceiling run: send for this long after the ramp-up, then stop.
    pub(crate) ceiling_s: f64,
    /// How the pipeline reads the channels.
    #[serde(default)]
    pub(crate) reading: Reading,
    /// Albums and forwards in the workload (`ceiling_mix`): forward mode
    /// for part of the subscriptions.
    #[serde(default)]
    pub(crate) mixed: bool,
    /// `allow_paid_broadcast` in kuryer (the fake applies its paid limit to
    /// the calls that carry the flag).
    #[serde(default)]
    pub(crate) paid: bool,
}

/// How a pipeline run reads the channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reading {
    /// From a copy of the channels in this process: a function call, no
    /// network, no Telegram call (the figures of the seed scenario).
    #[default]
    Memory,
    /// From the fake Telegram process's history route over HTTP, one
    /// request a page of 100, as the Python baseline reads it.
    Http,
}

impl Reading {
    /// How it reads, in words for the table.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Reading::Memory => "channels read from an in-process copy (no network call)",
            Reading::Http => "channels read over HTTP from the fake's history route",
        }
    }
}

/// What one pipeline run measured. Units are in the names (`_ms`, `_s`,
/// `_per_s`, `_mb` = MiB); counts are the fake's unless said otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct PipelineResult {
    pub(crate) label: String,
    /// How the channels were read.
    #[serde(default)]
    pub(crate) reading: Reading,
    pub(crate) channels: u32,
    pub(crate) users: u32,
    pub(crate) subscriptions: u64,
    pub(crate) bots: usize,
    pub(crate) limit_scale: f64,
    /// Deliveries of every post published (the fake's count).
    pub(crate) deliveries_expected: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
    pub(crate) albums_split: u64,
    pub(crate) unexpected: u64,
    /// `forwarded_messages` rows with status `sent` after the shutdown.
    pub(crate) rows_persisted: u64,
    pub(crate) registry_load_ms: f64,
    /// One post on every channel → every post recorded and handed to the registry.
    pub(crate) cycle_ms: Option<f64>,
    /// Deliveries of the burst (posts published at once).
    pub(crate) burst_deliveries: u64,
    /// Burst published → every delivery of it accepted by the Bot API and persisted.
    pub(crate) burst_s: f64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) burst_p50_ms: f64,
    pub(crate) burst_p99_ms: f64,
    pub(crate) paced_posts: u32,
    /// Deliveries a second the paced posts asked for.
    pub(crate) paced_offered_per_s: f64,
    pub(crate) paced_p50_ms: Option<f64>,
    pub(crate) paced_p99_ms: Option<f64>,
    pub(crate) paced_max_ms: Option<f64>,
    /// Peak RSS of this process (pipeline and harness, not the fake), MiB.
    pub(crate) peak_rss_mb: f64,
    /// CPU of this process from the pipeline's start to the last delivery.
    pub(crate) cpu_s: f64,
    pub(crate) cpu_us_per_delivery: f64,
    /// Transactions the pipeline ran and their server-side average time.
    pub(crate) db_transactions: u64,
    pub(crate) db_avg_ms: f64,
    /// Redis dedup operations (lookups and marks) and their client-side time.
    pub(crate) redis_ops: u64,
    pub(crate) redis_avg_ms: f64,
    pub(crate) redis_max_ms: f64,
    pub(crate) rate_limited_429: u64,
    pub(crate) ceiling: Option<CeilingResult>,
}

/// The Telegram-ceiling figures of a run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct CeilingResult {
    /// Seconds measured (after the ramp-up).
    pub(crate) seconds: f64,
    /// What Telegram allows: 30/s a bot × bots (× scale).
    pub(crate) allowed_per_s: f64,
    /// Sum of the bots' sustained rates.
    pub(crate) achieved_per_s: f64,
    pub(crate) fraction: f64,
    pub(crate) rate_limited_429: u64,
    /// Densest second of any bot / private chat, densest minute of any group.
    pub(crate) max_bot_in_1s: u64,
    pub(crate) max_private_in_1s: u64,
    pub(crate) max_group_in_60s: u64,
    pub(crate) allowed_bot_in_1s: f64,
    pub(crate) allowed_private_in_1s: f64,
    pub(crate) allowed_group_in_60s: f64,
    /// Rates of each bot.
    pub(crate) per_bot_per_s: Vec<f64>,
    /// Messages a second (an album's items each), all and those without
    /// `allow_paid_broadcast`, summed over the bots.
    #[serde(default)]
    pub(crate) items_per_s: f64,
    #[serde(default)]
    pub(crate) free_items_per_s: f64,
    /// The free messages' share of the free limit (30/s × bots).
    #[serde(default)]
    pub(crate) free_fraction: f64,
    /// All messages' share of the per-bot limit in force (30/s, or the
    /// paid 1,000/s) × bots.
    #[serde(default)]
    pub(crate) items_fraction: f64,
    /// Densest second of any bot's free messages (allowed 30).
    #[serde(default)]
    pub(crate) max_bot_free_items_in_1s: u64,
    /// A paid-broadcast run.
    #[serde(default)]
    pub(crate) paid: bool,
}
