//! Telegram's flood limits, per account and method: at most `max_calls` in
//! any window of `per`; the call over it gets `FLOOD_WAIT_X` (420), X being
//! the whole seconds until the window has room again, and every call of that
//! method before then gets `FLOOD_WAIT_X` too (with the seconds left) and is
//! counted as a call made during a flood wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A limit on one method for each account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodLimit {
    /// Calls allowed in any window of `per`.
    pub max_calls: u32,
    /// The window.
    pub per: Duration,
}

/// One account's recent calls of one method.
#[derive(Default, Debug)]
pub(crate) struct FloodState {
    calls: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// What the limiter decided for one call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    /// Over the limit: wait this many seconds.
    Wait(u32),
    /// Made while an earlier wait had not ended: this many seconds are left.
    Premature(u32),
}

fn ceil_secs(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s.max(1)).unwrap_or(u32::MAX)
}

impl FloodState {
    pub(crate) fn check(&mut self, limit: FloodLimit, now: Instant) -> Verdict {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Verdict::Premature(ceil_secs(until - now));
            }
            self.blocked_until = None;
        }
        while let Some(&first) = self.calls.front() {
            if now.duration_since(first) >= limit.per {
                self.calls.pop_front();
            } else {
                break;
            }
        }
        if self.calls.len() >= limit.max_calls as usize {
            let secs = match self.calls.front() {
                Some(&oldest) => ceil_secs(oldest + limit.per - now),
                None => ceil_secs(limit.per),
            };
            self.blocked_until = Some(now + Duration::from_secs(u64::from(secs)));
            return Verdict::Wait(secs);
        }
        self.calls.push_back(now);
        Verdict::Allowed
    }
}
