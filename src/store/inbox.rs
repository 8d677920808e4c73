//! The bot's durable inbox: posts of bot-admin channels that arrived through
//! `getUpdates` and are not yet recorded by their channel's poller
//! (`bot_inbox`, migration 0004). The update loop confirms an update once
//! its post is here, so no channel's poller ever holds another's updates.

use kuryer_actors::model::SourceMessage;
use kuryer_actors::telemetry::events::telegram_id;

use super::error::OpContext;
use super::{Store, StoreError};

/// A post waiting in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    /// `channels.id`.
    pub channel_id: i64,
    /// The update that brought it.
    pub update_id: i64,
    /// The post's message.
    pub message: SourceMessage,
}

impl Store {
    /// Keeps a post until its poller has recorded it; a second copy of the
    /// same (channel, message) is ignored.
    pub async fn inbox_put(
        &self,
        channel_id: i64,
        update_id: i64,
        message: &SourceMessage,
    ) -> Result<(), StoreError> {
        const OP: &str = "keep a bot update in the inbox";
        let json = serde_json::to_value(message).map_err(|e| StoreError::Data {
            op: OP,
            message: e.to_string(),
        })?;
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO bot_inbox (channel_id, message_id, update_id, message)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&channel_id, &i64::from(message.id), &update_id, &json],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Everything in the inbox, by channel and message id: what the update
    /// loop's buffers held when the process stopped.
    pub async fn inbox_load(&self) -> Result<Vec<InboxEntry>, StoreError> {
        const OP: &str = "load the bot's inbox";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT channel_id, update_id, message FROM bot_inbox
                  ORDER BY channel_id, message_id",
                &[],
            )
            .await
            .op(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let json: serde_json::Value = r.get(2);
            match serde_json::from_value(json) {
                Ok(message) => out.push(InboxEntry {
                    channel_id: r.get(0),
                    update_id: r.get(1),
                    message,
                }),
                // Written by this code; unreadable only after a format change.
                Err(e) => tracing::error!(
                    channel_id = telegram_id(r.get::<_, i64>(0)),
                    channel_key = r.get::<_, i64>(0),
                    error = %e,
                    "An inbox entry cannot be read; skipping it."
                ),
            }
        }
        Ok(out)
    }

    /// A channel's posts in the inbox above `after`, oldest first, at most
    /// `limit`: with several instances the update loop that received them
    /// may run in another process, so the channel's owner reads them here.
    pub async fn inbox_after(
        &self,
        channel_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SourceMessage>, StoreError> {
        const OP: &str = "read a channel's inbox";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT message FROM bot_inbox
                  WHERE channel_id = $1 AND message_id > $2
                  ORDER BY message_id LIMIT $3",
                &[&channel_id, &after, &limit],
            )
            .await
            .op(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match serde_json::from_value(r.get(0)) {
                Ok(m) => out.push(m),
                Err(e) => {
                    tracing::error!(channel_id, error = %e, "An inbox entry cannot be read; skipping it.")
                }
            }
        }
        Ok(out)
    }

    /// Forgets what the database says is recorded (up to the channel's
    /// high-water mark), whatever a poller believes: with several
    /// instances, a poller that lost its lease reads on without recording
    /// (fenced), and trimming to its own mark would delete posts the new
    /// owner has not recorded yet.
    pub async fn inbox_trim_recorded(&self, channel_id: i64) -> Result<u64, StoreError> {
        const OP: &str = "trim the bot's inbox";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM bot_inbox
              WHERE channel_id = $1
                AND message_id <= (SELECT last_message_id FROM channels WHERE id = $1)",
            &[&channel_id],
        )
        .await
        .op(OP)
    }

    /// Forgets what a channel's poller has recorded (message ids up to `up_to`).
    pub async fn inbox_trim(&self, channel_id: i64, up_to: i64) -> Result<u64, StoreError> {
        const OP: &str = "trim the bot's inbox";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM bot_inbox WHERE channel_id = $1 AND message_id <= $2",
            &[&channel_id, &up_to],
        )
        .await
        .op(OP)
    }
}
