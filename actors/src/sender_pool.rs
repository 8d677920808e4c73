//! SenderPool: makes the Bot API calls.
//!
//! Owns one teloxide `Bot` per configured token (each with its reused HTTP
//! client and `bot_api_url`) and each destination's failure streak. For each
//! [`SendDelivery`](crate::rate_limiter::SendDelivery) it:
//!
//! 1. takes the dedup layer's (Redis) answer on whether this delivery was
//!    already accepted — after a crash, a send may have gone out without its
//!    row being written — and if so records it as sent without a call. The
//!    registry asked for all of a post's deliveries at once when it fanned
//!    the post out; a delivery it could not ask for (Redis down then, or a
//!    delivery resumed at start) is asked for here, right before its send;
//! 2. makes one call: `sendMessage` with the original entities for a text
//!    post, `copyMessage`/`copyMessages` for media and albums, or
//!    `forwardMessage(s)` in forward mode; falls back where Telegram refuses
//!    the message itself (entities it cannot parse → plain text; a post that
//!    cannot be copied → a link to it);
//! 3. marks an accepted send in the dedup layer at once, then classifies the
//!    outcome (see `outcome::classify`) and reports it to the RateLimiter (which
//!    re-queues what must be retried), the finished delivery to the DbWriter,
//!    and destination changes (blocked, migrated, failing) to the daemon.
//!
//! How many calls run at once is bounded by the RateLimiter's `max_in_flight`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use teloxide::Bot;

use crate::backoff::Backoff;
use crate::db_writer::RecordDeliveries;
use crate::model::{
    DedupCheck, Delivery, DeliveryOp, DeliveryRecord, DeliveryStatus, MediaKind, MirrorDone,
};
use crate::outcome::CallResult;
use crate::ports::{Dedup, DestinationEvent, DestinationEvents, LeaseGuard};
use crate::rate_limiter::{SendDelivery, SendFinished, SendOutcome};
use crate::sender_calls::{LINK_NOTE, call, reads_source};
pub use crate::shaping::TOPIC_DELETED;
use crate::shaping::{Shaped, Shaper};
use crate::source_pauses::{Gate, SourcePauses};
use crate::telemetry::events;

/// SenderPool settings.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// After a send whose outcome is unknown: true = send again, false = record and move on.
    pub retry_ambiguous: bool,
    /// Failed sends in a row after which a destination is paused.
    pub max_failures: u32,
    /// The Bot API request timeout the bots were built with: the longest a
    /// send can stay in flight.
    pub request_timeout: Duration,
    /// Send `allow_paid_broadcast=true` with every request that takes it
    /// (`limits.allow_paid_broadcast`): Telegram then allows up to 1,000
    /// messages a second, paid in Stars.
    pub allow_paid_broadcast: bool,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            retry_ambiguous: true,
            max_failures: 10,
            request_timeout: Duration::from_secs(15),
            allow_paid_broadcast: false,
        }
    }
}

/// The SenderPool actor.
pub struct SenderPool {
    bots: Vec<Bot>,
    writer: Recipient<RecordDeliveries>,
    dedup: Arc<dyn Dedup>,
    events: Arc<dyn DestinationEvents>,
    cfg: SenderConfig,
    /// Failures in a row per destination id, with the success count when
    /// the streak began.
    streaks: HashMap<i64, (u32, u64)>,
    /// Sends accepted so far, all chats together.
    successes: u64,
    /// Delay before a send is retried, by attempt.
    retry: Backoff,
    /// Several instances: a send is made only while its channel's lease is
    /// surely held.
    lease_guard: Option<Arc<dyn LeaseGuard>>,
    /// Compiled text transforms by subscription (`shaping.rs`), shared
    /// with the registry, which forgets a removed subscription's.
    shaper: Arc<Shaper>,
    /// Source chats the bots can no longer read (`source_pauses.rs`).
    sources: SourcePauses,
}

impl SenderPool {
    /// A pool over `bots` (one per token, in lane order).
    pub fn new(
        bots: Vec<Bot>,
        writer: Recipient<RecordDeliveries>,
        dedup: Arc<dyn Dedup>,
        events: Arc<dyn DestinationEvents>,
        cfg: SenderConfig,
    ) -> Self {
        assert!(!bots.is_empty(), "at least one bot token");
        Self {
            bots,
            writer,
            dedup,
            events,
            cfg,
            streaks: HashMap::new(),
            successes: 0,
            retry: retry_backoff(),
            lease_guard: None,
            shaper: Arc::new(Shaper::default()),
            sources: SourcePauses::default(),
        }
    }

    /// The compiled transforms' cache, for the registry to forget a
    /// removed subscription's ([`SubscriberRegistry::with_shaper`](crate::subscriber_registry::SubscriberRegistry::with_shaper)).
    pub fn shaper(&self) -> Arc<Shaper> {
        self.shaper.clone()
    }

    /// Sends only while `guard` says the channel's lease is surely held;
    /// a delivery of a channel whose lease is not is dropped unsent.
    pub fn with_lease_guard(mut self, guard: Arc<dyn LeaseGuard>) -> Self {
        self.lease_guard = Some(guard);
        self
    }
}

impl Actor for SenderPool {
    type Context = Context<Self>;
}

/// Tries of a notice whose send failed in a way that may pass: a notice
/// is news for minutes, not worth retrying for ever.
const NOTICE_ATTEMPTS: u32 = 5;

/// Capped exponential backoff with jitter: 200 ms, 400 ms, … up to 30 s,
/// each ±25 %, so many chats failing together do not retry in lockstep.
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(30)).with_jitter(0.25)
}

fn record(
    d: &Delivery,
    to: i64,
    status: DeliveryStatus,
    sent: Option<i64>,
    error: Option<String>,
) -> DeliveryRecord {
    DeliveryRecord {
        backfill: matches!(d.op, DeliveryOp::Backfill),
        sent_message_ids: None,
        subscription_id: d.sub.subscription_id,
        channel_id: d.post.channel_id,
        source_message_id: i64::from(d.post.first_id()),
        post_day: d.post.post_day(),
        destination_chat_id: to,
        sent_message_id: sent,
        status,
        error,
    }
}

/// A post kuryer could not read, so sent by id, that Telegram refused by
/// id as well: `copyMessage` and then `forwardMessage` answered that the
/// message can't be copied or forwarded (`sender_calls::fallback`
/// tries the forward, then a link when the channel is public: the
/// delivery fails, or only the link went out). Nothing else kuryer can
/// try would deliver the post itself.
fn unsendable_by_id(d: &Delivery, reason: &str) -> bool {
    d.post.media == Some(MediaKind::Other)
        && !matches!(d.op, DeliveryOp::Mirror(_))
        && (reason.contains("can't be copied") || reason.contains("can't be forwarded"))
}

impl Handler<SendDelivery> for SenderPool {
    type Result = ();

    fn handle(&mut self, msg: SendDelivery, ctx: &mut Context<Self>) {
        let bot = self.bots[msg.lane % self.bots.len()].clone();
        let dedup = self.dedup.clone();
        let events = self.events.clone();
        let SendDelivery {
            mut delivery,
            lane,
            reply_to,
        } = msg;
        delivery.attempt += 1;
        if let DeliveryOp::Notice(op) = &delivery.op {
            let op = op.clone();
            let (chat, thread) = (delivery.sub.chat_id, delivery.sub.thread_id);
            let paid = self.cfg.allow_paid_broadcast;
            let fut =
                async move { crate::sender_calls::notice(&bot, chat, thread, &op, paid).await };
            ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
                act.finish_notice(delivery, lane, reply_to, result);
            }));
            return;
        }
        if let DeliveryOp::Mirror(op) = &delivery.op {
            let op = op.clone();
            let d = delivery.clone();
            // An edit keeps the subscription's transforms (header, footer,
            // replacements) and a repost goes to the same topic.
            let shaper = self.shaper.clone();
            let paid = self.cfg.allow_paid_broadcast;
            let guard = self.lease_guard.clone();
            let channel_id = d.post.channel_id;
            let fut = async move {
                let may_send = move || guard.as_ref().is_none_or(|g| g.holds(channel_id));
                let (shaped, d) = shape(shaper, d).await;
                crate::mirror_calls::call(&bot, &d, &shaped, &op, events.as_ref(), paid, &may_send)
                    .await
            };
            ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
                act.finish_mirror(delivery, lane, reply_to, result);
            }));
            return;
        }
        // A source the bot can no longer read: the delivery waits, unsent,
        // unless it is the source's next try.
        if reads_source(&delivery)
            && let Gate::Wait(wait) = self
                .sources
                .gate(delivery.post.source_chat_id, Instant::now())
        {
            reply_to.do_send(SendFinished {
                delivery,
                lane,
                outcome: SendOutcome::Retry(wait),
            });
            return;
        }
        let sub_id = delivery.sub.subscription_id;
        let first_id = delivery.post.first_id();
        let d = delivery.clone();
        let shaper = self.shaper.clone();
        let checked = d.dedup;
        let paid = self.cfg.allow_paid_broadcast;
        let guard = self.lease_guard.clone();
        let channel_id = d.post.channel_id;
        let fut = async move {
            // Asked last thing before the call (after the dedup look-up,
            // which may have waited): a process paused past its lease wakes
            // up here and sends nothing.
            let lease_lost = || guard.as_ref().is_some_and(|g| !g.holds(channel_id));
            if lease_lost() {
                return CallResult::LeaseLost;
            }
            let seen = match checked {
                DedupCheck::Checked(seen) => seen,
                DedupCheck::Unchecked => dedup.seen(sub_id, first_id).await,
            };
            if let Some(sent) = seen {
                return CallResult::AlreadySent(sent);
            }
            let (shaped, d) = shape(shaper, d).await;
            let may_send = || !lease_lost();
            let result = call(&bot, &d, &shaped, events.as_ref(), paid, &may_send).await;
            if let CallResult::Sent { id, .. } = &result {
                dedup.mark(sub_id, first_id, i64::from(*id)).await;
            }
            result
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            act.finish(delivery, lane, reply_to, result);
        }));
    }
}

/// The subscription's settings applied to the delivery: inline when there
/// is no transform (nothing to compute), otherwise on a worker thread
/// (`cpu.rs`), so compiling and applying a user's transforms never holds
/// the actor thread.
async fn shape(shaper: Arc<Shaper>, d: Delivery) -> (Shaped, Delivery) {
    if d.sub.transform.is_none() {
        return (shaper.shape(&d), d);
    }
    crate::cpu::run(move || (shaper.shape(&d), d)).await
}

impl SenderPool {
    fn finish(
        &mut self,
        delivery: Delivery,
        lane: usize,
        reply_to: Recipient<SendFinished>,
        result: CallResult,
    ) {
        self.source_answered(&delivery, &result);
        let (outcome, row) = self.settle(&delivery, result);
        if let Some(r) = row {
            self.writer.do_send(RecordDeliveries(vec![r]));
        }
        reply_to.do_send(SendFinished {
            delivery,
            lane,
            outcome,
        });
    }

    /// A call from a paused source that got an answer other than the
    /// source's refusal ends the pause (told once); one with no answer
    /// either way lets the next delivery try.
    fn source_answered(&mut self, d: &Delivery, result: &CallResult) {
        if !reads_source(d) {
            return;
        }
        let source = d.post.source_chat_id;
        match result {
            CallResult::SourceRefused(_) => {}
            CallResult::Sent { .. }
            | CallResult::Failed(_)
            | CallResult::Skipped(_)
            | CallResult::Gone(_)
            | CallResult::EitherRefused(_) => {
                if self.sources.answered(source) {
                    let relay = d.post.relay_message_ids.is_some();
                    events::source_readable(source, d.post.channel_id, relay);
                    self.events.on_event(DestinationEvent::SourceReadable {
                        channel_id: d.post.channel_id,
                        source_chat_id: source,
                        relay,
                        channel_username: d.post.channel_username.clone(),
                    });
                }
            }
            _ => self.sources.untried(source),
        }
    }

    /// What a call's result means for the limiter and the outcome row.
    fn settle(
        &mut self,
        d: &Delivery,
        result: CallResult,
    ) -> (SendOutcome, Option<DeliveryRecord>) {
        let chat = d.sub.chat_id;
        let dest = d.sub.destination_id;
        match result {
            CallResult::Sent {
                id,
                to,
                note,
                parts,
            } => {
                self.streaks.remove(&dest);
                self.successes += 1;
                // Only a link went out: Telegram refused the post by id.
                if let Some(n) = note.as_deref()
                    && n.starts_with(LINK_NOTE)
                    && unsendable_by_id(d, n)
                {
                    self.events.on_event(DestinationEvent::PostUnsendable {
                        post: d.post.clone(),
                        reason: n.to_owned(),
                    });
                }
                let waited = (chrono::Utc::now() - d.post.detected_at)
                    .to_std()
                    .unwrap_or_default();
                events::delivered(to, d.sub.subscription_id, waited, note.as_deref());
                let mut row = record(d, to, DeliveryStatus::Sent, Some(i64::from(id)), note);
                if !parts.is_empty() {
                    row.sent_message_ids = Some(parts.iter().map(|&i| i64::from(i)).collect());
                }
                (SendOutcome::Done, Some(row))
            }
            CallResult::AlreadySent(id) => {
                self.streaks.remove(&dest);
                events::already_delivered(chat, d.sub.subscription_id);
                (
                    SendOutcome::Done,
                    Some(record(d, chat, DeliveryStatus::Sent, Some(id), None)),
                )
            }
            CallResult::Skipped(reason) => {
                tracing::debug!(chat_id = chat, subscription_id = d.sub.subscription_id, reason = %reason, "Delivery skipped.");
                (
                    SendOutcome::Done,
                    Some(record(d, chat, DeliveryStatus::Skipped, None, Some(reason))),
                )
            }
            // Not settled by `sender_calls` (it always is): about this post.
            CallResult::Failed(reason) | CallResult::EitherRefused(reason) => {
                // About this message, not the chat: no failure streak.
                events::delivery_refused(chat, d.sub.subscription_id, &reason);
                if unsendable_by_id(d, &reason) {
                    self.events.on_event(DestinationEvent::PostUnsendable {
                        post: d.post.clone(),
                        reason: reason.clone(),
                    });
                }
                (
                    SendOutcome::Done,
                    Some(record(d, chat, DeliveryStatus::Failed, None, Some(reason))),
                )
            }
            CallResult::Gone(reason) => {
                events::destination_gone(chat, dest, &reason);
                self.events.on_event(DestinationEvent::Gone {
                    sub: d.sub.clone(),
                    reason: reason.clone(),
                });
                (
                    SendOutcome::Done,
                    Some(record(d, chat, DeliveryStatus::Failed, None, Some(reason))),
                )
            }
            CallResult::SourceRefused(reason) => {
                // The source's problem: the destination is not touched, the
                // delivery waits (no row) until the source reads again.
                let now = Instant::now();
                let source = d.post.source_chat_id;
                if self.sources.refused(source, now) {
                    let relay = d.post.relay_message_ids.is_some();
                    events::source_refused(source, d.post.channel_id, relay, &reason);
                    self.events.on_event(DestinationEvent::SourceRefused {
                        channel_id: d.post.channel_id,
                        source_chat_id: source,
                        relay,
                        channel_username: d.post.channel_username.clone(),
                        reason,
                    });
                }
                (SendOutcome::Retry(self.sources.wait(source, now)), None)
            }
            CallResult::RetryAfter(wait) => {
                events::send_rate_limited(chat, wait);
                (SendOutcome::RetryAfter(wait), None)
            }
            // No row: the delivery stays owed in the database, for a start
            // with a valid token to resume.
            CallResult::TokenRefused => (SendOutcome::Revoked, None),
            // No row either: the channel's owner resumes it.
            CallResult::LeaseLost => {
                events::delivery_lease_dropped(chat);
                if let Some(g) = &self.lease_guard {
                    g.dropped(d);
                }
                (SendOutcome::Done, None)
            }
            CallResult::Unreachable(reason) => {
                // Not this chat's fault: no failure streak, retry until it is back.
                tracing::warn!(error = %reason, attempt = d.attempt, "Bot API unreachable; will retry.");
                (SendOutcome::Retry(self.retry.delay(d.attempt)), None)
            }
            CallResult::Transient(reason) => self.settle_failure(d, reason, false),
            CallResult::Ambiguous(reason) => self.settle_failure(d, reason, true),
        }
    }

    /// A failure that may pass — transient, or `ambiguous` (the request
    /// may have reached Telegram) — retried, unless the chat has failed too
    /// many times in a row; an ambiguous one is retried only when
    /// `delivery.on_ambiguous = retry`.
    fn settle_failure(
        &mut self,
        d: &Delivery,
        reason: String,
        ambiguous: bool,
    ) -> (SendOutcome, Option<DeliveryRecord>) {
        let chat = d.sub.chat_id;
        if ambiguous {
            events::send_ambiguous(
                chat,
                d.sub.subscription_id,
                self.cfg.retry_ambiguous,
                &reason,
            );
        }
        // A chat whose sends keep failing (or timing out) is failing too.
        if self.count_failure(d, &reason) {
            let row = record(d, chat, DeliveryStatus::Failed, None, Some(reason));
            return (SendOutcome::Done, Some(row));
        }
        if !ambiguous {
            tracing::debug!(chat_id = chat, attempt = d.attempt, error = %reason, "Transient send failure; retrying.");
            return (SendOutcome::Retry(self.retry.delay(d.attempt)), None);
        }
        let row = record(d, chat, DeliveryStatus::Ambiguous, None, Some(reason));
        if self.cfg.retry_ambiguous {
            // The row says "ambiguous" until the retry's outcome replaces it.
            (SendOutcome::Retry(self.retry.delay(d.attempt)), Some(row))
        } else {
            (SendOutcome::Done, Some(row))
        }
    }

    /// Ends a mirror op: its outcome to the op's `reply`, retriable
    /// failures back to the limiter (edits and deletions are idempotent,
    /// so an ambiguous one is simply made again).
    fn finish_mirror(
        &mut self,
        delivery: Delivery,
        lane: usize,
        reply_to: Recipient<SendFinished>,
        result: CallResult,
    ) {
        let DeliveryOp::Mirror(op) = &delivery.op else {
            unreachable!("a mirror op")
        };
        let reply = |r: Result<Option<i64>, String>| {
            let _ = op.reply.send(MirrorDone {
                tag: op.tag,
                result: r,
            });
        };
        let outcome = match result {
            CallResult::Sent { id, .. } => {
                reply(Ok(Some(i64::from(id))));
                SendOutcome::Done
            }
            CallResult::AlreadySent(id) => {
                reply(Ok(Some(id)));
                SendOutcome::Done
            }
            CallResult::Failed(reason)
            | CallResult::Skipped(reason)
            | CallResult::Gone(reason)
            | CallResult::EitherRefused(reason)
            | CallResult::SourceRefused(reason) => {
                tracing::info!(chat_id = delivery.sub.chat_id, subscription_id = delivery.sub.subscription_id, error = %reason, "Telegram refused a mirrored change; recorded, not retried.");
                reply(Err(reason));
                SendOutcome::Done
            }
            CallResult::RetryAfter(wait) => {
                events::send_rate_limited(delivery.sub.chat_id, wait);
                SendOutcome::RetryAfter(wait)
            }
            CallResult::TokenRefused => SendOutcome::Revoked,
            // No answer: nothing is recorded here, so the channel's new
            // owner finds the change unapplied and makes it.
            CallResult::LeaseLost => {
                events::delivery_lease_dropped(delivery.sub.chat_id);
                SendOutcome::Done
            }
            CallResult::Unreachable(_) | CallResult::Transient(_) | CallResult::Ambiguous(_) => {
                SendOutcome::Retry(self.retry.delay(delivery.attempt))
            }
        };
        reply_to.do_send(SendFinished {
            delivery,
            lane,
            outcome,
        });
    }

    /// Ends a notice: its outcome to the op's `reply`; a 429 and the
    /// failures that may pass back to the limiter, which sends it again
    /// (a notice has no dedup key: an ambiguous one is sent again, as
    /// `delivery.on_ambiguous = retry` does for posts).
    fn finish_notice(
        &mut self,
        delivery: Delivery,
        lane: usize,
        reply_to: Recipient<SendFinished>,
        result: CallResult,
    ) {
        let DeliveryOp::Notice(op) = &delivery.op else {
            unreachable!("a notice op")
        };
        let reply = |r: Result<i64, String>| {
            let tx = op.reply.lock().ok().and_then(|mut g| g.take());
            if let Some(tx) = tx {
                let _ = tx.send(r);
            }
        };
        let chat = delivery.sub.chat_id;
        let outcome = match result {
            CallResult::Sent { id, .. } => {
                reply(Ok(i64::from(id)));
                SendOutcome::Done
            }
            CallResult::AlreadySent(id) => {
                reply(Ok(id));
                SendOutcome::Done
            }
            CallResult::Failed(reason)
            | CallResult::Skipped(reason)
            | CallResult::Gone(reason)
            | CallResult::EitherRefused(reason)
            | CallResult::SourceRefused(reason) => {
                reply(Err(reason));
                SendOutcome::Done
            }
            CallResult::RetryAfter(wait) => {
                events::send_rate_limited(chat, wait);
                SendOutcome::RetryAfter(wait)
            }
            CallResult::TokenRefused => SendOutcome::Revoked,
            CallResult::LeaseLost => SendOutcome::Done,
            CallResult::Unreachable(_) | CallResult::Transient(_) | CallResult::Ambiguous(_)
                if delivery.attempt < NOTICE_ATTEMPTS =>
            {
                SendOutcome::Retry(self.retry.delay(delivery.attempt))
            }
            CallResult::Unreachable(reason)
            | CallResult::Transient(reason)
            | CallResult::Ambiguous(reason) => {
                reply(Err(reason));
                SendOutcome::Done
            }
        };
        reply_to.do_send(SendFinished {
            delivery,
            lane,
            outcome,
        });
    }

    /// Counts a failure against the destination; true (and the destination
    /// reported as failing) when the streak reached `max_failures` *while
    /// other chats kept succeeding*. When nothing succeeds anywhere the
    /// trouble is Telegram's or the network's, not this chat's: the delivery
    /// keeps being retried and no destination is paused.
    fn count_failure(&mut self, d: &Delivery, reason: &str) -> bool {
        let successes = self.successes;
        let (n, since) = self
            .streaks
            .entry(d.sub.destination_id)
            .or_insert((0, successes));
        *n += 1;
        if *n >= self.cfg.max_failures && successes > *since {
            self.streaks.remove(&d.sub.destination_id);
            events::destination_failing(
                d.sub.chat_id,
                d.sub.subscription_id,
                self.cfg.max_failures,
            );
            self.events.on_event(DestinationEvent::Failing {
                sub: d.sub.clone(),
                reason: reason.to_owned(),
            });
            return true;
        }
        false
    }
}
