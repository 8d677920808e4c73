//! What a delivery costs against a bot's per-second limits, and the second
//! budget of a lane while paid broadcast is on.
//!
//! - **Album items.** Each message of a `copyMessages`/`forwardMessages`
//!   call counts against the bot's limit: the Bot API server counts each
//!   against its own per-chat guard (`yet_unsent_message_count_ +=
//!   message_count`, tdlib/telegram-bot-api Client.cpp
//!   `process_copy_messages_query`), each is a message of its own on
//!   Telegram's side, and users report 429s on small albums
//!   (tdlib/telegram-bot-api#505). Per chat a post is spaced once, as the
//!   fake limits it (no source says an album takes a chat's slot per item).
//! - **Paid broadcast.** `allow_paid_broadcast` rides only on `sendMessage`
//!   and `copyMessage` (the Bot API's documented parameters; teloxide has
//!   no setter elsewhere; Client.cpp passes `false` for the batch methods).
//!   While it is on, a lane runs at the paid rate, and the calls that
//!   cannot carry it — albums, forwards — also take a slot of a second
//!   budget at the free rate, so they stay within 30 a second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::limits::WINDOW;
use crate::model::{Delivery, DeliveryMode, DeliveryOp};

/// Messages the delivery's call sends: an album's items when it goes out
/// in one batch call, else 1.
pub(crate) fn items(d: &Delivery) -> usize {
    if matches!(d.op, DeliveryOp::Mirror(_) | DeliveryOp::Notice(_)) || !batch(d) {
        1
    } else {
        d.post.copy_ids().len().max(1)
    }
}

/// The call is `copyMessages`/`forwardMessages`.
fn batch(d: &Delivery) -> bool {
    d.post.copyable && d.post.copy_ids().len() > 1 && !plain_text(d)
}

/// The call is `sendMessage` (a text post copied, or a link).
fn plain_text(d: &Delivery) -> bool {
    !d.post.copyable
        || (d.sub.mode == DeliveryMode::Copy && d.post.media.is_none() && d.post.text.is_some())
}

/// The call can carry `allow_paid_broadcast`: `sendMessage` or a single
/// `copyMessage` (mirrored edits are not broadcasts; a notice is a
/// `sendMessage`).
pub(crate) fn carries_paid(d: &Delivery) -> bool {
    matches!(d.op, DeliveryOp::Mirror(_) | DeliveryOp::Notice(_))
        || plain_text(d)
        || (d.sub.mode == DeliveryMode::Copy && !batch(d))
}

/// A GCRA with an arrival window, as a lane keeps for its own rate: the
/// free budget of a paid lane.
#[derive(Debug)]
pub(super) struct Budget {
    interval: Duration,
    cap: usize,
    tat: Instant,
    in_flight: usize,
    completed: VecDeque<Instant>,
}

impl Budget {
    pub(super) fn new(per_second: f64, safety: f64, now: Instant) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / (per_second * safety).max(1e-9)),
            cap: per_second.floor().max(1.0) as usize,
            tat: now,
            in_flight: 0,
            completed: VecDeque::new(),
        }
    }

    /// When `items` more may go (`now` or later); the window's cap is
    /// reached by sends still in flight: a short look again.
    pub(super) fn allowed_at(
        &mut self,
        now: Instant,
        tolerance: Duration,
        items: usize,
    ) -> Instant {
        while self
            .completed
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.completed.pop_front();
        }
        let mut at = self.tat.checked_sub(tolerance).unwrap_or(self.tat);
        let need = items.min(self.cap);
        let used = self.in_flight + self.completed.len();
        if used + need > self.cap {
            // The completions that must leave the window first.
            let leave = used + need - self.cap;
            at = at.max(match self.completed.get(leave - 1) {
                Some(t) => *t + WINDOW,
                None => now + Duration::from_millis(20),
            });
        }
        at
    }

    pub(super) fn take(&mut self, now: Instant, items: usize) {
        self.tat = self.tat.max(now) + self.interval * items as u32;
        self.in_flight += items;
    }

    /// A send taken but not made (held back by the shared limits).
    pub(super) fn cancel(&mut self, items: usize) {
        self.in_flight = self.in_flight.saturating_sub(items);
    }

    pub(super) fn done(&mut self, now: Instant, items: usize) {
        self.in_flight = self.in_flight.saturating_sub(items);
        for _ in 0..items {
            self.completed.push_back(now);
        }
    }
}
