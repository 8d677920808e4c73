//! Edits and deletions pushed to reader accounts, on their way to
//! `post_events`: queued in memory and stored in order by one task that
//! retries for as long as the database is away.
//!
//! The account's update loop only pushes (it never waits for PostgreSQL,
//! so new posts keep flowing into their buffers). A change whose storing
//! fails with a retriable error is tried again with a backoff (200 ms …
//! 5 s) until it is stored; a database restart loses nothing. Memory is
//! bounded: past `cap` waiting changes the oldest is dropped, logged and
//! counted in `kuryer_reader_changes_dropped_total`. A change the database
//! refuses for a reason no retry fixes is logged at ERROR and dropped.

use kuryer_actors::telemetry::events::telegram_id;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kuryer_actors::backoff::Backoff;
use tokio::sync::Notify;

use crate::store::{Store, StoreError};

/// Changes waiting at most: ~a few MB; at Telegram's pace of edits this is
/// far more than a database restart gathers.
pub(super) const CAP: usize = 10_000;

/// One change of a source post, as the reader saw it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    /// A message was edited.
    Edit {
        channel_id: i64,
        message_id: i32,
        text: Option<String>,
        entities: Option<serde_json::Value>,
        media: Option<&'static str>,
    },
    /// Messages were deleted.
    Deletion { channel_id: i64, ids: Vec<i32> },
}

impl Change {
    /// Stores it as `post_events` rows.
    pub(super) async fn store(&self, store: &Store) -> Result<(), StoreError> {
        match self {
            Self::Edit {
                channel_id,
                message_id,
                text,
                entities,
                media,
            } => store
                .record_post_event(
                    *channel_id,
                    *message_id,
                    false,
                    text.as_deref(),
                    entities.as_ref(),
                    *media,
                    None,
                )
                .await
                .map(drop),
            Self::Deletion { channel_id, ids } => {
                store.record_post_deletions(*channel_id, ids).await
            }
        }
    }
}

struct Shared<T> {
    pending: Mutex<VecDeque<T>>,
    wake: Notify,
    closed: AtomicBool,
    cap: usize,
    /// Changes dropped because the queue was full.
    dropped: AtomicU64,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The queue's handle: pushing is all the update loop does. Dropping it
/// stops the task (what is still waiting is logged as lost).
pub(super) struct ChangeQueue<T = Change> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for ChangeQueue<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl<T: Send + 'static> ChangeQueue<T> {
    /// An empty queue holding at most `cap` changes; nothing is stored
    /// before [`ChangeQueue::run`]'s future runs.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                pending: Mutex::new(VecDeque::new()),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
                cap: cap.max(1),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Queues a change behind the others; when the queue is full (the
    /// database away for long), the oldest waiting one makes room: logged
    /// (the first and every thousandth) and counted.
    pub(super) fn push(&self, change: T)
    where
        T: Describe,
    {
        let dropped = {
            let mut q = self.shared.lock();
            let dropped = if q.len() >= self.shared.cap {
                q.pop_front()
            } else {
                None
            };
            q.push_back(change);
            dropped
        };
        self.shared.wake.notify_one();
        if let Some(old) = dropped {
            let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            crate::telemetry::events::reader_change_dropped(
                old.what(),
                old.channel_id(),
                n,
                self.shared.cap,
            );
        }
    }

    /// Changes waiting (not counting one being stored).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.lock().len()
    }

    /// The storing task: each change in order, retried with `backoff` while
    /// `write` fails with a retriable error; `stored` after each one
    /// stored. Ends when the handle is dropped.
    pub(super) fn run<W, Fut>(
        &self,
        mut backoff: Backoff,
        mut write: W,
        stored: impl Fn() + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        W: FnMut(&T) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send,
        T: Describe,
    {
        let shared = self.shared.clone();
        async move {
            loop {
                let next = shared.lock().pop_front();
                let Some(change) = next else {
                    if shared.closed.load(Ordering::Relaxed) {
                        return;
                    }
                    shared.wake.notified().await;
                    continue;
                };
                backoff.reset();
                let mut failures = 0u32;
                loop {
                    match write(&change).await {
                        Ok(()) => {
                            if failures > 0 {
                                tracing::info!(
                                    what = change.what(),
                                    channel_id = telegram_id(change.channel_id()),
                                    channel_key = change.channel_id(),
                                    failures,
                                    "A source change is stored after the database came back."
                                );
                            }
                            stored();
                            break;
                        }
                        Err(e) if e.is_retriable() => {
                            if shared.closed.load(Ordering::Relaxed) {
                                let lost = shared.lock().len() + 1;
                                tracing::warn!(error = %e, lost, "Stopping with source changes not stored; they are not mirrored.");
                                return;
                            }
                            failures += 1;
                            let delay = backoff.next_delay();
                            // The first failure and then one line in ten:
                            // a database away for minutes is not a flood.
                            if failures % 10 == 1 {
                                tracing::warn!(
                                    error = %e,
                                    what = change.what(),
                                    channel_id = telegram_id(change.channel_id()), channel_key = change.channel_id(),
                                    failures,
                                    waiting = shared.lock().len(),
                                    retry_in_ms = delay.as_millis() as u64,
                                    "Cannot queue a source change; trying again until the database is back."
                                );
                            }
                            tokio::time::sleep(delay).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, what = change.what(), channel_id = telegram_id(change.channel_id()), channel_key = change.channel_id(), "A source change was refused by the database; it is not mirrored.");
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// What a queued change says of itself in the logs.
pub(super) trait Describe {
    /// `edit`, `deletion`.
    fn what(&self) -> &'static str;
    /// Its channel.
    fn channel_id(&self) -> i64;
}

impl Describe for Change {
    fn what(&self) -> &'static str {
        match self {
            Self::Edit { .. } => "edit",
            Self::Deletion { .. } => "deletion",
        }
    }

    fn channel_id(&self) -> i64 {
        match self {
            Self::Edit { channel_id, .. } | Self::Deletion { channel_id, .. } => *channel_id,
        }
    }
}

/// The backoff between tries of one change.
pub(super) fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct N(i64);

    impl Describe for N {
        fn what(&self) -> &'static str {
            "test"
        }
        fn channel_id(&self) -> i64 {
            self.0
        }
    }

    fn away() -> StoreError {
        StoreError::Pool {
            op: "test",
            message: "database away".into(),
        }
    }

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(5))
    }

    /// Waits (at most 5 s) until `done`.
    async fn until(done: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(5), "timed out");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn changes_wait_out_a_database_away_and_are_stored_in_order() {
        let q = ChangeQueue::new(100);
        let stored = Arc::new(Mutex::new(Vec::new()));
        let tries = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (s, t, c) = (stored.clone(), tries.clone(), calls.clone());
        // The database is away for the first 40 tries (far more than the
        // three tries that used to drop a change).
        let task = tokio::spawn(q.run(
            quick(),
            move |n: &N| {
                let (s, t, n) = (s.clone(), t.clone(), *n);
                async move {
                    if t.fetch_add(1, Ordering::Relaxed) < 40 {
                        return Err(away());
                    }
                    s.lock().unwrap().push(n.0);
                    Ok(())
                }
            },
            move || {
                c.fetch_add(1, Ordering::Relaxed);
            },
        ));
        for i in 0..5 {
            q.push(N(i));
        }
        until(|| stored.lock().unwrap().len() == 5).await;
        assert_eq!(*stored.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(calls.load(Ordering::Relaxed), 5);
        assert!(tries.load(Ordering::Relaxed) >= 45);
        drop(q);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends with its handle")
            .unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_and_a_refused_change_does_not_block() {
        let q = ChangeQueue::new(3);
        let stored = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicBool::new(false));
        let (s, o) = (stored.clone(), open.clone());
        tokio::spawn(q.run(
            quick(),
            move |n: &N| {
                let (s, o, n) = (s.clone(), o.clone(), *n);
                async move {
                    if !o.load(Ordering::Relaxed) {
                        return Err(away());
                    }
                    if n.0 == 5 {
                        // Fails the same way again: no retry.
                        return Err(StoreError::Data {
                            op: "test",
                            message: "bad row".into(),
                        });
                    }
                    s.lock().unwrap().push(n.0);
                    Ok(())
                }
            },
            || {},
        ));
        // 0 is taken by the task (retrying); 1..=6 wait, three at most.
        q.push(N(0));
        until(|| q.waiting() == 0).await;
        for i in 1..=6 {
            q.push(N(i));
        }
        assert_eq!(q.waiting(), 3);
        assert_eq!(q.shared.dropped.load(Ordering::Relaxed), 3);
        open.store(true, Ordering::Relaxed);
        until(|| stored.lock().unwrap().len() == 3).await;
        // 1, 2, 3 dropped for room; 5 refused; the rest in order.
        assert_eq!(*stored.lock().unwrap(), vec![0, 4, 6]);
    }
}
