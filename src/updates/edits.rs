//! `edited_channel_post`: an edit of a bot-admin channel's post, queued
//! durably (`post_events`) for the copies worker. The Bot API sends no
//! update when a channel post is deleted.

use kuryer_actors::model::MediaKind;
use kuryer_actors::telemetry::events::telegram_id;
use teloxide::types::Message;

use super::{BotUpdates, source_message};
use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};

/// Queues the edit; `Ok` once it is stored.
pub(super) async fn on_edited_channel_post(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    msg: &Message,
) -> Result<(), StoreError> {
    let chat_id = msg.chat.id.0;
    let known = updates.shared().channels.get(&chat_id).map(|c| c.0);
    let channel_id = match known {
        Some(id) => id,
        None => match store.channel_id_by_chat(chat_id).await? {
            Some(id) => id,
            // A channel we never recorded a post of: nothing to mirror.
            None => return Ok(()),
        },
    };
    let m = source_message(msg);
    let entities = serde_json::to_value(&m.entities).ok();
    let media = m.media.map(MediaKind::name);
    store
        .record_post_event(
            channel_id,
            m.id,
            false,
            m.text.as_deref(),
            entities.as_ref(),
            media,
            file_id(msg).as_deref(),
        )
        .await?;
    tracing::debug!(
        channel_id = telegram_id(channel_id),
        channel_key = channel_id,
        message_id = m.id,
        "Channel post edited; queued to mirror."
    );
    pipeline.mirror_wake();
    Ok(())
}

/// The Bot API file id of the message's media, for `editMessageMedia`.
fn file_id(msg: &Message) -> Option<String> {
    if let Some(p) = msg.photo().and_then(|p| p.last()) {
        return Some(p.file.id.0.clone());
    }
    msg.video()
        .map(|v| v.file.id.0.clone())
        .or_else(|| msg.animation().map(|a| a.file.id.0.clone()))
        .or_else(|| msg.document().map(|d| d.file.id.0.clone()))
        .or_else(|| msg.audio().map(|a| a.file.id.0.clone()))
}
