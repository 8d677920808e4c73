//! Dead letters (`dead_letters`, migration 0004): an update or a post that
//! still fails after its retries is kept here with the reason, so the loop
//! or the poller behind it moves on instead of stopping for good; and a
//! post kuryer cannot read that Telegram refused by id as well.

use kuryer_actors::model::Post;

use super::error::OpContext;
use super::{Store, StoreError};

/// At most this much of the raw update or post is kept.
pub const DEAD_LETTER_RAW_MAX: usize = 64 * 1024;

/// An update that could not be processed.
#[derive(Debug, Clone, Default)]
pub struct DeadUpdate<'a> {
    /// The update's id.
    pub update_id: i64,
    /// Its chat, when it has one.
    pub chat_id: Option<i64>,
    /// `channels.id`, when known.
    pub channel_id: Option<i64>,
    /// The message id, when it carries a message.
    pub message_id: Option<i64>,
    /// Why it could not be processed (never a secret, never user content).
    pub reason: &'a str,
    /// The update as received (cut at [`DEAD_LETTER_RAW_MAX`]).
    pub raw: &'a [u8],
}

impl Store {
    /// Keeps an update that could not be processed.
    pub async fn dead_letter_update(&self, d: &DeadUpdate<'_>) -> Result<(), StoreError> {
        const OP: &str = "keep a dead update";
        let raw = &d.raw[..d.raw.len().min(DEAD_LETTER_RAW_MAX)];
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO dead_letters (kind, channel_id, chat_id, message_id, update_id, reason, raw)
             VALUES ('update', $1, $2, $3, $4, $5, $6)",
            &[
                &d.channel_id,
                &d.chat_id,
                &d.message_id,
                &d.update_id,
                &d.reason,
                &raw,
            ],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Keeps a post its poller could not record, and moves the channel's
    /// high-water mark past it — one transaction — so the poller reads on.
    pub async fn dead_letter_post(&self, post: &Post, reason: &str) -> Result<(), StoreError> {
        self.dead_letter_post_fenced(post, reason, None)
            .await
            .map(drop)
    }

    /// [`Store::dead_letter_post`] under a channel lease of `generation`
    /// (several instances): the channel row is locked and its generation
    /// checked in the same transaction, so an owner that lost the lease
    /// keeps nothing and moves no mark. `false`: fenced off, nothing done.
    pub async fn dead_letter_post_fenced(
        &self,
        post: &Post,
        reason: &str,
        generation: Option<i64>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "keep a dead post";
        // JSON in bytea: text PostgreSQL refuses (NUL) is kept as it came.
        let raw = serde_json::to_vec(post).unwrap_or_default();
        let raw = &raw[..raw.len().min(DEAD_LETTER_RAW_MAX)];
        let first = post.message_ids.first().copied().map(i64::from);
        let last = post.message_ids.last().copied().map_or(0, i64::from);
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        if let Some(generation) = generation {
            let held = tx
                .query_opt(
                    "SELECT 1 FROM channels WHERE id = $1 AND lease_generation = $2 FOR UPDATE",
                    &[&post.channel_id, &generation],
                )
                .await
                .op(OP)?;
            if held.is_none() {
                return Ok(false);
            }
        }
        tx.execute(
            "INSERT INTO dead_letters (kind, channel_id, chat_id, message_id, reason, raw)
             VALUES ('post', $1, $2, $3, $4, $5)",
            &[
                &post.channel_id,
                &post.source_chat_id,
                &first,
                &reason,
                &raw,
            ],
        )
        .await
        .op(OP)?;
        tx.execute(
            "UPDATE channels SET last_message_id = GREATEST(last_message_id, $2), updated_at = now()
              WHERE id = $1",
            &[&post.channel_id, &last],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(true)
    }

    /// Keeps a recorded post Telegram refused to deliver in every form
    /// (one kuryer cannot read, refused by id), once: nothing is kept when
    /// a dead letter of the post waits or is being replayed already (every
    /// delivery of the post finds the refusal). The channel's row is locked
    /// so two deliveries finding it at once keep one. The high-water mark
    /// is not moved: the post was recorded. `true`: kept now.
    pub async fn dead_letter_unsendable(
        &self,
        post: &Post,
        reason: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "keep a post Telegram refused";
        let raw = serde_json::to_vec(post).unwrap_or_default();
        let raw = &raw[..raw.len().min(DEAD_LETTER_RAW_MAX)];
        let first = post.message_ids.first().copied().map(i64::from);
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        tx.execute(
            "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE",
            &[&post.channel_id],
        )
        .await
        .op(OP)?;
        let kept = tx
            .execute(
                "INSERT INTO dead_letters (kind, channel_id, chat_id, message_id, reason, raw)
                 SELECT 'post', $1, $2, $3, $4, $5
                  WHERE NOT EXISTS (SELECT 1 FROM dead_letters
                                     WHERE kind = 'post' AND channel_id = $1 AND message_id = $3
                                       AND state IN ('waiting', 'replaying'))",
                &[
                    &post.channel_id,
                    &post.source_chat_id,
                    &first,
                    &reason,
                    &raw,
                ],
            )
            .await
            .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(kept == 1)
    }

    /// Makes the failed deliveries of a recorded post owed again (their
    /// rows removed; a `sent`, `skipped` or `ambiguous` one stays): how a
    /// replayed post Telegram refused before goes out again, once per
    /// destination (each delivery keeps its row key and dedup key).
    /// Answers how many were failed.
    pub async fn reowe_failed_deliveries(&self, post: &Post) -> Result<u64, StoreError> {
        const OP: &str = "owe a replayed post's failed deliveries again";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM forwarded_messages
              WHERE channel_id = $1 AND source_message_id = $2 AND post_day = $3
                AND status = 'failed'",
            &[
                &post.channel_id,
                &post.message_ids.first().copied().map_or(0, i64::from),
                &post.post_day(),
            ],
        )
        .await
        .op(OP)
    }

    /// Dead letters kept so far, of `kind` (`update` or `post`).
    pub async fn dead_letters(&self, kind: &str) -> Result<i64, StoreError> {
        const OP: &str = "count dead letters";
        let c = self.conn(OP).await?;
        let row = c
            .query_one(
                "SELECT count(*) FROM dead_letters WHERE kind = $1",
                &[&kind],
            )
            .await
            .op(OP)?;
        Ok(row.get(0))
    }
}
