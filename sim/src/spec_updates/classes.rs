//! What each field of a Bot API `Message` is: the content of a post (and
//! whether Telegram lets a bot copy or only forward it), a service event,
//! or something about the message (who, when, a reply, a caption). The
//! generator builds one shape per content and service field; the fake
//! decides from the same lists whether a post may be copied or forwarded.
//!
//! Sources: <https://core.telegram.org/bots/api#copymessage> ("Service
//! messages, paid media messages, giveaway messages, giveaway winners
//! messages, and invoice messages can't be copied") and
//! <https://core.telegram.org/bots/api#forwardmessage> ("Service messages
//! and messages with protected content can't be forwarded"). Which fields
//! are service messages: the specification's own descriptions ("Service
//! message: …", kept as `service` in the vendored file) and, for the older
//! fields whose description does not say so, [`SERVICE_UNMARKED`].

use serde_json::Value;

/// What a `Message` field is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldClass {
    /// The content of a post that `copyMessage` copies.
    Copyable,
    /// The content of a post that cannot be copied but can be forwarded.
    ForwardOnly,
    /// A service event: neither copied nor forwarded.
    Service,
    /// About the message, not its content.
    About,
}

/// Content a bot may copy (every content field the copyMessage page does
/// not exclude).
pub const COPYABLE: &[&str] = &[
    "text",
    "rich_message",
    "animation",
    "audio",
    "document",
    "live_photo",
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
];

/// Content the copyMessage page excludes; forwardMessage excludes only
/// service messages and protected content, so these can be forwarded.
pub const FORWARD_ONLY: &[&str] = &["paid_media", "invoice", "giveaway", "giveaway_winners"];

/// Service events whose description in the specification does not begin
/// "Service message" (the Bot API page lists them among the service
/// fields all the same).
pub const SERVICE_UNMARKED: &[&str] = &[
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
    "successful_payment",
    "refunded_payment",
    "connected_website",
    "passport_data",
];

/// Fields about the message: sender, chat, time, reply, caption,
/// formatting, keyboard.
pub const ABOUT: &[&str] = &[
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

/// The class of `Message` field `name`; `service` is what the
/// specification's description says. `None`: a field these lists do not
/// know (a newer Bot API): classify it before generating.
pub fn message_field(name: &str, service: bool) -> Option<FieldClass> {
    if COPYABLE.contains(&name) {
        Some(FieldClass::Copyable)
    } else if FORWARD_ONLY.contains(&name) {
        Some(FieldClass::ForwardOnly)
    } else if service || SERVICE_UNMARKED.contains(&name) {
        Some(FieldClass::Service)
    } else if ABOUT.contains(&name) {
        Some(FieldClass::About)
    } else {
        None
    }
}

/// How Telegram treats a channel message given as Bot API JSON: the
/// strictest class among its fields (a service field makes it a service
/// message). Fields no list knows count as copyable content.
pub fn of_message(message: &Value) -> FieldClass {
    let Some(fields) = message.as_object() else {
        return FieldClass::Service;
    };
    let service = super::spec_service_fields();
    let mut class = FieldClass::About;
    for name in fields.keys() {
        let c =
            message_field(name, service.contains(name.as_str())).unwrap_or(FieldClass::Copyable);
        class = match (class, c) {
            (FieldClass::Service, _) | (_, FieldClass::Service) => FieldClass::Service,
            (FieldClass::ForwardOnly, _) | (_, FieldClass::ForwardOnly) => FieldClass::ForwardOnly,
            (FieldClass::Copyable, _) | (_, FieldClass::Copyable) => FieldClass::Copyable,
            _ => FieldClass::About,
        };
    }
    class
}
