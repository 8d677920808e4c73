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
//!    outcome (see `classify`) and reports it to the RateLimiter (which
//!    re-queues what must be retried), the finished delivery to the DbWriter,
//!    and destination changes (blocked, migrated, failing) to the daemon.
//!
//! How many calls run at once is bounded by the RateLimiter's `max_in_flight`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use teloxide::payloads::{
    CopyMessageSetters, CopyMessagesSetters, ForwardMessageSetters, ForwardMessagesSetters,
    SendMessageSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, MessageId, ThreadId};
use teloxide::{ApiError, Bot, RequestError};

use crate::backoff::Backoff;
use crate::db_writer::RecordDeliveries;
use crate::metrics_names as names;
use crate::model::{
    DedupCheck, Delivery, DeliveryMode, DeliveryOp, DeliveryRecord, DeliveryStatus, MirrorDone,
};
use crate::ports::{Dedup, DestinationEvent, DestinationEvents, LeaseGuard};
use crate::rate_limiter::{SendDelivery, SendFinished, SendOutcome};
pub use crate::shaping::TOPIC_DELETED;
use crate::shaping::{Shaped, Shaper, topic_gone};

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
    /// Compiled text transforms by subscription (`shaping.rs`).
    shaper: Shaper,
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
            shaper: Shaper::default(),
        }
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

/// What the calls for one delivery produced.
#[derive(Debug)]
pub(crate) enum CallResult {
    /// Accepted; the id of the (first) message in the destination, and
    /// every id when the copy has several parts.
    Sent {
        id: i32,
        to: i64,
        note: Option<String>,
        parts: Vec<i32>,
    },
    /// Already accepted before (dedup hit).
    AlreadySent(i64),
    /// Refused for good for this message; retrying cannot help.
    Failed(String),
    /// Not sent on purpose (cannot be copied and has no public link).
    Skipped(String),
    /// The bot can no longer post in this chat.
    Gone(String),
    /// Telegram asks to wait.
    RetryAfter(Duration),
    /// The Bot API could not be reached at all: not this chat's fault.
    Unreachable(String),
    /// The bot's token was refused (401): revoked or wrong. Retrying cannot
    /// help until the operator gives kuryer a valid token.
    TokenRefused,
    /// Failed in a way that may pass (5xx, reset connection).
    Transient(String),
    /// The request may or may not have reached Telegram (timed out after it
    /// was written): the one way a duplicate can happen.
    Ambiguous(String),
    /// Not sent: the channel's lease is not surely held by this process
    /// (several instances); its owner sends it.
    LeaseLost,
}

/// Makes the call(s) for one delivery.
pub(crate) async fn call(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    events: &dyn DestinationEvents,
    paid: bool,
) -> CallResult {
    let mut to = d.sub.chat_id;
    // Protected content must not be copied, not even as text: a public
    // channel's post is announced by a link, a private one's is skipped.
    if !d.post.copyable {
        return match link_text(d) {
            Some(text) => match paid_text(bot, to, text, paid, shaped.thread).await {
                Ok(m) => CallResult::Sent {
                    id: m.id.0,
                    to,
                    note: Some("sent as a link: the post cannot be copied".into()),
                    parts: Vec::new(),
                },
                Err(e) => topic_gone(&e, shaped).unwrap_or_else(|| classify(e, false)),
            },
            None => CallResult::Skipped(
                "the post cannot be copied and its channel has no public link".into(),
            ),
        };
    }
    // At most one move (group → supergroup) per delivery.
    for _ in 0..2 {
        match call_once(bot, d, shaped, to, paid).await {
            Err(RequestError::MigrateToChatId(new)) => {
                events.on_event(DestinationEvent::Migrated {
                    sub: d.sub.clone(),
                    new_chat_id: new.0,
                });
                to = new.0;
            }
            Ok(ids) => {
                return CallResult::Sent {
                    id: ids[0],
                    to,
                    note: None,
                    parts: if ids.len() > 1 { ids } else { Vec::new() },
                };
            }
            Err(e) => {
                if let Some(gone) = topic_gone(&e, shaped) {
                    return gone;
                }
                return fallback(bot, d, shaped, to, e, is_copy(d), paid).await;
            }
        }
    }
    CallResult::Failed("group moved more than once".into())
}

/// The call of one delivery; the ids of the copy (one, or an album's parts).
async fn call_once(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    to: i64,
    paid: bool,
) -> Result<Vec<i32>, RequestError> {
    let chat = ChatId(to);
    let from = ChatId(d.post.source_chat_id);
    let post = &d.post;
    let ids: Vec<MessageId> = post.copy_ids().iter().map(|&i| MessageId(i)).collect();
    match d.sub.mode {
        DeliveryMode::Copy if post.media.is_none() && post.text.is_some() => {
            let (text, entities) = match &shaped.text {
                Some((t, e)) => (t.clone(), e.clone()),
                None => (post.text.clone().unwrap_or_default(), post.entities.clone()),
            };
            let mut req = bot.send_message(chat, text);
            if paid {
                req = req.allow_paid_broadcast(true);
            }
            if let Some(t) = shaped.thread {
                req = req.message_thread_id(t);
            }
            if !entities.is_empty() {
                req = req.entities(entities);
            }
            req.await.map(|m| vec![m.id.0])
        }
        DeliveryMode::Copy if ids.len() == 1 => {
            let mut req = bot.copy_message(chat, from, ids[0]);
            if paid {
                req = req.allow_paid_broadcast(true);
            }
            if let Some(t) = shaped.thread {
                req = req.message_thread_id(t);
            }
            if let Some((caption, entities)) = &shaped.text {
                req = req.caption(caption.clone());
                if !entities.is_empty() {
                    req = req.caption_entities(entities.clone());
                }
            }
            req.await.map(|m| vec![m.0])
        }
        DeliveryMode::Copy => {
            let mut req = bot.copy_messages(chat, from, ids.clone());
            if let Some(t) = shaped.thread {
                req = req.message_thread_id(t);
            }
            req.await.and_then(|v| first_of(v, ids.len()))
        }
        DeliveryMode::Forward if ids.len() == 1 => {
            let mut req = bot.forward_message(chat, from, ids[0]);
            if let Some(t) = shaped.thread {
                req = req.message_thread_id(t);
            }
            req.await.map(|m| vec![m.id.0])
        }
        DeliveryMode::Forward => {
            let mut req = bot.forward_messages(chat, from, ids.clone());
            if let Some(t) = shaped.thread {
                req = req.message_thread_id(t);
            }
            req.await.and_then(|v| first_of(v, ids.len()))
        }
    }
}

/// A plain `sendMessage`, with `allow_paid_broadcast` when `paid`, in the topic `thread`.
async fn paid_text(
    bot: &Bot,
    to: i64,
    text: String,
    paid: bool,
    thread: Option<ThreadId>,
) -> Result<teloxide::types::Message, RequestError> {
    let mut req = bot.send_message(ChatId(to), text);
    if let Some(t) = thread {
        req = req.message_thread_id(t);
    }
    if paid {
        req.allow_paid_broadcast(true).await
    } else {
        req.await
    }
}

/// True when the call names the source chat too (copy or forward), so an
/// error about "the chat" may be about the source, not the destination.
fn is_copy(d: &Delivery) -> bool {
    !(d.sub.mode == DeliveryMode::Copy && d.post.media.is_none() && d.post.text.is_some())
}

/// "New post in @channel: link", when the channel is public.
fn link_text(d: &Delivery) -> Option<String> {
    let link = d.post.link()?;
    Some(match d.post.channel_username.as_deref() {
        Some(name) => format!("New post in @{name}: {link}"),
        None => link,
    })
}

/// Where Telegram refused the message itself, tries once in a simpler form;
/// otherwise classifies the error.
#[allow(clippy::too_many_arguments)]
async fn fallback(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    to: i64,
    e: RequestError,
    copying: bool,
    paid: bool,
) -> CallResult {
    let plain = |note: &str| {
        let note = note.to_owned();
        async move {
            let text = shaped.plain(d);
            match paid_text(bot, to, text, paid, shaped.thread).await {
                Ok(m) => CallResult::Sent {
                    id: m.id.0,
                    to,
                    note: Some(note),
                    parts: Vec::new(),
                },
                Err(e) => classify(e, false),
            }
        }
    };
    match &e {
        // Entities Telegram cannot parse: the text without formatting.
        RequestError::Api(ApiError::CantParseEntities(_)) if d.post.text.is_some() => {
            plain("sent as plain text: entities were refused").await
        }
        // The post cannot be copied (protected, service message, too long
        // a caption): a link to it, if the channel is public.
        RequestError::Api(api) if is_message_specific(api) => match link_text(d) {
            Some(text) => match paid_text(bot, to, text, paid, shaped.thread).await {
                Ok(m) => CallResult::Sent {
                    id: m.id.0,
                    to,
                    note: Some(format!("sent as a link: {api}")),
                    parts: Vec::new(),
                },
                Err(e) => classify(e, false),
            },
            None => classify(e, copying),
        },
        _ => classify(e, copying),
    }
}

/// Errors about the message itself, not the chat: another form may pass.
fn is_message_specific(api: &ApiError) -> bool {
    match api {
        ApiError::MessageIsTooLong | ApiError::MessageToCopyNotFound => true,
        ApiError::Unknown(text) => {
            text.contains("can't be copied")
                || text.contains("can't be forwarded")
                || text.contains("message is too long")
                || text.contains("caption is too long")
        }
        _ => false,
    }
}

/// `copyMessages` silently skips what it cannot copy: fewer ids back than
/// sent means part of the post did not arrive.
fn first_of(v: Vec<MessageId>, sent: usize) -> Result<Vec<i32>, RequestError> {
    match v.first() {
        Some(_) => {
            if v.len() != sent {
                tracing::warn!(
                    sent,
                    copied = v.len(),
                    "Telegram copied only part of an album."
                );
            }
            Ok(v.iter().map(|m| m.0).collect())
        }
        None => Err(RequestError::Api(ApiError::Unknown(
            "Bad Request: message can't be copied".to_owned(),
        ))),
    }
}

/// The one place that decides what a Telegram error means for a delivery.
///
/// `copying`: the call named the source chat too (copy/forward), so "chat
/// not found" or an unknown "Forbidden" may be about the source channel —
/// that fails this post, it does not condemn the destination. Only errors
/// that can name nothing but the destination (blocked, kicked, deactivated,
/// never started) deactivate it.
pub(crate) fn classify(e: RequestError, copying: bool) -> CallResult {
    match e {
        RequestError::RetryAfter(s) => CallResult::RetryAfter(s.duration()),
        // Checked first: a connect timeout is also a timeout, yet nothing was written.
        RequestError::Network(e) if e.is_connect() => {
            CallResult::Unreachable(format!("cannot reach the Bot API: {e}"))
        }
        RequestError::Network(e) if e.is_request() && !e.is_timeout() && !e.is_body() => {
            CallResult::Transient(format!("request not sent: {e}"))
        }
        // Anything else after the request went out (timeout, reset, an answer
        // we cannot read) may have been delivered: the outcome is unknown.
        RequestError::Network(e) => CallResult::Ambiguous(format!("outcome unknown: {e}")),
        RequestError::Io(e) => CallResult::Ambiguous(format!("outcome unknown (io): {e}")),
        RequestError::InvalidJson { .. } => {
            CallResult::Ambiguous("outcome unknown: unparsable answer from the Bot API".to_owned())
        }
        RequestError::MigrateToChatId(id) => {
            CallResult::Failed(format!("group moved again, to {}", id.0))
        }
        RequestError::Api(api) => match api {
            ApiError::BotBlocked => CallResult::Gone("blocked".into()),
            ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel => CallResult::Gone("kicked".into()),
            ApiError::UserDeactivated => CallResult::Gone("deactivated".into()),
            ApiError::CantInitiateConversation | ApiError::CantTalkWithBots => {
                CallResult::Gone("not started".into())
            }
            ApiError::ChatNotFound if !copying => CallResult::Gone("chat not found".into()),
            ApiError::NotEnoughRightsToPostMessages => CallResult::Gone("no right to post".into()),
            // A revoked or wrong token is the bot's problem, not the chat's:
            // that bot's lane halts (the limiter logs it, naming the bot id).
            ApiError::InvalidToken => CallResult::TokenRefused,
            ApiError::Unknown(text)
                if text.contains("Internal Server Error")
                    || text.contains("Bad Gateway")
                    || text.contains("Gateway Timeout")
                    || text.contains("Service Unavailable")
                    || text.starts_with("Internal") =>
            {
                CallResult::Transient(text)
            }
            ApiError::Unknown(text) if text.starts_with("Forbidden") && !copying => {
                CallResult::Gone(text)
            }
            other => CallResult::Failed(other.to_string()),
        },
    }
}

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
        if let DeliveryOp::Mirror(op) = &delivery.op {
            let op = op.clone();
            let d = delivery.clone();
            // An edit keeps the subscription's transforms (header, footer,
            // replacements) and a repost goes to the same topic.
            let shaped = self.shaper.shape(&d);
            let paid = self.cfg.allow_paid_broadcast;
            let fut = async move {
                crate::mirror_calls::call(&bot, &d, &shaped, &op, events.as_ref(), paid).await
            };
            ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
                act.finish_mirror(delivery, lane, reply_to, result);
            }));
            return;
        }
        let sub_id = delivery.sub.subscription_id;
        let first_id = delivery.post.first_id();
        let d = delivery.clone();
        let shaped = self.shaper.shape(&d);
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
            if lease_lost() {
                return CallResult::LeaseLost;
            }
            let result = call(&bot, &d, &shaped, events.as_ref(), paid).await;
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

impl SenderPool {
    fn finish(
        &mut self,
        delivery: Delivery,
        lane: usize,
        reply_to: Recipient<SendFinished>,
        result: CallResult,
    ) {
        let d = &delivery;
        let chat = d.sub.chat_id;
        let dest = d.sub.destination_id;
        let (outcome, row) = match result {
            CallResult::Sent {
                id,
                to,
                note,
                parts,
            } => {
                self.streaks.remove(&dest);
                self.successes += 1;
                let waited = (chrono::Utc::now() - d.post.detected_at)
                    .to_std()
                    .unwrap_or_default();
                metrics::counter!(names::MESSAGES_FORWARDED_TOTAL).increment(1);
                metrics::histogram!(names::FORWARD_DURATION_SECONDS).record(waited.as_secs_f64());
                if let Some(note) = &note {
                    tracing::info!(chat_id = to, subscription_id = d.sub.subscription_id, note = %note, "Delivered in a fallback form.");
                }
                let mut row = record(d, to, DeliveryStatus::Sent, Some(i64::from(id)), note);
                if !parts.is_empty() {
                    row.sent_message_ids = Some(parts.iter().map(|&i| i64::from(i)).collect());
                }
                (SendOutcome::Done, Some(row))
            }
            CallResult::AlreadySent(id) => {
                self.streaks.remove(&dest);
                metrics::counter!(names::DEDUP_HITS_TOTAL, "layer" => "redis").increment(1);
                tracing::debug!(
                    chat_id = chat,
                    subscription_id = d.sub.subscription_id,
                    "Already delivered (dedup); recording it without sending."
                );
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
            CallResult::Failed(reason) => {
                // About this message, not the chat: no failure streak.
                metrics::counter!(names::DELIVERIES_FAILED_TOTAL, "reason" => "refused")
                    .increment(1);
                tracing::warn!(chat_id = chat, subscription_id = d.sub.subscription_id, error = %reason, "Delivery failed for good.");
                (
                    SendOutcome::Done,
                    Some(record(d, chat, DeliveryStatus::Failed, None, Some(reason))),
                )
            }
            CallResult::Gone(reason) => {
                metrics::counter!(names::DELIVERIES_FAILED_TOTAL, "reason" => "gone").increment(1);
                tracing::warn!(chat_id = chat, destination_id = dest, reason = %reason, "The bot can no longer post to this chat; deactivating it.");
                self.events.on_event(DestinationEvent::Gone {
                    sub: d.sub.clone(),
                    reason: reason.clone(),
                });
                (
                    SendOutcome::Done,
                    Some(record(d, chat, DeliveryStatus::Failed, None, Some(reason))),
                )
            }
            CallResult::RetryAfter(wait) => {
                metrics::counter!(names::RATE_LIMITED_TOTAL).increment(1);
                (SendOutcome::RetryAfter(wait), None)
            }
            // No row: the delivery stays owed in the database, for a start
            // with a valid token to resume.
            CallResult::TokenRefused => (SendOutcome::Revoked, None),
            // No row either: the channel's owner resumes it.
            CallResult::LeaseLost => {
                metrics::counter!(names::LEASE_DROPPED_TOTAL).increment(1);
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
            CallResult::Transient(reason) => {
                if self.count_failure(d, &reason) {
                    (
                        SendOutcome::Done,
                        Some(record(d, chat, DeliveryStatus::Failed, None, Some(reason))),
                    )
                } else {
                    tracing::debug!(chat_id = chat, attempt = d.attempt, error = %reason, "Transient send failure; retrying.");
                    (SendOutcome::Retry(self.retry.delay(d.attempt)), None)
                }
            }
            CallResult::Ambiguous(reason) => {
                metrics::counter!(names::AMBIGUOUS_SENDS_TOTAL).increment(1);
                tracing::warn!(chat_id = chat, subscription_id = d.sub.subscription_id, retry = self.cfg.retry_ambiguous, error = %reason, "Send outcome unknown.");
                // A chat whose sends keep timing out is failing too.
                if self.count_failure(d, &reason) {
                    (
                        SendOutcome::Done,
                        Some(record(d, chat, DeliveryStatus::Failed, None, Some(reason))),
                    )
                } else if self.cfg.retry_ambiguous {
                    let row = record(d, chat, DeliveryStatus::Ambiguous, None, Some(reason));
                    // The row says "ambiguous" until the retry's outcome replaces it.
                    (SendOutcome::Retry(self.retry.delay(d.attempt)), Some(row))
                } else {
                    let row = record(d, chat, DeliveryStatus::Ambiguous, None, Some(reason));
                    (SendOutcome::Done, Some(row))
                }
            }
        };
        if let Some(r) = row {
            self.writer.do_send(RecordDeliveries(vec![r]));
        }
        reply_to.do_send(SendFinished {
            delivery,
            lane,
            outcome,
        });
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
            CallResult::Failed(reason) | CallResult::Skipped(reason) | CallResult::Gone(reason) => {
                tracing::info!(chat_id = delivery.sub.chat_id, subscription_id = delivery.sub.subscription_id, error = %reason, "Telegram refused a mirrored change; recorded, not retried.");
                reply(Err(reason));
                SendOutcome::Done
            }
            CallResult::RetryAfter(wait) => {
                metrics::counter!(names::RATE_LIMITED_TOTAL).increment(1);
                SendOutcome::RetryAfter(wait)
            }
            CallResult::TokenRefused => SendOutcome::Revoked,
            // No answer: nothing is recorded here, so the channel's new
            // owner finds the change unapplied and makes it.
            CallResult::LeaseLost => {
                metrics::counter!(names::LEASE_DROPPED_TOTAL).increment(1);
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
            metrics::counter!(names::DELIVERIES_FAILED_TOTAL, "reason" => "failing").increment(1);
            tracing::warn!(
                chat_id = d.sub.chat_id,
                subscription_id = d.sub.subscription_id,
                failures = self.cfg.max_failures,
                error_kind = "failing_destination",
                "A destination keeps failing; pausing it."
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
