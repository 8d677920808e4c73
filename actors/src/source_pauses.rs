//! Source chats (the relay channel, a bot-admin channel) the bots can no
//! longer read: while one is paused, its deliveries wait in the limiter
//! without a call, and one delivery at a time, after a capped backoff,
//! tries the source again. What the try answers ends the pause or
//! lengthens it. The [`SenderPool`](crate::sender_pool::SenderPool) owns it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;

/// The shortest wait of a delivery held behind a paused source.
const MIN_WAIT: Duration = Duration::from_millis(500);

/// What a delivery from a source may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// The source is not paused: call.
    Open,
    /// The source is paused and this delivery is its try: call.
    Try,
    /// The source is paused: wait this long, no call.
    Wait(Duration),
}

struct Pause {
    /// Refusals in a row.
    refusals: u32,
    next_try: Instant,
    /// A try is out.
    trying: bool,
}

/// The paused sources, by source chat id.
pub(crate) struct SourcePauses {
    paused: HashMap<i64, Pause>,
    backoff: Backoff,
}

impl Default for SourcePauses {
    /// Tries again after 1 s, 2 s, … up to a minute.
    fn default() -> Self {
        Self {
            paused: HashMap::new(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        }
    }
}

impl SourcePauses {
    /// Whether a delivery from `source` may call now.
    pub(crate) fn gate(&mut self, source: i64, now: Instant) -> Gate {
        let Some(p) = self.paused.get_mut(&source) else {
            return Gate::Open;
        };
        if !p.trying && now >= p.next_try {
            p.trying = true;
            return Gate::Try;
        }
        Gate::Wait(p.next_try.saturating_duration_since(now).max(MIN_WAIT))
    }

    /// The source refused the bot: paused (or paused longer). True when it
    /// was not paused before (the news to tell).
    pub(crate) fn refused(&mut self, source: i64, now: Instant) -> bool {
        let first = !self.paused.contains_key(&source);
        let p = self.paused.entry(source).or_insert(Pause {
            refusals: 0,
            next_try: now,
            trying: false,
        });
        p.refusals += 1;
        p.next_try = now + self.backoff.delay(p.refusals - 1);
        p.trying = false;
        first
    }

    /// How long a delivery refused by a paused source waits.
    pub(crate) fn wait(&self, source: i64, now: Instant) -> Duration {
        self.paused.get(&source).map_or(MIN_WAIT, |p| {
            p.next_try.saturating_duration_since(now).max(MIN_WAIT)
        })
    }

    /// A call from `source` got an answer that is not a refusal of the
    /// source: the pause ends. True when it was paused (the news to tell).
    pub(crate) fn answered(&mut self, source: i64) -> bool {
        self.paused.remove(&source).is_some()
    }

    /// A try got no answer either way (a timeout, a 429): the next
    /// delivery tries again.
    pub(crate) fn untried(&mut self, source: i64) {
        if let Some(p) = self.paused.get_mut(&source) {
            p.trying = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_try_at_a_time_after_the_backoff() {
        let mut s = SourcePauses::default();
        let t0 = Instant::now();
        assert_eq!(s.gate(-1, t0), Gate::Open);
        assert!(s.refused(-1, t0));
        assert!(!s.refused(-1, t0), "a second refusal is no news");
        assert!(matches!(s.gate(-1, t0), Gate::Wait(_)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(s.gate(-1, later), Gate::Try);
        assert!(matches!(s.gate(-1, later), Gate::Wait(_)), "one try out");
        s.untried(-1);
        assert_eq!(s.gate(-1, later), Gate::Try);
        assert!(s.answered(-1));
        assert_eq!(s.gate(-1, later), Gate::Open);
        assert!(!s.answered(-1));
    }
}
