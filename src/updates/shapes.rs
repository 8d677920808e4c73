//! What a channel post is, from the fields Telegram sent rather than from
//! teloxide's reading of them: teloxide 0.13 reads a message it cannot
//! parse as its catch-all `Empty` kind (a `video` with a newer field, a
//! `live_photo`, a text with an `external_reply` it does not expect), which
//! looks like a service message. A post is skipped only when one of its
//! fields names a service event; everything else is a post, delivered by
//! id when kuryer cannot read it.
//!
//! The field lists follow the Bot API 10.1 `Message` object
//! (<https://core.telegram.org/bots/api#message>): service fields are those
//! its descriptions call "Service message", and the older ones listed
//! beside them on that page.

use serde_json::Value;
use teloxide::types::{Message, MessageKind};

/// What a channel post is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PostShape {
    /// Content kuryer reads.
    Readable,
    /// A service event (a pin, a new title): not a post.
    Service,
    /// Content kuryer cannot read: delivered by id, counted under `kind`.
    Unreadable { kind: String },
}

/// Service events of Bot API 10.1's `Message`.
const SERVICE: &[&str] = &[
    "new_chat_members",
    "left_chat_member",
    "chat_owner_left",
    "chat_owner_changed",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "message_auto_delete_timer_changed",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
    "successful_payment",
    "refunded_payment",
    "users_shared",
    "chat_shared",
    "gift",
    "unique_gift",
    "gift_upgrade_sent",
    "connected_website",
    "write_access_allowed",
    "passport_data",
    "proximity_alert_triggered",
    "boost_added",
    "chat_background_set",
    "checklist_tasks_done",
    "checklist_tasks_added",
    "direct_message_price_changed",
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
    "giveaway_created",
    "giveaway_completed",
    "managed_bot_created",
    "paid_message_price_changed",
    "poll_option_added",
    "poll_option_deleted",
    "suggested_post_approved",
    "suggested_post_approval_failed",
    "suggested_post_declined",
    "suggested_post_paid",
    "suggested_post_refunded",
    "video_chat_scheduled",
    "video_chat_started",
    "video_chat_ended",
    "video_chat_participants_invited",
    "web_app_data",
];

/// Content teloxide 0.13 reads into a kind kuryer maps (text, a media kind
/// of `MediaKind`, or kinds Telegram refuses to copy, which kuryer knows).
const READABLE: &[&str] = &[
    "text",
    "animation",
    "audio",
    "document",
    "photo",
    "sticker",
    "story",
    "video",
    "video_note",
    "voice",
    "checklist",
    "contact",
    "dice",
    "game",
    "poll",
    "venue",
    "location",
    "paid_media",
    "invoice",
    "giveaway",
    "giveaway_winners",
];

/// Fields about a message rather than its content (sender, time, reply,
/// caption, formatting, keyboard): they change nothing about how it is
/// delivered.
const ABOUT: &[&str] = &[
    "message_id",
    "message_thread_id",
    "direct_messages_topic",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "sender_tag",
    "date",
    "guest_query_id",
    "business_connection_id",
    "chat",
    "forward_origin",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "reply_to_checklist_task_id",
    "reply_to_poll_option_id",
    "via_bot",
    "guest_bot_caller_user",
    "guest_bot_caller_chat",
    "edit_date",
    "has_protected_content",
    "is_from_offline",
    "is_paid_post",
    "media_group_id",
    "author_signature",
    "paid_star_count",
    "entities",
    "link_preview_options",
    "suggested_post_info",
    "effect_id",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "reply_markup",
];

/// The longest kind name counted (a field name Telegram chose).
const KIND_MAX: usize = 40;

/// What the channel post `raw` is, given teloxide's reading of it
/// (`None`: teloxide could not read the update at all).
pub(super) fn post_shape(raw: &Value, parsed: Option<&Message>) -> PostShape {
    let Some(fields) = raw.as_object() else {
        return PostShape::Unreadable {
            kind: "unknown".to_owned(),
        };
    };
    if fields.keys().any(|k| SERVICE.contains(&k.as_str())) {
        return PostShape::Service;
    }
    let read = parsed.is_some_and(|m| {
        matches!(
            m.kind,
            MessageKind::Common(_)
                | MessageKind::Dice(_)
                | MessageKind::Invoice(_)
                | MessageKind::Giveaway(_)
                | MessageKind::GiveawayWinners(_)
        )
    });
    let all_known = fields
        .keys()
        .all(|k| READABLE.contains(&k.as_str()) || ABOUT.contains(&k.as_str()));
    if read && all_known {
        return PostShape::Readable;
    }
    // The content field names the kind: a known one first, else the first
    // field no list knows (a content newer than this version).
    let kind = fields
        .keys()
        .find(|k| READABLE.contains(&k.as_str()))
        .or_else(|| fields.keys().find(|k| !ABOUT.contains(&k.as_str())))
        .map_or("unknown", String::as_str);
    PostShape::Unreadable {
        kind: sanitized(kind),
    }
}

/// A field name as a metric label: lower-case letters, digits and `_`,
/// at most [`KIND_MAX`] of them.
fn sanitized(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .take(KIND_MAX)
        .collect();
    if s.is_empty() {
        "unknown".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(content: Value) -> PostShape {
        let mut raw = json!({"message_id": 5, "date": 1_780_000_000,
            "chat": {"id": -100, "type": "channel", "title": "t"}});
        raw.as_object_mut()
            .unwrap()
            .extend(content.as_object().unwrap().clone());
        let parsed: Option<Message> = serde_json::from_value(raw.clone()).ok();
        post_shape(&raw, parsed.as_ref())
    }

    fn unreadable(kind: &str) -> PostShape {
        PostShape::Unreadable {
            kind: kind.to_owned(),
        }
    }

    #[test]
    fn what_teloxide_reads_as_empty_is_a_post_unless_a_service_field_says_so() {
        assert_eq!(shape(json!({"text": "hi"})), PostShape::Readable);
        let photo = json!({"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1});
        assert_eq!(shape(json!({"photo": [photo]})), PostShape::Readable);
        // A live photo: teloxide 0.13 reads it as `Empty`.
        let live = json!({"file_id": "f", "file_unique_id": "u", "width": 1,
            "height": 1, "duration": 1});
        assert_eq!(
            shape(json!({"live_photo": live, "caption": "c"})),
            unreadable("live_photo")
        );
        // A text replying to another chat, in a shape teloxide refuses.
        assert_eq!(
            shape(json!({"text": "hi", "external_reply": {"origin":
                {"type": "hidden_user", "date": 1, "sender_user_name": "x"}}})),
            unreadable("text")
        );
        assert_eq!(shape(json!({"hologram": {"x": 1}})), unreadable("hologram"));
        assert_eq!(
            shape(json!({"pinned_message": {"message_id": 1, "date": 0,
                "chat": {"id": -100, "type": "channel", "title": "t"}}})),
            PostShape::Service
        );
        // A service message teloxide 0.13 does not know.
        assert_eq!(shape(json!({"chat_owner_left": {}})), PostShape::Service);
        assert_eq!(
            shape(json!({"dice": {"emoji": "🎲", "value": 3}})),
            PostShape::Readable
        );
    }

    #[test]
    fn a_kind_is_a_bounded_field_name() {
        assert_eq!(sanitized("Ünï-code"), "ncode");
        assert_eq!(sanitized("!!!"), "unknown");
        assert_eq!(sanitized(&"a".repeat(99)).len(), KIND_MAX);
    }
}
