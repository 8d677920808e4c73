//! Channels and their posts: recording a post with its channel's
//! high-water mark, the channels to poll, and the channels our bot administers.

use chrono::{DateTime, Utc};
use kuryer_actors::model::ChannelRef;

use super::error::OpContext;
use super::{Store, StoreError};

/// A post to record before any delivery of it is made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewPost {
    /// `channels.id`.
    pub channel_id: i64,
    /// All message ids of the post (one, or an album's parts), increasing.
    pub message_ids: Vec<i64>,
    /// Telegram's media group id for albums.
    pub album_id: Option<i64>,
    /// `text`, `photo`, `album`, ….
    pub kind: String,
    /// When kuryer first saw it.
    pub detected_at: DateTime<Utc>,
    /// Chat the bot copies from (the channel itself, or a relay).
    pub source_chat_id: Option<i64>,
    /// The channel's username, for a link to the post.
    pub channel_username: Option<String>,
    /// Text or caption.
    pub text: Option<String>,
    /// Bot API entities of `text`, as JSON.
    pub entities: Option<serde_json::Value>,
    /// Media kind (`photo`, …), `None` for text.
    pub media: Option<String>,
    /// False when it cannot be copied or forwarded.
    pub copyable: bool,
    /// When the channel published it.
    pub published_at: Option<DateTime<Utc>>,
    /// The relay channel the post was forwarded into (then `source_chat_id`).
    pub relay_chat_id: Option<i64>,
    /// Its ids there, one per message id.
    pub relay_message_ids: Option<Vec<i64>>,
}

/// Recording a post under a channel lease: the channel row is locked and
/// its generation checked (`$17`) in the same statement as the insert and
/// the mark. Under READ COMMITTED a take-over that commits while this waits
/// for the lock is seen (the row is re-checked), so nothing stale gets in.
const FENCED_RECORD_POST: &str = "WITH lease AS (
        SELECT id FROM channels WHERE id = $1 AND lease_generation = $17 FOR UPDATE
     ), ins AS (
        INSERT INTO posts (channel_id, message_id, message_ids, album_id, kind,
                           detected_at, source_chat_id, channel_username, text,
                           entities, media, copyable, published_at,
                           relay_chat_id, relay_message_ids)
        SELECT $1::bigint, $2::bigint, $3::bigint[], $4::bigint, $5::text,
               $6::timestamptz, $7::bigint, $8::text, $9::text,
               $10::jsonb, $11::text, $12::boolean, $13::timestamptz,
               $15::bigint, $16::bigint[]
          FROM lease
        ON CONFLICT ON CONSTRAINT posts_unique DO NOTHING
        RETURNING id
     ), mark AS (
        UPDATE channels SET last_message_id = GREATEST(last_message_id, $14::bigint),
                            updated_at = now()
         WHERE id IN (SELECT id FROM lease)
     )
     SELECT id FROM ins";

impl Store {
    /// Records a new post and advances its channel's high-water mark in one
    /// transaction. Returns the post's id, or `None` when it was already
    /// recorded (a re-read after a crash); the mark is advanced either way.
    pub async fn record_post(&self, post: &NewPost) -> Result<Option<i64>, StoreError> {
        self.record_post_fenced(post, None).await
    }

    /// [`Store::record_post`] under a channel lease of `generation`
    /// (several instances): the same statement first locks the channel row
    /// and checks the generation, so an owner that lost the lease records
    /// nothing and moves no mark (`None`, as for a post already recorded).
    /// `None` generation: no lease is checked (one process, tests).
    pub async fn record_post_fenced(
        &self,
        post: &NewPost,
        generation: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        const OP: &str = "record post";
        let first = *post.message_ids.first().ok_or(StoreError::Data {
            op: OP,
            message: "a post has at least one message id".to_owned(),
        })?;
        let last = *post.message_ids.iter().max().unwrap_or(&first);
        let c = self.conn(OP).await?;
        // One statement, so one implicit transaction and one round trip: the
        // post row and the high-water mark commit together or not at all (a
        // data-modifying CTE runs to completion whether or not its output is
        // read). Prepared once per connection: posts are recorded at the
        // rate they appear, and parsing this every time was a third of
        // PostgreSQL's CPU in the seed-scale profile.
        let stmt = c
            .prepare_cached(if generation.is_some() {
                FENCED_RECORD_POST
            } else {
                "WITH ins AS (
                    INSERT INTO posts (channel_id, message_id, message_ids, album_id, kind,
                                       detected_at, source_chat_id, channel_username, text,
                                       entities, media, copyable, published_at,
                                       relay_chat_id, relay_message_ids)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16)
                    ON CONFLICT ON CONSTRAINT posts_unique DO NOTHING
                    RETURNING id
                 ), mark AS (
                    UPDATE channels SET last_message_id = GREATEST(last_message_id, $14),
                                        updated_at = now()
                     WHERE id = $1 AND $17::bigint IS NULL
                 )
                 SELECT id FROM ins"
            })
            .await
            .op(OP)?;
        let id = c
            .query_opt(
                &stmt,
                &[
                    &post.channel_id,
                    &first,
                    &post.message_ids,
                    &post.album_id,
                    &post.kind,
                    &post.detected_at,
                    &post.source_chat_id,
                    &post.channel_username,
                    &post.text,
                    &post.entities,
                    &post.media,
                    &post.copyable,
                    &post.published_at,
                    &last,
                    &post.relay_chat_id,
                    &post.relay_message_ids,
                    &generation,
                ],
            )
            .await
            .op(OP)?
            .map(|r| r.get::<_, i64>(0));
        Ok(id)
    }

    /// Channels to poll: resolved and active, with at least one active
    /// subscription. A bot-admin channel nobody follows is not polled and
    /// its posts are not kept (anyone can make our bot admin of any number
    /// of channels); its first subscription starts its poller.
    pub async fn active_channels(&self) -> Result<Vec<ChannelRef>, StoreError> {
        const OP: &str = "list active channels";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT c.id, c.telegram_id, c.username, c.bot_is_admin
                   FROM channels c
                  WHERE c.telegram_id IS NOT NULL AND c.status = 'active'
                    AND EXISTS (SELECT 1 FROM subscriptions s
                                 WHERE s.channel_id = c.id AND s.is_active)
                  ORDER BY c.id",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| ChannelRef {
                channel_id: r.get(0),
                chat_id: r.get(1),
                username: r.get(2),
                bot_is_admin: r.get(3),
            })
            .collect())
    }

    /// Whether anyone subscribes to the channel (a subscription not
    /// removed, paused or not): a bot-admin channel nobody follows has its
    /// posts neither kept nor polled.
    pub async fn channel_subscribed(&self, channel_id: i64) -> Result<bool, StoreError> {
        const OP: &str = "check channel subscribed";
        let c = self.conn(OP).await?;
        let row = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM subscriptions
                                 WHERE channel_id = $1 AND removed_at IS NULL)",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(row.get(0))
    }

    /// Channels where our bot is an administrator.
    pub async fn admin_channels(&self) -> Result<Vec<ChannelRef>, StoreError> {
        const OP: &str = "list bot-admin channels";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id, telegram_id, username, bot_is_admin FROM channels
                  WHERE bot_is_admin AND telegram_id IS NOT NULL",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| ChannelRef {
                channel_id: r.get(0),
                chat_id: r.get(1),
                username: r.get(2),
                bot_is_admin: r.get(3),
            })
            .collect())
    }

    /// The channel of a subscription, when it is resolved and active.
    pub async fn channel_of_subscription(
        &self,
        subscription_id: i64,
    ) -> Result<Option<ChannelRef>, StoreError> {
        const OP: &str = "read channel";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT c.id, c.telegram_id, c.username, c.bot_is_admin
                   FROM subscriptions s JOIN channels c ON c.id = s.channel_id
                  WHERE s.id = $1 AND c.telegram_id IS NOT NULL AND c.status = 'active'",
                &[&subscription_id],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| ChannelRef {
            channel_id: r.get(0),
            chat_id: r.get(1),
            username: r.get(2),
            bot_is_admin: r.get(3),
        }))
    }

    /// Records that our bot is an administrator of a channel (or no longer
    /// is): creates or updates the channel, resolved, so `/add_channel` with
    /// its username needs no lookup. Returns the channel.
    pub async fn upsert_admin_channel(
        &self,
        chat_id: i64,
        username: Option<&str>,
        title: Option<&str>,
        is_admin: bool,
    ) -> Result<ChannelRef, StoreError> {
        const OP: &str = "record bot-admin channel";
        let username = username.map(str::to_ascii_lowercase);
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        // Usernames move between channels: the channel that holds a name now
        // (this one) wins it. A pending row added by this name becomes this
        // channel — or, when this channel has a row already, hands it its
        // subscriptions and goes; another resolved channel that still has the
        // name on record loses it. (Matching only `telegram_id = $1 OR
        // (username = $2 AND telegram_id IS NULL)` and never updating the
        // name let a rename end in an INSERT violating UNIQUE(username),
        // which held the update loop for good.)
        let existing: Option<i64> = tx
            .query_opt(
                "SELECT id FROM channels WHERE telegram_id = $1",
                &[&chat_id],
            )
            .await
            .op(OP)?
            .map(|r| r.get(0));
        if let Some(name) = &username {
            let pending: Option<i64> = tx
                .query_opt(
                    "SELECT id FROM channels WHERE username = $1 AND telegram_id IS NULL",
                    &[name],
                )
                .await
                .op(OP)?
                .map(|r| r.get(0));
            if let (Some(pending), Some(own)) = (pending, existing) {
                merge_channel_rows(&tx, pending, own, OP).await?;
            }
            tx.execute(
                "UPDATE channels SET username = NULL, updated_at = now()
                  WHERE username = $1 AND telegram_id IS NOT NULL AND telegram_id <> $2",
                &[name, &chat_id],
            )
            .await
            .op(OP)?;
        }
        let row = tx
            .query_opt(
                "UPDATE channels SET telegram_id = $1, username = $2, title = COALESCE($3, title),
                        status = 'active', bot_is_admin = $4, updated_at = now()
                  WHERE telegram_id = $1 OR (username = $2 AND telegram_id IS NULL)
                  RETURNING id, telegram_id, username, bot_is_admin",
                &[&chat_id, &username, &title, &is_admin],
            )
            .await
            .op(OP)?;
        let row = match row {
            Some(r) => r,
            None => tx
                .query_one(
                    "INSERT INTO channels (telegram_id, username, title, status, bot_is_admin)
                     VALUES ($1, $2, $3, 'active', $4)
                     RETURNING id, telegram_id, username, bot_is_admin",
                    &[&chat_id, &username, &title, &is_admin],
                )
                .await
                .op(OP)?,
        };
        tx.commit().await.op(OP)?;
        Ok(ChannelRef {
            channel_id: row.get(0),
            chat_id: row.get(1),
            username: row.get(2),
            bot_is_admin: row.get(3),
        })
    }

    /// Moves a channel's high-water mark forward (never back). Returns false
    /// when the mark was already at or past `message_id`.
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn advance_high_water_mark(
        &self,
        channel_id: i64,
        message_id: i64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "advance high-water mark";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "UPDATE channels SET last_message_id = $2, last_polled_at = now(), updated_at = now()
                  WHERE id = $1 AND last_message_id < $2",
                &[&channel_id, &message_id],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// A channel's high-water mark, or `None` for an unknown channel.
    pub async fn high_water_mark(&self, channel_id: i64) -> Result<Option<i64>, StoreError> {
        const OP: &str = "read high-water mark";
        let c = self.conn(OP).await?;
        Ok(c.query_opt(
            "SELECT last_message_id FROM channels WHERE id = $1",
            &[&channel_id],
        )
        .await
        .op(OP)?
        .map(|r| r.get(0)))
    }
}

/// Folds channel row `from` into row `into`, in the caller's transaction:
/// `from`'s subscriptions move to `into`, except where the same user and
/// destination already follow `into` (duplicates, deleted with the row),
/// and `from` is deleted. Used when a channel known by name (pending) turns
/// out to be one that already has its row — found by the bot's updates or
/// by the reader's resolve queue.
pub(super) async fn merge_channel_rows(
    tx: &tokio_postgres::Transaction<'_>,
    from: i64,
    into: i64,
    op: &'static str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE subscriptions s SET channel_id = $2, updated_at = now()
          WHERE s.channel_id = $1
            AND NOT EXISTS (SELECT 1 FROM subscriptions o
                             WHERE o.channel_id = $2 AND o.user_id = s.user_id
                               AND o.destination_id = s.destination_id)",
        &[&from, &into],
    )
    .await
    .op(op)?;
    tx.execute("DELETE FROM subscriptions WHERE channel_id = $1", &[&from])
        .await
        .op(op)?;
    tx.execute("DELETE FROM channels WHERE id = $1", &[&from])
        .await
        .op(op)?;
    Ok(())
}
