//! History on subscribe read from Telegram (migration 0015): where reading
//! a channel over MTProto started (`channels.start_message_id`), the
//! channel a backfill is about, and the posts read from a channel's
//! history (`posts.history`), recorded without moving its mark.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use kuryer_actors::model::ChannelRef;

use super::error::OpContext;
use super::{NewPost, Store, StoreError};

/// The channel of a backfill, as the copies worker decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillChannel {
    /// The channel (its `chat_id` is 0 while it is not resolved).
    pub channel: ChannelRef,
    /// `channels.status` (`pending`, `active`, `invalid`, …).
    pub status: String,
    /// Its high-water mark.
    pub mark: i64,
    /// Where reading it over MTProto started (`None`: not read yet).
    pub start: Option<i64>,
}

impl Store {
    /// When a channel's first read counts posts as new: from its earliest
    /// live subscription (the channel row's creation when none is live).
    pub async fn channel_reading_starts(
        &self,
        channel_id: i64,
    ) -> Result<DateTime<Utc>, StoreError> {
        const OP: &str = "read when a channel's reading starts";
        let c = self.conn(OP).await?;
        let r = c
            .query_one(
                "SELECT COALESCE(
                    (SELECT min(s.created_at) FROM subscriptions s
                      WHERE s.channel_id = $1 AND s.is_active),
                    (SELECT created_at FROM channels WHERE id = $1),
                    now())",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(r.get(0))
    }

    /// Stores where reading the channel starts, and moves its mark there in
    /// the same statement, unless it was stored before (another process,
    /// an earlier attempt): then the start stored first stands. Returns
    /// the start in force.
    pub async fn set_channel_start(&self, channel_id: i64, start: i64) -> Result<i64, StoreError> {
        const OP: &str = "store where reading a channel starts";
        let c = self.conn(OP).await?;
        let set = c
            .query_opt(
                "UPDATE channels SET start_message_id = $2,
                        last_message_id = GREATEST(last_message_id, $2), updated_at = now()
                  WHERE id = $1 AND start_message_id IS NULL
                  RETURNING start_message_id",
                &[&channel_id, &start],
            )
            .await
            .op(OP)?;
        if let Some(r) = set {
            return Ok(r.get(0));
        }
        let r = c
            .query_opt(
                "SELECT start_message_id FROM channels WHERE id = $1",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(start))
    }

    /// The channel of a subscription with its status, mark and start.
    pub async fn backfill_channel(
        &self,
        subscription_id: i64,
    ) -> Result<Option<BackfillChannel>, StoreError> {
        const OP: &str = "read a backfill's channel";
        let c = self.conn(OP).await?;
        let r = c
            .query_opt(
                "SELECT c.id, COALESCE(c.telegram_id, 0), c.username, c.bot_is_admin, c.status,
                        c.last_message_id, c.start_message_id
                   FROM subscriptions s JOIN channels c ON c.id = s.channel_id
                  WHERE s.id = $1",
                &[&subscription_id],
            )
            .await
            .op(OP)?;
        Ok(r.map(|r| BackfillChannel {
            channel: ChannelRef {
                channel_id: r.get(0),
                chat_id: r.get(1),
                username: r.get(2),
                bot_is_admin: r.get(3),
            },
            status: r.get(4),
            mark: r.get(5),
            start: r.get(6),
        }))
    }

    /// How many posts of the channel are recorded at or below `upto`,
    /// counting at most `limit`.
    pub async fn recorded_posts_upto(
        &self,
        channel_id: i64,
        upto: i64,
        limit: i64,
    ) -> Result<i64, StoreError> {
        const OP: &str = "count recorded posts";
        let c = self.conn(OP).await?;
        let r = c
            .query_one(
                "SELECT count(*) FROM (
                    SELECT 1 FROM posts
                     WHERE channel_id = $1 AND message_id <= $2 AND source_chat_id IS NOT NULL
                     ORDER BY message_id DESC LIMIT $3) last",
                &[&channel_id, &upto, &limit],
            )
            .await
            .op(OP)?;
        Ok(r.get(0))
    }

    /// Which of `ids` (message ids of the channel) a recorded post holds.
    pub async fn recorded_message_ids(
        &self,
        channel_id: i64,
        ids: &[i32],
    ) -> Result<HashSet<i32>, StoreError> {
        const OP: &str = "find recorded messages";
        let (Some(&low), Some(&high)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(HashSet::new());
        };
        let wanted: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let c = self.conn(OP).await?;
        // A post is keyed by its first id, and an album's parts follow it
        // (100 parts at most): the range keeps it to the channel's index.
        let rows = c
            .query(
                "SELECT m FROM posts p, unnest(p.message_ids) m
                  WHERE p.channel_id = $1 AND p.message_id BETWEEN $2::bigint - 100 AND $3::bigint
                    AND m = ANY($4)",
                &[&channel_id, &i64::from(low), &i64::from(high), &wanted],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .filter_map(|r| i32::try_from(r.get::<_, i64>(0)).ok())
            .collect())
    }

    /// Records posts read from a channel's history, marked so, in one
    /// transaction: the channel's mark does not move, and a post already
    /// recorded is left as it is. Returns how many were new.
    pub async fn record_history_posts(&self, posts: &[NewPost]) -> Result<u64, StoreError> {
        const OP: &str = "record history posts";
        if posts.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let stmt = tx
            .prepare(
                "INSERT INTO posts (channel_id, message_id, message_ids, album_id, kind,
                                    detected_at, source_chat_id, channel_username, text,
                                    entities, media, copyable, published_at,
                                    relay_chat_id, relay_message_ids, history)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, true)
                 ON CONFLICT ON CONSTRAINT posts_unique DO NOTHING",
            )
            .await
            .op(OP)?;
        let mut new = 0;
        for p in posts {
            let Some(first) = p.message_ids.first() else {
                continue;
            };
            new += tx
                .execute(
                    &stmt,
                    &[
                        &p.channel_id,
                        first,
                        &p.message_ids,
                        &p.album_id,
                        &p.kind,
                        &p.detected_at,
                        &p.source_chat_id,
                        &p.channel_username,
                        &p.text,
                        &p.entities,
                        &p.media,
                        &p.copyable,
                        &p.published_at,
                        &p.relay_chat_id,
                        &p.relay_message_ids,
                    ],
                )
                .await
                .op(OP)?;
        }
        tx.commit().await.op(OP)?;
        Ok(new)
    }

    /// The backfill's history was read (or cannot be): it is not read again.
    pub async fn backfill_history_read(&self, backfill_id: i64) -> Result<(), StoreError> {
        const OP: &str = "mark backfill history read";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE backfills SET history_read_at = now()
              WHERE id = $1 AND history_read_at IS NULL",
            &[&backfill_id],
        )
        .await
        .op(OP)?;
        Ok(())
    }
}
