//! Delivery records (`forwarded_messages`): writing outcomes in batches,
//! counting the sent ones, and finding the deliveries to resume at start-up.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use kuryer_actors::filters::PostFilter;
use kuryer_actors::model::{ActiveSubscription, Delivery, Post};

use super::error::OpContext;
use super::subscriptions::{parse_kind, parse_mode};
use super::{Store, StoreError};

/// One delivery outcome, as the DbWriter batches them.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedRow {
    /// `subscriptions.id`.
    pub subscription_id: i64,
    /// `channels.id`.
    pub channel_id: i64,
    /// The post's first message id in its source channel.
    pub source_message_id: i64,
    /// UTC day the post was detected: the partition key.
    pub post_day: NaiveDate,
    /// The chat it went to.
    pub destination_chat_id: i64,
    /// The message id Telegram gave the copy, when sent.
    pub sent_message_id: Option<i64>,
    /// `sent`, `failed`, `ambiguous` or `skipped`.
    pub status: &'static str,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Store {
    /// Deliveries to resume at start-up: for every post detected since
    /// `since`, each subscription that was active when the post was detected
    /// (and still is) and has no recorded outcome for it. An `ambiguous`
    /// outcome counts as none when `retry_ambiguous`. Ordered by detection,
    /// as they were first delivered, so each chat gets them in order.
    pub async fn pending_deliveries(
        &self,
        since: DateTime<Utc>,
        retry_ambiguous: bool,
    ) -> Result<Vec<Delivery>, StoreError> {
        const OP: &str = "find deliveries to resume";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT p.channel_id, p.message_ids, p.album_id, p.source_chat_id,
                        p.channel_username, p.text, p.entities::text, p.media, p.copyable,
                        COALESCE(p.published_at, p.detected_at), p.detected_at, p.id,
                        s.id, s.channel_id, u.telegram_id, d.id, d.chat_id, d.kind, s.mode,
                        s.filters::text, d.bot_id
                   FROM posts p
                   JOIN subscriptions s ON s.channel_id = p.channel_id AND s.is_active
                                       AND s.created_at <= p.detected_at
                   JOIN users u ON u.id = s.user_id
                   JOIN destinations d ON d.id = s.destination_id AND d.is_active
                  WHERE p.detected_at >= $1 AND p.source_chat_id IS NOT NULL
                    AND NOT EXISTS (
                        SELECT 1 FROM forwarded_messages f
                         WHERE f.subscription_id = s.id AND f.channel_id = p.channel_id
                           AND f.source_message_id = p.message_id
                           AND f.post_day = (p.detected_at AT TIME ZONE 'UTC')::date
                           AND (f.status <> 'ambiguous' OR NOT $2))
                  ORDER BY p.detected_at, p.id, s.id",
                &[&since, &retry_ambiguous],
            )
            .await
            .op(OP)?;
        let mut out = Vec::with_capacity(rows.len());
        let mut current: Option<(i64, Arc<Post>)> = None;
        // The fan-out's filters apply here too: a post a filter refused
        // has no delivery, so it must not be resumed as one.
        let mut filters: std::collections::HashMap<i64, Option<PostFilter>> =
            std::collections::HashMap::new();
        for r in &rows {
            let post_id: i64 = r.get(11);
            let post = match &current {
                Some((id, p)) if *id == post_id => p.clone(),
                _ => {
                    let p = Arc::new(resumed_post(r)?);
                    current = Some((post_id, p.clone()));
                    p
                }
            };
            let sub = ActiveSubscription {
                subscription_id: r.get(12),
                channel_id: r.get(13),
                user_telegram_id: r.get(14),
                destination_id: r.get(15),
                chat_id: r.get(16),
                destination_kind: parse_kind(OP, r.get(17))?,
                mode: parse_mode(OP, r.get(18))?,
                filters: r.get(19),
                bot_id: r.get(20),
            };
            let filter = filters
                .entry(sub.subscription_id)
                .or_insert_with(|| PostFilter::from_stored(&sub.filters));
            if filter.as_ref().is_some_and(|f| !f.accepts(&post)) {
                continue;
            }
            out.push(Delivery {
                post,
                sub: Arc::new(sub),
                attempt: 0,
                dedup: Default::default(),
            });
        }
        Ok(out)
    }

    /// Deliveries recorded as sent (demo and benchmark summaries).
    pub async fn sent_deliveries(&self) -> Result<u64, StoreError> {
        const OP: &str = "count sent deliveries";
        let n: i64 = self
            .conn(OP)
            .await?
            .query_one(
                "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'",
                &[],
            )
            .await
            .op(OP)?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// Writes a batch of delivery outcomes in one statement, one round trip.
    ///
    /// The rows travel as one array a column and `unnest` turns them back
    /// into rows on the server, so the cost is one parse and one plan for the
    /// whole batch. A row for a subscription + message that already has one
    /// updates it unless it is already `sent` (a sent row is final), so a
    /// retried batch never duplicates. Returns how many rows were written.
    ///
    /// One bad row (say, a status the CHECK rejects) fails the whole
    /// statement; the caller (the DbWriter) then splits the batch to find it,
    /// so the other rows are not lost.
    pub async fn insert_forwarded(&self, rows: &[ForwardedRow]) -> Result<u64, StoreError> {
        const OP: &str = "insert forwarded rows";
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        let mut subscription_id = Vec::with_capacity(n);
        let mut channel_id = Vec::with_capacity(n);
        let mut source_message_id = Vec::with_capacity(n);
        let mut post_day = Vec::with_capacity(n);
        let mut destination_chat_id = Vec::with_capacity(n);
        let mut sent_message_id = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut error = Vec::with_capacity(n);
        for r in rows {
            subscription_id.push(r.subscription_id);
            channel_id.push(r.channel_id);
            source_message_id.push(r.source_message_id);
            post_day.push(r.post_day);
            destination_chat_id.push(r.destination_chat_id);
            sent_message_id.push(r.sent_message_id);
            status.push(r.status);
            error.push(r.error.as_deref());
        }
        let c = self.conn(OP).await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO forwarded_messages AS f
                    (subscription_id, channel_id, source_message_id, post_day,
                     destination_chat_id, sent_message_id, status, error)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::date[],
                                      $5::bigint[], $6::bigint[], $7::text[], $8::text[])
                 ON CONFLICT ON CONSTRAINT forwarded_messages_pkey DO UPDATE
                    SET sent_message_id = EXCLUDED.sent_message_id,
                        status = EXCLUDED.status,
                        error = EXCLUDED.error,
                        destination_chat_id = EXCLUDED.destination_chat_id,
                        created_at = now()
                  WHERE f.status <> 'sent'
                    -- Batches are written concurrently, so an older
                    -- 'ambiguous' row can land after the final outcome of
                    -- the same delivery: it never replaces one.
                    AND NOT (EXCLUDED.status = 'ambiguous' AND f.status <> 'ambiguous')",
            )
            .await
            .op(OP)?;
        c.execute(
            &stmt,
            &[
                &subscription_id,
                &channel_id,
                &source_message_id,
                &post_day,
                &destination_chat_id,
                &sent_message_id,
                &status,
                &error,
            ],
        )
        .await
        .op(OP)
    }
}

fn resumed_post(r: &tokio_postgres::Row) -> Result<Post, StoreError> {
    let ids: Vec<i64> = r.get(1);
    let entities: Option<String> = r.get(6);
    let media: Option<String> = r.get(7);
    Ok(Post {
        channel_id: r.get(0),
        message_ids: ids.into_iter().map(|i| i as i32).collect(),
        album_id: r.get::<_, Option<i64>>(2).map(|a| a.to_string()),
        source_chat_id: r.get::<_, Option<i64>>(3).unwrap_or_default(),
        channel_username: r.get(4),
        text: r.get(5),
        entities: entities
            .and_then(|e| serde_json::from_str(&e).ok())
            .unwrap_or_default(),
        media: media.and_then(|m| serde_json::from_value(serde_json::Value::String(m)).ok()),
        copyable: r.get(8),
        published_at: r.get(9),
        detected_at: r.get(10),
    })
}
