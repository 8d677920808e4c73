//! The mirror worker: applies queued edits and deletions of source posts
//! to the subscribers' copies, and sends history on subscribe (backfills).
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::Addr;
use kuryer_actors::in_flight::InFlight;
use kuryer_actors::model::{
    DedupCheck, Delivery, DeliveryMode, DeliveryOp, MediaKind, MirrorDone, MirrorKind, MirrorOp,
    Post,
};
use kuryer_actors::rate_limiter::{Enqueue, RateLimiter};
use tokio::sync::{Notify, mpsc};

use crate::store::{
    AppliedRow, DeletionsMode, EditsMode, EventTarget, PostEvent, Store, StoreError,
};

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
pub struct MirrorWorker {
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
    history: crate::backfill::HistoryReads,
}

impl MirrorWorker {
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
            history: crate::backfill::HistoryReads::new(store.clone(), reader),
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

    /// Applies the newest pending change of each message to every copy
    /// of it (as Bot API calls through the limiter), and records what is
    /// skipped or finished.
    async fn events_pass(
        &mut self,
        tx: &mpsc::UnboundedSender<MirrorDone>,
    ) -> Result<(), StoreError> {
        let mut events = self.store.pending_post_events(2000).await?;
        // Another instance's channels are its own to mirror: taking them
        // here too would repost twice (`edits = repost`).
        events.retain(|e| self.owns(e.channel_id));
        if events.is_empty() {
            return Ok(());
        }
        // Only the newest change of a message counts: older edits of it
        // are superseded (the copy is edited once, to the final text).
        let mut newest: HashMap<(i64, i32), i64> = HashMap::new();
        for e in &events {
            newest.insert((e.channel_id, e.message_id), e.id);
        }
        let (current, superseded): (Vec<_>, Vec<_>) = events
            .iter()
            .partition(|e| newest[&(e.channel_id, e.message_id)] == e.id);
        let superseded: Vec<i64> = superseded.iter().map(|e| e.id).collect();
        self.store
            .finish_post_events(&superseded, "superseded")
            .await?;
        let mut plan = EventsPlan::default();
        for e in current {
            self.plan_event(e, tx, &mut plan).await?;
        }
        let ops = plan.ops_with_deletions(|keys| self.tag(keys), tx);
        self.store.record_applied(&plan.applied).await?;
        self.store
            .finish_post_events(&plan.finished, "done")
            .await?;
        self.store
            .finish_post_events(&plan.no_post, "no post")
            .await?;
        if !ops.is_empty() {
            tracing::debug!(calls = ops.len(), "Mirroring edits and deletions.");
            let _ = self.limiter.send(Enqueue(ops)).await;
        }
        Ok(())
    }

    /// Whether `e`, made at `created_at`, is older than the resume window.
    fn too_old(&self, created_at: chrono::DateTime<chrono::Utc>) -> bool {
        chrono::Utc::now() - created_at
            > chrono::Duration::from_std(self.window).unwrap_or_default()
    }

    /// What one change means for each subscription's copy, into `plan`.
    async fn plan_event(
        &mut self,
        e: &PostEvent,
        tx: &mpsc::UnboundedSender<MirrorDone>,
        plan: &mut EventsPlan,
    ) -> Result<(), StoreError> {
        let Some(t) = self
            .store
            .post_event_targets(e.channel_id, e.message_id, e.id)
            .await?
        else {
            // Not recorded: later, unless the mark is past it (then it
            // never will be: a service message, or before kuryer knew it).
            if self.store.channel_mark(e.channel_id).await? >= i64::from(e.message_id)
                || self.too_old(e.created_at)
            {
                plan.no_post.push(e.id);
            }
            return Ok(());
        };
        // A copy not sent yet (held by quiet hours or a digest, owed after
        // a crash) is made from the recorded post: the edit goes into it,
        // once (the recorded text then equals the edit's).
        if !e.delete && t.post.message_ids.len() == 1 && {
            let ed = edited(&t.post, e);
            ed.text != t.post.text || ed.entities != t.post.entities
        } {
            self.store.record_edit_in_post(e).await?;
        }
        if t.targets.is_empty() {
            plan.finished.push(e.id);
            return Ok(());
        }
        let index = t.post.message_ids.iter().position(|&m| m == e.message_id);
        for target in &t.targets {
            let key = (e.id, target.sub.subscription_id);
            if self.busy.contains(&key) {
                continue;
            }
            let skip = |why: &str| AppliedRow {
                event_id: e.id,
                subscription_id: key.1,
                status: "skipped",
                sent_message_id: None,
                error: Some(why.to_owned()),
            };
            match self.decide(e, &t.post, target, index) {
                Decision::Wait => {}
                Decision::Skip(why) => plan.applied.push(skip(why)),
                Decision::Delete(copy) => {
                    let d = self.delivery(&t.post, target, DeliveryOp::Send);
                    plan.deletions
                        .entry(d.sub.chat_id)
                        .or_default()
                        .push((copy, e.id, d));
                }
                Decision::Call(kind) => {
                    let tag = self.tag(vec![key]);
                    let op = DeliveryOp::Mirror(Arc::new(MirrorOp {
                        tag,
                        kind,
                        reply: tx.clone(),
                    }));
                    plan.ops
                        .push(self.delivery(&edited(&t.post, e), target, op));
                }
            }
        }
        Ok(())
    }

    /// What change `e` of `post` means for one subscription's copy;
    /// `index`: the changed message's place in the post.
    fn decide(
        &self,
        e: &PostEvent,
        post: &Post,
        target: &EventTarget,
        index: Option<usize>,
    ) -> Decision {
        let ignored = if e.delete {
            target.settings.deletions == DeletionsMode::Ignore
        } else {
            target.settings.edits == EditsMode::Ignore
        };
        if ignored {
            return Decision::Skip("setting: ignore");
        }
        match target.status.as_deref() {
            Some("sent") => {}
            Some("failed") | Some("skipped") => return Decision::Skip("no copy was delivered"),
            _ => {
                // The first delivery is owed or under way: later.
                let first = post.message_ids[0];
                let held = self.in_flight.is_held((target.sub.subscription_id, first));
                let handled = self.in_flight.is_handled((e.channel_id, first));
                if self.too_old(e.created_at) || (!held && handled) {
                    // Held (quiet hours, a digest) or filtered out: a copy
                    // made later carries the edit (`plan_event`).
                    return Decision::Skip("no copy sent yet; one made later is edited");
                }
                return Decision::Wait;
            }
        }
        let copy = index.and_then(|i| target.sent_ids.get(i)).copied();
        if e.delete {
            return match copy {
                Some(copy) => Decision::Delete(copy as i32),
                None => Decision::Skip("no copy of this message"),
            };
        }
        if target.settings.edits == EditsMode::Repost {
            Decision::Call(MirrorKind::Repost)
        } else if !post.copyable {
            // Its copy is a link (protected content): editing it to the
            // text would copy what may not be copied.
            Decision::Skip("the copy is a link to the post")
        } else if target.sub.mode == DeliveryMode::Forward {
            Decision::Skip("forwarded copies cannot be edited")
        } else if let Some(copy) = copy {
            Decision::Call(MirrorKind::Edit {
                message_id: copy as i32,
                file_id: e.file_id.clone(),
            })
        } else {
            Decision::Skip("no copy of this message")
        }
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

    async fn backfill_pass(&mut self) -> Result<(), StoreError> {
        for b in self.store.pending_backfills().await? {
            // Its range, and the channel's history read when fewer posts
            // are recorded than it asks for.
            let ownership = self.ownership.clone();
            let owns = |c| ownership.as_ref().is_none_or(|o| o.owns_channel(c));
            let b = match self.history.prepare(b, owns).await? {
                crate::backfill::Step::Send(b) => b,
                crate::backfill::Step::Wait | crate::backfill::Step::NotOurs => continue,
            };
            // A sweep's mark before the snapshot: a delivery settled after
            // it is not claimed again (see `InFlight::claim_swept`).
            let mark = self.in_flight.begin_sweep();
            let read = self.store.backfill_posts(&b).await;
            let (sub, posts) = match read {
                Ok(Some((sub, _))) if !self.owns(sub.channel_id) => {
                    self.in_flight.end_sweep(mark);
                    continue;
                }
                Ok(Some(x)) => x,
                Ok(None) => {
                    self.in_flight.end_sweep(mark);
                    self.store.finish_backfill(b.id).await?;
                    continue;
                }
                Err(e) => {
                    self.in_flight.end_sweep(mark);
                    return Err(e);
                }
            };
            if posts.is_empty() {
                self.in_flight.end_sweep(mark);
                self.backfilling.remove(&b.id);
                self.store.finish_backfill(b.id).await?;
                tracing::info!(subscription_id = b.subscription_id, "Backfill finished.");
                continue;
            }
            let deliveries: Vec<Delivery> = posts
                .into_iter()
                .map(|p| Delivery {
                    post: Arc::new(p),
                    sub: sub.clone(),
                    attempt: 0,
                    dedup: DedupCheck::Unchecked,
                    op: DeliveryOp::Backfill,
                })
                .collect();
            let claimed = self.in_flight.claim_swept(&mark, deliveries);
            self.in_flight.end_sweep(mark);
            if !claimed.is_empty() {
                if self.backfilling.insert(b.id) {
                    tracing::info!(
                        subscription_id = b.subscription_id,
                        posts = claimed.len(),
                        "Sending history on subscribe."
                    );
                }
                let _ = self.limiter.send(Enqueue(claimed)).await;
            }
        }
        Ok(())
    }
}

/// The post as edited by `e` (text, entities, media kind).
fn edited(post: &Post, e: &PostEvent) -> Post {
    let mut p = post.clone();
    p.text = e.text.clone();
    p.entities = e
        .entities
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    p.media = e.media.as_deref().and_then(|m| {
        serde_json::from_value::<MediaKind>(serde_json::Value::String(m.to_owned())).ok()
    });
    p
}

/// What a change means for one subscription's copy.
enum Decision {
    /// Its first delivery is not finished: a later pass looks again.
    Wait,
    /// Nothing to do, for this reason (recorded as `skipped`).
    Skip(&'static str),
    /// Delete this copy (batched per chat).
    Delete(i32),
    /// Make this call.
    Call(MirrorKind),
}

/// What one events pass decided, written and queued at its end.
#[derive(Default)]
struct EventsPlan {
    /// Skipped, per event and subscription.
    applied: Vec<AppliedRow>,
    /// Calls to queue.
    ops: Vec<Delivery>,
    /// Deletions per destination chat: (copy id, event, delivery).
    deletions: BTreeMap<i64, Vec<(i32, i64, Delivery)>>,
    /// Events with nothing left to apply.
    finished: Vec<i64>,
    /// Events whose post never will be recorded.
    no_post: Vec<i64>,
}

impl EventsPlan {
    /// The calls, with each chat's deletions in batches of `DELETE_BATCH`
    /// (one `deleteMessages` each); `tag` marks their keys busy.
    fn ops_with_deletions(
        &mut self,
        mut tag: impl FnMut(Vec<(i64, i64)>) -> u64,
        tx: &mpsc::UnboundedSender<MirrorDone>,
    ) -> Vec<Delivery> {
        let mut ops = std::mem::take(&mut self.ops);
        for (_, mut copies) in std::mem::take(&mut self.deletions) {
            copies.sort_by_key(|c| c.0);
            for chunk in copies.chunks(DELETE_BATCH) {
                let keys = chunk
                    .iter()
                    .map(|c| (c.1, c.2.sub.subscription_id))
                    .collect();
                let mut d = chunk[0].2.clone();
                d.op = DeliveryOp::Mirror(Arc::new(MirrorOp {
                    tag: tag(keys),
                    kind: MirrorKind::Delete {
                        message_ids: chunk.iter().map(|c| c.0).collect(),
                    },
                    reply: tx.clone(),
                }));
                ops.push(d);
            }
        }
        ops
    }
}
