//! Sending the bot's replies, and the per-user command rate limit.
//!
//! A reply is the second half of a command's effect (the first, the
//! database change, is what confirms the update). It is tried once where
//! the command runs; when it did not reach Telegram (network error, 5xx)
//! or Telegram asked to wait briefly (429 up to [`MAX_WAIT`]) it is retried
//! a few times by a task of its own, so no wait is ever spent inside the
//! update loop; anything else — the user blocked the bot, a message gone —
//! is logged and counted, never retried.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// A token bucket per user: `per_minute` a minute, bursts of
/// `max(10, per_minute / 3)` (a person going through `/list` and its
/// buttons makes ten actions in a few seconds). In memory: one instance serves a bot token,
/// and a restart forgetting the buckets is harmless.
pub(super) struct RateLimit {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// The user was told once in this dry spell; later commands are dropped
    /// silently (telling them each time would be the flood).
    warned: bool,
}

/// What the limit says about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Go ahead.
    Allow,
    /// Over the limit: tell the user once.
    Warn,
    /// Over the limit, told already: drop.
    Drop,
}

impl RateLimit {
    pub(super) fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute.max(1));
        Self {
            per_sec: per_minute / 60.0,
            burst: (per_minute / 3.0).max(10.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn check(&self, user: i64) -> Verdict {
        self.check_at(user, Instant::now())
    }

    /// Takes one more command's worth from `user` (a name `/add` asks
    /// Telegram about); `None`, taking nothing, when there is none left.
    /// Running out here is no command refused: the user's next command is
    /// still told it is over the limit.
    pub(super) fn take(&self, user: i64) -> Option<()> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = buckets.get_mut(&user)?;
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        (b.tokens >= 1.0).then(|| b.tokens -= 1.0)
    }

    fn check_at(&self, user: i64, now: Instant) -> Verdict {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget full buckets: they are the same as no bucket.
            let (rate, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(user).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            warned: false,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.warned = false;
            Verdict::Allow
        } else if b.warned {
            Verdict::Drop
        } else {
            b.warned = true;
            Verdict::Warn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_warning_then_silence_until_refilled() {
        let r = RateLimit::new(30);
        let t = Instant::now();
        // A burst of 10 (a third of a minute's allowance, at least 10).
        let verdicts: Vec<_> = (0..13).map(|_| r.check_at(1, t)).collect();
        assert_eq!(&verdicts[..10], &[Verdict::Allow; 10]);
        assert_eq!(
            &verdicts[10..],
            &[Verdict::Warn, Verdict::Drop, Verdict::Drop]
        );
        // Another user is not affected.
        assert_eq!(r.check_at(2, t), Verdict::Allow);
        // 30 a minute: one token every 2 s.
        assert_eq!(
            r.check_at(1, t + Duration::from_millis(1900)),
            Verdict::Drop
        );
        assert_eq!(
            r.check_at(1, t + Duration::from_millis(2100)),
            Verdict::Allow
        );
    }

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
