//! Deliveries the database still owes: recorded posts whose deliveries have
//! no outcome. Read at start-up (the resume) and by the periodic sweep,
//! streamed so that memory and each statement's time stay bounded whatever
//! the backlog.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kuryer_actors::filters::PostFilter;
use kuryer_actors::model::{ActiveSubscription, Delivery, Post};
use kuryer_actors::quiet::Quiet;
use tokio::sync::mpsc;

use super::error::OpContext;
use super::subscriptions::{parse_kind, parse_mode};
use super::{Store, StoreError};

/// Which owed deliveries to read.
#[derive(Debug, Clone)]
pub struct PendingQuery {
    /// Posts detected at or after this moment (the resume window).
    pub since: DateTime<Utc>,
    /// Only these posts (`posts.id`); all in the window when `None`.
    pub posts: Option<Vec<i64>>,
    /// An `ambiguous` outcome counts as none (it is sent again).
    pub retry_ambiguous: bool,
}

/// A recent post, as the sweep lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentPost {
    /// `posts.id`.
    pub id: i64,
    /// `channels.id`.
    pub channel_id: i64,
    /// Its first message id.
    pub message_id: i32,
    /// When it was detected.
    pub detected_at: DateTime<Utc>,
}

impl Store {
    /// Channels with at least one owed delivery of a post detected since
    /// `since`: the pollers the resume holds back until their deliveries are
    /// queued. Stops at the first owed delivery of each post, so it is cheap
    /// when the backlog is large.
    pub async fn channels_with_pending(
        &self,
        since: DateTime<Utc>,
        retry_ambiguous: bool,
    ) -> Result<Vec<i64>, StoreError> {
        const OP: &str = "find channels with pending deliveries";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT DISTINCT p.channel_id FROM posts p
                      WHERE p.detected_at >= $1::timestamptz - interval '1 day' AND p.source_chat_id IS NOT NULL
                        AND NOT p.history
                        AND EXISTS (SELECT 1 {PENDING_FROM} AND s.channel_id = p.channel_id
                                       AND s.created_at <= p.detected_at
                                       AND (p.detected_at >= $1 OR s.quiet IS NOT NULL)
                                       {PENDING_WHERE})"
                ),
                &[&since, &retry_ambiguous],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Posts detected in `[since, until)`, oldest first: what the periodic
    /// sweep looks at (it then reads owed deliveries of those it has not
    /// handled).
    pub async fn recent_posts(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RecentPost>, StoreError> {
        const OP: &str = "list recent posts";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id, channel_id, message_id, detected_at FROM posts
                  WHERE detected_at >= $1 AND detected_at < $2 AND source_chat_id IS NOT NULL
                    AND NOT history
                  ORDER BY detected_at, id",
                &[&since, &until],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| RecentPost {
                id: r.get(0),
                channel_id: r.get(1),
                message_id: i32::try_from(r.get::<_, i64>(2)).unwrap_or(i32::MAX),
                detected_at: r.get(3),
            })
            .collect())
    }

    /// Streams the owed deliveries `q` selects, `chunk` rows a fetch:
    /// for every recorded post, each subscription that was active when the
    /// post was detected (and still is) with no outcome for it. Ordered by
    /// channel, then by post in detection order (a channel's posts are
    /// recorded in message order, so message order is detection order), then
    /// by subscription: a channel's deliveries come together, oldest first.
    ///
    /// A read-only repeatable-read transaction with a server-side cursor
    /// (declared, so PostgreSQL plans it to start fast): each `FETCH` is a
    /// statement of its own, so the statement timeout bounds one chunk, not
    /// the whole backlog; the channel holds two chunks ahead of the consumer.
    /// A row that cannot be read (an unknown destination kind) is logged and
    /// skipped, never the whole stream.
    pub fn stream_pending_deliveries(&self, q: PendingQuery, chunk: usize) -> PendingStream {
        let chunk = chunk.clamp(1, 1_000_000);
        let (tx, rx) = mpsc::channel(2);
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.send_pending(&q, chunk, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        PendingStream { rx }
    }

    /// The owed deliveries `q` selects into `tx`, `chunk` rows a fetch;
    /// stops early when the consumer went away.
    async fn send_pending(
        &self,
        q: &PendingQuery,
        chunk: usize,
        tx: &mpsc::Sender<Result<Vec<Delivery>, StoreError>>,
    ) -> Result<(), StoreError> {
        const OP: &str = "stream pending deliveries";
        let mut c = self.conn(OP).await?;
        let t = c
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .op(OP)?;
        t.batch_execute(&pending_cursor_sql(q)).await.op(OP)?;
        let fetch = format!("FETCH FORWARD {chunk} FROM pending");
        // Consecutive rows of one post share its `Arc<Post>`, across
        // chunks too.
        let mut current: Option<(i64, Arc<Post>)> = None;
        // The fan-out's filters apply here too: a post a filter refused has
        // no delivery, so it is not owed. Compiled once per subscription.
        let mut filters: std::collections::HashMap<i64, Option<PostFilter>> =
            std::collections::HashMap::new();
        loop {
            let rows = t.query(fetch.as_str(), &[]).await.op(OP)?;
            let done = rows.len() < chunk;
            let mut items = Vec::with_capacity(rows.len());
            for r in &rows {
                match pending_delivery(r, &mut current) {
                    Ok(d) => {
                        let filter = filters
                            .entry(d.sub.subscription_id)
                            .or_insert_with(|| PostFilter::from_stored(&d.sub.filters));
                        if filter.as_ref().is_some_and(|f| !f.accepts(&d.post)) {
                            continue;
                        }
                        // Older than the window: owed only when quiet hours
                        // held it and they ended within it.
                        if d.post.detected_at < q.since
                            && Quiet::from_stored(d.sub.quiet.as_deref())
                                .is_none_or(|h| h.due(d.post.detected_at) < q.since)
                        {
                            continue;
                        }
                        items.push(d);
                    }
                    Err(e) => tracing::warn!(
                        post_id = r.get::<_, i64>(11),
                        subscription_id = r.get::<_, i64>(12),
                        error = %e,
                        "Skipping an owed delivery that cannot be read."
                    ),
                }
            }
            if !items.is_empty() && tx.send(Ok(items)).await.is_err() {
                // The consumer went away; nothing more to do.
                return Ok(());
            }
            if done {
                break;
            }
        }
        t.commit().await.op(OP)?;
        Ok(())
    }
}

/// The cursor over the owed deliveries `q` selects. DECLARE takes no
/// parameters: the values are formatted in, and none is text (a
/// timestamp, integers, a boolean).
fn pending_cursor_sql(q: &PendingQuery) -> String {
    let posts = match &q.posts {
        None => String::new(),
        Some(ids) => format!(
            "AND p.id = ANY('{{{}}}'::bigint[])",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        ),
    };
    format!(
        "DECLARE pending NO SCROLL CURSOR FOR
         SELECT p.channel_id, p.message_ids, p.album_id, p.source_chat_id,
                p.channel_username, p.text, p.entities::text, p.media, p.copyable,
                COALESCE(p.published_at, p.detected_at), p.detected_at, p.id,
                s.id, s.channel_id, u.telegram_id, d.id, d.chat_id, d.kind, s.mode,
                s.filters::text, d.bot_id, p.relay_message_ids,
                s.transform::text,
                COALESCE(CASE WHEN s.digest IS NOT NULL THEN '{{\"hold\":\"digest\"}}' END, s.quiet::text),
                NULLIF(d.message_thread_id, 0)
           FROM posts p
           JOIN subscriptions s ON s.channel_id = p.channel_id AND s.is_active
                               AND s.created_at <= p.detected_at
           JOIN users u ON u.id = s.user_id
           JOIN destinations d ON d.id = s.destination_id AND d.is_active
          WHERE p.detected_at >= '{since}'::timestamptz - interval '1 day'
            AND (p.detected_at >= '{since}'::timestamptz OR s.quiet IS NOT NULL)
            AND p.source_chat_id IS NOT NULL AND NOT p.history {posts}
            AND NOT EXISTS (
                SELECT 1 FROM forwarded_messages f
                 WHERE f.subscription_id = s.id AND f.channel_id = p.channel_id
                   AND f.source_message_id = p.message_id
                   AND f.post_day = (p.detected_at AT TIME ZONE 'UTC')::date
                   AND (f.status <> 'ambiguous' OR NOT {retry}))
          ORDER BY p.channel_id, p.message_id, s.id",
        since = q.since.to_rfc3339(),
        retry = q.retry_ambiguous,
    )
}

/// Owed deliveries arriving in chunks; see [`Store::stream_pending_deliveries`].
pub struct PendingStream {
    rx: mpsc::Receiver<Result<Vec<Delivery>, StoreError>>,
}

impl PendingStream {
    /// The next chunk, or `None` at the end (an error ends the stream).
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<Delivery>, StoreError>> {
        self.rx.recv().await
    }
}

/// `FROM … WHERE` of an owed delivery, for a post `p` of the outer query.
const PENDING_FROM: &str = "
      FROM subscriptions s
      JOIN destinations d ON d.id = s.destination_id AND d.is_active
     WHERE s.is_active";

/// The rest of it: no outcome (`$2`: an ambiguous one counts as none).
const PENDING_WHERE: &str = "
       AND NOT EXISTS (
           SELECT 1 FROM forwarded_messages f
            WHERE f.subscription_id = s.id AND f.channel_id = p.channel_id
              AND f.source_message_id = p.message_id
              AND f.post_day = (p.detected_at AT TIME ZONE 'UTC')::date
              AND (f.status <> 'ambiguous' OR NOT $2))";

fn pending_delivery(
    r: &tokio_postgres::Row,
    current: &mut Option<(i64, Arc<Post>)>,
) -> Result<Delivery, StoreError> {
    const OP: &str = "stream pending deliveries";
    let post_id: i64 = r.get(11);
    let post = match current {
        Some((id, p)) if *id == post_id => p.clone(),
        _ => {
            let p = Arc::new(resumed_post(r));
            *current = Some((post_id, p.clone()));
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
        transform: r.get(22),
        quiet: r.get(23),
        thread_id: r.get(24),
    };
    Ok(Delivery {
        post,
        sub: Arc::new(sub),
        attempt: 0,
        dedup: Default::default(),
        op: Default::default(),
    })
}

fn resumed_post(r: &tokio_postgres::Row) -> Post {
    post_at(r, 21)
}

/// A post from columns 0–10 in the order of the cursor above, its relay
/// ids at `relay_col`.
pub(super) fn post_at(r: &tokio_postgres::Row, relay_col: usize) -> Post {
    let ids: Vec<i64> = r.get(1);
    let entities: Option<String> = r.get(6);
    let media: Option<String> = r.get(7);
    Post {
        channel_id: r.get(0),
        message_ids: ids.into_iter().map(|i| i as i32).collect(),
        relay_message_ids: r
            .get::<_, Option<Vec<i64>>>(relay_col)
            .map(|ids| ids.into_iter().map(|i| i as i32).collect()),
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
    }
}
