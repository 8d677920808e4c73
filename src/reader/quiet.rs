//! Channels that stop pushing. Telegram does not promise a push for every
//! channel event: core.telegram.org/api/updates ("Subscribing to updates of
//! channels/supergroups") has clients fetch a channel's difference
//! themselves, and grammers forces getChannelDifference only after 15
//! minutes without any update (grammers-session 0.11
//! `message_box/defs.rs`, `NO_UPDATES_TIMEOUT`). kuryer's re-read of every
//! joined channel (`reader.verify_interval_s`, 600 s) is the floor; a
//! channel known to be active is checked sooner.
//!
//! "Active" is measured per channel: the running mean of the gaps between
//! its new posts, pushed or found by a history read (posts found together
//! share the gap). Silent for [`QUIET_GAPS`] of those gaps (at least
//! `reader.quiet_check_min_s`, at most `verify_interval_s`), its history is
//! read once. A channel that posts every few seconds and goes silent is
//! read within a minute; one that posts daily costs nothing more than the
//! 600 s re-read. While a silenced channel goes on posting, each read
//! finds its posts and the next check comes after the same quiet time,
//! so at most one getHistory per `quiet_check_min_s` per channel.
//!
//! The floor grows with the channels an account reads ([`verify_every`]):
//! at Telegram's ~10 getHistory per 30 s an account, 334 joined channels
//! re-read every 600 s would need 0.56 calls a second, more than the whole
//! pace, and a read that carries posts (an id gap, a first read) would wait
//! behind a queue that never empties.

use std::time::Duration;

use tokio::time::Instant;

/// Usual gaps between posts after which a silence is worth a history read:
/// a steady channel rarely stays quiet this long by chance.
pub(super) const QUIET_GAPS: u32 = 4;

/// Share of an account's getHistory pace the re-reads of silent channels
/// may take; the rest is left to reads that carry posts (first reads, id
/// gaps, channels polled because they could not be joined).
pub(super) const VERIFY_SHARE: f64 = 0.5;

/// How long a joined channel of an account reading `held` joined channels
/// stays silent before its history is read again: `floor`
/// (`reader.verify_interval_s`), or longer when re-reading every channel
/// that often would take more than [`VERIFY_SHARE`] of the account's
/// `history_per_second`.
pub(super) fn verify_every(floor: Duration, held: usize, history_per_second: f64) -> Duration {
    let pace = (history_per_second * VERIFY_SHARE).max(0.000_1);
    let needed = Duration::from_secs_f64((held as f64 / pace).min(86_400.0 * 7.0));
    floor.max(needed)
}

/// How a channel posts, as the reader has seen it.
#[derive(Debug, Default, Clone)]
pub(super) struct Pace {
    /// Running mean of the gap between two of its posts, once two were seen.
    gap: Option<Duration>,
    /// When its last new post was seen.
    last: Option<Instant>,
}

impl Pace {
    /// `n` new posts seen at `now` (pushed one at a time, or found together
    /// by a history read: they share the time since the last one).
    pub(super) fn saw(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        if let Some(t) = self.last {
            let per = now.saturating_duration_since(t) / u32::try_from(n).unwrap_or(u32::MAX);
            self.gap = Some(match self.gap {
                Some(g) => (g + per) / 2,
                None => per,
            });
        }
        self.last = Some(now);
    }

    /// Whether the channel has been silent for its quiet time (four usual
    /// gaps within `[min, max]`; `max` wins over a larger `min`) with no
    /// history read since that time came.
    pub(super) fn overdue(
        &self,
        now: Instant,
        last_history: Option<Instant>,
        min: Duration,
        max: Duration,
    ) -> bool {
        let (Some(gap), Some(last)) = (self.gap, self.last) else {
            return false;
        };
        let due = last + gap.saturating_mul(QUIET_GAPS).clamp(min.min(max), max);
        now >= due && last_history.is_none_or(|h| h < due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(600);

    #[test]
    fn re_reads_of_silent_channels_take_at_most_half_the_pace() {
        let floor = Duration::from_secs(600);
        // Few channels: the floor.
        assert_eq!(verify_every(floor, 50, 0.3), floor);
        // 334 channels at 10 per 30 s: 334 / 0.15 = 2,227 s, not 600.
        let every = verify_every(floor, 334, 0.3);
        assert_eq!(every.as_secs(), 2_226);
        // What that costs: 334 reads per interval, half the pace.
        let rate = 334.0 / every.as_secs_f64();
        assert!(rate <= 0.3 * VERIFY_SHARE + 1e-3, "{rate}");
    }

    #[test]
    fn an_active_channel_is_overdue_after_four_gaps_a_slow_one_only_at_the_floor() {
        let t0 = Instant::now();
        let mut fast = Pace::default();
        for i in 0..5 {
            fast.saw(1, t0 + Duration::from_secs(20 * i));
        }
        let last = t0 + Duration::from_secs(80);
        // Four gaps of 20 s: 80 s after the last post, not before.
        assert!(!fast.overdue(last + Duration::from_secs(79), None, MIN, MAX));
        assert!(fast.overdue(last + Duration::from_secs(80), None, MIN, MAX));
        // Read since the quiet time came: not again.
        let read = Some(last + Duration::from_secs(81));
        assert!(!fast.overdue(last + Duration::from_secs(300), read, MIN, MAX));
        // A history read that found 4 posts over 80 s keeps the pace.
        fast.saw(4, last + Duration::from_secs(80));
        assert_eq!(fast.gap, Some(Duration::from_secs(20)));

        let mut slow = Pace::default();
        slow.saw(1, t0);
        slow.saw(1, t0 + Duration::from_secs(3_600));
        let last = t0 + Duration::from_secs(3_600);
        assert!(!slow.overdue(last + Duration::from_secs(599), None, MIN, MAX));
        assert!(slow.overdue(last + MAX, None, MIN, MAX));
        // Never seen posting twice: nothing to go by.
        let mut once = Pace::default();
        once.saw(1, t0);
        assert!(!once.overdue(t0 + Duration::from_secs(10_000), None, MIN, MAX));
    }
}
