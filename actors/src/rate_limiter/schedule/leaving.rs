//! What leaves the queue unsent: the deliveries of a bot whose token was
//! refused (halted for good), and those of channels whose lease moved to
//! another instance.

use std::collections::VecDeque;

use super::{People, Schedule};
use crate::model::Delivery;

impl Schedule {
    /// Halts a lane for good: its queued deliveries go to the dropped list,
    /// and so will every later one. True when it was running until now.
    pub(in crate::rate_limiter) fn halt_lane(&mut self, lane: usize) -> bool {
        let Some(l) = self.lanes.get_mut(lane) else {
            return false;
        };
        if l.halted {
            return false;
        }
        l.halted = true;
        l.ready.clear();
        l.urgent.clear();
        l.people = People::default();
        for chat in self.chats.values_mut().filter(|c| c.lane == lane) {
            let n = chat.queue.len() + chat.replies.len();
            self.queued -= n;
            self.counters.dropped_halted += n as u64;
            self.dropped.extend(chat.queue.drain(..));
            self.dropped.extend(chat.replies.drain(..));
            chat.urgent_listed = false;
            // Out of the ready lists; one still in the timer heap finds an
            // empty queue when its time comes.
            chat.scheduled = false;
        }
        true
    }

    /// Takes the queued deliveries of `channels` out (their lease moved to
    /// another instance, which resumes them). A chat left empty may still
    /// sit in a ready list or the timer heap: it is skipped when its turn
    /// comes, as after [`Schedule::halt_lane`].
    pub(in crate::rate_limiter) fn drop_channels(
        &mut self,
        channels: &std::collections::HashSet<i64>,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        for chat in self.chats.values_mut() {
            if !chat
                .queue
                .iter()
                .any(|d| channels.contains(&d.post.channel_id))
            {
                continue;
            }
            let (gone, kept): (VecDeque<Delivery>, VecDeque<Delivery>) = chat
                .queue
                .drain(..)
                .partition(|d| channels.contains(&d.post.channel_id));
            chat.queue = kept;
            out.extend(gone);
        }
        self.queued -= out.len();
        out
    }

    /// True when the lane is halted.
    #[cfg(test)]
    pub(in crate::rate_limiter) fn is_halted(&self, lane: usize) -> bool {
        self.lanes.get(lane).is_some_and(|l| l.halted)
    }

    /// Deliveries turned away by halted lanes since the last call.
    pub(in crate::rate_limiter) fn take_dropped(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.dropped)
    }
}
