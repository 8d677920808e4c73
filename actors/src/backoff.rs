//! The one backoff policy of kuryer's retry loops: capped exponential, with
//! optional jitter.
//!
//! Used by the SenderPool (a send to retry), the ChannelPoller (a source or
//! the database failing), the ChannelSupervisor (restarting a poller that
//! died) and the DbWriter (a write to retry). Each keeps its own numbers:
//!
//! | loop | initial | max | jitter |
//! |---|---|---|---|
//! | SenderPool | 200 ms | 30 s | ±25 % |
//! | ChannelPoller | 100 ms | `max_backoff` (60 s; the doubling stops after 10) | none |
//! | ChannelSupervisor | 50 ms | 6.4 s | none |
//! | DbWriter | `retry_delay` (100 ms) | `max_retry_delay` (5 s) | none |

use std::time::Duration;

/// Capped exponential backoff: the delay before retry `n` is
/// `initial · 2ⁿ`, at most `max`; with jitter, each delay is spread by up
/// to ±`jitter` of itself, so many callers failing together do not retry in
/// lockstep.
///
/// Use it stateless with [`Backoff::delay`] when the caller counts its own
/// attempts, or stateful with [`Backoff::next_delay`] and [`Backoff::reset`].
///
/// ```
/// use std::time::Duration;
/// use kuryer_actors::backoff::Backoff;
///
/// let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
/// assert_eq!(b.next_delay(), Duration::from_millis(100));
/// assert_eq!(b.next_delay(), Duration::from_millis(200));
/// assert_eq!(b.next_delay(), Duration::from_millis(350));
/// b.reset();
/// assert_eq!(b.next_delay(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and doubling up to `max` (a `max`
    /// below `initial` caps it too), without jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: 0.0,
            attempt: 0,
        }
    }

    /// Spreads each delay uniformly over `[1 - fraction, 1 + fraction)` of
    /// itself; `fraction` is clamped to `0..=1`.
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The delay before retry `attempt` (0 for the first): `initial ·
    /// 2^attempt`, capped at `max`, then jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base(attempt);
        if self.jitter > 0.0 {
            base.mul_f64(rand::random_range(1.0 - self.jitter..1.0 + self.jitter))
        } else {
            base
        }
    }

    /// The delay before the next retry (jittered), counting it.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// The delay [`Backoff::next_delay`] would return, before jitter,
    /// without counting it.
    pub fn current(&self) -> Duration {
        self.base(self.attempt)
    }

    /// Retries counted since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn base(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        // Doubling stops at the cap (or at zero), so this loop runs at most
        // about a hundred times whatever `attempt` is.
        for _ in 0..attempt {
            if d >= self.max || d.is_zero() {
                break;
            }
            d = d.saturating_mul(2);
        }
        d.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_initial_up_to_the_cap() {
        let b = Backoff::new(ms(200), ms(30_000));
        let delays: Vec<u64> = (0..10).map(|a| b.delay(a).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [
                200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000
            ]
        );
        assert_eq!(b.delay(u32::MAX), ms(30_000));
    }

    #[test]
    fn the_numbers_each_loop_used_before() {
        // SenderPool: 200 ms << min(attempt, 8), at most 30 s.
        let sender = Backoff::new(ms(200), ms(30_000));
        // ChannelPoller: 100 ms << min(failures, 10), at most max_backoff.
        let poller = |max: Duration| Backoff::new(ms(100), max.min(ms(100 << 10)));
        // ChannelSupervisor: 50 ms << min(deaths, 7).
        let supervisor = Backoff::new(ms(50), ms(50 << 7));
        for n in 0..40u32 {
            assert_eq!(
                sender.delay(n),
                ms(200u64.saturating_mul(1 << n.min(8)).min(30_000))
            );
            for max in [ms(60_000), ms(500_000)] {
                assert_eq!(
                    poller(max).delay(n),
                    ms(100u64.saturating_mul(1 << n.min(10))).min(max)
                );
            }
            assert_eq!(supervisor.delay(n), ms(50u64 << n.min(7)));
        }
        // DbWriter: 100 ms, doubled after each failure up to 5 s.
        let mut writer = Backoff::new(ms(100), ms(5_000));
        let mut before = ms(100);
        for _ in 0..10 {
            assert_eq!(writer.current(), before);
            assert_eq!(writer.next_delay(), before);
            before = (before * 2).min(ms(5_000));
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(ms(100), ms(5_000));
        b.next_delay();
        b.next_delay();
        assert_eq!((b.attempt(), b.current()), (2, ms(400)));
        b.reset();
        assert_eq!((b.attempt(), b.current()), (0, ms(100)));
    }

    #[test]
    fn jitter_spreads_each_delay_around_its_base() {
        let b = Backoff::new(ms(200), ms(30_000)).with_jitter(0.25);
        for attempt in [0, 3, 20] {
            let base = Backoff::new(ms(200), ms(30_000)).delay(attempt);
            for _ in 0..200 {
                let d = b.delay(attempt);
                assert!(d >= base.mul_f64(0.75) && d < base.mul_f64(1.25), "{d:?}");
            }
        }
    }

    #[test]
    fn a_zero_initial_delay_stays_zero() {
        let b = Backoff::new(Duration::ZERO, ms(1_000));
        assert_eq!(b.delay(u32::MAX), Duration::ZERO);
    }
}
