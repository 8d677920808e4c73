//! Sending the bot's replies (the per-user command budget is
//! `crate::command_budget`).
//!
//! A reply is the second half of a command's effect (the first, the
//! database change, is what confirms the update). A message sent
//! ([`send`]) goes through the rate limiter, as a delivery does: it takes
//! the bot's per-second budget and its chat's spacing, ahead of every
//! delivery (someone is waiting for it), so it neither draws a 429 nor
//! makes one for anyone else (`kuryer_actors::rate_limiter`,
//! `schedule/replies.rs`). [`send`] only hands it over: nothing waits
//! inside the update loop. The limiter sends each chat's replies one at a
//! time in the order they were handed over, waits out a 429 and retries a
//! failure that may pass; anything else — the user blocked the bot, the
//! chat gone — is logged and counted by a task of its own.
//!
//! Edits of a message (a list page, a settings view) are answered by
//! Telegram within a round trip and are no new message: they are made
//! here, tried once and, when they did not reach Telegram (network error,
//! 5xx) or Telegram asked to wait briefly (429 up to [`MAX_WAIT`]), retried
//! a few times by a task of their own, never waiting inside the update
//! loop.

use std::time::Duration;

use teloxide::payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters};
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQueryId, ChatId, InlineKeyboardMarkup, MessageId};
use teloxide::{ApiError, Bot, RequestError};

use kuryer_actors::model::{Delivery, DestinationKind, NoticeTarget};

use super::{BotHandler, REPLY_RETRY};

/// Tries of one edit.
const TRIES: u32 = 3;
/// The longest 429 an edit waits out; longer, and it is dropped.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// Telegram's longest message, in UTF-16 code units.
pub(super) const MAX_UTF16: usize = 4096;

/// Cuts `text` to Telegram's 4,096 UTF-16 units (at a character boundary,
/// marked with an ellipsis). Lists paginate to stay well below; this is the
/// last guard.
pub(super) fn clip(text: String) -> String {
    if text.encode_utf16().count() <= MAX_UTF16 {
        return text;
    }
    let mut out = String::new();
    let mut units = 0;
    for c in text.chars() {
        units += c.len_utf16();
        if units > MAX_UTF16 - 1 {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// Shortens user input shown back in a reply (a name of 200 characters).
pub(super) fn echo(input: &str) -> String {
    const MAX: usize = 40;
    if input.chars().count() <= MAX {
        input.to_owned()
    } else {
        let mut s: String = input.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

/// Whether an error may pass on a retry, and after how long.
fn retry_in(e: &RequestError) -> Option<Duration> {
    match e {
        RequestError::Network(_) | RequestError::Io(_) => Some(REPLY_RETRY),
        RequestError::RetryAfter(s) if s.duration() <= MAX_WAIT => Some(s.duration()),
        RequestError::Api(ApiError::Unknown(d)) if d.contains("Internal Server Error") => {
            Some(REPLY_RETRY)
        }
        _ => None,
    }
}

fn failed(what: &'static str, chat: i64, e: &RequestError) {
    let reason = match e {
        RequestError::Api(ApiError::BotBlocked) => "blocked",
        RequestError::Api(ApiError::MessageNotModified) => return,
        RequestError::Api(_) => "refused",
        RequestError::RetryAfter(_) => "rate_limited",
        _ => "network",
    };
    crate::telemetry::events::bot_reply_failed(what, chat, reason, e);
}

/// Hands `text` (clipped) for `chat`, with a keyboard, to the rate
/// limiter, to be sent by bot `bot_id` (`None`: the first) as a reply:
/// returns at once; a failure is logged and counted when it comes.
pub(super) fn send(
    h: &BotHandler,
    bot_id: Option<i64>,
    chat: i64,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
) {
    let to = NoticeTarget {
        channel_id: 0,
        subscription_id: 0,
        chat_id: chat,
        // The chat's spacing follows from its kind: a user's private chat
        // has a positive id, a group's, a supergroup's and a channel's a
        // negative one (all spaced as groups).
        kind: if chat > 0 {
            DestinationKind::Private
        } else {
            DestinationKind::Group
        },
        bot_id,
        thread_id: None,
    };
    let (delivery, outcome) = Delivery::reply(&to, clip(text), keyboard);
    h.shared.pipeline.reply(delivery);
    tokio::spawn(async move {
        let reason = match outcome.await {
            Ok(Ok(_)) => return,
            Ok(Err(reason)) => reason,
            Err(_) => "not sent: the limiter let it go".to_owned(),
        };
        let kind = if reason.contains("blocked") {
            "blocked"
        } else if reason.starts_with("not sent") {
            "network"
        } else {
            "refused"
        };
        crate::telemetry::events::bot_reply_failed("send", chat, kind, &reason);
    });
}

/// Tries an edit again after `wait`, up to [`TRIES`] in all, off the
/// update loop (a task of its own).
async fn retry_later<F, Fut>(what: &'static str, chat: i64, mut wait: Duration, try_once: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), RequestError>>,
{
    for attempt in 2..=TRIES {
        tokio::time::sleep(wait).await;
        match try_once().await {
            Ok(()) => return,
            Err(e) => match retry_in(&e) {
                Some(w) if attempt < TRIES => wait = w,
                _ => return failed(what, chat, &e),
            },
        }
    }
}

/// Replaces a message's text and keyboard (a list page, a settings view).
pub(super) async fn edit(
    bot: &Bot,
    chat: i64,
    message: MessageId,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
) {
    let text = clip(text);
    let try_once = {
        let (bot, text, keyboard) = (bot.clone(), text.clone(), keyboard.clone());
        move || {
            let mut req = bot.edit_message_text(ChatId(chat), message, text.clone());
            if let Some(k) = &keyboard {
                req = req.reply_markup(k.clone());
            }
            async move { req.await.map(|_| ()) }
        }
    };
    match try_once().await {
        Ok(()) => {}
        Err(e) => match retry_in(&e) {
            Some(wait) => {
                tokio::spawn(retry_later("edit", chat, wait, try_once));
            }
            None => failed("edit", chat, &e),
        },
    }
}

/// Answers a button press (stops the client's spinner), with a toast or,
/// when `alert`, a dialog.
pub(super) async fn answer(bot: &Bot, id: &CallbackQueryId, text: Option<String>, alert: bool) {
    let mut req = bot.answer_callback_query(id.clone());
    if let Some(t) = text {
        req = req.text(t).show_alert(alert);
    }
    if let Err(e) = req.await {
        failed("answer", 0, &e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_counts_utf16_and_keeps_characters_whole() {
        let s = "😀".repeat(3000); // 6,000 UTF-16 units
        let c = clip(s);
        assert!(c.encode_utf16().count() <= MAX_UTF16);
        assert!(c.ends_with('…'));
        assert_eq!(clip("short".into()), "short");
        assert_eq!(echo(&"x".repeat(200)).chars().count(), 40);
    }
}
