//! The bot's one `getUpdates` loop (a token allows only one) and the channel
//! source it feeds: channels where our bot is an administrator.
//!
//! - `channel_post` from such a channel is written to the durable inbox
//!   (`bot_inbox`), put in that channel's buffer — its
//!   [`BotChannelSource`] — and its poller is woken; the post is copied
//!   straight from the channel (no relay needed).
//! - `my_chat_member` records the bot being made admin of a channel, or
//!   removed (username and title stored, so `/add_channel` with that
//!   username resolves at once), and starts its poller.
//! - `edited_channel_post` queues the edit for the copies worker.
//! - `message` and `callback_query` go to the bot's command handler.
//!
//! Offsets: Telegram forgets every update below the `offset` of the next
//! call. The loop confirms an update once its effect is durable — the post
//! in the inbox, the channel's rights in `channels` — or, when it still
//! fails after its retries for a reason no retry can fix, once it is set
//! aside in `dead_letters`. It never waits for a poller: a channel whose
//! poller is slow, backing off or stuck holds no other channel's updates,
//! and its posts wait in the inbox, which is loaded again at start. A
//! failing update holds its own chat (retried there; a retriable failure,
//! the database away, without limit — Telegram keeps updates 24 h) and the
//! confirmation, never another chat's next update.
//! `update_loop.rs` is the loop, `chat_work.rs` its chats at work across
//! batches, `intake.rs` what each update does,
//! `edits.rs` edits of channel posts; this file the buffers and the source.

/// The update loop's chats at work, across `getUpdates` calls.
mod chat_work;
/// Edits of bot-admin channels' posts, queued for the copies worker.
mod edits;
/// What each update does.
mod intake;
/// Dead-letter updates replayed at an operator's word.
mod replays;
/// What a channel post is, from the fields Telegram sent.
mod shapes;
/// The loop: updates confirmed once their effect is durable.
mod update_loop;

use kuryer_actors::telemetry::events::telegram_id;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use kuryer_actors::model::{MediaKind, SourceMessage};
use kuryer_actors::ports::{ChannelSource, SourceError};
use teloxide::types::Message;

use crate::instance::Ownership;
use crate::source_events::SourceEvents;
use crate::store::Store;

pub use update_loop::run_loop;

/// Album parts arrive as separate updates, within milliseconds of each
/// other; a trailing album is held this long for the rest.
const ALBUM_GRACE: Duration = Duration::from_millis(700);

#[derive(Default)]
struct Shared {
    /// Per channel (`channels.id`): messages not yet recorded, by message id.
    /// A copy of the durable inbox.
    buffers: HashMap<i64, BTreeMap<i32, SourceMessage>>,
    /// Telegram chat id → `channels.id` and the username on record, so a
    /// post under a new name updates the record (names move between
    /// channels; links to posts use them).
    channels: HashMap<i64, (i64, Option<String>)>,
}

/// State shared by the update loop and the channel sources it feeds.
#[derive(Clone)]
pub struct BotUpdates {
    shared: Arc<Mutex<Shared>>,
    store: Store,
    /// Several instances: a bot's getUpdates runs only where its lease is
    /// held, and a channel's posts are read from the durable inbox (the
    /// update loop that received them may be another process's).
    ownership: Option<Arc<Ownership>>,
    /// Told when a bot-admin channel's post shows a new public name
    /// (stored already).
    events: Arc<dyn SourceEvents>,
}

impl BotUpdates {
    /// Buffers for the bot-admin channels of `store`'s database; renames
    /// seen in their posts are told to `events`.
    pub fn new(store: Store, events: Arc<dyn SourceEvents>) -> Self {
        Self {
            shared: Arc::default(),
            store,
            ownership: None,
            events,
        }
    }

    /// One of several instances: leases decide which bot's updates this
    /// process reads, and sources read the shared inbox.
    pub fn with_ownership(mut self, ownership: Arc<Ownership>) -> Self {
        self.ownership = Some(ownership);
        self
    }

    /// The source of a bot-admin channel.
    pub fn source(&self, channel_id: i64) -> BotChannelSource {
        BotChannelSource {
            updates: self.clone(),
            channel_id,
            trimmed: 0,
        }
    }

    /// The buffers and channel map. A panic elsewhere while holding the lock
    /// leaves them consistent (every change is one map operation), so a
    /// poisoned lock is taken as it is rather than stopping the intake.
    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A channel source fed by `channel_post` updates.
pub struct BotChannelSource {
    updates: BotUpdates,
    channel_id: i64,
    /// The mark the inbox was last trimmed to (several instances).
    trimmed: i32,
}

impl ChannelSource for BotChannelSource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        if self.updates.ownership.is_some() {
            // The inbox is the truth: a buffer here would miss what another
            // instance's update loop received (and a mark moved past a
            // buffered post would skip them for good).
            let store = self.updates.store.clone();
            let channel_id = self.channel_id;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let trim = after > self.trimmed;
            self.trimmed = self.trimmed.max(after);
            return Box::pin(async move {
                if trim && let Err(e) = store.inbox_trim_recorded(channel_id).await {
                    tracing::debug!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Could not trim the bot's inbox.");
                }
                store
                    .inbox_after(channel_id, i64::from(after), limit)
                    .await
                    .map_err(|e| SourceError::Transient {
                        message: e.to_string(),
                        retry_after: None,
                    })
            });
        }
        let (messages, recorded) = {
            let mut shared = self.updates.shared();
            let buffer = shared.buffers.entry(self.channel_id).or_default();
            // Everything up to `after` is recorded: the poller reads from its
            // high-water mark. Forget it here and in the inbox.
            let before = buffer.len();
            buffer.retain(|id, _| *id > after);
            let recorded = buffer.len() < before;
            let messages: Vec<SourceMessage> = buffer.values().take(limit).cloned().collect();
            (messages, recorded)
        };
        let store = self.updates.store.clone();
        let channel_id = self.channel_id;
        Box::pin(async move {
            if recorded && let Err(e) = store.inbox_trim(channel_id, i64::from(after)).await {
                // Harmless: what stays is at or below the mark, skipped when
                // loaded again, and trimmed at the next chance.
                tracing::debug!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Could not trim the bot's inbox.");
            }
            Ok(messages)
        })
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
        text: msg.text().or(msg.caption()).map(storable_text),
        entities: msg
            .entities()
            .or(msg.caption_entities())
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
        media,
        media_group_id: msg.media_group_id().map(|g| g.0.clone()),
        // Service messages never get here (the intake skips them);
        // protected content cannot be copied or forwarded. What Telegram
        // copies not but forwards (invoices, giveaways, paid media) goes
        // out by `forwardMessage` when the copy is refused.
        copyable: !msg.has_protected_content(),
        relay: None,
    }
}

/// Text PostgreSQL can store: it refuses NUL in `text` and `jsonb`, which a
/// channel post may hold. Each NUL becomes U+FFFD, one UTF-16 unit like NUL,
/// so the entities' offsets stay right.
fn storable_text(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_by_one_utf16_unit() {
        let s = storable_text("a\0b😀\0");
        assert_eq!(s, "a\u{FFFD}b😀\u{FFFD}");
        assert_eq!(s.encode_utf16().count(), "a\0b😀\0".encode_utf16().count());
    }
}
