//! grammers' messages into kuryer's `SourceMessage`: text and entities kept
//! exactly (MTProto and the Bot API both count offsets in UTF-16 code
//! units, so they carry over unchanged), media kinds, albums by
//! `grouped_id`, and what cannot be copied (protected channels and posts,
//! invoices, giveaways) marked so.

use chrono::{DateTime, Utc};
use grammers_client::tl;
use kuryer_actors::model::{MediaKind, MessageEntity, SourceMessage};
use teloxide::types::{CustomEmojiId, MessageEntityKind};

/// A channel message as kuryer keeps it; `None` for what is not a post
/// (service messages, empty ids).
pub fn source_message(m: &tl::enums::Message, channel_protected: bool) -> Option<SourceMessage> {
    let tl::enums::Message::Message(m) = m else {
        return None;
    };
    let (media, uncopyable_media) = match &m.media {
        None => (None, false),
        Some(media) => media_kind(media),
    };
    let text = (!m.message.is_empty()).then(|| m.message.clone());
    let entities = m.entities.iter().flatten().filter_map(entity).collect();
    Some(SourceMessage {
        id: m.id,
        date: DateTime::<Utc>::from_timestamp(i64::from(m.date), 0).unwrap_or_else(Utc::now),
        text,
        entities,
        media,
        media_group_id: m.grouped_id.map(|g| g.to_string()),
        copyable: !(m.noforwards || channel_protected || uncopyable_media),
        relay: None,
    })
}

/// The media kind, and whether it is of a kind nothing can copy.
fn media_kind(media: &tl::enums::MessageMedia) -> (Option<MediaKind>, bool) {
    use tl::enums::MessageMedia as M;
    match media {
        M::Empty => (None, false),
        // A link preview belongs to the text: the post is a text post.
        M::WebPage(_) => (None, false),
        M::Photo(_) => (Some(MediaKind::Photo), false),
        M::Document(d) => (Some(document_kind(d)), false),
        M::Invoice(_) | M::Giveaway(_) | M::GiveawayResults(_) | M::PaidMedia(_) => {
            (Some(MediaKind::Other), true)
        }
        _ => (Some(MediaKind::Other), false),
    }
}

fn document_kind(d: &tl::types::MessageMediaDocument) -> MediaKind {
    use tl::enums::DocumentAttribute as A;
    if d.round {
        return MediaKind::Other;
    }
    if d.voice {
        return MediaKind::Voice;
    }
    let attributes: &[A] = match &d.document {
        Some(tl::enums::Document::Document(doc)) => &doc.attributes,
        _ => &[],
    };
    let animated = attributes.iter().any(|a| matches!(a, A::Animated));
    for a in attributes {
        match a {
            A::Sticker(_) => return MediaKind::Sticker,
            A::Video(v) if v.round_message => return MediaKind::Other,
            A::Video(_) if animated => return MediaKind::Animation,
            A::Video(_) => return MediaKind::Video,
            A::Audio(a) if a.voice => return MediaKind::Voice,
            A::Audio(_) => return MediaKind::Audio,
            _ => {}
        }
    }
    if animated {
        MediaKind::Animation
    } else if d.video {
        MediaKind::Video
    } else {
        MediaKind::Document
    }
}

/// One MTProto entity as a Bot API entity; `None` for kinds the Bot API
/// cannot send (a mention by user id needs the user, dates, diffs).
fn entity(e: &tl::enums::MessageEntity) -> Option<MessageEntity> {
    use tl::enums::MessageEntity as E;
    let kind = match e {
        E::Mention(_) => MessageEntityKind::Mention,
        E::Hashtag(_) => MessageEntityKind::Hashtag,
        E::Cashtag(_) => MessageEntityKind::Cashtag,
        E::BotCommand(_) => MessageEntityKind::BotCommand,
        E::Url(_) => MessageEntityKind::Url,
        E::Email(_) => MessageEntityKind::Email,
        E::Phone(_) => MessageEntityKind::PhoneNumber,
        E::Bold(_) => MessageEntityKind::Bold,
        E::Italic(_) => MessageEntityKind::Italic,
        E::Underline(_) => MessageEntityKind::Underline,
        E::Strike(_) => MessageEntityKind::Strikethrough,
        E::Spoiler(_) => MessageEntityKind::Spoiler,
        E::Code(_) => MessageEntityKind::Code,
        E::Pre(p) => MessageEntityKind::Pre {
            language: (!p.language.is_empty()).then(|| p.language.clone()),
        },
        E::TextUrl(t) => MessageEntityKind::TextLink {
            url: t.url.parse().ok()?,
        },
        E::CustomEmoji(c) => MessageEntityKind::CustomEmoji {
            custom_emoji_id: CustomEmojiId(c.document_id.to_string()),
        },
        E::Blockquote(b) if b.collapsed => MessageEntityKind::ExpandableBlockquote,
        E::Blockquote(_) => MessageEntityKind::Blockquote,
        _ => return None,
    };
    Some(MessageEntity {
        kind,
        offset: usize::try_from(e.offset()).ok()?,
        length: usize::try_from(e.length()).ok()?,
    })
}

/// How a post goes out when no relay channel holds its media: its text
/// (or caption) followed by a link to the original, sent with `sendMessage`;
/// a private channel's media post, which no link can show, cannot be sent.
pub fn without_relay(mut m: SourceMessage, username: Option<&str>) -> SourceMessage {
    if m.media.is_none() {
        return m;
    }
    m.media = None;
    match username {
        Some(name) => {
            let link = format!("https://t.me/{name}/{}", m.id);
            m.text = Some(match m.text.take() {
                Some(t) => format!("{t}\n\n{link}"),
                None => link,
            });
        }
        None => m.copyable = false,
    }
    m
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
