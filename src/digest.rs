//! Sends digests: for each subscription with a digest (`subscriptions.digest`),
//! when it is due, one message (or several, split between entries at
//! Telegram's 4,096 UTF-16 units) listing the posts held for it, oldest
//! first (`kuryer_actors::digest` renders them).
//!
//! Holding: while a digest is set, the subscription queries report the
//! marker `quiet::DIGEST_HOLD` instead of its quiet hours, so the registry,
//! the resume and the sweep hold every post of it exactly as for quiet
//! hours — not queued, owed in the database (no outcome row), surviving
//! restarts.
//!
//! Once and only once, across crashes:
//! 1. **claim** — a `digest_runs` row keyed by (subscription, period = the
//!    due instant) fixes the posts the digest lists; a restart reads the same
//!    row back, so it renders the same messages;
//! 2. **send** the parts not yet recorded, recording `parts_sent` after each;
//! 3. **finish** — one transaction writes each listed post's outcome row
//!    (`skipped`, `digest`: never sent again), marks the run done and sets
//!    the next due time.
//!
//! A crash between a part's send and its record sends that one part again
//! after the restart (Telegram has no idempotency key); a crash anywhere
//! else repeats nothing and loses nothing.
//!
//! Every part goes through the rate limiter (a `DeliveryOp::Notice`), like
//! a delivery: many digests due at once share the bot's per-second limit
//! and each chat's spacing with the deliveries instead of going out in
//! one burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use chrono::Utc;
use kuryer_actors::digest::{Digest, MAX_UNITS, render};
use kuryer_actors::model::{Delivery, NoticeTarget};
use kuryer_actors::rate_limiter::{Enqueue, RateLimiter};

use crate::i18n::{Lang, Texts};
use crate::instance::Ownership;
use crate::store::{DigestDue, Store, StoreError};

/// How often due digests are looked for, at most.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Why one digest was not sent (it is tried again at the next check).
#[derive(Debug, thiserror::Error)]
pub enum DigestSendError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Telegram refused or did not answer.
    #[error("sending the digest failed: {0}")]
    Send(String),
}

/// The digest sender.
pub struct DigestWorker {
    store: Store,
    limiter: Addr<RateLimiter>,
    texts: Arc<Texts>,
    every: Duration,
    stop: Arc<AtomicBool>,
    ownership: Option<Arc<Ownership>>,
}

impl DigestWorker {
    /// A worker sending through the rate limiter `limiter`, checking
    /// every `every` (at most [`CHECK_EVERY`]).
    pub fn new(
        store: Store,
        limiter: Addr<RateLimiter>,
        every: Duration,
        stop: Arc<AtomicBool>,
        ownership: Option<Arc<Ownership>>,
    ) -> Self {
        Self {
            store,
            limiter,
            texts: Texts::shared(),
            every: every.clamp(Duration::from_millis(100), CHECK_EVERY),
            stop,
            ownership,
        }
    }

    /// Runs until the shutdown.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = self.check().await {
                tracing::warn!(error = %e, "Cannot read due digests; trying again.");
            }
        }
    }

    /// One check: every due digest sent (or left for the next check).
    pub async fn check(&self) -> Result<(), StoreError> {
        let now = Utc::now();
        for due in self.store.due_digests(now).await? {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(o) = &self.ownership
                && !o.owns_channel(due.channel_id)
            {
                continue;
            }
            if let Err(e) = self.one(&due).await {
                tracing::warn!(subscription_id = due.subscription_id, error = %e,
                    "Digest not sent; trying again at the next check.");
            }
        }
        Ok(())
    }

    async fn one(&self, due: &DigestDue) -> Result<(), DigestSendError> {
        let sub = due.subscription_id;
        let Some(schedule) = Digest::from_stored(Some(&due.spec)) else {
            return Ok(());
        };
        let now = Utc::now();
        // An unfinished run first (a restart in the middle of one).
        let period = match (due.open_period, due.due_at) {
            (Some(p), _) => p,
            (None, Some(at)) if at <= now => at,
            // Turned off: the last digest goes at once.
            (None, None) if matches!(schedule, Digest::Closing) => now,
            (None, _) => {
                self.store
                    .set_digest_due(sub, schedule.next_due(now))
                    .await?;
                return Ok(());
            }
        };
        let run = self.store.claim_digest(sub, period, now).await?;
        if run.done {
            return Ok(());
        }
        let next = schedule.next_due(now);
        if run.post_ids.is_empty() {
            self.store.finish_digest(sub, period, next).await?;
            return Ok(());
        }
        let Some(target) = self.store.digest_target(sub).await? else {
            // No active destination: the posts stay owed.
            return Ok(());
        };
        let entries = self.store.digest_entries(&run.post_ids).await?;
        let lang = Lang::parse(&target.language).unwrap_or(Lang::En);
        let header = self
            .texts
            .get(lang, "digest-header", &[("count", entries.len().into())]);
        let parts = render(&header, &entries, MAX_UNITS);
        let to = NoticeTarget {
            channel_id: due.channel_id,
            subscription_id: sub,
            chat_id: target.chat_id,
            kind: target.kind,
            bot_id: target.bot_id,
            thread_id: target.thread_id,
        };
        // One part at a time: each is recorded before the next is queued.
        for (i, text) in parts.iter().enumerate().skip(run.parts_sent) {
            // A notice delivery (`DeliveryOp::Notice`), as the pipeline's
            // `notices.rs` sends them: queued, then its outcome awaited.
            let (d, sent) = Delivery::notice(&to, text.clone(), None);
            self.limiter
                .send(Enqueue(vec![d]))
                .await
                .map_err(|e| DigestSendError::Send(e.to_string()))?;
            match sent.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(DigestSendError::Send(e)),
                Err(_) => {
                    return Err(DigestSendError::Send(
                        "not sent: the limiter let it go".into(),
                    ));
                }
            }
            self.store.digest_parts_sent(sub, period, i + 1).await?;
        }
        let recorded = self.store.finish_digest(sub, period, next).await?;
        crate::telemetry::events::digest_sent(sub, entries.len(), parts.len(), recorded);
        Ok(())
    }
}
