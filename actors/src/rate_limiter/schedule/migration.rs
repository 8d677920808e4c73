//! A group that became a supergroup: its queue, its send in flight and its
//! spacing move to the new chat id, and deliveries still addressed to the
//! old id are taken as the new one's.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Chat, Schedule};
use crate::model::{ActiveSubscription, Delivery, DestinationKind};

impl Schedule {
    /// The chat a delivery is queued in: its own, or the one it moved to.
    pub(super) fn chat_of(&self, d: &Delivery) -> i64 {
        self.moved
            .get(&d.sub.chat_id)
            .map_or(d.sub.chat_id, |&(new, _)| new)
    }

    /// A group became the supergroup `new`: what `old` holds moves there —
    /// its queue (readdressed) ahead of anything queued under `new`, its
    /// send in flight, its spacing — and a delivery to `old` arriving later
    /// (fanned out before the move, or finishing) is taken as `new`'s, so
    /// posts reach the supergroup in the order they were queued.
    pub(in crate::rate_limiter) fn move_chat(&mut self, old: i64, new: i64, now: Instant) {
        if old == new {
            return;
        }
        self.moved.insert(old, (new, now));
        let Some(from) = self.chats.get_mut(&old) else {
            return;
        };
        // The old entry stays, empty, while a ready list or the timer heap
        // may still name it: it is skipped when its turn comes and swept.
        let queue: VecDeque<Delivery> = from.queue.drain(..).map(|d| retarget(d, new)).collect();
        let replies: VecDeque<Delivery> =
            from.replies.drain(..).map(|d| retarget(d, new)).collect();
        let (lane, ready_at, in_flight) = (from.lane, from.ready_at, from.in_flight);
        from.in_flight = false;
        let interval = self.limits.chat_interval(true);
        let to = self.chats.entry(new).or_insert_with(|| Chat {
            lane,
            interval,
            queue: VecDeque::new(),
            ready_at,
            in_flight: false,
            scheduled: false,
            replies: VecDeque::new(),
            urgent_listed: false,
        });
        to.interval = to.interval.max(interval);
        to.ready_at = to.ready_at.max(ready_at);
        to.in_flight |= in_flight;
        let mut merged = queue;
        merged.append(&mut to.queue);
        to.queue = merged;
        let mut merged = replies;
        merged.append(&mut to.replies);
        to.replies = merged;
        self.schedule(new, now);
    }
}

/// The delivery addressed to the supergroup `new` its group became.
pub(super) fn retarget(mut d: Delivery, new: i64) -> Delivery {
    if d.sub.chat_id != new {
        d.sub = std::sync::Arc::new(ActiveSubscription {
            chat_id: new,
            destination_kind: DestinationKind::Supergroup,
            ..(*d.sub).clone()
        });
    }
    d
}
