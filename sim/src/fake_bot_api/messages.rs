//! The messages of the fake's public API: a post to publish, a post as
//! published, a message as a destination received it.

use std::time::Instant;

use serde_json::Value;

/// The media of a channel post.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A photo.
    Photo,
    /// A video.
    Video,
    /// A file.
    Document,
}

/// A post to publish in a channel with [`FakeTelegram::post`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewChannelMessage {
    /// The text, or the caption of a media message.
    pub text: Option<String>,
    /// Bot API `MessageEntity` JSON objects for the text or caption.
    pub entities: Vec<Value>,
    /// The media, if any.
    pub media: Option<MediaKind>,
    /// Messages sharing this id form one album (one post).
    pub media_group_id: Option<String>,
    /// Protected content: cannot be copied or forwarded.
    pub protected: bool,
}

impl NewChannelMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// A media message with an optional caption.
    pub fn media(kind: MediaKind, caption: Option<&str>) -> Self {
        Self {
            text: caption.map(str::to_owned),
            media: Some(kind),
            ..Self::default()
        }
    }

    /// The same message with these entities.
    pub fn with_entities(mut self, entities: Vec<Value>) -> Self {
        self.entities = entities;
        self
    }

    /// The same message as a part of the album `group`.
    pub fn in_album(mut self, group: impl Into<String>) -> Self {
        self.media_group_id = Some(group.into());
        self
    }

    /// The same message with protected content.
    pub fn protected(mut self) -> Self {
        self.protected = true;
        self
    }
}

/// A message in a channel's history.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelMessage {
    /// Message id in the channel: 1, 2, 3…
    pub id: i32,
    /// Unix seconds.
    pub date: i64,
    /// Text or caption.
    pub text: Option<String>,
    /// Bot API `MessageEntity` JSON objects.
    pub entities: Vec<Value>,
    /// The media, if any.
    pub media: Option<MediaKind>,
    /// Album id, if the message is part of one.
    pub media_group_id: Option<String>,
    /// Protected content.
    pub protected: bool,
    /// When [`FakeTelegram::post`] published it (the start of latency).
    pub posted_at: Instant,
    /// Published with [`FakeTelegram::post_raw`]: its Bot API fields
    /// besides `message_id`, `date` and `chat`, sent as they are.
    pub raw: Option<Value>,
    /// Refused by id whatever its fields say
    /// ([`FakeTelegram::refuse_by_id`](super::FakeTelegram::refuse_by_id)).
    pub refused_by_id: bool,
}

impl ChannelMessage {
    /// Whether Telegram refuses to copy (or, `forward`, to forward) it.
    /// Protected content: neither (<https://core.telegram.org/bots/api#message>,
    /// `has_protected_content`). A raw message as its fields say
    /// ([`crate::spec_updates::classes`]: the copyMessage and forwardMessage
    /// pages' exclusions).
    pub fn refused(&self, forward: bool) -> bool {
        use crate::spec_updates::classes::{FieldClass, of_message};
        if self.protected || self.refused_by_id {
            return true;
        }
        match self.raw.as_ref().map(of_message) {
            Some(FieldClass::Service) => true,
            Some(FieldClass::ForwardOnly) => !forward,
            _ => false,
        }
    }
}

/// A message the fake accepted into a destination chat.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// Its id in the destination chat (1, 2, 3… per chat).
    pub message_id: i32,
    /// The Bot API method that delivered it, e.g. `"copyMessages"`.
    pub method: &'static str,
    /// The channel message it came from: given for copies and forwards, and
    /// for `sendMessage` when its text equals a channel message's text.
    pub source: Option<(i64, i32)>,
    /// Text or caption.
    pub text: Option<String>,
    /// Entities as sent (`sendMessage`) or as copied from the source.
    pub entities: Vec<Value>,
    /// The source's album id, for messages that came in a
    /// `copyMessages`/`forwardMessages` request (single copies leave the
    /// album, as on Telegram).
    pub media_group_id: Option<String>,
    /// When the fake accepted it.
    pub received_at: Instant,
    /// The bot that sent it.
    pub bot_id: i64,
    /// The forum topic it was sent to (`message_thread_id`), if any.
    pub message_thread_id: Option<i32>,
    /// The HTTP request that delivered it: the parts of one `copyMessages`
    /// share it. Unique across the fake.
    pub request_id: u64,
    /// The inline keyboard (`reply_markup` JSON) it carries now: as sent,
    /// or as last edited.
    pub reply_markup: Option<Value>,
    /// The request carried `allow_paid_broadcast=true`.
    pub allow_paid_broadcast: bool,
    /// Times `editMessageText`/`editMessageReplyMarkup` changed it.
    pub edits: u32,
}
