//! Sending the bot's replies (the per-user command budget is
//! `crate::command_budget`).
//!
//! A reply is the second half of a command's effect (the first, the
//! database change, is what confirms the update). It is tried once where
//! the command runs; when it did not reach Telegram (network error, 5xx)
//! or Telegram asked to wait briefly (429 up to [`MAX_WAIT`]) it is retried
//! a few times by a task of its own, so no wait is ever spent inside the
//! update loop; anything else — the user blocked the bot, a message gone —
//! is logged and counted, never retried.

use std::time::Duration;

use teloxide::payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQueryId, ChatId, InlineKeyboardMarkup, MessageId};
use teloxide::{ApiError, Bot, RequestError};

use super::REPLY_RETRY;

/// Tries of one reply.
const TRIES: u32 = 3;
/// The longest 429 a reply waits out; longer, and it is dropped.
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

/// Sends `text` (clipped) to `chat`, with a keyboard; retried as above.
pub(super) async fn send(
    bot: &Bot,
    chat: i64,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
) {
    let text = clip(text);
    let try_once = {
        let (bot, text, keyboard) = (bot.clone(), text.clone(), keyboard.clone());
        move || {
            let mut req = bot.send_message(ChatId(chat), text.clone());
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
                tokio::spawn(retry_later("send", chat, wait, try_once));
            }
            None => failed("send", chat, &e),
        },
    }
}

/// Tries a reply again after `wait`, up to [`TRIES`] in all, off the
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
