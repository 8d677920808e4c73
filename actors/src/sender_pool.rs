//! SenderPool: makes the Bot API calls.
//!
//! Owns one teloxide `Bot` per configured token (each with its reused HTTP
//! client and `bot_api_url`). For each [`SendDelivery`] it makes one call —
//! `sendMessage` with the original entities for a text post,
//! `copyMessage`/`copyMessages` for media and albums, or
//! `forwardMessage(s)` in forward mode — classifies the result, reports the
//! outcome to the RateLimiter (which re-queues what must be retried) and the
//! finished delivery to the DbWriter. How many calls run at once is bounded
//! by the RateLimiter's `max_in_flight`.

use std::time::{Duration, Instant};

use actix::prelude::*;
use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, MessageId};
use teloxide::{ApiError, Bot, RequestError};

use crate::db_writer::RecordDeliveries;
use crate::metrics_names as names;
use crate::model::{Delivery, DeliveryMode, DeliveryRecord, DeliveryStatus};
use crate::rate_limiter::{SendDelivery, SendFinished, SendOutcome};

/// Retries of a transient failure before a delivery is recorded as failed.
const MAX_ATTEMPTS: u32 = 8;

/// The SenderPool actor.
pub struct SenderPool {
    bots: Vec<Bot>,
    writer: Recipient<RecordDeliveries>,
}

impl SenderPool {
    /// A pool over `bots` (one per token, in lane order), reporting to `writer`.
    pub fn new(bots: Vec<Bot>, writer: Recipient<RecordDeliveries>) -> Self {
        assert!(!bots.is_empty(), "at least one bot token");
        Self { bots, writer }
    }
}

impl Actor for SenderPool {
    type Context = Context<Self>;
}

/// What one call produced.
enum CallResult {
    Sent(i32),
    Failed(String),
    RetryAfter(Duration),
    Transient(String),
}

async fn call(bot: &Bot, d: &Delivery) -> CallResult {
    let to = ChatId(d.sub.chat_id);
    let from = ChatId(d.post.source_chat_id);
    let post = &d.post;
    let ids: Vec<MessageId> = post.message_ids.iter().map(|&i| MessageId(i)).collect();
    let result: Result<i32, RequestError> = match d.sub.mode {
        DeliveryMode::Copy if post.media.is_none() && post.text.is_some() => {
            let text = post.text.clone().unwrap_or_default();
            bot.send_message(to, text)
                .entities(post.entities.clone())
                .await
                .map(|m| m.id.0)
        }
        DeliveryMode::Copy if ids.len() == 1 => {
            bot.copy_message(to, from, ids[0]).await.map(|m| m.0)
        }
        DeliveryMode::Copy => bot
            .copy_messages(to, from, ids.clone())
            .await
            .and_then(|v| first_of(v, ids.len())),
        DeliveryMode::Forward if ids.len() == 1 => {
            bot.forward_message(to, from, ids[0]).await.map(|m| m.id.0)
        }
        DeliveryMode::Forward => bot
            .forward_messages(to, from, ids.clone())
            .await
            .and_then(|v| first_of(v, ids.len())),
    };
    match result {
        Ok(id) => CallResult::Sent(id),
        Err(e) => classify(e),
    }
}

/// `copyMessages` silently skips what it cannot copy: fewer ids back than
/// sent means part of the post did not arrive.
fn first_of(v: Vec<MessageId>, sent: usize) -> Result<i32, RequestError> {
    match v.first() {
        Some(first) if v.len() == sent => Ok(first.0),
        Some(first) => {
            tracing::warn!(
                sent,
                copied = v.len(),
                "Telegram copied only part of an album."
            );
            Ok(first.0)
        }
        None => Err(RequestError::Api(ApiError::Unknown(
            "nothing could be copied".to_owned(),
        ))),
    }
}

/// The one place that decides what a Telegram error means for a delivery.
fn classify(e: RequestError) -> CallResult {
    match e {
        RequestError::RetryAfter(s) => CallResult::RetryAfter(s.duration()),
        RequestError::Network(e) => CallResult::Transient(format!("network: {e}")),
        RequestError::Io(e) => CallResult::Transient(format!("io: {e}")),
        RequestError::InvalidJson { .. } => {
            CallResult::Transient("unparsable answer from the Bot API".to_owned())
        }
        RequestError::MigrateToChatId(id) => {
            CallResult::Failed(format!("group moved to supergroup {}", id.0))
        }
        RequestError::Api(ApiError::Unknown(text))
            if text.contains("Internal Server Error")
                || text.contains("Bad Gateway")
                || text.contains("Gateway Timeout")
                || text.contains("Service Unavailable") =>
        {
            CallResult::Transient(text)
        }
        RequestError::Api(api) => CallResult::Failed(api.to_string()),
    }
}

impl Handler<SendDelivery> for SenderPool {
    type Result = ();

    fn handle(&mut self, msg: SendDelivery, _: &mut Context<Self>) {
        let bot = self.bots[msg.lane % self.bots.len()].clone();
        let writer = self.writer.clone();
        actix::spawn(async move {
            let SendDelivery {
                mut delivery,
                lane,
                reply_to,
            } = msg;
            delivery.attempt += 1;
            let started = Instant::now();
            let result = call(&bot, &delivery).await;
            let (outcome, record) = match result {
                CallResult::Sent(id) => {
                    let waited = (chrono::Utc::now() - delivery.post.detected_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics::counter!(names::MESSAGES_FORWARDED_TOTAL).increment(1);
                    metrics::histogram!(names::FORWARD_DURATION_SECONDS)
                        .record(waited.as_secs_f64());
                    (
                        SendOutcome::Done,
                        Some(record(&delivery, DeliveryStatus::Sent, Some(id), None)),
                    )
                }
                CallResult::Failed(reason) => {
                    metrics::counter!(names::SEND_FAILED_TOTAL).increment(1);
                    tracing::warn!(
                        chat_id = delivery.sub.chat_id,
                        subscription_id = delivery.sub.subscription_id,
                        error = %reason,
                        "Delivery failed for good."
                    );
                    (
                        SendOutcome::Done,
                        Some(record(
                            &delivery,
                            DeliveryStatus::Failed,
                            None,
                            Some(reason),
                        )),
                    )
                }
                CallResult::RetryAfter(wait) => {
                    metrics::counter!(names::RATE_LIMITED_TOTAL).increment(1);
                    (SendOutcome::RetryAfter(wait), None)
                }
                CallResult::Transient(reason) if delivery.attempt < MAX_ATTEMPTS => {
                    let backoff = backoff(delivery.attempt);
                    tracing::debug!(
                        chat_id = delivery.sub.chat_id,
                        attempt = delivery.attempt,
                        retry_in_ms = backoff.as_millis() as u64,
                        error = %reason,
                        "Transient send failure; retrying."
                    );
                    (SendOutcome::Retry(backoff), None)
                }
                CallResult::Transient(reason) => (
                    SendOutcome::Done,
                    Some(record(
                        &delivery,
                        DeliveryStatus::Failed,
                        None,
                        Some(reason),
                    )),
                ),
            };
            tracing::trace!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "Send finished."
            );
            if let Some(r) = record {
                writer.do_send(RecordDeliveries(vec![r]));
            }
            reply_to.do_send(SendFinished {
                delivery,
                lane,
                outcome,
            });
        });
    }
}

/// Capped exponential backoff with jitter: 200 ms, 400 ms, … up to 30 s,
/// each ±25 %, so many chats failing together do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(8)).min(30_000);
    let jitter = rand::random_range(0.75..1.25);
    Duration::from_millis((base as f64 * jitter) as u64)
}

fn record(
    d: &Delivery,
    status: DeliveryStatus,
    sent: Option<i32>,
    error: Option<String>,
) -> DeliveryRecord {
    DeliveryRecord {
        subscription_id: d.sub.subscription_id,
        channel_id: d.post.channel_id,
        source_message_id: i64::from(d.post.first_id()),
        post_day: d.post.post_day(),
        destination_chat_id: d.sub.chat_id,
        sent_message_id: sent.map(i64::from),
        status,
        error,
    }
}
