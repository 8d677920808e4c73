//! Every metric kuryer exports, declared once: its name, kind, unit, help
//! text (what `/metrics` prints as `# HELP`) and label names. The help text
//! is each metric's documentation; README's metrics section lists the same
//! names (a test holds the two together).
//!
//! A metric is typed by its kind and its number of labels, so a counter
//! cannot be set like a gauge and a series cannot miss a label: callers pass
//! only the label *values*, in the order declared here. Counters and
//! histograms are recorded by the events in [`super::events`] (and the
//! daemon's own events in `src/telemetry/events.rs`); gauges are set by the
//! component that owns the state they show. The first three names are the
//! seed's and are kept as they are.

use metrics::{SharedString, Unit};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; Prometheus names end in `_total`.
    Counter,
    /// A value that is set.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric's declaration.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit `/metrics` states.
    pub unit: Unit,
    /// What the metric counts and what its label values mean.
    pub help: &'static str,
    /// The label names, in the order callers give the values.
    pub labels: &'static [&'static str],
    /// A histogram's bucket bounds; `None` for the exporter's default.
    pub buckets: Option<&'static [f64]>,
}

impl Metric {
    const fn new(
        name: &'static str,
        kind: Kind,
        unit: Unit,
        labels: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Metric {
            name,
            kind,
            unit,
            help,
            labels,
            buckets: None,
        }
    }

    fn labelled<const N: usize>(&self, values: [SharedString; N]) -> Vec<metrics::Label> {
        self.labels
            .iter()
            .zip(values)
            .map(|(k, v)| metrics::Label::new(*k, v))
            .collect()
    }
}

/// A counter with `N` labels.
#[derive(Debug, Clone, Copy)]
pub struct Counter<const N: usize>(Metric);

impl<const N: usize> Counter<N> {
    const fn new(
        name: &'static str,
        unit: Unit,
        labels: &'static [&'static str; N],
        help: &'static str,
    ) -> Self {
        Counter(Metric::new(name, Kind::Counter, unit, labels, help))
    }

    /// The declaration.
    pub const fn metric(&self) -> Metric {
        self.0
    }

    /// The series with these label values (in declaration order).
    pub fn at(&self, values: [SharedString; N]) -> metrics::Counter {
        metrics::counter!(self.0.name, self.0.labelled(values))
    }
}

impl Counter<0> {
    /// The one series of a counter without labels.
    pub fn get(&self) -> metrics::Counter {
        metrics::counter!(self.0.name)
    }
}

/// A gauge with `N` labels.
#[derive(Debug, Clone, Copy)]
pub struct Gauge<const N: usize>(Metric);

impl<const N: usize> Gauge<N> {
    const fn new(
        name: &'static str,
        unit: Unit,
        labels: &'static [&'static str; N],
        help: &'static str,
    ) -> Self {
        Gauge(Metric::new(name, Kind::Gauge, unit, labels, help))
    }

    /// The declaration.
    pub const fn metric(&self) -> Metric {
        self.0
    }

    /// The series with these label values (in declaration order).
    pub fn at(&self, values: [SharedString; N]) -> metrics::Gauge {
        metrics::gauge!(self.0.name, self.0.labelled(values))
    }
}

impl Gauge<0> {
    /// The one series of a gauge without labels.
    pub fn get(&self) -> metrics::Gauge {
        metrics::gauge!(self.0.name)
    }
}

/// A histogram with `N` labels.
#[derive(Debug, Clone, Copy)]
pub struct Histogram<const N: usize>(Metric);

impl<const N: usize> Histogram<N> {
    const fn new(
        name: &'static str,
        unit: Unit,
        labels: &'static [&'static str; N],
        help: &'static str,
    ) -> Self {
        Histogram(Metric::new(name, Kind::Histogram, unit, labels, help))
    }

    /// The same histogram with these bucket bounds.
    const fn buckets(mut self, bounds: &'static [f64]) -> Self {
        self.0.buckets = Some(bounds);
        self
    }

    /// The declaration.
    pub const fn metric(&self) -> Metric {
        self.0
    }

    /// The series with these label values (in declaration order).
    pub fn at(&self, values: [SharedString; N]) -> metrics::Histogram {
        metrics::histogram!(self.0.name, self.0.labelled(values))
    }
}

impl Histogram<0> {
    /// The one series of a histogram without labels.
    pub fn get(&self) -> metrics::Histogram {
        metrics::histogram!(self.0.name)
    }
}

// --- The pipeline: posts in, deliveries out ---------------------------------

pub const MESSAGES_FORWARDED_TOTAL: Counter<0> = Counter::new(
    "messages_forwarded_total",
    Unit::Count,
    &[],
    "Posts delivered to a destination (the seed's name).",
);
pub const FORWARD_DURATION_SECONDS: Histogram<0> = Histogram::new(
    "forward_duration_seconds",
    Unit::Seconds,
    &[],
    "Time from a post being detected to its delivery being accepted by Telegram (the seed's name).",
)
.buckets(&[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
]);
pub const ACTIVE_CHANNELS: Gauge<0> = Gauge::new(
    "active_channels",
    Unit::Count,
    &[],
    "Channels being read: a poller runs (or is about to restart) for each; channels pending resolution are not counted (the seed's name).",
);
pub const SUBSCRIBED_CHANNELS: Gauge<0> = Gauge::new(
    "kuryer_subscribed_channels",
    Unit::Count,
    &[],
    "Channels with at least one active subscription in the registry.",
);
pub const POSTS_DETECTED_TOTAL: Counter<0> = Counter::new(
    "kuryer_posts_detected_total",
    Unit::Count,
    &[],
    "Posts detected in source channels and recorded.",
);
pub const POLL_DURATION_SECONDS: Histogram<0> = Histogram::new(
    "kuryer_poll_duration_seconds",
    Unit::Seconds,
    &[],
    "Time of one poll of one channel.",
);
pub const POLLER_RESTARTS_TOTAL: Counter<0> = Counter::new(
    "kuryer_poller_restarts_total",
    Unit::Count,
    &[],
    "Channel pollers restarted, or their source rebuilt, after a panic.",
);
pub const WORKER_RESTARTS_TOTAL: Counter<1> = Counter::new(
    "kuryer_worker_restarts_total",
    Unit::Count,
    &["worker"],
    "Background workers (`worker`: `mirror`, `digest`, …) restarted after a panic.",
);
pub const DELIVERIES_FAILED_TOTAL: Counter<1> = Counter::new(
    "kuryer_deliveries_failed_total",
    Unit::Count,
    &["reason"],
    "Deliveries that failed for good, by `reason`: `refused` (Telegram refused this message), `gone` (the bot lost the chat), `failing` (the destination failed too many times in a row).",
);
pub const DELIVERIES_FILTERED_TOTAL: Counter<0> = Counter::new(
    "kuryer_deliveries_filtered_total",
    Unit::Count,
    &[],
    "Deliveries not made because the subscription's filters refused the post.",
);
pub const DELIVERIES_HELD_TOTAL: Counter<0> = Counter::new(
    "kuryer_deliveries_held_total",
    Unit::Count,
    &[],
    "Deliveries held for the subscription's quiet hours at fan-out; they stay owed and the sweep queues them after.",
);
pub const DELIVERIES_RESUMED_TOTAL: Counter<0> = Counter::new(
    "kuryer_deliveries_resumed_total",
    Unit::Count,
    &[],
    "Owed deliveries queued again at start-up, or when this instance took a channel over.",
);
pub const DELIVERIES_SWEPT_TOTAL: Counter<0> = Counter::new(
    "kuryer_deliveries_swept_total",
    Unit::Count,
    &[],
    "Owed deliveries that nothing was sending, found by the periodic sweep and queued.",
);
pub const AMBIGUOUS_SENDS_TOTAL: Counter<0> = Counter::new(
    "kuryer_ambiguous_sends_total",
    Unit::Count,
    &[],
    "Sends whose outcome is unknown (a timeout after the request was written): the one way a duplicate can happen.",
);
pub const DEDUP_HITS_TOTAL: Counter<1> = Counter::new(
    "kuryer_dedup_hits_total",
    Unit::Count,
    &["layer"],
    "Deliveries found already sent and not sent again, by `layer` (`redis`: the key check before a send).",
);
pub const LEASE_DROPPED_TOTAL: Counter<0> = Counter::new(
    "kuryer_lease_dropped_deliveries_total",
    Unit::Count,
    &[],
    "Deliveries dropped unsent because their channel's lease was not surely held by this instance any more (the owner sends them).",
);
pub const DESTINATIONS_DEACTIVATED_TOTAL: Counter<0> = Counter::new(
    "kuryer_destinations_deactivated_total",
    Unit::Count,
    &[],
    "Destinations paused or deactivated (the bot lost the chat, or it kept failing).",
);
pub const DEAD_LETTERS_TOTAL: Counter<1> = Counter::new(
    "kuryer_dead_letters_total",
    Unit::Count,
    &["kind"],
    "Updates or posts that still failed after their retries and were set aside in the `dead_letters` table, by `kind` (`update`, `post`).",
);
pub const DEAD_LETTERS_WAITING: Gauge<1> = Gauge::new(
    "kuryer_dead_letters_waiting",
    Unit::Count,
    &["kind"],
    "Dead letters of the whole installation waiting for an operator (neither replayed nor discarded), by `kind`; read from the database every 15 s.",
);
pub const DEAD_LETTERS_REPLAYED_TOTAL: Counter<1> = Counter::new(
    "kuryer_dead_letters_replayed_total",
    Unit::Count,
    &["kind"],
    "Dead letters this process replayed (sent back through the path they came by), by `kind`.",
);
pub const DEAD_LETTERS_REPLAY_FAILED_TOTAL: Counter<1> = Counter::new(
    "kuryer_dead_letters_replay_failed_total",
    Unit::Count,
    &["kind"],
    "Replays of dead letters that failed again and were kept again with both reasons, by `kind`.",
);
pub const DEAD_LETTERS_DISCARDED_TOTAL: Counter<1> = Counter::new(
    "kuryer_dead_letters_discarded_total",
    Unit::Count,
    &["kind"],
    "Dead letters this process discarded at an operator's word, by `kind`.",
);
pub const QUEUE_DEPTH: Gauge<1> = Gauge::new(
    "kuryer_queue_depth",
    Unit::Count,
    &["stage"],
    "Work waiting in a stage, by `stage`: `limiter` (queued deliveries), `in_flight` (sends on the wire), `db_writer` (rows not yet written).",
);
pub const DB_BATCH_ROWS: Histogram<0> = Histogram::new(
    "kuryer_db_batch_rows",
    Unit::Count,
    &[],
    "Rows in one delivery batch the DbWriter wrote.",
)
.buckets(&[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0]);
pub const DB_BATCH_SECONDS: Histogram<0> = Histogram::new(
    "kuryer_db_batch_seconds",
    Unit::Seconds,
    &[],
    "Time to write one delivery batch.",
)
.buckets(&[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
]);

// --- Bots: the Bot API, its limits, the bots' own chats ----------------------

pub const RATE_LIMITED_TOTAL: Counter<0> = Counter::new(
    "kuryer_rate_limited_total",
    Unit::Count,
    &[],
    "429 answers from the Bot API to a delivery's send.",
);
pub const TELEGRAM_429_TOTAL: Counter<1> = Counter::new(
    "kuryer_telegram_429_total",
    Unit::Count,
    &["scope"],
    "429 answers from the Bot API by what they paused, `scope` = `chat` or `bot` (the whole bot, when several of its chats got one within a second).",
);
pub const BOT_FLOOD_WAIT_SECONDS_TOTAL: Counter<1> = Counter::new(
    "kuryer_bot_flood_wait_seconds_total",
    Unit::Seconds,
    &["bot_id"],
    "Seconds the Bot API told a bot to wait (429 `retry_after`), by `bot_id`.",
);
pub const BOT_TOKEN_REVOKED: Gauge<1> = Gauge::new(
    "kuryer_bot_token_revoked",
    Unit::Count,
    &["bot_id"],
    "1 for a bot whose token Telegram refused (401), by `bot_id`: its deliveries are halted.",
);
pub const BOT_API_UNREADABLE_TOTAL: Counter<1> = Counter::new(
    "kuryer_bot_api_unreadable_total",
    Unit::Count,
    &["method"],
    "Bot API answers this version of kuryer could not read (a field missing or of another shape), by `method`: Telegram changed, not unreachable.",
);
pub const UPDATE_LOOP_LAG_SECONDS: Histogram<0> = Histogram::new(
    "kuryer_update_loop_lag_seconds",
    Unit::Seconds,
    &[],
    "Age of a `channel_post` when the bot's getUpdates loop received it: how far the loop is behind.",
)
.buckets(&[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0]);
pub const UPDATES_UNPARSABLE_TOTAL: Counter<1> = Counter::new(
    "kuryer_updates_unparsable_total",
    Unit::Count,
    &["kind"],
    "Bot updates Telegram sent that could not be parsed, by `kind` (the update's field name, never its content; `answer` for a whole getUpdates answer).",
);
pub const POSTS_UNREADABLE_TOTAL: Counter<1> = Counter::new(
    "kuryer_posts_unreadable_total",
    Unit::Count,
    &["kind"],
    "Channel posts whose content this version of kuryer cannot read, delivered by id all the same, by `kind` (the content's field name, e.g. `live_photo`, never its content).",
);
pub const BOT_COMMANDS_TOTAL: Counter<1> = Counter::new(
    "kuryer_bot_commands_total",
    Unit::Count,
    &["command"],
    "Bot commands and button presses handled, by `command` (`rate_limited` for those the per-user limit dropped).",
);
pub const BOT_REPLY_FAILURES_TOTAL: Counter<1> = Counter::new(
    "kuryer_bot_reply_failures_total",
    Unit::Count,
    &["reason"],
    "Bot replies Telegram refused or that failed after their retries, by `reason` (`blocked`, `refused`, `rate_limited`, `network`).",
);
pub const RESOLVE_NOTICES_TOTAL: Counter<1> = Counter::new(
    "kuryer_bot_resolve_notices_total",
    Unit::Count,
    &["outcome"],
    "Notices telling a subscriber how their channel's look-up ended, by `outcome` (`sent`, `failed`).",
);
pub const CHANNEL_NOTICES_TOTAL: Counter<2> = Counter::new(
    "kuryer_bot_channel_notices_total",
    Unit::Count,
    &["problem", "outcome"],
    "Notices of a channel problem, by `problem` (`private`, `gone`, `unlisted`, `renamed`, `protected`, `bot-removed`, `resumed`) and `outcome` (`sent`, `failed`).",
);
pub const DIGESTS_SENT_TOTAL: Counter<0> = Counter::new(
    "kuryer_digests_sent_total",
    Unit::Count,
    &[],
    "Digests sent (all their parts) and recorded.",
);

// --- Reader accounts (MTProto) ----------------------------------------------

pub const READER_ACCOUNTS: Gauge<1> = Gauge::new(
    "kuryer_reader_accounts",
    Unit::Count,
    &["state"],
    "MTProto reader accounts this instance runs, by `state`: `active`, `flood_wait` (a method of it is waiting out a FLOOD_WAIT), `broken` (Telegram ended its session since this process started).",
);
pub const READER_CALLS_TOTAL: Counter<2> = Counter::new(
    "kuryer_reader_calls_total",
    Unit::Count,
    &["account", "method"],
    "MTProto calls made, by reader `account` and `method`.",
);
pub const READER_FLOOD_WAITS_TOTAL: Counter<2> = Counter::new(
    "kuryer_reader_flood_waits_total",
    Unit::Count,
    &["account", "method"],
    "FLOOD_WAIT answers to a reader account, by `account` and `method`.",
);
pub const READER_FLOOD_WAIT_SECONDS_TOTAL: Counter<2> = Counter::new(
    "kuryer_reader_flood_wait_seconds_total",
    Unit::Seconds,
    &["account", "method"],
    "Seconds of FLOOD_WAIT Telegram imposed on a reader account, by `account` and `method`.",
);
pub const READER_PUSHED_POSTS_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_pushed_posts_total",
    Unit::Count,
    &[],
    "New posts pushed to reader accounts that woke their channel.",
);
pub const READER_CHANGES_TOTAL: Counter<1> = Counter::new(
    "kuryer_reader_changes_total",
    Unit::Count,
    &["kind"],
    "Edits and deletions reader accounts saw, by `kind` (`edit`, `delete`).",
);
pub const READER_CHANGES_DROPPED_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_changes_dropped_total",
    Unit::Count,
    &[],
    "Edits and deletions dropped unstored because their queue was full.",
);
pub const READER_ACCOUNTS_LOST_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_accounts_lost_total",
    Unit::Count,
    &[],
    "Reader accounts whose session Telegram ended.",
);
pub const READER_ACCOUNTS_FROZEN_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_accounts_frozen_total",
    Unit::Count,
    &[],
    "Reader accounts Telegram froze (FROZEN_METHOD_INVALID): no longer used until logged in again.",
);
pub const READER_KEYS_BURNED_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_keys_burned_total",
    Unit::Count,
    &[],
    "Reader accounts whose auth key Telegram burned (AUTH_KEY_DUPLICATED: used on two connections at once); each needs kuryer login again.",
);
pub const READER_CHANNELS_LEFT_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_channels_left_total",
    Unit::Count,
    &[],
    "Channels a reader account left because nobody had subscribed to them for reader.orphan_grace_s.",
);
pub const READER_PEER_FLOOD_TOTAL: Counter<0> = Counter::new(
    "kuryer_reader_peer_flood_total",
    Unit::Count,
    &[],
    "Joins Telegram refused with PEER_FLOOD (the account is limited for spam); that account joins nothing more that day.",
);
pub const READER_BUDGETS_SPENT_TOTAL: Counter<1> = Counter::new(
    "kuryer_reader_budgets_spent_total",
    Unit::Count,
    &["kind"],
    "Times a reader account's budget for the day ran out, by `kind` (`resolve`, `join`); the work waits for another account or the next UTC day.",
);
pub const READER_RESOLVED_TOTAL: Counter<1> = Counter::new(
    "kuryer_reader_resolved_total",
    Unit::Count,
    &["outcome"],
    "Channel look-ups (contacts.resolveUsername) by `outcome` (`active`, or why the name leads to no readable channel).",
);

// --- Instances (scale-out) ----------------------------------------------------

pub const OWNED_CHANNELS: Gauge<0> = Gauge::new(
    "kuryer_owned_channels",
    Unit::Count,
    &[],
    "Channels this instance holds the lease of.",
);
pub const OWNED_ACCOUNTS: Gauge<0> = Gauge::new(
    "kuryer_owned_accounts",
    Unit::Count,
    &[],
    "Reader accounts this instance holds the lease of.",
);
pub const OWNED_BOTS: Gauge<0> = Gauge::new(
    "kuryer_owned_bots",
    Unit::Count,
    &[],
    "Bots whose getUpdates this instance consumes.",
);
pub const LIVE_INSTANCES: Gauge<0> = Gauge::new(
    "kuryer_live_instances",
    Unit::Count,
    &[],
    "Live instances this one counted at its last heartbeat.",
);

// --- The HTTP API and the process ---------------------------------------------

pub const HTTP_REQUESTS_TOTAL: Counter<2> = Counter::new(
    "kuryer_http_requests_total",
    Unit::Count,
    &["route", "status"],
    "HTTP API requests by matched `route` pattern and `status`.",
);
pub const SUBSCRIPTIONS_CREATED_TOTAL: Counter<0> = Counter::new(
    "kuryer_subscriptions_created_total",
    Unit::Count,
    &[],
    "Subscriptions created through the HTTP API.",
);
pub const PROCESS_RESIDENT_MEMORY_BYTES: Gauge<0> = Gauge::new(
    "process_resident_memory_bytes",
    Unit::Bytes,
    &[],
    "Resident memory of the process.",
);
pub const UPTIME_SECONDS: Gauge<0> = Gauge::new(
    "kuryer_uptime_seconds",
    Unit::Seconds,
    &[],
    "Seconds since the process started.",
);

/// Every metric above, in the order `/metrics` describes them.
pub const ALL: &[Metric] = &[
    MESSAGES_FORWARDED_TOTAL.metric(),
    FORWARD_DURATION_SECONDS.metric(),
    ACTIVE_CHANNELS.metric(),
    SUBSCRIBED_CHANNELS.metric(),
    POSTS_DETECTED_TOTAL.metric(),
    POLL_DURATION_SECONDS.metric(),
    POLLER_RESTARTS_TOTAL.metric(),
    WORKER_RESTARTS_TOTAL.metric(),
    DELIVERIES_FAILED_TOTAL.metric(),
    DELIVERIES_FILTERED_TOTAL.metric(),
    DELIVERIES_HELD_TOTAL.metric(),
    DELIVERIES_RESUMED_TOTAL.metric(),
    DELIVERIES_SWEPT_TOTAL.metric(),
    AMBIGUOUS_SENDS_TOTAL.metric(),
    DEDUP_HITS_TOTAL.metric(),
    LEASE_DROPPED_TOTAL.metric(),
    DESTINATIONS_DEACTIVATED_TOTAL.metric(),
    DEAD_LETTERS_TOTAL.metric(),
    DEAD_LETTERS_WAITING.metric(),
    DEAD_LETTERS_REPLAYED_TOTAL.metric(),
    DEAD_LETTERS_REPLAY_FAILED_TOTAL.metric(),
    DEAD_LETTERS_DISCARDED_TOTAL.metric(),
    QUEUE_DEPTH.metric(),
    DB_BATCH_ROWS.metric(),
    DB_BATCH_SECONDS.metric(),
    RATE_LIMITED_TOTAL.metric(),
    TELEGRAM_429_TOTAL.metric(),
    BOT_FLOOD_WAIT_SECONDS_TOTAL.metric(),
    BOT_TOKEN_REVOKED.metric(),
    BOT_API_UNREADABLE_TOTAL.metric(),
    UPDATE_LOOP_LAG_SECONDS.metric(),
    UPDATES_UNPARSABLE_TOTAL.metric(),
    POSTS_UNREADABLE_TOTAL.metric(),
    BOT_COMMANDS_TOTAL.metric(),
    BOT_REPLY_FAILURES_TOTAL.metric(),
    RESOLVE_NOTICES_TOTAL.metric(),
    CHANNEL_NOTICES_TOTAL.metric(),
    DIGESTS_SENT_TOTAL.metric(),
    READER_ACCOUNTS.metric(),
    READER_CALLS_TOTAL.metric(),
    READER_FLOOD_WAITS_TOTAL.metric(),
    READER_FLOOD_WAIT_SECONDS_TOTAL.metric(),
    READER_PUSHED_POSTS_TOTAL.metric(),
    READER_CHANGES_TOTAL.metric(),
    READER_CHANGES_DROPPED_TOTAL.metric(),
    READER_ACCOUNTS_LOST_TOTAL.metric(),
    READER_ACCOUNTS_FROZEN_TOTAL.metric(),
    READER_KEYS_BURNED_TOTAL.metric(),
    READER_CHANNELS_LEFT_TOTAL.metric(),
    READER_PEER_FLOOD_TOTAL.metric(),
    READER_BUDGETS_SPENT_TOTAL.metric(),
    READER_RESOLVED_TOTAL.metric(),
    OWNED_CHANNELS.metric(),
    OWNED_ACCOUNTS.metric(),
    OWNED_BOTS.metric(),
    LIVE_INSTANCES.metric(),
    HTTP_REQUESTS_TOTAL.metric(),
    SUBSCRIPTIONS_CREATED_TOTAL.metric(),
    PROCESS_RESIDENT_MEMORY_BYTES.metric(),
    UPTIME_SECONDS.metric(),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_is_in_all_once() {
        // Each `pub const X: Counter<…> = …` above is one declaration.
        let source = include_str!("registry.rs");
        let declared = source
            .lines()
            .filter(|l| {
                ["Counter<", "Gauge<", "Histogram<"]
                    .iter()
                    .any(|k| l.starts_with("pub const ") && l.contains(&format!(": {k}")))
            })
            .count();
        assert_eq!(declared, ALL.len(), "a declared metric is missing from ALL");
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a name is declared twice");
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in ALL {
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            // Counters end in `_total`; nothing else does.
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert!(
                m.buckets.is_none() || m.kind == Kind::Histogram,
                "{}",
                m.name
            );
            assert!(!m.help.is_empty(), "{}", m.name);
        }
    }
}
