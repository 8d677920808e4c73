//! The Bot API calls of one delivery: the call itself (`sendMessage`,
//! `copyMessage(s)`, `forwardMessage(s)`, with a group moved to a
//! supergroup followed once), the fallbacks where Telegram refuses the
//! message itself; what an error means is [`crate::outcome::classify`]. The
//! [`SenderPool`](crate::sender_pool::SenderPool) decides what happens next.

use teloxide::payloads::{
    CopyMessageSetters, CopyMessagesSetters, ForwardMessageSetters, ForwardMessagesSetters,
    SendMessageSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, MessageId, ThreadId};
use teloxide::{ApiError, Bot, RequestError};

use crate::model::{Delivery, DeliveryMode, NoticeOp};
use crate::outcome::{Call, CallResult, classify};
use crate::ports::{DestinationEvent, DestinationEvents};
use crate::shaping::{Shaped, topic_gone};

/// Makes the call(s) for one delivery.
///
/// `may_send` is asked right before each request (a delivery may take
/// two: a group moved, a simpler form after a refusal): a process paused
/// past its lease between two requests sends the second one never.
pub(crate) async fn call(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    events: &dyn DestinationEvents,
    paid: bool,
    may_send: &(dyn Fn() -> bool + Send + Sync),
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
                Err(e) => topic_gone(&e, shaped).unwrap_or_else(|| classify(e, Call::Send)),
            },
            None => CallResult::Skipped(
                "the post cannot be copied and its channel has no public link".into(),
            ),
        };
    }
    // At most one move (group → supergroup) per delivery.
    for _ in 0..2 {
        if !may_send() {
            return CallResult::LeaseLost;
        }
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
                if !may_send() {
                    return CallResult::LeaseLost;
                }
                let copying = if is_copy(d) { Call::Copy } else { Call::Send };
                return match fallback(bot, d, shaped, to, e, copying, paid).await {
                    CallResult::EitherRefused(reason) => whose_refusal(bot, d, reason).await,
                    other => other,
                };
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

/// Sends a notice ([`NoticeOp`]): one `sendMessage` of its text and
/// buttons. No fallback and no group followed: a refusal is the answer.
pub(crate) async fn notice(
    bot: &Bot,
    to: i64,
    thread: Option<i32>,
    op: &NoticeOp,
    paid: bool,
) -> CallResult {
    let mut req = bot.send_message(ChatId(to), op.text.clone());
    if let Some(t) = thread {
        req = req.message_thread_id(ThreadId(MessageId(t)));
    }
    if let Some(b) = &op.buttons {
        req = req.reply_markup(b.clone());
    }
    // Paid broadcast on: the limiter counts this send at the paid rate
    // (`budget::carries_paid`), so it must carry the flag.
    let sent = if paid {
        req.allow_paid_broadcast(true).await
    } else {
        req.await
    };
    match sent {
        Ok(m) => CallResult::Sent {
            id: m.id.0,
            to,
            note: None,
            parts: Vec::new(),
        },
        Err(e) => classify(e, Call::Send),
    }
}

/// True when the delivery's call reads the source chat (a copy or forward
/// of a post that may be copied): it waits while the source is paused.
pub(crate) fn reads_source(d: &Delivery) -> bool {
    d.post.copyable && is_copy(d)
}

/// True when the call names the source chat too (copy or forward), so an
/// error about "the chat" may be about the source, not the destination.
fn is_copy(d: &Delivery) -> bool {
    !(d.sub.mode == DeliveryMode::Copy && d.post.media.is_none() && d.post.text.is_some())
}

/// A copy or forward was refused in words that fit the source channel as
/// well as the destination ("bot was kicked from the channel chat", "chat
/// not found"): asks Telegram about the source (`getChat`, read access,
/// the check the copy itself made first). The source refused too: it is
/// the source's problem, and no destination is touched. The source
/// answers: the destination is gone. No answer: tried again later.
async fn whose_refusal(bot: &Bot, d: &Delivery, reason: String) -> CallResult {
    match bot.get_chat(ChatId(d.post.source_chat_id)).await {
        Ok(_) => CallResult::Gone(reason),
        Err(e) => match classify(e, Call::Send) {
            CallResult::Gone(source) => CallResult::SourceRefused(source),
            CallResult::RetryAfter(wait) => CallResult::RetryAfter(wait),
            CallResult::TokenRefused => CallResult::TokenRefused,
            other => CallResult::Transient(format!(
                "{reason}; the source channel's check failed too: {other:?}"
            )),
        },
    }
}

/// How a delivery's note begins when only a link to the post went out.
pub(crate) const LINK_NOTE: &str = "sent as a link: ";

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
    copying: Call,
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
                Err(e) => classify(e, Call::Send),
            }
        }
    };
    match &e {
        // Entities Telegram cannot parse: the text without formatting.
        RequestError::Api(ApiError::CantParseEntities(_)) if d.post.text.is_some() => {
            plain("sent as plain text: entities were refused").await
        }
        // Telegram copies no paid media, invoice or giveaway but forwards
        // them (https://core.telegram.org/bots/api#copymessage and
        // #forwardmessage): the post goes out by id, forwarded.
        RequestError::Api(ApiError::Unknown(text))
            if copying == Call::Copy
                && d.sub.mode == DeliveryMode::Copy
                && text.contains("can't be copied") =>
        {
            match forward(bot, d, shaped, to).await {
                Ok(ids) => CallResult::Sent {
                    id: ids[0],
                    to,
                    note: Some("forwarded: Telegram refused to copy the post".into()),
                    parts: if ids.len() > 1 { ids } else { Vec::new() },
                },
                Err(RequestError::Api(api)) if is_message_specific(&api) => {
                    link_or(bot, d, shaped, to, paid, RequestError::Api(api), copying).await
                }
                Err(e) => classify(e, copying),
            }
        }
        // The post cannot be copied (protected, service message, too long
        // a caption): a link to it, if the channel is public.
        RequestError::Api(api) if is_message_specific(api) => match link_text(d) {
            Some(text) => match paid_text(bot, to, text, paid, shaped.thread).await {
                Ok(m) => CallResult::Sent {
                    id: m.id.0,
                    to,
                    note: Some(format!("{LINK_NOTE}{api}")),
                    parts: Vec::new(),
                },
                Err(e) => classify(e, Call::Send),
            },
            None => classify(e, copying),
        },
        _ => classify(e, copying),
    }
}

/// The post forwarded by id (its album whole), in the delivery's topic.
async fn forward(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    to: i64,
) -> Result<Vec<i32>, RequestError> {
    let (chat, from) = (ChatId(to), ChatId(d.post.source_chat_id));
    let ids: Vec<MessageId> = d.post.copy_ids().iter().map(|&i| MessageId(i)).collect();
    if ids.len() == 1 {
        let mut req = bot.forward_message(chat, from, ids[0]);
        if let Some(t) = shaped.thread {
            req = req.message_thread_id(t);
        }
        req.await.map(|m| vec![m.id.0])
    } else {
        let mut req = bot.forward_messages(chat, from, ids.clone());
        if let Some(t) = shaped.thread {
            req = req.message_thread_id(t);
        }
        req.await.and_then(|v| first_of(v, ids.len()))
    }
}

/// A link to the post when its channel is public; otherwise `e` classified.
async fn link_or(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    to: i64,
    paid: bool,
    e: RequestError,
    copying: Call,
) -> CallResult {
    match link_text(d) {
        Some(text) => match paid_text(bot, to, text, paid, shaped.thread).await {
            Ok(m) => CallResult::Sent {
                id: m.id.0,
                to,
                note: Some(format!("{LINK_NOTE}{e}")),
                parts: Vec::new(),
            },
            Err(e) => classify(e, Call::Send),
        },
        None => classify(e, copying),
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
