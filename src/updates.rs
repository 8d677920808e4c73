//! The bot's one `getUpdates` loop (a token allows only one) and the channel
//! source it feeds: channels where our bot is an administrator.
//!
//! - `channel_post` from such a channel becomes a message of that channel's
//!   [`BotChannelSource`]; its poller is woken at once, and the post is
//!   copied straight from the channel (no relay needed).
//! - `my_chat_member` records the bot being made admin of a channel, or
//!   removed (username and title stored, so `/add_channel` with that
//!   username resolves at once), and starts its poller.
//! - Everything else is for the bot's command handler (not built yet) and is
//!   only logged.
//!
//! Offsets: Telegram forgets every update below the `offset` of the next
//! call, so the loop confirms a `channel_post` only once its poller has
//! recorded the post (the poller's next read starts after it). A crash before
//! that means Telegram sends the update again, and the poller, which dedups
//! by message id against its high-water mark, takes it once.

use kuryer_actors::backoff::Backoff;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use kuryer_actors::model::{MediaKind, SourceMessage};
use kuryer_actors::ports::{ChannelSource, SourceError};
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, ChatMemberUpdated, Message, MessageKind, UpdateKind};
use teloxide::{Bot, RequestError};
use tokio::sync::watch;

use crate::pipeline::Pipeline;
use crate::store::Store;

/// Album parts arrive as separate updates, within milliseconds of each
/// other; a trailing album is held this long for the rest.
const ALBUM_GRACE: Duration = Duration::from_millis(700);

#[derive(Default)]
struct Shared {
    /// Per channel (`channels.id`): messages not yet recorded, by message id,
    /// with the update that brought them.
    buffers: HashMap<i64, BTreeMap<i32, (i32, SourceMessage)>>,
    /// Telegram chat id → `channels.id`.
    channels: HashMap<i64, i64>,
}

/// State shared by the update loop and the channel sources it feeds.
#[derive(Clone, Default)]
pub struct BotUpdates {
    shared: Arc<Mutex<Shared>>,
}

impl BotUpdates {
    /// The source of a bot-admin channel.
    pub fn source(&self, channel_id: i64) -> BotChannelSource {
        BotChannelSource {
            updates: self.clone(),
            channel_id,
        }
    }

    /// The update id below which everything is safely recorded: the offset
    /// to confirm, given the highest update id seen.
    fn confirmable_offset(&self, highest_seen: i32) -> i32 {
        let shared = self.shared.lock().expect("not poisoned");
        shared
            .buffers
            .values()
            .flat_map(|b| b.values().map(|(update, _)| *update))
            .min()
            .unwrap_or(highest_seen + 1)
    }
}

/// A channel source fed by `channel_post` updates.
pub struct BotChannelSource {
    updates: BotUpdates,
    channel_id: i64,
}

impl ChannelSource for BotChannelSource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        let mut shared = self.updates.shared.lock().expect("not poisoned");
        let buffer = shared.buffers.entry(self.channel_id).or_default();
        // Everything up to `after` is recorded: the poller reads from its
        // high-water mark. Forgetting it lets the update loop confirm it.
        buffer.retain(|id, _| *id > after);
        let messages: Vec<SourceMessage> = buffer
            .values()
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect();
        Box::pin(async move { Ok(messages) })
    }

    fn album_grace(&self) -> Duration {
        ALBUM_GRACE
    }
}

/// Converts a channel post into what a source yields.
pub fn source_message(msg: &Message) -> SourceMessage {
    let media = if msg.photo().is_some() {
        Some(MediaKind::Photo)
    } else if msg.video().is_some() {
        Some(MediaKind::Video)
    } else if msg.animation().is_some() {
        Some(MediaKind::Animation)
    } else if msg.document().is_some() {
        Some(MediaKind::Document)
    } else if msg.audio().is_some() {
        Some(MediaKind::Audio)
    } else if msg.voice().is_some() {
        Some(MediaKind::Voice)
    } else if msg.sticker().is_some() {
        Some(MediaKind::Sticker)
    } else if msg.text().is_some() {
        None
    } else {
        Some(MediaKind::Other)
    };
    SourceMessage {
        id: msg.id.0,
        date: msg.date,
        text: msg.text().or(msg.caption()).map(str::to_owned),
        entities: msg
            .entities()
            .or(msg.caption_entities())
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
        media,
        media_group_id: msg.media_group_id().map(|g| g.0.clone()),
        // Service messages (pins, title changes) and protected content
        // cannot be copied or forwarded.
        copyable: matches!(msg.kind, MessageKind::Common(_)) && !msg.has_protected_content(),
    }
}

/// Runs the update loop until `stop` turns true. `bot` is the first
/// configured bot: the one channel owners make admin.
pub async fn run_loop(
    bot: Bot,
    store: Store,
    pipeline: Pipeline,
    updates: BotUpdates,
    request_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The long poll must end before the HTTP client gives up on it (teloxide
    // does not lengthen its timeout for getUpdates).
    let long_poll = request_timeout
        .saturating_sub(Duration::from_secs(3))
        .as_secs()
        .clamp(1, 25) as u32;
    // Channels our bot already administers, so their posts route at once.
    match store.admin_channels().await {
        Ok(list) => {
            let mut shared = updates.shared.lock().expect("not poisoned");
            for ch in list {
                shared.channels.insert(ch.chat_id, ch.channel_id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "Could not load bot-admin channels."),
    }
    let mut highest_seen: i32 = -1;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        if *stop.borrow() {
            break;
        }
        let offset = if highest_seen < 0 {
            None
        } else {
            Some(updates.confirmable_offset(highest_seen))
        };
        // While some update waits for its post to be recorded, Telegram
        // hands it back at once; poll briefly instead of a long poll.
        let waiting = offset.is_some_and(|o| o <= highest_seen);
        let mut req = bot
            .get_updates()
            .timeout(if waiting { 0 } else { long_poll })
            .allowed_updates(vec![
                AllowedUpdate::ChannelPost,
                AllowedUpdate::MyChatMember,
                AllowedUpdate::Message,
            ]);
        if let Some(o) = offset {
            req = req.offset(o);
        }
        let result = tokio::select! {
            r = req => r,
            _ = stop.changed() => break,
        };
        let batch = match result {
            Ok(b) => {
                backoff.reset();
                b
            }
            Err(RequestError::RetryAfter(s)) => {
                if sleep_or_stop(&mut stop, s.duration()).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "getUpdates failed; retrying.");
                if sleep_or_stop(&mut stop, wait).await {
                    break;
                }
                continue;
            }
        };
        let mut new = 0;
        let mut stalled = false;
        for update in batch {
            let id = update.id.0 as i32;
            if id <= highest_seen {
                continue;
            }
            new += 1;
            match update.kind {
                // Not routed: stay before it, so it and what follows come
                // again once the database answers.
                UpdateKind::ChannelPost(msg)
                    if !on_channel_post(&store, &pipeline, &updates, id, &msg).await =>
                {
                    stalled = true;
                    break;
                }
                UpdateKind::ChannelPost(_) => {}
                UpdateKind::MyChatMember(m) => {
                    on_my_chat_member(&store, &pipeline, &updates, m).await
                }
                UpdateKind::Message(msg) => tracing::debug!(
                    chat_id = msg.chat.id.0,
                    "Message to the bot; the command handler is not built yet."
                ),
                _ => {}
            }
            highest_seen = id;
        }
        if stalled {
            if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                break;
            }
        } else if waiting && new == 0 && sleep_or_stop(&mut stop, Duration::from_millis(100)).await
        {
            break;
        }
    }
    tracing::info!("Update loop stopped.");
}

/// Routes a channel post into its channel's buffer. False when it could not
/// be routed (the database is unavailable): the caller must not move past
/// this update, so Telegram sends it again.
/// Sleeps, unless told to stop first; true when stopping.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn on_channel_post(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    update_id: i32,
    msg: &Message,
) -> bool {
    let chat_id = msg.chat.id.0;
    let known = updates
        .shared
        .lock()
        .expect("not poisoned")
        .channels
        .get(&chat_id)
        .copied();
    let channel_id = match known {
        Some(id) => id,
        None => {
            // A post from a channel we have no record of: our bot must be
            // admin there (channel posts reach only admins), so record it.
            match store
                .upsert_admin_channel(chat_id, msg.chat.username(), msg.chat.title(), true)
                .await
            {
                Ok(ch) => {
                    updates
                        .shared
                        .lock()
                        .expect("not poisoned")
                        .channels
                        .insert(chat_id, ch.channel_id);
                    pipeline.start_channel(ch.clone());
                    ch.channel_id
                }
                Err(e) => {
                    tracing::warn!(chat_id, error = %e, "Could not record a channel; its post will come again.");
                    return false;
                }
            }
        }
    };
    if !matches!(msg.kind, MessageKind::Common(_)) {
        // Service messages (pins, title changes) are not posts: nothing to
        // deliver, and nothing that must hold the offset back.
        return true;
    }
    let message = source_message(msg);
    updates
        .shared
        .lock()
        .expect("not poisoned")
        .buffers
        .entry(channel_id)
        .or_default()
        .insert(message.id, (update_id, message));
    pipeline.wake(channel_id);
    true
}

async fn on_my_chat_member(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    m: ChatMemberUpdated,
) {
    if !m.chat.is_channel() {
        return;
    }
    let chat_id = m.chat.id.0;
    let is_admin = m.new_chat_member.is_administrator() || m.new_chat_member.is_owner();
    match store
        .upsert_admin_channel(chat_id, m.chat.username(), m.chat.title(), is_admin)
        .await
    {
        Ok(ch) => {
            tracing::info!(
                chat_id,
                channel = ch.username.as_deref().unwrap_or("-"),
                is_admin,
                "Our bot's rights in a channel changed."
            );
            let mut shared = updates.shared.lock().expect("not poisoned");
            if is_admin {
                shared.channels.insert(chat_id, ch.channel_id);
                drop(shared);
                pipeline.start_channel(ch);
            } else {
                shared.channels.remove(&chat_id);
            }
        }
        Err(e) => {
            tracing::warn!(chat_id, error = %e, "Could not record the bot's rights in a channel.")
        }
    }
}
