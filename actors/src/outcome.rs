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
    /// Refused in words that fit the source channel as well as the
    /// destination; `sender_calls` settles which before anyone acts.
    EitherRefused(String),
    /// The bot can no longer read the source channel (the relay, or the
    /// channel itself): the source is paused, no destination is touched.
    SourceRefused(String),
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

/// Which chats a failed call named, so what a refusal can be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// `sendMessage` (and edits): the destination only.
    Send,
    /// `copyMessage(s)`, `forwardMessage(s)`: the source channel too (the
    /// relay, or the channel itself). Telegram checks `from_chat_id` before
    /// the destination for the single-message methods and after it for the
    /// batch ones (Client.cpp `process_copy_message_query`,
    /// `process_copy_messages_query`), so either may be the one refused.
    Copy,
}

/// Which chat a refusal is about, from its text alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Only the destination can draw it (a private user's state, a group
    /// or supergroup — kuryer's sources are channels).
    Destination,
    /// A channel chat, or a chat not found: the source or the destination.
    Either,
}

/// Every refusal text the Bot API server words for the chats of a send
/// (`Client::check_chat_access`, `TdOnCheckChatCallback`, and TDLib's
/// errors through `Client::fail_query_with_error`), with teloxide-core
/// 0.13's older "Unauthorized: …" wording where it still expects it: the
/// text's tail after "Forbidden: " / "Bad Request: " / "Unauthorized: ",
/// which side it can be about, and the reason kuryer records. The table
/// in ARCHITECTURE.md ("Telegram's refusals") lists the same, and a test
/// checks the two against the fake's texts.
pub const REFUSALS: &[(&str, Side, &str)] = &[
    ("bot was blocked by the user", Side::Destination, "blocked"),
    ("user is deactivated", Side::Destination, "deactivated"),
    (
        "bot can't initiate conversation with a user",
        Side::Destination,
        "not started",
    ),
    (
        "bot can't send messages to bots",
        Side::Destination,
        "not started",
    ),
    ("bot was kicked from a chat", Side::Destination, "kicked"),
    (
        "bot was kicked from the group chat",
        Side::Destination,
        "kicked",
    ),
    (
        "bot is not a member of the group chat",
        Side::Destination,
        "not a member",
    ),
    (
        "the group chat was deleted",
        Side::Destination,
        "group deleted",
    ),
    (
        "bot was kicked from the supergroup chat",
        Side::Destination,
        "kicked",
    ),
    (
        "bot is not a member of the supergroup chat",
        Side::Destination,
        "not a member",
    ),
    (
        "need administrator rights in the channel chat",
        Side::Destination,
        "no right to post",
    ),
    (
        "bot was kicked from the channel chat",
        Side::Either,
        "kicked",
    ),
    (
        "bot is not a member of the channel chat",
        Side::Either,
        "not a member",
    ),
    ("chat not found", Side::Either, "chat not found"),
];

/// The refusal a text names, if it is one of [`REFUSALS`]; an unknown
/// "Forbidden: …" is taken as one about either chat (named by its text).
pub fn refusal_of(text: &str) -> Option<(Side, String)> {
    let tail = ["Forbidden: ", "Unauthorized: ", "Bad Request: "]
        .iter()
        .find_map(|p| text.strip_prefix(p))?;
    match REFUSALS.iter().find(|(t, _, _)| *t == tail) {
        Some((_, side, reason)) => Some((*side, (*reason).to_owned())),
        None if text.starts_with("Forbidden: ") => Some((Side::Either, text.to_owned())),
        None => None,
    }
}

/// The description Telegram sent, as teloxide parsed it.
fn text_of(api: &ApiError) -> String {
    match api {
        ApiError::Unknown(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The one place that decides what a Telegram error means for a delivery.
///
/// A refusal that can be about the destination only deactivates it
/// ([`CallResult::Gone`]); one that can be about the source channel too,
/// from a call that named it ([`Call::Copy`]), is left for the caller to
/// settle ([`CallResult::EitherRefused`]: `sender_calls` asks Telegram
/// about the source). Everything else about the message fails the post.
pub(crate) fn classify(e: RequestError, call: Call) -> CallResult {
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
        // A revoked or wrong token is the bot's problem, not the chat's:
        // that bot's lane halts (the limiter logs it, naming the bot id).
        RequestError::Api(ApiError::InvalidToken) => CallResult::TokenRefused,
        RequestError::Api(api) => {
            let text = text_of(&api);
            match refusal_of(&text) {
                Some((Side::Destination, reason)) => CallResult::Gone(reason),
                Some((Side::Either, reason)) if call == Call::Send => CallResult::Gone(reason),
                Some((Side::Either, reason)) => CallResult::EitherRefused(reason),
                None if text.contains("Internal Server Error")
                    || text.contains("Bad Gateway")
                    || text.contains("Gateway Timeout")
                    || text.contains("Service Unavailable")
                    || text.starts_with("Internal") =>
                {
                    CallResult::Transient(text)
                }
                None => CallResult::Failed(text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(text: &str) -> RequestError {
        // As teloxide parses the description: a known text to its variant.
        let parsed: ApiError = serde_json::from_value(serde_json::Value::String(text.into()))
            .unwrap_or_else(|_| ApiError::Unknown(text.into()));
        RequestError::Api(parsed)
    }

    fn gone(r: CallResult) -> Option<String> {
        match r {
            CallResult::Gone(reason) => Some(reason),
            _ => None,
        }
    }

    /// Client.cpp's "Forbidden: …" wording, which teloxide-core 0.13 parses
    /// as `Unknown` for several: each deactivates the destination whether
    /// the call was a send or a copy, when only the destination can draw it.
    #[test]
    fn destination_refusals_deactivate_for_sends_and_copies_alike() {
        for text in [
            "Forbidden: bot was blocked by the user",
            "Forbidden: user is deactivated",
            "Forbidden: bot can't initiate conversation with a user",
            "Forbidden: bot can't send messages to bots",
            "Forbidden: bot was kicked from the group chat",
            "Forbidden: bot is not a member of the group chat",
            "Forbidden: the group chat was deleted",
            "Forbidden: bot was kicked from the supergroup chat",
            "Forbidden: bot is not a member of the supergroup chat",
            "Unauthorized: bot can't initiate conversation with a user",
        ] {
            for call in [Call::Send, Call::Copy] {
                assert!(gone(classify(api(text), call)).is_some(), "{text} {call:?}");
            }
        }
    }

    /// A channel chat's refusal fits the source as well: for a copy it is
    /// settled by asking about the source, never taken as the destination's.
    #[test]
    fn channel_refusals_of_a_copy_are_left_to_settle() {
        for text in [
            "Forbidden: bot was kicked from the channel chat",
            "Forbidden: bot is not a member of the channel chat",
            "Bad Request: chat not found",
            "Forbidden: something new",
        ] {
            assert!(
                matches!(
                    classify(api(text), Call::Copy),
                    CallResult::EitherRefused(_)
                ),
                "{text}"
            );
            assert!(gone(classify(api(text), Call::Send)).is_some(), "{text}");
        }
        assert!(matches!(
            classify(api("Bad Request: message to copy not found"), Call::Copy),
            CallResult::Failed(_)
        ));
    }
}
