//! The limits the RateLimiter keeps: Telegram's numbers as configured
//! ([`LimiterConfig`]), and the intervals and bounds that follow from them.
//!
//! Telegram's limits: about 30 messages/s per bot, 1/s per private chat,
//! 20/min per group or channel. Each is used at `safety` (98.5 %) of its
//! value, so network jitter never tips a bot or a chat over.

use std::time::Duration;

/// The limits and bounds of the limiter.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Messages a second per bot token.
    pub per_bot_per_second: f64,
    /// While paid broadcast is on (`per_bot_per_second` is then the paid
    /// rate): the rate of the calls that cannot carry
    /// `allow_paid_broadcast` (albums, forwards). `None`: no such budget.
    pub free_per_bot_per_second: Option<f64>,
    /// Messages a second per private chat.
    pub per_chat_per_second: f64,
    /// Messages a minute per group or channel.
    pub per_group_per_minute: f64,
    /// Bot tokens (lanes); each chat is served by one of them.
    pub bots: usize,
    /// The bot id of each lane, in order (the number before `:` in its
    /// token). A destination pinned to a bot id goes through that lane;
    /// every other destination through lane 0, the primary bot — only the
    /// bot a user started, or that was added to a group, can post there.
    pub bot_ids: Vec<i64>,
    /// Sends in flight at once, all lanes together.
    pub max_in_flight: usize,
    /// Deliveries queued before `Enqueue` makes its caller wait.
    pub queue_capacity: usize,
    /// Deliveries queued for one chat at which it counts as full: its
    /// subscriptions' further deliveries are held by their feeders (left
    /// owed in the database, queued by the sweep in order once there is
    /// room), so one destination's backlog cannot fill the whole queue.
    pub queue_per_chat: usize,
    /// DbWriter backlog (rows) above which sending pauses.
    pub max_db_backlog: usize,
    /// Fraction of each limit actually used, so jitter never tips it over.
    pub safety: f64,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            per_bot_per_second: 30.0,
            free_per_bot_per_second: None,
            per_chat_per_second: 1.0,
            per_group_per_minute: 20.0,
            bots: 1,
            bot_ids: Vec::new(),
            max_in_flight: 64,
            queue_capacity: 100_000,
            queue_per_chat: 1_000,
            max_db_backlog: 50_000,
            safety: 0.985,
        }
    }
}

/// The numbers the limits shared between instances use: the same as this
/// limiter's own, so one instance alone sends exactly as it would without
/// sharing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedRates {
    /// A bot's GCRA emission interval.
    pub bot_interval: Duration,
    /// Sends a bot may have in flight or completed within the last second.
    pub bot_window_cap: usize,
    /// How far ahead of now a bot's theoretical arrival time may be.
    pub tolerance: Duration,
    /// Spacing of a private chat, from the previous send's completion.
    pub chat_interval: Duration,
    /// Spacing of a group or channel.
    pub group_interval: Duration,
}

impl LimiterConfig {
    /// The numbers for limits shared with other instances.
    pub fn shared_rates(&self) -> SharedRates {
        let l = Limits::new(self);
        SharedRates {
            bot_interval: l.lane_interval,
            bot_window_cap: l.window_cap,
            tolerance: l.tolerance,
            chat_interval: l.chat_interval,
            group_interval: l.group_interval,
        }
    }
}

/// Telegram's window for a bot's messages a second.
pub(super) const WINDOW: Duration = Duration::from_secs(1);

/// While the DbWriter's backlog is over its bound, how soon dispatching
/// looks again.
pub(super) const BACKLOG_RECHECK: Duration = Duration::from_millis(10);

/// 429s of one bot are remembered this long …
pub(super) const FLOOD_MEMORY: Duration = Duration::from_secs(1);

/// … and this many distinct chats refused within it pause the whole bot.
pub(super) const FLOOD_CHATS_FOR_LANE_PAUSE: usize = 3;

/// Replies one chat may have waiting; a later one is dropped unsent.
pub(super) const MAX_REPLIES_QUEUED: usize = 20;

/// How often idle chats are forgotten.
pub(super) const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// How long a moved chat's old id is still taken as its new one: far longer
/// than a send in flight or a fan-out on its way, while the database already
/// has the new id for anything read later.
pub(super) const MOVED_CHAT_MEMORY: Duration = Duration::from_secs(3600);

/// The GCRA tolerance never exceeds this.
const MAX_TOLERANCE: Duration = Duration::from_millis(5);

/// The time between two sends at `per_second × safety`.
fn interval_of(per_second: f64, safety: f64) -> Duration {
    Duration::from_secs_f64(1.0 / (per_second * safety).max(1e-9))
}

/// What the schedule works with, derived once from a [`LimiterConfig`].
#[derive(Debug, Clone)]
pub(super) struct Limits {
    /// Lanes (bots), at least one.
    pub(super) lanes: usize,
    /// The bot id of each lane, as configured.
    pub(super) bot_ids: Vec<i64>,
    /// A bot's GCRA emission interval.
    pub(super) lane_interval: Duration,
    /// Sends a bot may have in flight or completed within the last [`WINDOW`].
    pub(super) window_cap: usize,
    /// How far ahead of now a bot's `tat` may be and still allow a send.
    pub(super) tolerance: Duration,
    /// Spacing of a private chat.
    pub(super) chat_interval: Duration,
    /// Spacing of a group or channel: the stricter of the two limits.
    pub(super) group_interval: Duration,
    /// Sends in flight at once, all lanes together.
    pub(super) max_in_flight: usize,
    /// DbWriter backlog above which nothing is dispatched.
    pub(super) max_db_backlog: usize,
    /// Deliveries queued for one chat at which it is full.
    pub(super) queue_per_chat: usize,
    /// Sends one person may have in flight on a bot at once
    /// (`schedule/people.rs`): a fifth of the bot's window.
    pub(super) person_in_flight: usize,
    /// The free rate of a paid lane, and the safety it is used at.
    pub(super) free: Option<(f64, f64)>,
}

impl Limits {
    pub(super) fn new(cfg: &LimiterConfig) -> Self {
        let chat_interval = interval_of(cfg.per_chat_per_second, cfg.safety);
        let window_cap = cfg.per_bot_per_second.floor().clamp(1.0, usize::MAX as f64) as usize;
        Self {
            lanes: cfg.bots.max(1),
            bot_ids: cfg.bot_ids.clone(),
            lane_interval: interval_of(cfg.per_bot_per_second, cfg.safety),
            window_cap,
            person_in_flight: (window_cap / 5).max(1),
            // GCRA tolerance: lets a late timer catch up without ever
            // exceeding the safety margin (1 - safety of a second is the
            // slack there is).
            tolerance: Duration::from_secs_f64((1.0 - cfg.safety).max(0.0) / 3.0)
                .min(MAX_TOLERANCE),
            chat_interval,
            group_interval: chat_interval
                .max(interval_of(cfg.per_group_per_minute / 60.0, cfg.safety)),
            max_in_flight: cfg.max_in_flight,
            max_db_backlog: cfg.max_db_backlog,
            queue_per_chat: cfg.queue_per_chat.max(1),
            free: cfg.free_per_bot_per_second.map(|r| (r, cfg.safety)),
        }
    }

    /// The spacing of a chat of this kind.
    pub(super) fn chat_interval(&self, group_like: bool) -> Duration {
        if group_like {
            self.group_interval
        } else {
            self.chat_interval
        }
    }

    /// The lane of a destination pinned to `bot_id`: that bot's, or the
    /// primary bot's (lane 0) when it is not pinned or the bot is unknown.
    pub(super) fn lane_of(&self, bot_id: Option<i64>) -> usize {
        lane_of(&self.bot_ids, self.lanes, bot_id)
    }
}

/// The lane of a destination pinned to `bot_id` among `lanes` lanes whose
/// bot ids are `bot_ids`: that bot's, or lane 0.
pub(super) fn lane_of(bot_ids: &[i64], lanes: usize, bot_id: Option<i64>) -> usize {
    bot_id
        .and_then(|id| bot_ids.iter().position(|b| *b == id))
        .filter(|l| *l < lanes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegrams_numbers_at_the_safety_margin() {
        let l = Limits::new(&LimiterConfig::default());
        assert_eq!(l.lanes, 1);
        assert_eq!(l.window_cap, 30);
        // 1 / (30 × 0.985) s, 1 / 0.985 s and 60 / (20 × 0.985) s.
        assert_eq!(l.lane_interval, Duration::from_secs_f64(1.0 / 29.55));
        assert_eq!(l.chat_interval(false), Duration::from_secs_f64(1.0 / 0.985));
        assert_eq!(
            l.chat_interval(true),
            Duration::from_secs_f64(1.0 / (20.0 / 60.0 * 0.985))
        );
        // (1 - 0.985) / 3 s = 5 ms, the cap.
        assert_eq!(l.tolerance, Duration::from_millis(5));
    }

    #[test]
    fn a_pinned_destination_goes_through_its_bot() {
        let l = Limits::new(&LimiterConfig {
            bots: 2,
            bot_ids: vec![111, 222, 333],
            ..LimiterConfig::default()
        });
        assert_eq!(l.lane_of(None), 0);
        assert_eq!(l.lane_of(Some(222)), 1);
        assert_eq!(l.lane_of(Some(999)), 0);
        // An id beyond the configured lanes falls back to the primary bot.
        assert_eq!(l.lane_of(Some(333)), 0);
    }
}
