//! The bot's replies to commands, through the same limits as deliveries.
//!
//! A reply is a `sendMessage` like any other: it counts against the bot's
//! 30 a second and its chat's spacing at Telegram. Sent beside the limiter
//! it came on top of a full bot, and a reply and a delivery to the same
//! private chat within a second drew a 429 — with a few such 429s in a
//! second pausing the whole bot for everyone. So a reply is queued here,
//! in its chat's list of replies ([`super::Chat::replies`]), and:
//!
//! - it takes the bot's budget (GCRA, arrival window) like any send, but
//!   *before* any delivery: a lane serves its chats with replies (in the
//!   order they got them) before the next turn — someone is waiting for
//!   it, and replies are few (each user's commands are budgeted);
//! - it waits for its chat's spacing like any send (a delivery just sent
//!   there: the reply goes once the chat's interval has passed), and the
//!   chat's queued deliveries wait for it: they come after;
//! - a chat's replies go one at a time, in order (a user's replies arrive
//!   in the order of their commands).
//!
//! - while the bot is answering commands (a reply sent within the last
//!   [`SLOT_FOR_REPLIES_FOR`]), deliveries leave the last slot of its
//!   arrival window free: the window is full whenever the bot is busy
//!   (a second's sends, each holding its slot until a second after it
//!   completed), and a reply would otherwise wait for the next slot to
//!   free — up to most of a second after a burst. A free slot is taken
//!   by the next reply at once, and the next slot to free is kept again.
//!   It costs the deliveries one message in 30 while people use the bot,
//!   nothing otherwise (a bot only delivering keeps its full rate).
//!
//! Replies are bounded per chat ([`MAX_REPLIES_QUEUED`]): beyond that a new
//! one is dropped, unsent, and its sender told so.
//!
//! [`MAX_REPLIES_QUEUED`]: super::MAX_REPLIES_QUEUED

use std::time::{Duration, Instant};

use super::{Dispatch, Schedule};

/// How long after a reply deliveries keep a slot of the window free for
/// the next one.
pub(super) const SLOT_FOR_REPLIES_FOR: Duration = Duration::from_secs(60);

/// The smallest window a slot is kept in (a tiny one is left whole).
const SLOT_FOR_REPLIES_MIN_CAP: usize = 5;

impl Schedule {
    /// True when deliveries of lane `lane_idx` must leave the window's
    /// last free slot to a reply: the bot answered a command lately and
    /// only that slot is left.
    pub(super) fn slot_kept_for_replies(
        &self,
        lane_idx: usize,
        now: Instant,
        window_cap: usize,
    ) -> bool {
        let lane = &self.lanes[lane_idx];
        window_cap >= SLOT_FOR_REPLIES_MIN_CAP
            && lane
                .last_reply
                .is_some_and(|t| now.saturating_duration_since(t) < SLOT_FOR_REPLIES_FOR)
            && lane.in_flight + lane.completed.len() + 1 >= window_cap
    }

    /// The next reply lane `lane_idx` may send at `now` (its budget already
    /// allows one): the first listed chat with replies whose send is not in
    /// flight and whose spacing has passed. A chat still spaced sets the
    /// wake-up; one in flight is looked at again when its send finishes.
    pub(super) fn next_reply(
        &mut self,
        lane_idx: usize,
        now: Instant,
        lane_interval: Duration,
        next_wake: &mut Option<Instant>,
    ) -> Option<Dispatch> {
        let mut i = 0;
        let (at, chat_id) = loop {
            let lane = &mut self.lanes[lane_idx];
            let chat_id = *lane.urgent.get(i)?;
            match self.chats.get_mut(&chat_id) {
                Some(c) if !c.replies.is_empty() => {
                    if c.in_flight {
                        i += 1;
                    } else if c.ready_at > now {
                        *next_wake = Some(next_wake.map_or(c.ready_at, |w| w.min(c.ready_at)));
                        i += 1;
                    } else {
                        break (i, chat_id);
                    }
                }
                other => {
                    // Emptied (a halted lane, a moved chat) or forgotten.
                    if let Some(c) = other {
                        c.urgent_listed = false;
                    }
                    lane.urgent.remove(i);
                }
            }
        };
        let chat = self.chats.get_mut(&chat_id).expect("looked up above");
        let delivery = chat.replies.pop_front().expect("checked non-empty");
        chat.in_flight = true;
        let lane = &mut self.lanes[lane_idx];
        if chat.replies.is_empty() {
            chat.urgent_listed = false;
            lane.urgent.remove(at);
        }
        lane.tat = lane.tat.max(now) + lane_interval;
        lane.in_flight += 1;
        lane.last_reply = Some(now);
        self.queued -= 1;
        self.in_flight += 1;
        self.counters.dispatched += 1;
        Some(Dispatch {
            lane: lane_idx,
            delivery,
        })
    }
}
