//! Room in the limiter's queue, shared with the SubscriberRegistry so that a
//! post waits for room *before* it fans out.
//!
//! The limiter's own back-pressure (an `Enqueue` over capacity is answered
//! only once there is room) acts after the deliveries are queued: every
//! poller waiting on it already has one post's fan-out in the queue. A full
//! queue therefore grew by pollers × subscribers a post beyond its capacity
//! (1,000 pollers × 50 subscribers at the seed scale: half the capacity
//! again, and all of it in memory). The registry asks here first and, while
//! the queue is full, keeps the post itself (one `Arc`) instead of its
//! deliveries.
//!
//! It also publishes the chats whose own queue is full (`queue_per_chat`):
//! the registry and the owed-delivery sweep hold further deliveries to
//! them as quiet hours do (owed in the database, queued in order once there
//! is room), so one destination with a huge backlog takes neither the
//! queue's capacity nor, through back-pressure, every poller's turn.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The queue's size as the limiter last published it, and a signal when it
/// shrank below capacity.
#[derive(Debug)]
pub struct QueueRoom {
    capacity: usize,
    /// Deliveries one chat may have queued (`queue_per_chat`).
    per_chat: usize,
    queued: AtomicUsize,
    freed: Notify,
    /// How many chats are full (read without the lock: mostly none).
    full_count: AtomicUsize,
    full: Mutex<HashSet<i64>>,
    /// Signalled when a chat stopped being full: what is held for it can
    /// be queued now.
    drained: Notify,
}

impl QueueRoom {
    /// Room for `capacity` queued deliveries.
    pub fn new(capacity: usize) -> Self {
        Self::with_per_chat(capacity, capacity)
    }

    /// Room for `capacity` queued deliveries, `per_chat` of them for one chat.
    pub fn with_per_chat(capacity: usize, per_chat: usize) -> Self {
        Self {
            capacity,
            per_chat: per_chat.max(1),
            queued: AtomicUsize::new(0),
            freed: Notify::new(),
            full_count: AtomicUsize::new(0),
            full: Mutex::new(HashSet::new()),
            drained: Notify::new(),
        }
    }

    /// Deliveries one chat may have queued: a feeder queues no more than
    /// this for one chat at a time.
    pub fn per_chat(&self) -> usize {
        self.per_chat
    }

    /// Whether chat `chat_id`'s queue in the limiter is full: a delivery to
    /// it is held, not queued.
    pub fn chat_full(&self, chat_id: i64) -> bool {
        self.full_count.load(Ordering::Relaxed) > 0
            && self
                .full
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&chat_id)
    }

    /// The limiter's full chats are now `chats`.
    pub(crate) fn set_full(&self, chats: Vec<i64>) {
        let mut full = self.full.lock().unwrap_or_else(|p| p.into_inner());
        let new: HashSet<i64> = chats.into_iter().collect();
        let drained = full.iter().any(|c| !new.contains(c));
        *full = new;
        self.full_count.store(full.len(), Ordering::Relaxed);
        if drained {
            self.drained.notify_one();
        }
    }

    /// Waits until a chat stops being full (one signal is kept if it came
    /// while nobody waited).
    pub async fn chat_drained(&self) {
        self.drained.notified().await;
    }

    /// Whether `more` deliveries fit beside what is queued and `promised`
    /// (fanned out, not yet taken by the limiter). An empty queue takes any
    /// fan-out, however large, so that a channel with more subscribers than
    /// the capacity is still served.
    pub fn fits(&self, promised: usize, more: usize) -> bool {
        let used = self.queued.load(Ordering::Relaxed) + promised;
        used == 0 || used + more <= self.capacity
    }

    /// The limiter's queue now holds `queued` deliveries.
    pub(crate) fn set_queued(&self, queued: usize) {
        self.queued.store(queued, Ordering::Relaxed);
        if queued < self.capacity {
            self.freed.notify_one();
        }
    }

    /// Signals that room may have appeared (a promise was kept).
    pub fn notify(&self) {
        self.freed.notify_one();
    }

    /// Waits for the next signal (one is kept if it came while nobody waited).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_counts_the_queue_and_the_promises() {
        let room = QueueRoom::new(100);
        assert!(room.fits(0, 100));
        assert!(room.fits(0, 500), "an empty queue takes any fan-out");
        room.set_queued(60);
        assert!(room.fits(0, 40));
        assert!(!room.fits(0, 41));
        assert!(!room.fits(30, 20));
        room.set_queued(0);
        assert!(room.fits(30, 70));
        assert!(!room.fits(30, 71));
    }

    #[test]
    fn full_chats_are_published_and_cleared() {
        let room = QueueRoom::new(100);
        assert!(!room.chat_full(5));
        room.set_full(vec![5, 7]);
        assert!(room.chat_full(5) && room.chat_full(7) && !room.chat_full(6));
        room.set_full(vec![7]);
        assert!(!room.chat_full(5) && room.chat_full(7));
        room.set_full(Vec::new());
        assert!(!room.chat_full(7));
    }
}
