//! Editing and deleting what a bot sent, as Telegram answers it:
//! `editMessageText` (in `handler_methods.rs`, shared with the bot's own menus),
//! `editMessageCaption`, `editMessageMedia`, `deleteMessage`,
//! `deleteMessages`; and a channel's posts edited or deleted
//! (`edited_channel_post` to admin bots; a deletion sends the Bot API
//! nothing, as on Telegram). Every such call is logged
//! ([`FakeTelegram::mirror_calls`]) so tests can name the exact calls.
//!
//! Errors, with Telegram's texts: an edit to the same content is "message
//! is not modified"; an unknown or deleted message is "message to edit not
//! found" / "message to delete not found"; a message another bot sent
//! "message can't be edited" / "message can't be deleted"; a bot's message
//! older than 48 h in a private chat or basic group "message can't be
//! deleted" (channels and supergroups, where the bot is admin, have no such
//! limit). `deleteMessages` (1–100 ids) deletes what it can and answers
//! `true`; when it could delete none it answers the first reason.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::json::{channel_post_json, unix_now};
use super::state::State;
use super::wire::{Method, Params, Reply, invalid};
use super::{ChatKind, FakeTelegram};

/// One edit or delete call the fake answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorCall {
    /// The method, e.g. `"deleteMessages"`.
    pub method: &'static str,
    /// The bot that called.
    pub bot_id: i64,
    /// The chat named.
    pub chat_id: i64,
    /// The message ids named.
    pub message_ids: Vec<i32>,
    /// The new text or caption, for edits.
    pub text: Option<String>,
    /// The new media's file id, for `editMessageMedia`.
    pub file_id: Option<String>,
    /// `None`: accepted; else the error's description.
    pub error: Option<String>,
}

/// Most ids one `deleteMessages` takes.
const MAX_DELETE: usize = 100;

/// What the mirror side of the fake keeps.
#[derive(Default)]
pub(super) struct MirrorState {
    pub(super) calls: Vec<MirrorCall>,
    /// (chat, message id) deleted.
    pub(super) deleted: HashSet<(i64, i32)>,
    /// (chat, message id) sent more than 48 h ago (set by tests).
    pub(super) aged: HashSet<(i64, i32)>,
}

impl Method {
    /// The edit and delete methods (`mirror.rs`).
    pub(super) fn is_mirror(self) -> bool {
        matches!(
            self,
            Method::EditMessageText
                | Method::EditMessageCaption
                | Method::EditMessageMedia
                | Method::DeleteMessage
                | Method::DeleteMessages
        )
    }
}

impl State {
    pub(super) fn mirror_method(&mut self, token: &str, method: Method, params: &Params) -> Reply {
        let bot_id = self.bots[token].id;
        let chat_id = params.int("chat_id").ok().flatten().unwrap_or_default();
        let mut ids: Vec<i32> = params
            .int("message_id")
            .ok()
            .flatten()
            .and_then(|i| i32::try_from(i).ok())
            .into_iter()
            .collect();
        if let Ok(Some(list)) = params.array("message_ids") {
            ids.extend(
                list.iter()
                    .filter_map(|v| v.as_i64())
                    .filter_map(|i| i32::try_from(i).ok()),
            );
        }
        let media = params.json("media");
        let text = match method {
            Method::EditMessageText => params.text("text"),
            Method::EditMessageCaption => params.text("caption"),
            Method::EditMessageMedia => media
                .as_ref()
                .and_then(|m| m.get("caption"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        let file_id = media
            .as_ref()
            .and_then(|m| m.get("media"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        // A slow answer is given late, the change made at once (as a send's).
        let (fault, delay) = match self.take_fault(chat_id) {
            Some(super::Fault::Slow(d)) => (None, Some(d)),
            other => (other, None),
        };
        let mut reply = match fault {
            Some(f) => Reply::fault(&f),
            None => self
                .mirror_inner(token, bot_id, method, params, chat_id, &ids, media.as_ref())
                .unwrap_or_else(|r| r),
        };
        reply.delay = delay;
        let error = (!reply.status.is_success()).then(|| {
            reply.body["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        self.mirror.calls.push(MirrorCall {
            method: method.name(),
            bot_id,
            chat_id,
            message_ids: ids,
            text,
            file_id,
            error,
        });
        reply
    }

    #[allow(clippy::too_many_arguments)]
    fn mirror_inner(
        &mut self,
        token: &str,
        bot_id: i64,
        method: Method,
        params: &Params,
        chat_id: i64,
        ids: &[i32],
        media: Option<&Value>,
    ) -> Result<Reply, Reply> {
        match method {
            Method::DeleteMessage | Method::DeleteMessages => {
                self.delete(bot_id, method, chat_id, ids)
            }
            Method::EditMessageText => {
                if ids
                    .first()
                    .is_some_and(|id| self.mirror.deleted.contains(&(chat_id, *id)))
                {
                    return Err(Reply::bad_request("Bad Request: message to edit not found"));
                }
                self.edit(token, bot_id, method, params)
            }
            _ => {
                let id = *ids.first().ok_or_else(|| invalid("message_id"))?;
                if self.mirror.deleted.contains(&(chat_id, id)) {
                    return Err(Reply::bad_request("Bad Request: message to edit not found"));
                }
                let (caption, entities) = match method {
                    Method::EditMessageMedia => {
                        let m = media
                            .ok_or_else(|| Reply::bad_request("Bad Request: media is empty"))?;
                        if m.get("media")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            return Err(Reply::bad_request("Bad Request: media is empty"));
                        }
                        (
                            m.get("caption").and_then(Value::as_str).map(str::to_owned),
                            m.get("caption_entities")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default(),
                        )
                    }
                    _ => (
                        params.text("caption"),
                        params.array("caption_entities")?.unwrap_or_default(),
                    ),
                };
                let file = media
                    .and_then(|m| m.get("media"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                // A new media file always changes the message.
                let same_media =
                    file.is_none() || self.mirror_files_same(chat_id, id, file.as_deref());
                let chat = self
                    .chats
                    .get_mut(&chat_id)
                    .ok_or_else(|| Reply::bad_request("Bad Request: chat not found"))?;
                let chat_json = chat.chat.clone();
                let m = chat
                    .received
                    .iter_mut()
                    .find(|m| m.message_id == id)
                    .ok_or_else(|| Reply::bad_request("Bad Request: message to edit not found"))?;
                if m.bot_id != bot_id {
                    return Err(Reply::bad_request("Bad Request: message can't be edited"));
                }
                if m.text.is_some() && m.source.is_none_or(|_| m.method == "sendMessage") {
                    return Err(Reply::bad_request(
                        "Bad Request: there is no caption in the message to edit",
                    ));
                }
                if same_media && caption == m.text && entities == m.entities {
                    return Err(Reply::bad_request(
                        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                    ));
                }
                m.text = caption.clone();
                m.entities = entities;
                m.edits += 1;
                Ok(Reply::ok(json!({
                    "message_id": id,
                    "chat": chat_json,
                    "date": unix_now(),
                    "edit_date": unix_now(),
                    "caption": caption,
                })))
            }
        }
    }

    /// The fake keeps no media per copy: a file id given is new unless an
    /// earlier `editMessageMedia` of the same copy set it.
    fn mirror_files_same(&self, chat_id: i64, id: i32, file: Option<&str>) -> bool {
        self.mirror
            .calls
            .iter()
            .rev()
            .find(|c| {
                c.method == "editMessageMedia"
                    && c.chat_id == chat_id
                    && c.message_ids.first() == Some(&id)
                    && c.error.is_none()
            })
            .is_some_and(|c| c.file_id.as_deref() == file)
    }

    fn delete(
        &mut self,
        bot_id: i64,
        method: Method,
        chat_id: i64,
        ids: &[i32],
    ) -> Result<Reply, Reply> {
        if ids.is_empty() {
            return Err(Reply::bad_request(
                "Bad Request: message identifiers are not specified",
            ));
        }
        if method == Method::DeleteMessages && ids.len() > MAX_DELETE {
            return Err(Reply::bad_request(
                "Bad Request: too many messages to delete",
            ));
        }
        let kind = self.chats.get(&chat_id).map(|c| c.kind);
        let Some(kind) = kind else {
            return Err(Reply::bad_request("Bad Request: chat not found"));
        };
        let time_limited = matches!(kind, ChatKind::Private | ChatKind::Group);
        let mut deleted = 0;
        let mut first_error = None;
        for &id in ids {
            let found = self.chats[&chat_id]
                .received
                .iter()
                .find(|m| m.message_id == id)
                .map(|m| m.bot_id);
            let why = match found {
                _ if self.mirror.deleted.contains(&(chat_id, id)) => {
                    Some("Bad Request: message to delete not found")
                }
                None => Some("Bad Request: message to delete not found"),
                Some(b) if b != bot_id && kind != ChatKind::Channel => {
                    Some("Bad Request: message can't be deleted")
                }
                Some(_) if time_limited && self.mirror.aged.contains(&(chat_id, id)) => {
                    Some("Bad Request: message can't be deleted")
                }
                Some(_) => None,
            };
            match why {
                None => {
                    self.mirror.deleted.insert((chat_id, id));
                    deleted += 1;
                }
                Some(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if deleted == 0 || method == Method::DeleteMessage => {
                Err(Reply::bad_request(e))
            }
            _ => Ok(Reply::ok(Value::Bool(true))),
        }
    }
}

impl FakeTelegram {
    /// The edit and delete calls answered so far, in order.
    pub fn mirror_calls(&self) -> Vec<MirrorCall> {
        self.shared.lock().mirror.calls.clone()
    }

    /// True when a bot deleted message `message_id` of `chat_id`.
    pub fn is_deleted(&self, chat_id: i64, message_id: i32) -> bool {
        self.shared
            .lock()
            .mirror
            .deleted
            .contains(&(chat_id, message_id))
    }

    /// Makes messages of `chat_id` count as sent more than 48 h ago.
    pub fn age_messages(&self, chat_id: i64, message_ids: &[i32]) {
        let mut st = self.shared.lock();
        for &id in message_ids {
            st.mirror.aged.insert((chat_id, id));
        }
    }

    /// Edits a channel's message (text or caption; `None` removes it):
    /// admin bots get an `edited_channel_post`; copies made from now on
    /// carry the new text. False when there is no such message.
    pub fn edit_post(&self, chat_id: i64, id: i32, text: Option<&str>) -> bool {
        let mut st = self.shared.lock();
        let State {
            channels,
            bots,
            texts,
            ..
        } = &mut *st;
        let Some(channel) = channels.get_mut(&chat_id) else {
            return false;
        };
        let Some(index) = usize::try_from(id).ok().and_then(|i| i.checked_sub(1)) else {
            return false;
        };
        let Some(message) = channel.messages.get_mut(index) else {
            return false;
        };
        message.text = text.map(str::to_owned);
        if let Some(t) = text {
            texts.entry(t.to_owned()).or_default().push((chat_id, id));
        }
        let mut payload = channel_post_json(chat_id, &channel.chat, message);
        payload["edit_date"] = unix_now().into();
        for token in &channel.admins {
            if let Some(bot) = bots.get_mut(token) {
                bot.push_update("edited_channel_post", payload.clone());
            }
        }
        true
    }
}
