//! The Bot API's objects as the fake sends them (shapes checked against
//! teloxide-core 0.13's types by the tests): users, chats, chat members,
//! messages.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::state::{Channel, DestChat};
use super::{ChannelMessage, ChatKind, MediaKind};

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(super) fn me_json(user: &Value) -> Value {
    let mut me = user.clone();
    for flag in [
        "can_join_groups",
        "can_read_all_group_messages",
        "supports_inline_queries",
        "can_connect_to_business",
        "has_main_web_app",
    ] {
        me[flag] = Value::Bool(false);
    }
    me
}

pub(super) fn channel_chat_json(chat_id: i64, username: &str, title: &str) -> Value {
    let mut chat = json!({"id": chat_id, "type": "channel", "title": title});
    if !username.is_empty() {
        chat["username"] = Value::String(username.to_owned());
    }
    chat
}

pub(super) fn dest_chat_json(
    chat_id: i64,
    kind: ChatKind,
    channels: &HashMap<i64, Channel>,
) -> Value {
    match kind {
        ChatKind::Private => {
            json!({"id": chat_id, "type": "private", "first_name": format!("User {chat_id}")})
        }
        ChatKind::Group => {
            json!({"id": chat_id, "type": "group", "title": format!("Group {chat_id}")})
        }
        ChatKind::Supergroup => {
            json!({"id": chat_id, "type": "supergroup", "title": format!("Supergroup {chat_id}")})
        }
        ChatKind::Channel => match channels.get(&chat_id) {
            Some(channel) => channel.chat.clone(),
            None => {
                json!({"id": chat_id, "type": "channel", "title": format!("Channel {chat_id}")})
            }
        },
    }
}

/// A `ChatMember` of the bot: an administrator who may post, or gone.
pub(super) fn member_json(user: &Value, admin: bool) -> Value {
    if admin {
        json!({
            "user": user,
            "status": "administrator",
            "can_be_edited": false,
            "is_anonymous": false,
            "can_manage_chat": true,
            "can_change_info": false,
            "can_post_messages": true,
            "can_edit_messages": true,
            "can_delete_messages": true,
            "can_post_stories": false,
            "can_edit_stories": false,
            "can_delete_stories": false,
            "can_manage_video_chats": false,
            "can_invite_users": true,
            "can_restrict_members": false,
            "can_promote_members": false,
        })
    } else {
        json!({"user": user, "status": "left"})
    }
}

/// The envelope of a message the bot sent: in a channel it is signed by the
/// channel (`sender_chat`), elsewhere by the bot (`from`).
pub(super) fn sent_message_json(
    message_id: i32,
    chat: &DestChat,
    bot_user: &Value,
) -> Map<String, Value> {
    let mut m = Map::with_capacity(8);
    m.insert("message_id".to_owned(), message_id.into());
    if chat.kind == ChatKind::Channel {
        m.insert("sender_chat".to_owned(), chat.chat.clone());
    } else {
        m.insert("from".to_owned(), bot_user.clone());
    }
    m.insert("date".to_owned(), unix_now().into());
    m.insert("chat".to_owned(), chat.chat.clone());
    m
}

pub(super) fn channel_post_json(chat_id: i64, chat: &Value, message: &ChannelMessage) -> Value {
    let mut m = Map::with_capacity(10);
    m.insert("message_id".to_owned(), message.id.into());
    m.insert("sender_chat".to_owned(), chat.clone());
    m.insert("date".to_owned(), message.date.into());
    m.insert("chat".to_owned(), chat.clone());
    if let Some(Value::Object(raw)) = &message.raw {
        // A shape given field by field: sent as it is.
        m.extend(raw.iter().map(|(k, v)| (k.clone(), v.clone())));
    } else {
        put_content(&mut m, chat_id, message, true);
    }
    if message.protected {
        m.insert("has_protected_content".to_owned(), Value::Bool(true));
    }
    Value::Object(m)
}

/// Text and entities, or media with caption and caption entities.
pub(super) fn put_content(
    m: &mut Map<String, Value>,
    chat_id: i64,
    message: &ChannelMessage,
    album: bool,
) {
    let entities = (!message.entities.is_empty()).then(|| Value::Array(message.entities.clone()));
    let Some(kind) = message.media else {
        let text = message.text.clone().unwrap_or_default();
        m.insert("text".to_owned(), Value::String(text));
        if let Some(entities) = entities {
            m.insert("entities".to_owned(), entities);
        }
        return;
    };
    let id = message.id;
    let file_id = format!("fake-{chat_id}-{id}");
    let unique_id = format!("u{chat_id}_{id}");
    let (key, media) = match kind {
        MediaKind::Photo => (
            "photo",
            json!([{"file_id": file_id, "file_unique_id": unique_id, "file_size": 51_200,
                    "width": 1280, "height": 720}]),
        ),
        MediaKind::Video => (
            "video",
            json!({"file_id": file_id, "file_unique_id": unique_id, "file_size": 1_048_576,
                   "width": 1280, "height": 720, "duration": 10, "mime_type": "video/mp4"}),
        ),
        MediaKind::Document => (
            "document",
            json!({"file_id": file_id, "file_unique_id": unique_id, "file_size": 2048,
                   "file_name": format!("file{id}.bin"), "mime_type": "application/octet-stream"}),
        ),
    };
    m.insert(key.to_owned(), media);
    if let Some(caption) = &message.text {
        m.insert("caption".to_owned(), Value::String(caption.clone()));
        if let Some(entities) = entities {
            m.insert("caption_entities".to_owned(), entities);
        }
    }
    if album && let Some(group) = &message.media_group_id {
        m.insert("media_group_id".to_owned(), Value::String(group.clone()));
    }
}
