//! A cap on one person's sends in flight at once, per bot.
//!
//! So that no second at Telegram sees more than 30 of a bot's requests
//! whatever the jitter, a send holds a slot of the bot's arrival window
//! from its dispatch until a second after it completed (`schedule.rs`).
//! A send to a destination answering after 2 s holds its slot ~3 s: a
//! person with a few dozen such groups (which they can make and link at
//! will) would hold most of the window, and everyone else's sends — the
//! turns by person decide whose send goes *next*, not how long it holds
//! its slot — would wait for their slow answers.
//!
//! Releasing a slow send's slot early instead (taking it as arrived a
//! round trip after dispatch) would break the window's guarantee exactly
//! when the slowness is on the way to Telegram, and draw 429s for
//! everyone. So the window is left as it is, and one person may have at
//! most [`Limits::person_in_flight`] sends in flight on a bot; their next
//! chat waits (costing no turn) until one of them completes. A send to a
//! chat that answers in a round trip is in flight for that long only: at
//! 30 a second and a 50 ms round trip a person needs 1.5 in flight, so the
//! cap never binds on them; on slow destinations it bounds what the
//! person holds to the cap in flight plus what completed in the last
//! second (with 2 s answers, a cap of 6: ~9 of the 30 slots).
//!
//! Replies are not counted: each user's commands are budgeted, and someone
//! is waiting for them.
//!
//! [`Limits::person_in_flight`]: super::super::limits::Limits

use std::collections::HashMap;
use std::time::Instant;

use super::Schedule;
use crate::model::Delivery;

/// Each person's sends in flight on one lane, and their chats parked at the cap.
#[derive(Default)]
pub(super) struct People {
    in_flight: HashMap<i64, usize>,
    parked: HashMap<i64, Vec<i64>>,
}

impl People {
    /// True when `person` has `cap` sends in flight or more.
    pub(super) fn at_cap(&self, person: i64, cap: usize) -> bool {
        self.in_flight.get(&person).is_some_and(|n| *n >= cap)
    }

    /// `chat` waits until one of `person`'s sends completes.
    pub(super) fn park(&mut self, person: i64, chat: i64) {
        self.parked.entry(person).or_default().push(chat);
    }

    /// A send of `person` went out.
    pub(super) fn sent(&mut self, person: i64) {
        *self.in_flight.entry(person).or_default() += 1;
    }

    /// A send of `person` completed (or went back unsent): the chats
    /// parked for them, to list again.
    fn done(&mut self, person: i64) -> Vec<i64> {
        if let Some(n) = self.in_flight.get_mut(&person) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&person);
            }
        }
        self.parked.remove(&person).unwrap_or_default()
    }
}

impl Schedule {
    /// A send of `delivery`'s person on `lane` is no longer in flight: their
    /// parked chats are listed again.
    pub(super) fn person_done(&mut self, lane: usize, delivery: &Delivery, now: Instant) {
        if delivery.is_reply() {
            return;
        }
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        for chat_id in l.people.done(delivery.sub.user_telegram_id) {
            if let Some(c) = self.chats.get_mut(&chat_id) {
                c.scheduled = false;
            }
            self.schedule(chat_id, now);
        }
    }
}
