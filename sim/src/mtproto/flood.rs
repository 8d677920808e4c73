//! Telegram's flood limits, per account and method: at most `max_calls` in
//! any window of `per`; the call over it gets `FLOOD_WAIT_X` (420), X being
//! the whole seconds until the window has room again, and every call of that
//! method before then gets `FLOOD_WAIT_X` too (with the seconds left) and is
//! counted as a call made during a flood wait.
//!
//! [`EscalatingLimit`] models the look-ups and joins Telegram punishes by
//! the day rather than by the second: past a free allowance in a long
//! window, each call earns a longer wait than the one before (see
//! `MtprotoConfig::telegram_like` for the public reports it follows).

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

/// A limit that escalates, per account and method: in any window of `per`
/// the first `free` calls pass; each call past them earns the next wait of
/// `waits` (the last one repeats), counted over the same window, and every
/// call before that wait ends is premature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalatingLimit {
    /// Calls that pass in any window of `per`.
    pub free: u32,
    /// The window (a day for look-ups, an hour for joins).
    pub per: Duration,
    /// The waits earned one after another in a window; at least one.
    pub waits: Vec<Duration>,
}

/// One account's recent calls of one method.
#[derive(Default, Debug)]
pub(crate) struct FloodState {
    calls: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    /// Calls that passed an escalating limit, and the waits it handed out,
    /// within its window.
    escalating_calls: VecDeque<Instant>,
    earned: VecDeque<Instant>,
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

    /// The escalating limit's verdict on a call at `now` (after
    /// [`FloodState::check`] let it through, when the method has both).
    pub(crate) fn check_escalating(&mut self, limit: &EscalatingLimit, now: Instant) -> Verdict {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Verdict::Premature(ceil_secs(until - now));
            }
            self.blocked_until = None;
        }
        let fresh = |q: &mut VecDeque<Instant>| {
            while q
                .front()
                .is_some_and(|&t| now.duration_since(t) >= limit.per)
            {
                q.pop_front();
            }
        };
        fresh(&mut self.escalating_calls);
        fresh(&mut self.earned);
        if self.escalating_calls.len() >= limit.free as usize {
            let step = self.earned.len().min(limit.waits.len().saturating_sub(1));
            let wait = limit.waits.get(step).copied().unwrap_or(limit.per);
            let secs = ceil_secs(wait);
            self.earned.push_back(now);
            self.blocked_until = Some(now + Duration::from_secs(u64::from(secs)));
            return Verdict::Wait(secs);
        }
        self.escalating_calls.push_back(now);
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalating_waits_grow_and_a_call_during_one_is_premature() {
        let limit = EscalatingLimit {
            free: 2,
            per: Duration::from_secs(86_400),
            waits: vec![
                Duration::from_secs(3),
                Duration::from_secs(26),
                Duration::from_secs(66_230),
            ],
        };
        let mut st = FloodState::default();
        let t0 = Instant::now();
        assert_eq!(st.check_escalating(&limit, t0), Verdict::Allowed);
        assert_eq!(st.check_escalating(&limit, t0), Verdict::Allowed);
        assert_eq!(st.check_escalating(&limit, t0), Verdict::Wait(3));
        assert_eq!(
            st.check_escalating(&limit, t0 + Duration::from_secs(1)),
            Verdict::Premature(2)
        );
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(st.check_escalating(&limit, t1), Verdict::Wait(26));
        let t2 = t1 + Duration::from_secs(27);
        assert_eq!(st.check_escalating(&limit, t2), Verdict::Wait(66_230));
        let t3 = t2 + Duration::from_secs(66_231);
        assert_eq!(st.check_escalating(&limit, t3), Verdict::Wait(66_230));
        // A day after the first calls, the allowance is back.
        let t4 = t0 + Duration::from_secs(86_400 * 3);
        assert_eq!(st.check_escalating(&limit, t4), Verdict::Allowed);
    }
}
