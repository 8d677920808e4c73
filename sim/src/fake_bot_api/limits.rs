//! Telegram's rate limits as the fake enforces them: [`FakeLimits`] (the
//! limits in Telegram's terms), a rule per bot and per chat, sliding windows
//! of accepted requests, and the `retry_after` a 429 carries.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Rate limits the fake enforces, in Telegram's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FakeLimits {
    /// Messages per bot token per second, without `allow_paid_broadcast`.
    pub per_bot_per_second: f64,
    /// Messages per bot token per second in all, with
    /// `allow_paid_broadcast` on the requests that may carry it.
    pub paid_per_bot_per_second: f64,
    /// Sending requests per bot per private chat per second.
    pub per_chat_per_second: f64,
    /// Sending requests per bot per group, supergroup or channel per minute.
    pub per_group_per_minute: f64,
    /// When false nothing is limited (and no 429 is ever answered).
    pub enforce: bool,
}

impl FakeLimits {
    /// Telegram's published limits: 30 messages a second per bot, 1 a second
    /// per chat, 20 a minute per group (source:
    /// <https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>);
    /// 1,000 a second with `allow_paid_broadcast` (source:
    /// <https://core.telegram.org/bots/api#sendmessage>, `allow_paid_broadcast`:
    /// "up to 1000 messages per second, ignoring broadcasting limits").
    pub fn telegram() -> Self {
        Self {
            per_bot_per_second: 30.0,
            paid_per_bot_per_second: 1000.0,
            per_chat_per_second: 1.0,
            per_group_per_minute: 20.0,
            enforce: true,
        }
    }

    /// Telegram's limits multiplied by `k` (e.g. `scaled(10.0)` lets a short
    /// benchmark push ten times the real volume through the same shape).
    pub fn scaled(k: f64) -> Self {
        let t = Self::telegram();
        Self {
            per_bot_per_second: t.per_bot_per_second * k,
            paid_per_bot_per_second: t.paid_per_bot_per_second * k,
            per_chat_per_second: t.per_chat_per_second * k,
            per_group_per_minute: t.per_group_per_minute * k,
            enforce: true,
        }
    }

    /// No limits at all.
    pub fn off() -> Self {
        Self {
            enforce: false,
            ..Self::telegram()
        }
    }
}

impl Default for FakeLimits {
    fn default() -> Self {
        Self::telegram()
    }
}

/// A rate limit: at most `count` requests in any window of `window`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rule {
    count: usize,
    window: Duration,
}

impl Rule {
    /// `rate` requests per `window`, as an integer count over a window scaled
    /// so that count/window is exactly the rate (0.5/s → 1 per 2 s, 1.5/s →
    /// 1 per 0.667 s, 30/s → 30 per 1 s). A rate that is not a positive
    /// number means no limit.
    fn new(rate: f64, window: Duration) -> Option<Self> {
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        let count = rate.floor().max(1.0);
        Some(Self {
            count: count as usize,
            window: window.mul_f64(count / rate),
        })
    }
}

/// The limits in force; `None` where nothing is enforced.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rules {
    pub(super) bot: Option<Rule>,
    /// All of a bot's messages, paid or not, while any carry the flag.
    pub(super) paid: Option<Rule>,
    pub(super) private: Option<Rule>,
    pub(super) group: Option<Rule>,
}

impl Rules {
    pub(super) fn new(limits: &FakeLimits) -> Self {
        if !limits.enforce {
            return Self {
                bot: None,
                paid: None,
                private: None,
                group: None,
            };
        }
        let second = Duration::from_secs(1);
        Self {
            bot: Rule::new(limits.per_bot_per_second, second),
            paid: Rule::new(limits.paid_per_bot_per_second, second),
            private: Rule::new(limits.per_chat_per_second, second),
            group: Rule::new(limits.per_group_per_minute, Duration::from_secs(60)),
        }
    }
}

/// The instants of accepted requests still inside a sliding window.
#[derive(Default)]
pub(super) struct Window(VecDeque<Instant>);

impl Window {
    /// How long until one more request fits, or `None` if it fits now. The
    /// window is (now − window, now]: a request exactly one window after an
    /// earlier one no longer sees it.
    pub(super) fn wait(&mut self, rule: Rule, now: Instant) -> Option<Duration> {
        self.wait_n(rule, now, 1)
    }

    /// How long until `n` more messages fit (an album's items count one
    /// each); more than the rule's count fit only into an empty window.
    pub(super) fn wait_n(&mut self, rule: Rule, now: Instant, n: usize) -> Option<Duration> {
        while let Some(&t) = self.0.front() {
            if now.saturating_duration_since(t) >= rule.window {
                self.0.pop_front();
            } else {
                break;
            }
        }
        let need = n.clamp(1, rule.count);
        if self.0.len() + need <= rule.count {
            return None;
        }
        // The entries that must leave first: all but `count - need`.
        let oldest = self.0[self.0.len() - (rule.count - need) - 1];
        Some(
            rule.window
                .saturating_sub(now.saturating_duration_since(oldest)),
        )
    }

    pub(super) fn record(&mut self, now: Instant) {
        self.0.push_back(now);
    }

    pub(super) fn record_n(&mut self, now: Instant, n: usize) {
        for _ in 0..n.max(1) {
            self.0.push_back(now);
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1 (Telegram never says 0).
pub(super) fn retry_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_is_exact_for_fractional_rates() {
        let r = Rule::new(1.0, Duration::from_secs(1)).unwrap();
        assert_eq!((r.count, r.window), (1, Duration::from_secs(1)));
        let r = Rule::new(20.0, Duration::from_secs(60)).unwrap();
        assert_eq!((r.count, r.window), (20, Duration::from_secs(60)));
        let r = Rule::new(0.5, Duration::from_secs(1)).unwrap();
        assert_eq!((r.count, r.window), (1, Duration::from_secs(2)));
        assert!(Rule::new(0.0, Duration::from_secs(1)).is_none());
        assert!(Rule::new(f64::NAN, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn window_frees_exactly_one_window_later() {
        let rule = Rule::new(2.0, Duration::from_secs(1)).unwrap();
        let mut w = Window::default();
        let t0 = Instant::now();
        assert_eq!(w.wait(rule, t0), None);
        w.record(t0);
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(w.wait(rule, t1), None);
        w.record(t1);
        let t2 = t0 + Duration::from_millis(999);
        assert_eq!(w.wait(rule, t2), Some(Duration::from_millis(1)));
        // (now − 1 s, now]: the send at t0 is out of the window at t0 + 1 s.
        assert_eq!(w.wait(rule, t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_secs(Duration::from_secs(60)), 60);
    }
}
