//! Edits and deletions of source posts applied to the subscribers'
//! copies: the newest change of each message, decided per subscription
//! (its settings, whether its copy exists yet), made as Bot API calls
//! through the limiter; deletions batched per chat.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kuryer_actors::model::{
    Delivery, DeliveryMode, DeliveryOp, MediaKind, MirrorDone, MirrorKind, MirrorOp, Post,
};
use kuryer_actors::rate_limiter::Enqueue;
use tokio::sync::mpsc;

use super::{CopiesWorker, DELETE_BATCH};
use crate::store::{AppliedRow, DeletionsMode, EditsMode, EventTarget, PostEvent, StoreError};

impl CopiesWorker {
    /// Applies the newest pending change of each message to every copy
    /// of it (as Bot API calls through the limiter), and records what is
    /// skipped or finished.
    pub(super) async fn events_pass(
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
