//! The Bot API calls that mirror a change of a source post onto a copy
//! ([`MirrorOp`]): `editMessageText` / `editMessageCaption` /
//! `editMessageMedia`, `deleteMessages`, or a new copy of the edited post.
//! The SenderPool makes them for a [`DeliveryOp::Mirror`](crate::model::DeliveryOp)
//! delivery, after the limiter let it through like any send.

use teloxide::payloads::{EditMessageCaptionSetters, EditMessageTextSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatId, FileId, InputFile, InputMedia, InputMediaAnimation, InputMediaAudio,
    InputMediaDocument, InputMediaPhoto, InputMediaVideo, MessageEntity, MessageId,
};
use teloxide::{ApiError, Bot, RequestError};

use crate::model::{Delivery, MediaKind, MirrorKind, MirrorOp};
use crate::outcome::{CallResult, classify};
use crate::ports::DestinationEvents;
use crate::shaping::Shaped;

/// Makes the call(s) of one mirror op; see [`CallResult`].
pub(crate) async fn call(
    bot: &Bot,
    d: &Delivery,
    shaped: &Shaped,
    op: &MirrorOp,
    events: &dyn DestinationEvents,
    paid: bool,
    may_send: &(dyn Fn() -> bool + Send + Sync),
) -> CallResult {
    if !may_send() {
        return CallResult::LeaseLost;
    }
    let to = d.sub.chat_id;
    let chat = ChatId(to);
    let done = |id: i32| CallResult::Sent {
        id,
        to,
        note: None,
        parts: Vec::new(),
    };
    match &op.kind {
        MirrorKind::Repost => {
            crate::sender_calls::call(bot, d, shaped, events, paid, may_send).await
        }
        MirrorKind::Edit {
            message_id,
            file_id,
        } => {
            let id = MessageId(*message_id);
            let post = &d.post;
            let (text, entities) = match &shaped.text {
                Some((t, e)) => (t.clone(), e.clone()),
                None => (post.text.clone().unwrap_or_default(), post.entities.clone()),
            };
            let result = match (post.media, file_id) {
                (None, _) => {
                    let mut req = bot.edit_message_text(chat, id, text);
                    if !entities.is_empty() {
                        req = req.entities(entities);
                    }
                    req.await.map(drop)
                }
                (Some(kind), Some(file)) if input_media(kind, file, &text, &entities).is_some() => {
                    let media = input_media(kind, file, &text, &entities).expect("checked");
                    bot.edit_message_media(chat, id, media).await.map(drop)
                }
                (Some(_), _) => {
                    // Without a file id of the new media (a post read by a
                    // reader account) only the caption can follow.
                    let mut req = bot.edit_message_caption(chat, id);
                    if !text.is_empty() {
                        req = req.caption(text);
                    }
                    if !entities.is_empty() {
                        req = req.caption_entities(entities);
                    }
                    req.await.map(drop)
                }
            };
            match result {
                Ok(()) => done(*message_id),
                // Editing to what the copy already says (a copy made after
                // the edit, or an edit applied again after a restart).
                Err(RequestError::Api(ApiError::MessageNotModified)) => done(*message_id),
                Err(e) => classify(e, crate::outcome::Call::Send),
            }
        }
        MirrorKind::Delete { message_ids } => {
            let ids = message_ids.iter().map(|&i| MessageId(i));
            match bot.delete_messages(chat, ids).await {
                Ok(_) => done(message_ids[0]),
                // Gone already (deleted by hand, or by a call whose answer was lost).
                Err(RequestError::Api(ApiError::MessageToDeleteNotFound)) => done(message_ids[0]),
                Err(e) => classify(e, crate::outcome::Call::Send),
            }
        }
    }
}

/// The Bot API's `InputMedia` for an edited media message, for the kinds
/// `editMessageMedia` takes.
fn input_media(
    kind: MediaKind,
    file: &str,
    caption: &str,
    entities: &[MessageEntity],
) -> Option<InputMedia> {
    let f = InputFile::file_id(FileId(file.to_owned()));
    let cap = (!caption.is_empty()).then(|| caption.to_owned());
    let ent = (!entities.is_empty()).then(|| entities.to_vec());
    Some(match kind {
        MediaKind::Photo => InputMedia::Photo(InputMediaPhoto {
            caption: cap,
            caption_entities: ent,
            ..InputMediaPhoto::new(f)
        }),
        MediaKind::Video => InputMedia::Video(InputMediaVideo {
            caption: cap,
            caption_entities: ent,
            ..InputMediaVideo::new(f)
        }),
        MediaKind::Animation => InputMedia::Animation(InputMediaAnimation {
            caption: cap,
            caption_entities: ent,
            ..InputMediaAnimation::new(f)
        }),
        MediaKind::Audio => InputMedia::Audio(InputMediaAudio {
            caption: cap,
            caption_entities: ent,
            ..InputMediaAudio::new(f)
        }),
        MediaKind::Document => InputMedia::Document(InputMediaDocument {
            caption: cap,
            caption_entities: ent,
            ..InputMediaDocument::new(f)
        }),
        _ => return None,
    })
}
