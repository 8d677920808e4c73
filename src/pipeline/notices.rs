//! Messages of kuryer's own — notices about a channel, digest parts — sent
//! through the rate limiter like any delivery ([`DeliveryOp::Notice`]), so
//! they share each bot's per-second limit and each chat's spacing with the
//! deliveries and are retried after a 429 instead of drawing more.
//!
//! [`DeliveryOp::Notice`]: kuryer_actors::model::DeliveryOp::Notice

use actix::prelude::*;
use kuryer_actors::model::{Delivery, NoticeTarget};
use kuryer_actors::rate_limiter::{Enqueue, RateLimiter};
use teloxide::types::InlineKeyboardMarkup;

/// Why a notice was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// Telegram refused it (blocked, chat gone, …), or its retries ran out.
    #[error("refused: {0}")]
    Refused(String),
    /// The limiter let it go unsent (its bot halted, a shutdown) or is gone.
    #[error("not sent: the limiter let it go")]
    NotSent,
}

/// One notice: where, what, which buttons.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Where it goes.
    pub to: NoticeTarget,
    /// Its text.
    pub text: String,
    /// Its buttons.
    pub buttons: Option<InlineKeyboardMarkup>,
}

/// The limiter's door for notices.
#[derive(Clone)]
pub struct Notices {
    limiter: Addr<RateLimiter>,
}

impl Notices {
    /// Notices through `limiter`.
    pub fn new(limiter: Addr<RateLimiter>) -> Self {
        Self { limiter }
    }

    /// Queues every notice at once (the limiter spaces them) and waits for
    /// each outcome: the sent message's id, in the order given.
    pub async fn send_all(&self, notices: Vec<Notice>) -> Vec<Result<i64, NoticeError>> {
        let mut deliveries = Vec::with_capacity(notices.len());
        let mut answers = Vec::with_capacity(notices.len());
        for n in notices {
            let (d, rx) = Delivery::notice(&n.to, n.text, n.buttons);
            deliveries.push(d);
            answers.push(rx);
        }
        if deliveries.is_empty() {
            return Vec::new();
        }
        // Answered once queued and the queue is under its capacity: the
        // same back-pressure the pollers feel.
        if self.limiter.send(Enqueue(deliveries)).await.is_err() {
            return answers.iter().map(|_| Err(NoticeError::NotSent)).collect();
        }
        let mut out = Vec::with_capacity(answers.len());
        for rx in answers {
            out.push(match rx.await {
                Ok(Ok(id)) => Ok(id),
                Ok(Err(reason)) => Err(NoticeError::Refused(reason)),
                Err(_) => Err(NoticeError::NotSent),
            });
        }
        out
    }

    /// One notice; see [`Notices::send_all`].
    pub async fn send(&self, notice: Notice) -> Result<i64, NoticeError> {
        self.send_all(vec![notice])
            .await
            .pop()
            .unwrap_or(Err(NoticeError::NotSent))
    }
}
