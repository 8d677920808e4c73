//! Who uses each account: the fake's measure of "one session, one place".
//!
//! Telegram answers concurrent use of one session from several connections
//! with `AUTH_KEY_DUPLICATED` and invalidates it (406,
//! <https://core.telegram.org/api/errors#406-not-acceptable>: "Concurrent
//! usage of the current session from multiple connections was detected").
//! What counts as concurrent is not published; this counter is a test's
//! measure, not a claim about Telegram: a call on an account counts as made
//! by *two holders at once* when another connection of the account, still
//! open, made a call after this connection's first one. A holder that
//! stopped calling (disconnected, or paused and silent) before the next one
//! began is never counted; one that calls again after a newer holder began,
//! or keeps calling beside it, is — both of its calls and the newer one's.

use std::collections::HashMap;

/// Per account, the connections that called it and are still open.
#[derive(Default)]
pub(crate) struct Holders {
    /// A sequence number for every call.
    seq: u64,
    /// account → connection → (its first call, its last call).
    calls: HashMap<i64, HashMap<u64, (u64, u64)>>,
    /// account → calls made by two holders at once.
    overlapping: HashMap<i64, u64>,
}

impl Holders {
    /// A call on `account` over connection `conn`.
    pub(crate) fn call(&mut self, account: i64, conn: u64) {
        self.seq += 1;
        let seq = self.seq;
        let conns = self.calls.entry(account).or_default();
        let first = conns.entry(conn).or_insert((seq, seq)).0;
        let beside = conns
            .iter()
            .any(|(other, (_, last))| *other != conn && *last > first);
        if let Some(c) = conns.get_mut(&conn) {
            c.1 = seq;
        }
        if beside {
            *self.overlapping.entry(account).or_default() += 1;
        }
    }

    /// Connection `conn` closed: it holds nothing any more.
    pub(crate) fn closed(&mut self, conn: u64) {
        for conns in self.calls.values_mut() {
            conns.remove(&conn);
        }
    }

    /// Calls on `account` made by two holders at once.
    pub(crate) fn overlapping(&self, account: i64) -> u64 {
        self.overlapping.get(&account).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_calling_after_a_newer_one_began_is_counted_a_silent_one_is_not() {
        let mut h = Holders::default();
        // Connection 1 holds; 2 connects and calls while 1 is open but silent.
        h.call(7, 1);
        h.call(7, 1);
        h.call(7, 2);
        assert_eq!(h.overlapping(7), 0);
        // 1 wakes and calls again: two holders at once; so is 2's next call.
        h.call(7, 1);
        assert_eq!(h.overlapping(7), 1);
        h.call(7, 2);
        assert_eq!(h.overlapping(7), 2);
        // 1 closes: 2 alone again; another account is untouched.
        h.closed(1);
        h.call(7, 2);
        assert_eq!(h.overlapping(7), 2);
        assert_eq!(h.overlapping(8), 0);
        // A holder that disconnected before the next one began: never counted.
        h.call(9, 3);
        h.closed(3);
        h.call(9, 4);
        assert_eq!(h.overlapping(9), 0);
    }
}
