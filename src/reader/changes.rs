//! Edits and deletions pushed to reader accounts
//! (`updateEditChannelMessage`, `updateDeleteChannelMessages`), queued
//! durably (`post_events`) for the mirror worker. Telegram pushes them
//! only to accounts that joined the channel; a channel polled with
//! getHistory shows neither (a deletion cannot be seen at all).

use std::sync::Arc;
use std::time::Duration;

use grammers_client::tl;

use super::mapping;
use super::pool::Inner;
use crate::store::StoreError;

/// Tries to store a change, three times, a second apart.
async fn stored<F, Fut, T>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    for attempt in 1..=3 {
        match f().await {
            Ok(_) => return,
            Err(e) if attempt < 3 && e.is_retriable() => {
                tracing::warn!(error = %e, what, "Cannot queue a source change; trying again.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, what, "A source change could not be queued; it is not mirrored.");
                return;
            }
        }
    }
}

impl Inner {
    fn channel_of_bare(&self, bare: i64) -> Option<(i64, bool)> {
        let id = *self
            .by_bare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&bare)?;
        let protected = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .is_some_and(|s| s.info.protected);
        Some((id, protected))
    }

    fn changed(&self) {
        if let Some(ev) = self.events.get() {
            ev.changed();
        }
    }

    /// A message of a channel we read was edited.
    pub(super) async fn edited(self: &Arc<Self>, bare: i64, message: &tl::enums::Message) {
        let Some((channel_id, protected)) = self.channel_of_bare(bare) else {
            return;
        };
        let Some(m) = mapping::source_message(message, protected) else {
            return;
        };
        let entities = serde_json::to_value(&m.entities).ok();
        let media = m.media.map(crate::updates::media_name);
        stored("edit", || {
            self.store.record_post_event(
                channel_id,
                m.id,
                false,
                m.text.as_deref(),
                entities.as_ref(),
                media,
                None,
            )
        })
        .await;
        self.changed();
    }

    /// Messages of a channel we read were deleted.
    pub(super) async fn deleted(self: &Arc<Self>, bare: i64, ids: &[i32]) {
        let Some((channel_id, _)) = self.channel_of_bare(bare) else {
            return;
        };
        stored("deletion", || {
            self.store.record_post_deletions(channel_id, ids)
        })
        .await;
        self.changed();
    }
}
