//! What the Bot API calls of one delivery produced ([`CallResult`]) and the
//! one place that decides what a Telegram error means for it ([`classify`]).
//! The call sites (`sender_calls`, `mirror_calls`, `shaping`) and the
//! [`SenderPool`](crate::sender_pool::SenderPool), which acts on the
//! result, all read it from here.

use std::time::Duration;

use teloxide::{ApiError, RequestError};

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
