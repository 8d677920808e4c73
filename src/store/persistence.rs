//! The PostgreSQL adapter of the actors' `Persistence` port: converts the
//! actors' posts and delivery records to store rows, and store errors to
//! `PersistError`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use kuryer_actors::model::{DeliveryRecord, Post};
use kuryer_actors::ports::{PersistError, Persistence};

use super::{NewPost, Store, StoreError};

fn persist_error(e: StoreError) -> PersistError {
    PersistError {
        retriable: e.is_retriable(),
        message: e.to_string(),
    }
}

/// The row of a post the actors detected.
pub fn new_post(post: &Post) -> NewPost {
    let kind = match (&post.media, post.message_ids.len()) {
        (_, n) if n > 1 => "album".to_owned(),
        (Some(m), _) => format!("{m:?}").to_ascii_lowercase(),
        (None, _) => "text".to_owned(),
    };
    NewPost {
        channel_id: post.channel_id,
        message_ids: post.message_ids.iter().map(|&i| i64::from(i)).collect(),
        // Telegram's media_group_id is a decimal string in practice.
        album_id: post.album_id.as_deref().and_then(|a| a.parse().ok()),
        kind,
        detected_at: post.detected_at,
        source_chat_id: Some(post.source_chat_id),
        channel_username: post.channel_username.clone(),
        text: post.text.clone(),
        entities: (!post.entities.is_empty())
            .then(|| serde_json::to_value(&post.entities).ok())
            .flatten(),
        media: post.media.map(|m| format!("{m:?}").to_ascii_lowercase()),
        copyable: post.copyable,
        published_at: Some(post.published_at),
        relay_chat_id: post.relay_message_ids.as_ref().map(|_| post.source_chat_id),
        relay_message_ids: post
            .relay_message_ids
            .as_ref()
            .map(|ids| ids.iter().map(|&i| i64::from(i)).collect()),
    }
}

impl Persistence for Store {
    fn record_post(&self, post: Arc<Post>) -> BoxFuture<'static, Result<bool, PersistError>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .record_post(&new_post(&post))
                .await
                .map(|id| id.is_some())
                .map_err(persist_error)
        })
    }

    fn high_water_mark(&self, channel_id: i64) -> BoxFuture<'static, Result<i64, PersistError>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .high_water_mark(channel_id)
                .await
                .map(|h| h.unwrap_or(0))
                .map_err(persist_error)
        })
    }

    fn write_deliveries(
        &self,
        rows: Vec<DeliveryRecord>,
    ) -> BoxFuture<'static, Result<u64, PersistError>> {
        let store = self.clone();
        Box::pin(async move { store.insert_forwarded(&rows).await.map_err(persist_error) })
    }

    fn dead_letter_post(
        &self,
        post: Arc<Post>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), PersistError>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .dead_letter_post(&post, &reason)
                .await
                .map_err(persist_error)
        })
    }
}
