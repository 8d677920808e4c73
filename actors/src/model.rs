//! Domain types shared by the actors and the daemon's adapters.
//!
//! These are plain data: no I/O, no database or Telegram types, so that the
//! actors can be tested without either.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
pub use teloxide::types::MessageEntity;

/// Channel usernames as users type them.
mod username;
pub use username::{ChannelUsername, UsernameError};

/// How a post reaches a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// `copyMessage(s)` / `sendMessage`: the post appears as the bot's own.
    #[default]
    Copy,
    /// `forwardMessage(s)`: keeps the "Forwarded from" header.
    Forward,
}

impl DeliveryMode {
    /// The spelling used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::Forward => "forward",
        }
    }

    /// Parses the database/API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "copy" => Some(Self::Copy),
            "forward" => Some(Self::Forward),
            _ => None,
        }
    }
}

/// The kind of chat a post is delivered to; it decides which Telegram limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A user's private chat with the bot: 1 message/s.
    Private,
    /// A basic group: 20 messages/minute.
    Group,
    /// A supergroup: 20 messages/minute.
    Supergroup,
    /// A channel the bot posts into: 20 messages/minute.
    Channel,
}

impl DestinationKind {
    /// The spelling used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Group => "group",
            Self::Supergroup => "supergroup",
            Self::Channel => "channel",
        }
    }

    /// Parses the database/API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Self::Private),
            "group" => Some(Self::Group),
            "supergroup" => Some(Self::Supergroup),
            "channel" => Some(Self::Channel),
            _ => None,
        }
    }

    /// Groups and channels share Telegram's per-minute limit; private chats do not.
    pub(crate) fn is_group_like(self) -> bool {
        !matches!(self, Self::Private)
    }
}

/// One active subscription as the subscriber registry holds it: everything
/// needed to turn a post into a delivery without asking the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSubscription {
    /// `subscriptions.id`.
    pub subscription_id: i64,
    /// `channels.id` (our id, not Telegram's).
    pub channel_id: i64,
    /// `users.telegram_id` of the subscriber.
    pub user_telegram_id: i64,
    /// `destinations.id`.
    pub destination_id: i64,
    /// The Telegram chat the post goes to.
    pub chat_id: i64,
    /// Which Telegram limit applies to that chat.
    pub destination_kind: DestinationKind,
    /// The bot that can post there (`destinations.bot_id`); `None`: the
    /// primary (first configured) bot, the one users talk to.
    pub bot_id: Option<i64>,
    /// Copy or forward.
    pub mode: DeliveryMode,
    /// The subscription's filters as stored (JSON text; `{}` when none).
    pub filters: String,
    /// Text transforms as stored (`subscriptions.transform`; `None`: none).
    pub transform: Option<String>,
    /// Quiet hours as stored (`subscriptions.quiet`; `None`: none).
    pub quiet: Option<String>,
    /// The forum topic posts go to (`destinations.message_thread_id`);
    /// `None`: the whole chat.
    pub thread_id: Option<i32>,
}

/// Media a post carries; `None` on a post means text only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A photo.
    Photo,
    /// A video.
    Video,
    /// A file.
    Document,
    /// A music file.
    Audio,
    /// A voice message.
    Voice,
    /// A GIF or silent video.
    Animation,
    /// A sticker.
    Sticker,
    /// Anything else that is not text (video note, poll, location, …).
    Other,
}

impl MediaKind {
    /// Its stored spelling (as `posts.media`, and serde's).
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Photo => "photo",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Voice => "voice",
            MediaKind::Animation => "animation",
            MediaKind::Sticker => "sticker",
            MediaKind::Other => "other",
        }
    }
}

/// One message of a source channel, as a `ChannelSource` reads it.
/// Serialisable: the bot's update loop keeps it in a durable inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceMessage {
    /// Its id in the channel (increasing).
    pub id: i32,
    /// When the channel published it.
    pub date: DateTime<Utc>,
    /// Text, or a media caption.
    pub text: Option<String>,
    /// Formatting of `text` (Bot API entities).
    pub entities: Vec<MessageEntity>,
    /// Media, if any.
    pub media: Option<MediaKind>,
    /// Album id: consecutive messages sharing it form one post.
    pub media_group_id: Option<String>,
    /// False for what cannot be copied or forwarded (service messages,
    /// protected content, invoices, giveaways).
    pub copyable: bool,
    /// The same message forwarded into the relay channel, when the bot
    /// cannot copy from the channel itself (media read by a reader account).
    #[serde(default)]
    pub relay: Option<RelayCopy>,
}

/// Where a message was forwarded in the relay channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCopy {
    /// The relay channel's Bot API chat id.
    pub chat_id: i64,
    /// The forwarded message's id there.
    pub message_id: i32,
}

/// A channel a poller reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRef {
    /// `channels.id`.
    pub channel_id: i64,
    /// Telegram's chat id of the channel (what the bot copies from).
    pub chat_id: i64,
    /// Its username, for logs.
    pub username: Option<String>,
    /// Our bot is admin there (posts come as `channel_post` updates).
    pub bot_is_admin: bool,
}

/// A post: one message, or an album's messages, ready to deliver. Its JSON
/// is how a dead letter keeps it, to replay it later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    /// `channels.id`.
    pub channel_id: i64,
    /// Chat the bot copies or forwards from (the channel itself, or a relay).
    pub source_chat_id: i64,
    /// The channel's public username, for a link to the post when it cannot be copied.
    pub channel_username: Option<String>,
    /// Message ids in the channel, increasing; one unless an album.
    pub message_ids: Vec<i32>,
    /// The ids in the relay channel (`source_chat_id` is then the relay),
    /// one per message id; `None` when the bot copies from the channel.
    pub relay_message_ids: Option<Vec<i32>>,
    /// Text or first caption.
    pub text: Option<String>,
    /// Its entities.
    pub entities: Vec<MessageEntity>,
    /// Media kind of the first part, `None` for text.
    pub media: Option<MediaKind>,
    /// Album id.
    pub album_id: Option<String>,
    /// False when any part cannot be copied.
    pub copyable: bool,
    /// When the channel published it.
    pub published_at: DateTime<Utc>,
    /// When kuryer saw it.
    pub detected_at: DateTime<Utc>,
}

impl Post {
    /// The post's key in its channel: its first message id.
    pub(crate) fn first_id(&self) -> i32 {
        self.message_ids[0]
    }

    /// The ids the bot copies or forwards from `source_chat_id`.
    pub fn copy_ids(&self) -> &[i32] {
        self.relay_message_ids
            .as_deref()
            .unwrap_or(&self.message_ids)
    }

    /// The last message id (the high-water mark once the post is recorded).
    pub(crate) fn last_id(&self) -> i32 {
        *self.message_ids.last().expect("a post has a message")
    }

    /// `https://t.me/<channel>/<id>`, when the channel is public.
    pub fn link(&self) -> Option<String> {
        self.channel_username
            .as_ref()
            .map(|u| format!("https://t.me/{u}/{}", self.first_id()))
    }

    /// UTC day it was detected: the partition key of its delivery rows.
    pub fn post_day(&self) -> NaiveDate {
        self.detected_at.date_naive()
    }

    /// Groups source messages (oldest first) into posts: consecutive
    /// messages sharing a `media_group_id` become one album post.
    pub fn group(
        channel: &ChannelRef,
        messages: Vec<SourceMessage>,
        detected_at: DateTime<Utc>,
    ) -> Vec<Post> {
        let mut posts: Vec<Post> = Vec::new();
        for m in messages {
            if let (Some(last), Some(group)) = (posts.last_mut(), m.media_group_id.as_ref())
                && last.album_id.as_ref() == Some(group)
                && last.message_ids.len() < 100
            {
                last.message_ids.push(m.id);
                last.copyable &= m.copyable;
                // An album is relayed whole (one forward) or not at all.
                match (&mut last.relay_message_ids, m.relay) {
                    (Some(ids), Some(r)) => ids.push(r.message_id),
                    (relay, _) => {
                        if relay.take().is_some() {
                            last.source_chat_id = channel.chat_id;
                        }
                    }
                }
                if last.text.is_none() && m.text.is_some() {
                    last.text = m.text;
                    last.entities = m.entities;
                }
                continue;
            }
            posts.push(Post {
                channel_id: channel.channel_id,
                source_chat_id: m.relay.map_or(channel.chat_id, |r| r.chat_id),
                channel_username: channel.username.clone(),
                message_ids: vec![m.id],
                relay_message_ids: m.relay.map(|r| vec![r.message_id]),
                text: m.text,
                entities: m.entities,
                media: m.media,
                album_id: m.media_group_id,
                copyable: m.copyable,
                published_at: m.date,
                detected_at,
            });
        }
        posts
    }
}

/// One post going to one subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The post (shared by all its deliveries).
    pub post: Arc<Post>,
    /// The subscription it goes to.
    pub sub: Arc<ActiveSubscription>,
    /// Attempts made so far.
    pub attempt: u32,
    /// What the dedup layer said before it was queued.
    pub dedup: DedupCheck,
    /// A first delivery, history sent on subscribe, or a change mirrored.
    pub op: DeliveryOp,
}

/// What a [`Delivery`] asks of the SenderPool. Every kind goes through the
/// same limiter lane and chat spacing as a first delivery.
#[derive(Debug, Clone, Default)]
pub enum DeliveryOp {
    /// The post's first delivery to the subscription.
    #[default]
    Send,
    /// The same, as history sent on subscribe (recorded `backfill`).
    Backfill,
    /// An edit or deletion of the source mirrored onto the copies, or an
    /// edited post sent again; the outcome goes to the op's `reply`, not
    /// to the DbWriter.
    Mirror(Arc<MirrorOp>),
    /// A message of kuryer's own to the chat (a notice about the channel,
    /// a digest part): one `sendMessage`, spaced like any send so that
    /// notices and digests share the bot's and the chat's limits with the
    /// deliveries; the outcome goes to the op's `reply`, not to the DbWriter.
    Notice(Arc<NoticeOp>),
}

/// A message of kuryer's own, sent through the limiter ([`DeliveryOp::Notice`]).
#[derive(Debug)]
pub struct NoticeOp {
    /// Its text (plain, no entities).
    pub text: String,
    /// Inline buttons under it.
    pub buttons: Option<teloxide::types::InlineKeyboardMarkup>,
    /// Where the outcome goes: the sent message's id, or Telegram's
    /// refusal. Dropped unanswered when the limiter lets the send go
    /// unmade (a halted bot, a lease moved, a shutdown).
    pub reply: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Result<i64, String>>>>,
    /// A bot's reply to a command: someone is waiting for it, so the
    /// limiter sends it before any delivery (of its chat and of the bot).
    pub urgent: bool,
}

/// Where a notice goes and on whose behalf.
#[derive(Debug, Clone)]
pub struct NoticeTarget {
    /// `channels.id` the notice is about: the limiter's round-robin serves
    /// it as that channel's, so one channel's notices never starve others.
    pub channel_id: i64,
    /// The subscription it is about (0: none).
    pub subscription_id: i64,
    /// The chat.
    pub chat_id: i64,
    /// Its kind (the chat's spacing follows from it).
    pub kind: DestinationKind,
    /// The bot that writes there (`None`: the first).
    pub bot_id: Option<i64>,
    /// The forum topic (`None`: the whole chat).
    pub thread_id: Option<i32>,
}

impl Delivery {
    /// A [`DeliveryOp::Notice`] of `text` (and `buttons`) to `to`, and the
    /// receiver of its outcome.
    pub fn notice(
        to: &NoticeTarget,
        text: String,
        buttons: Option<teloxide::types::InlineKeyboardMarkup>,
    ) -> (Self, tokio::sync::oneshot::Receiver<Result<i64, String>>) {
        Self::own_message(to, text, buttons, false)
    }

    /// A bot's reply to a command, sent like a notice but ahead of every
    /// delivery ([`NoticeOp::urgent`]); and the receiver of its outcome.
    pub fn reply(
        to: &NoticeTarget,
        text: String,
        buttons: Option<teloxide::types::InlineKeyboardMarkup>,
    ) -> (Self, tokio::sync::oneshot::Receiver<Result<i64, String>>) {
        Self::own_message(to, text, buttons, true)
    }

    /// True for a bot's reply to a command ([`NoticeOp::urgent`]).
    pub fn is_reply(&self) -> bool {
        matches!(&self.op, DeliveryOp::Notice(op) if op.urgent)
    }

    fn own_message(
        to: &NoticeTarget,
        text: String,
        buttons: Option<teloxide::types::InlineKeyboardMarkup>,
        urgent: bool,
    ) -> (Self, tokio::sync::oneshot::Receiver<Result<i64, String>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let now = Utc::now();
        let post = Post {
            channel_id: to.channel_id,
            source_chat_id: to.chat_id,
            channel_username: None,
            // Never a channel's message id (those start at 1): a notice
            // shares no key with a post's delivery.
            message_ids: vec![0],
            relay_message_ids: None,
            text: Some(text.clone()),
            entities: Vec::new(),
            media: None,
            album_id: None,
            copyable: true,
            published_at: now,
            detected_at: now,
        };
        let sub = ActiveSubscription {
            subscription_id: to.subscription_id,
            channel_id: to.channel_id,
            user_telegram_id: to.chat_id,
            destination_id: 0,
            chat_id: to.chat_id,
            destination_kind: to.kind,
            bot_id: to.bot_id,
            mode: DeliveryMode::Copy,
            filters: "{}".to_owned(),
            transform: None,
            quiet: None,
            thread_id: to.thread_id,
        };
        let op = NoticeOp {
            text,
            buttons,
            reply: std::sync::Mutex::new(Some(tx)),
            urgent,
        };
        let d = Delivery {
            post: Arc::new(post),
            sub: Arc::new(sub),
            attempt: 0,
            dedup: DedupCheck::Checked(None),
            op: DeliveryOp::Notice(Arc::new(op)),
        };
        (d, rx)
    }
}

/// A change of a source post to apply to a subscription's copies.
#[derive(Debug)]
pub struct MirrorOp {
    /// The copies worker's key for it, handed back in [`MirrorDone`].
    pub tag: u64,
    /// What to do.
    pub kind: MirrorKind,
    /// Where the outcome goes.
    pub reply: tokio::sync::mpsc::UnboundedSender<MirrorDone>,
}

/// The calls a [`MirrorOp`] makes, in the delivery's chat.
#[derive(Debug, Clone)]
pub enum MirrorKind {
    /// Edit copy `message_id` to the post as edited (`Delivery::post`
    /// holds the new text, entities and media kind): `editMessageText`,
    /// `editMessageMedia` when `file_id` is known, else `editMessageCaption`.
    Edit {
        /// The copy's id in the destination.
        message_id: i32,
        /// A Bot API file id of the edited media, when the update gave one.
        file_id: Option<String>,
    },
    /// `deleteMessages` of these copies (1–100).
    Delete {
        /// The copies' ids in the destination.
        message_ids: Vec<i32>,
    },
    /// Send the edited post as a new copy.
    Repost,
}

/// How a [`MirrorOp`] ended (retriable failures are retried by the limiter
/// and never reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorDone {
    /// The op's tag.
    pub tag: u64,
    /// `Ok(new message id, for a repost)`, or Telegram's refusal.
    pub result: Result<Option<i64>, String>,
}

/// The dedup layer's answer for a delivery, asked once per post for all its
/// deliveries (one Redis round trip) when the post fans out. It stays true
/// while the delivery waits and is retried: its key is set only when
/// Telegram accepts its send, which ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DedupCheck {
    /// Not asked: the sender asks right before sending.
    #[default]
    Unchecked,
    /// Asked: `Some(id)` = already accepted, as message `id`; `None` = not.
    Checked(Option<i64>),
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Telegram accepted it.
    Sent,
    /// Telegram refused it for good (blocked, not copyable, …).
    Failed,
    /// The outcome is unknown (timeout after the request was written).
    Ambiguous,
    /// Not sent on purpose (filtered out, destination gone).
    Skipped,
}

impl DeliveryStatus {
    /// The spelling in `forwarded_messages.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Ambiguous => "ambiguous",
            Self::Skipped => "skipped",
        }
    }
}

/// A finished delivery: what the DbWriter batches and the store writes as
/// one `forwarded_messages` row (the one type for both).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// `subscriptions.id`.
    pub subscription_id: i64,
    /// `channels.id` of the post.
    pub channel_id: i64,
    /// The post's first message id.
    pub source_message_id: i64,
    /// Partition key: the day the post was detected.
    pub post_day: NaiveDate,
    /// The chat it went to (the new one, if the group moved).
    pub destination_chat_id: i64,
    /// Telegram's id of the message in the destination.
    pub sent_message_id: Option<i64>,
    /// How it ended.
    pub status: DeliveryStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Every id of the copy (an album's parts), when more than one.
    pub sent_message_ids: Option<Vec<i64>>,
    /// History sent on subscribe ([`DeliveryOp::Backfill`]).
    pub backfill: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i32, group: Option<&str>) -> SourceMessage {
        SourceMessage {
            id,
            date: Utc::now(),
            text: Some(format!("m{id}")),
            entities: vec![],
            media: group.map(|_| MediaKind::Photo),
            media_group_id: group.map(str::to_owned),
            copyable: true,
            relay: None,
        }
    }

    #[test]
    fn albums_group_into_one_post_and_other_messages_stay_apart() {
        let channel = ChannelRef {
            channel_id: 1,
            chat_id: -100,
            username: Some("news".into()),
            bot_is_admin: false,
        };
        let posts = Post::group(
            &channel,
            vec![
                msg(1, None),
                msg(2, Some("a")),
                msg(3, Some("a")),
                msg(4, Some("a")),
                msg(5, Some("b")),
                msg(6, None),
            ],
            Utc::now(),
        );
        let ids: Vec<Vec<i32>> = posts.iter().map(|p| p.message_ids.clone()).collect();
        assert_eq!(ids, vec![vec![1], vec![2, 3, 4], vec![5], vec![6]]);
        assert_eq!(posts[1].first_id(), 2);
        assert_eq!(posts[1].last_id(), 4);
    }

    #[test]
    fn modes_and_kinds_round_trip_their_spelling() {
        for m in [DeliveryMode::Copy, DeliveryMode::Forward] {
            assert_eq!(DeliveryMode::parse(m.as_str()), Some(m));
        }
        for k in [
            DestinationKind::Private,
            DestinationKind::Group,
            DestinationKind::Supergroup,
            DestinationKind::Channel,
        ] {
            assert_eq!(DestinationKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(DeliveryMode::parse("COPY"), None);
    }
}
