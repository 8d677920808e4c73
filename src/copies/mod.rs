//! What happens to subscribers' copies after a post's first delivery: the
//! copies worker applies queued edits and deletions of source posts to
//! them (`edits.rs`), and sends history on subscribe (`backfills.rs`).
//!
//! Everything it does is durable first and applied after: an edit or
//! deletion is a `post_events` row (written by the update loop or the
//! reader as it arrives), a backfill a `backfills` row. Each pass (on a
//! wake, else every second) reads what is not done and queues Bot API
//! calls through the same RateLimiter as every send ([`DeliveryOp`]), so
//! lanes, chat spacing and flood waits apply. What was applied is recorded
//! per event and subscription (`post_event_applied`), so a restart applies
//! nothing twice; an edit applied again after a crash in between is
//! harmless ("message is not modified" counts as done).
//!
//! An event waits while its post's first delivery to a subscription is
//! not finished (no outcome row and the delivery held in [`InFlight`], or
//! the post not yet fanned out or resumed by this process): it is applied
//! after it, to the copy it made, never sent as a second copy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::Addr;
use kuryer_actors::in_flight::InFlight;
use kuryer_actors::model::{DedupCheck, Delivery, DeliveryOp, MirrorDone, Post};
use kuryer_actors::rate_limiter::RateLimiter;
use tokio::sync::{Notify, mpsc};

use crate::store::{AppliedRow, EventTarget, Store};

mod backfills;
mod edits;

/// Most message ids one `deleteMessages` takes.
const DELETE_BATCH: usize = 100;
/// A pass runs at least this often.
const PASS_INTERVAL: Duration = Duration::from_secs(1);
/// After a wake, how long to gather more (a deletion of many messages
/// arrives as many rows; they are sent in as few calls as possible).
const GATHER: Duration = Duration::from_millis(300);
/// An op with no answer this long (its bot halted) is forgotten, and made
/// again by a later pass.
const OP_TIMEOUT: Duration = Duration::from_secs(600);

/// What a queued op stands for.
struct Queued {
    /// (event, subscription) pairs it settles.
    keys: Vec<(i64, i64)>,
    since: Instant,
}

/// The worker; see the module docs.
pub struct CopiesWorker {
    store: Store,
    limiter: Addr<RateLimiter>,
    in_flight: Arc<InFlight>,
    window: Duration,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    next_tag: u64,
    queued: HashMap<u64, Queued>,
    busy: HashSet<(i64, i64)>,
    backfilling: HashSet<i64>,
    /// Several instances: only the owner of a channel mirrors its changes
    /// and sends its backfills (`None`: one instance, everything).
    ownership: Option<Arc<crate::instance::Ownership>>,
    /// Backfills' ranges and history reads (`backfill.rs`).
    history: backfills::HistoryReads,
}

impl CopiesWorker {
    /// A worker over the pipeline's limiter and held set; `reader`: the
    /// reader accounts, when the daemon has them (channels' history).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        limiter: Addr<RateLimiter>,
        in_flight: Arc<InFlight>,
        window: Duration,
        wake: Arc<Notify>,
        stop: Arc<AtomicBool>,
        ownership: Option<Arc<crate::instance::Ownership>>,
        reader: Option<crate::reader::ReaderPool>,
    ) -> Self {
        Self {
            history: backfills::HistoryReads::new(store.clone(), reader),
            store,
            limiter,
            in_flight,
            window,
            wake,
            stop,
            next_tag: 1,
            queued: HashMap::new(),
            busy: HashSet::new(),
            backfilling: HashSet::new(),
            ownership,
        }
    }

    /// Runs until the pipeline stops.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::unbounded_channel::<MirrorDone>();
        let wake = self.wake.clone();
        loop {
            tokio::select! {
                _ = wake.notified() => tokio::time::sleep(GATHER).await,
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
                Some(done) = rx.recv() => {
                    let mut all = vec![done];
                    while let Ok(d) = rx.try_recv() {
                        all.push(d);
                    }
                    self.settle(all).await;
                    continue;
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            self.queued.retain(|_, q| {
                let keep = q.since.elapsed() < OP_TIMEOUT;
                if !keep {
                    for k in &q.keys {
                        self.busy.remove(k);
                    }
                }
                keep
            });
            if let Err(e) = self.events_pass(&tx).await {
                tracing::warn!(error = %e, "Mirroring edits and deletions failed; trying again.");
            }
            if let Err(e) = self.backfill_pass().await {
                tracing::warn!(error = %e, "Backfill pass failed; trying again.");
            }
        }
    }

    /// Records the outcomes of finished ops.
    async fn settle(&mut self, done: Vec<MirrorDone>) {
        let mut rows = Vec::new();
        for d in done {
            let Some(q) = self.queued.remove(&d.tag) else {
                continue;
            };
            for (event_id, subscription_id) in q.keys {
                self.busy.remove(&(event_id, subscription_id));
                rows.push(match &d.result {
                    Ok(sent) => AppliedRow {
                        event_id,
                        subscription_id,
                        status: "done",
                        sent_message_id: *sent,
                        error: None,
                    },
                    Err(reason) => AppliedRow {
                        event_id,
                        subscription_id,
                        status: "refused",
                        sent_message_id: None,
                        error: Some(reason.clone()),
                    },
                });
            }
        }
        // A row not written is applied again by a later pass (idempotent).
        if let Err(e) = self.store.record_applied(&rows).await {
            tracing::warn!(error = %e, rows = rows.len(), "Cannot record applied edits; they will be applied again.");
        }
    }

    fn tag(&mut self, keys: Vec<(i64, i64)>) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        for k in &keys {
            self.busy.insert(*k);
        }
        self.queued.insert(
            tag,
            Queued {
                keys,
                since: Instant::now(),
            },
        );
        tag
    }

    /// A delivery of `post` to the target's copy (its chat may have moved).
    fn delivery(&self, post: &Post, target: &EventTarget, op: DeliveryOp) -> Delivery {
        let mut sub = (*target.sub).clone();
        if let Some(chat) = target.sent_chat_id {
            sub.chat_id = chat;
        }
        Delivery {
            post: Arc::new(post.clone()),
            sub: Arc::new(sub),
            attempt: 0,
            dedup: DedupCheck::Checked(None),
            op,
        }
    }

    fn owns(&self, channel_id: i64) -> bool {
        self.ownership
            .as_ref()
            .is_none_or(|o| o.owns_channel(channel_id))
    }
}
