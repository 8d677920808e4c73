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

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The queue's size as the limiter last published it, and a signal when it
/// shrank below capacity.
#[derive(Debug)]
pub struct QueueRoom {
    capacity: usize,
    queued: AtomicUsize,
    freed: Notify,
}

impl QueueRoom {
    /// Room for `capacity` queued deliveries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            queued: AtomicUsize::new(0),
            freed: Notify::new(),
        }
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
}
