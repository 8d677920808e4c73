//! What each update does: a channel post kept in the inbox and its channel
//! woken, an edit of one queued for the mirror, our bot's rights in a chat
//! recorded, a person's message or button handed to the bot.

use kuryer_actors::model::{MediaKind, SourceMessage};
use kuryer_actors::telemetry::events::telegram_id;
use serde_json::Value;
use teloxide::types::{ChatMemberUpdated, Message, MessageKind, Update, UpdateKind};

use super::shapes::{PostShape, post_shape};
use super::update_loop::unreadable;
use super::{BotUpdates, source_message, storable_text};
use crate::bot::BotHandler;
use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};
use crate::telemetry::events;

/// Handles one update; `Ok` once its effect is durable. `raw` is the
/// update as Telegram sent it, when known: what a channel post is comes
/// from its fields, not from teloxide's reading of them.
pub(super) async fn handle(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    handler: &BotHandler,
    update: &Update,
    raw: Option<&Value>,
) -> Result<(), StoreError> {
    let id = i64::from(update.id.0);
    match &update.kind {
        UpdateKind::ChannelPost(msg) => {
            // `/link <code>` in a channel is a command, not a post.
            if handler.on_channel_post(msg).await? {
                return Ok(());
            }
            let post = post_of(msg, raw.and_then(|r| r.get("channel_post")));
            on_channel_post(store, pipeline, updates, id, msg, post).await
        }
        UpdateKind::EditedChannelPost(msg) => {
            let raw = raw.and_then(|r| r.get("edited_channel_post"));
            if let Some(raw) = raw
                && post_shape(raw, Some(msg)) != PostShape::Readable
            {
                // Its copies cannot be made to match what kuryer cannot
                // read; they stay as they were.
                tracing::debug!(
                    chat_id = msg.chat.id.0,
                    message_id = msg.id.0,
                    "An edit of a channel post this version cannot read; not mirrored."
                );
                return Ok(());
            }
            super::edits::on_edited_channel_post(store, pipeline, updates, msg).await
        }
        UpdateKind::MyChatMember(m) => {
            handler.on_my_chat_member(m).await?;
            on_my_chat_member(store, pipeline, updates, m).await
        }
        UpdateKind::Message(msg) => handler.on_message(msg).await,
        UpdateKind::CallbackQuery(q) => handler.on_callback(q).await,
        UpdateKind::Error(empty) => {
            // A channel post teloxide cannot read at all is still a post:
            // its chat and id are enough to copy it.
            if let Some(post) = raw.and_then(|r| r.get("channel_post"))
                && let Some(msg) = skeleton(post)
            {
                let post = post_of(&msg, Some(post));
                return on_channel_post(store, pipeline, updates, id, &msg, post).await;
            }
            unreadable(store, id, raw.unwrap_or(empty)).await
        }
        _ => Ok(()),
    }
}

/// A post to deliver, and the kind to count when kuryer cannot read it;
/// `None` for a service message.
type Post = Option<(SourceMessage, Option<String>)>;

/// What a channel post holds: its fields (`raw`) decide; without them
/// (a dead letter kept by an older kuryer), teloxide's reading does.
fn post_of(msg: &Message, raw: Option<&Value>) -> Post {
    let shape = match raw {
        Some(raw) => post_shape(raw, Some(msg)),
        None => match msg.kind {
            MessageKind::Common(_)
            | MessageKind::Dice(_)
            | MessageKind::Invoice(_)
            | MessageKind::Giveaway(_)
            | MessageKind::GiveawayWinners(_) => PostShape::Readable,
            MessageKind::Empty {} => PostShape::Unreadable {
                kind: "unknown".to_owned(),
            },
            _ => PostShape::Service,
        },
    };
    match shape {
        PostShape::Readable => Some((source_message(msg), None)),
        PostShape::Service => None,
        PostShape::Unreadable { kind } => Some((unread_message(msg, raw), Some(kind))),
    }
}

/// A post kuryer cannot read, as a source yields it: its id, its text or
/// caption when they are strings (for filters and the link fallback), and
/// "other" media, so it goes out by `copyMessage` of its id (`forwardMessage`
/// when Telegram refuses the copy), never re-sent as text.
fn unread_message(msg: &Message, raw: Option<&Value>) -> SourceMessage {
    let str_field = |name: &str| raw.and_then(|r| r.get(name)).and_then(Value::as_str);
    SourceMessage {
        id: msg.id.0,
        date: msg.date,
        text: str_field("text")
            .or(str_field("caption"))
            .map(storable_text),
        // Entities are left out: their shape is what could not be read.
        entities: Vec::new(),
        media: Some(MediaKind::Other),
        media_group_id: str_field("media_group_id").map(str::to_owned),
        copyable: !msg.has_protected_content()
            && raw.and_then(|r| r.get("has_protected_content")) != Some(&Value::Bool(true)),
        relay: None,
    }
}

/// The post's chat, id and date alone, read as a message of no content:
/// `None` when even those cannot be read.
fn skeleton(post: &Value) -> Option<Message> {
    let mut m = serde_json::Map::new();
    for key in ["message_id", "date", "chat"] {
        m.insert(key.to_owned(), post.get(key)?.clone());
    }
    serde_json::from_value(Value::Object(m)).ok()
}

/// Keeps a channel post in the inbox and its channel's buffer, and wakes
/// the channel's poller.
async fn on_channel_post(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    update_id: i64,
    msg: &Message,
    post: Post,
) -> Result<(), StoreError> {
    // How far behind the update loop reads (Telegram dates to the second).
    let lag = (chrono::Utc::now() - msg.date).num_milliseconds().max(0) as f64 / 1000.0;
    let chat_id = msg.chat.id.0;
    events::channel_post_received(chat_id, lag);
    let username = msg.chat.username().map(str::to_ascii_lowercase);
    let known = updates.shared().channels.get(&chat_id).cloned();
    let channel_id = match known {
        Some((id, name)) if name == username => id,
        Some((_, old)) => {
            // Renamed since we last saw it: the record follows, and the name
            // moves away from any other channel that had it.
            let ch = store
                .upsert_admin_channel(chat_id, msg.chat.username(), msg.chat.title(), true)
                .await?;
            tracing::info!(
                chat_id,
                channel = username.as_deref().unwrap_or("-"),
                "A bot-admin channel has a new name."
            );
            // Its subscribers are told (once per new name) when it had one.
            if let Some(old) = old {
                updates.events.channel_renamed(
                    ch.channel_id,
                    &format!("@{old}"),
                    ch.username.as_deref(),
                );
            }
            updates
                .shared()
                .channels
                .insert(chat_id, (ch.channel_id, ch.username.clone()));
            ch.channel_id
        }
        None => {
            // A post from a channel we have no record of: our bot must be
            // admin there (channel posts reach only admins), so record it.
            let ch = store
                .upsert_admin_channel(chat_id, msg.chat.username(), msg.chat.title(), true)
                .await?;
            updates
                .shared()
                .channels
                .insert(chat_id, (ch.channel_id, ch.username.clone()));
            // Polled once someone subscribes (`subscription_added`).
            ch.channel_id
        }
    };
    let Some((message, unread)) = post else {
        // Service messages (pins, title changes) are not posts: nothing to
        // deliver.
        return Ok(());
    };
    // Anyone may make our bot admin of any number of channels: one nobody
    // follows has its posts neither kept nor polled (a subscriber added
    // later gets the posts from then on).
    if !store.channel_subscribed(channel_id).await? {
        tracing::debug!(
            chat_id,
            channel_id = telegram_id(channel_id),
            channel_key = channel_id,
            "A post of a bot-admin channel nobody subscribes to; not kept."
        );
        return Ok(());
    }
    store.inbox_put(channel_id, update_id, &message).await?;
    // Counted once it is kept: a failed write is retried with the update.
    if let Some(kind) = unread {
        events::post_unreadable(&kind, chat_id, message.id);
    }
    if updates.ownership.is_none() {
        updates
            .shared()
            .buffers
            .entry(channel_id)
            .or_default()
            .insert(message.id, message);
    }
    // Another instance's channel is not polled here: a no-op then; its
    // owner's poller finds the post in the inbox.
    pipeline.wake(channel_id);
    Ok(())
}

/// Records our bot's rights in a channel; starts its poller when admin.
async fn on_my_chat_member(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    m: &ChatMemberUpdated,
) -> Result<(), StoreError> {
    if !m.chat.is_channel() {
        return Ok(());
    }
    let chat_id = m.chat.id.0;
    let is_admin = m.new_chat_member.is_administrator() || m.new_chat_member.is_owner();
    let was_admin = m.old_chat_member.is_administrator() || m.old_chat_member.is_owner();
    let ch = store
        .upsert_admin_channel(chat_id, m.chat.username(), m.chat.title(), is_admin)
        .await?;
    tracing::info!(
        chat_id,
        channel = ch.username.as_deref().unwrap_or("-"),
        is_admin,
        "Our bot's rights in a channel changed."
    );
    // Its subscribers are told when the posts stop or come again (claimed
    // in the store: once, whichever process takes the update), through the
    // daemon's events: debounced per channel (rights toggled back and forth
    // tell the final state once) and sent through the limiter.
    if is_admin != was_admin {
        let name = ch.username.as_deref().map_or_else(
            || m.chat.title().unwrap_or("…").to_owned(),
            |u| format!("@{u}"),
        );
        if is_admin {
            updates.events.channel_readable(ch.channel_id, &name);
        } else {
            updates
                .events
                .channel_problem(ch.channel_id, &name, crate::store::CHANNEL_BOT_REMOVED);
        }
    }
    if is_admin {
        updates
            .shared()
            .channels
            .insert(chat_id, (ch.channel_id, ch.username.clone()));
        // Polled only while someone subscribes; a subscription added later
        // starts its poller (`subscription_added`).
        if store.channel_subscribed(ch.channel_id).await? {
            pipeline.start_channel(ch);
        }
    } else {
        updates.shared().channels.remove(&chat_id);
    }
    Ok(())
}
