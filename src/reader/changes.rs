//! Edits and deletions pushed to reader accounts
//! (`updateEditChannelMessage`, `updateDeleteChannelMessages`), queued
//! durably (`post_events`) for the copies worker. Telegram pushes them
//! only to accounts that joined the channel; a channel polled with
//! getHistory shows neither (a deletion cannot be seen at all). They go
//! through the [`ChangeQueue`](super::change_queue), which stores them in
//! order and keeps trying while the database is away.

use grammers_client::tl;

use super::change_queue::Change;
use super::mapping;
use super::pool::Inner;

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

    /// A change was stored: the copies worker looks now.
    pub(super) fn changed(&self) {
        self.events.changed();
    }

    /// A message of a channel we read was edited.
    pub(super) fn edited(&self, bare: i64, message: &tl::enums::Message) {
        let Some((channel_id, protected)) = self.channel_of_bare(bare) else {
            return;
        };
        let Some(m) = mapping::source_message(message, protected) else {
            return;
        };
        self.changes.push(Change::Edit {
            channel_id,
            message_id: m.id,
            text: m.text,
            entities: serde_json::to_value(&m.entities).ok(),
            media: m.media.map(kuryer_actors::model::MediaKind::name),
        });
    }

    /// Messages of a channel we read were deleted.
    pub(super) fn deleted(&self, bare: i64, ids: &[i32]) {
        let Some((channel_id, _)) = self.channel_of_bare(bare) else {
            return;
        };
        self.changes.push(Change::Deletion {
            channel_id,
            ids: ids.to_vec(),
        });
    }
}
