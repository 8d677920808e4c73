//! History on subscribe: each backfill's range, the channel's history read
//! from Telegram when fewer posts are recorded than it asks for, and the
//! copies worker's pass that sends it.
//!
//! 1. A backfill asked while the channel's mark was 0 (added just now)
//!    covers the posts up to where its reading started
//!    (`channels.start_message_id`): it waits for the channel's first read.
//! 2. A channel read over MTProto (a reader pool, not a bot-admin channel)
//!    whose recorded posts at or below the backfill's newest message are
//!    fewer than it asks for has its history read once for that backfill
//!    ([`ReaderPool::backfill_history`]; `backfills.history_read_at`), by
//!    the owner of the channel only. A flood wait, no live account or no
//!    answer: the backfill waits and reads again later; the channel
//!    refused for good (private, gone): it sends what is recorded.
//! 3. Then it is sent as before, recorded posts only (history posts
//!    included), oldest first. Bot-admin channels have no history to read
//!    (the Bot API has none): only what kuryer recorded is sent.

use kuryer_actors::telemetry::events::telegram_id;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use kuryer_actors::model::{DedupCheck, Delivery, DeliveryOp};
use kuryer_actors::rate_limiter::Enqueue;

use crate::reader::{HistoryError, ReaderPool};
use crate::store::{Backfill, Store, StoreError};

/// What to do with a backfill in this pass.
pub(crate) enum Step {
    /// Send what is recorded up to its (resolved) newest message.
    Send(Backfill),
    /// Not now: the channel's first read, or a history read, is to come.
    Wait,
    /// Another instance owns the channel: its own worker sends it.
    NotOurs,
}

/// The backfills' history reads; see the module docs.
pub(crate) struct HistoryReads {
    store: Store,
    /// The reader accounts, when the daemon has them (none: no channel is
    /// read over MTProto).
    reader: Option<ReaderPool>,
    /// Backfills whose history read waits, until when.
    later: HashMap<i64, Instant>,
}

impl HistoryReads {
    /// Over `reader`, when the daemon has reader accounts.
    pub(crate) fn new(store: Store, reader: Option<ReaderPool>) -> Self {
        Self {
            store,
            reader,
            later: HashMap::new(),
        }
    }

    /// Decides on `b` (and reads its history when it must); `owns` tells
    /// the channels this instance owns.
    pub(crate) async fn prepare(
        &mut self,
        mut b: Backfill,
        owns: impl Fn(i64) -> bool,
    ) -> Result<Step, StoreError> {
        if self.later.get(&b.id).is_some_and(|t| Instant::now() < *t) {
            return Ok(Step::Wait);
        }
        let Some(ch) = self.store.backfill_channel(b.subscription_id).await? else {
            // The subscription is gone: the send step finishes it.
            return Ok(Step::Send(b));
        };
        let channel_id = ch.channel.channel_id;
        if !owns(channel_id) {
            return Ok(Step::NotOurs);
        }
        let reader = self.reader.as_ref().filter(|_| !ch.channel.bot_is_admin);
        if b.upto_message_id == 0 {
            match ch.start {
                Some(start) => b.upto_message_id = start,
                // Resolving, or resolved and not read yet.
                None if reader.is_some()
                    && ch.mark == 0
                    && matches!(ch.status.as_str(), "pending" | "active") =>
                {
                    return Ok(Step::Wait);
                }
                None => {}
            }
        }
        let Some(reader) = reader else {
            return Ok(Step::Send(b));
        };
        if b.history_read
            || b.upto_message_id == 0
            || ch.status != "active"
            || ch.channel.chat_id == 0
        {
            return Ok(Step::Send(b));
        }
        let want = i64::from(b.count);
        let recorded = self
            .store
            .recorded_posts_upto(channel_id, b.upto_message_id, want)
            .await?;
        if recorded >= want {
            return Ok(Step::Send(b));
        }
        let wanted = usize::try_from(b.count).unwrap_or(0);
        match reader
            .backfill_history(&ch.channel, b.upto_message_id, wanted)
            .await
        {
            Ok(read) => {
                tracing::info!(
                    backfill_id = b.id,
                    subscription_id = b.subscription_id,
                    channel_id = telegram_id(channel_id),
                    channel_key = channel_id,
                    upto_message_id = b.upto_message_id,
                    recorded,
                    read,
                    "Read the channel's history for a backfill."
                );
            }
            Err(HistoryError::Unreadable(reason)) => {
                tracing::info!(
                    backfill_id = b.id,
                    subscription_id = b.subscription_id,
                    channel_id = telegram_id(channel_id), channel_key = channel_id,
                    recorded,
                    reason = %reason,
                    "The channel's history cannot be read; the backfill sends what is recorded."
                );
            }
            Err(HistoryError::Later {
                retry_after,
                reason,
            }) => {
                tracing::info!(
                    backfill_id = b.id,
                    subscription_id = b.subscription_id,
                    channel_id = telegram_id(channel_id), channel_key = channel_id,
                    retry_after_s = retry_after.as_secs(),
                    reason = %reason,
                    "Cannot read the channel's history for a backfill now; it waits."
                );
                self.later.insert(b.id, Instant::now() + retry_after);
                return Ok(Step::Wait);
            }
            Err(HistoryError::Store(e)) => return Err(e),
        }
        self.later.remove(&b.id);
        self.store.backfill_history_read(b.id).await?;
        b.history_read = true;
        Ok(Step::Send(b))
    }
}

impl super::CopiesWorker {
    /// Sends each pending backfill's posts through the limiter, once
    /// its range is known (and, over MTProto, the history read).
    pub(super) async fn backfill_pass(&mut self) -> Result<(), StoreError> {
        for b in self.store.pending_backfills().await? {
            // Its range, and the channel's history read when fewer posts
            // are recorded than it asks for.
            let ownership = self.ownership.clone();
            let owns = |c| ownership.as_ref().is_none_or(|o| o.owns_channel(c));
            let b = match self.history.prepare(b, owns).await? {
                Step::Send(b) => b,
                Step::Wait | Step::NotOurs => continue,
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
