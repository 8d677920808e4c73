//! Digests (migration 0013): which subscriptions' digests are due, the
//! claimed run of one digest (its posts fixed at the claim, the parts sent
//! so far), and the outcome rows written once it is sent.

use chrono::{DateTime, Utc};
use kuryer_actors::digest::Entry;
use kuryer_actors::filters::PostFilter;
use kuryer_actors::model::{DestinationKind, MediaKind};

use super::error::OpContext;
use super::{Store, StoreError};

/// A subscription with a digest that is due, or whose due time is not set.
#[derive(Debug, Clone)]
pub struct DigestDue {
    /// `subscriptions.id`.
    pub subscription_id: i64,
    /// Its channel.
    pub channel_id: i64,
    /// `subscriptions.digest` as text.
    pub spec: String,
    /// `digest_due_at` (`None`: to be computed).
    pub due_at: Option<DateTime<Utc>>,
    /// An unfinished run of it (claimed, not all sent): its period.
    pub open_period: Option<DateTime<Utc>>,
}

/// Where a subscription's digest goes.
#[derive(Debug, Clone)]
pub struct DigestTarget {
    /// The chat.
    pub chat_id: i64,
    /// The bot that posts there (`None`: the first).
    pub bot_id: Option<i64>,
    /// The forum topic (`None`: the whole chat).
    pub thread_id: Option<i32>,
    /// The subscriber's language code.
    pub language: String,
    /// The chat's kind (its spacing follows from it).
    pub kind: DestinationKind,
}

/// One claimed digest.
#[derive(Debug, Clone)]
pub struct DigestRun {
    /// The posts it lists, oldest first.
    pub post_ids: Vec<i64>,
    /// Messages of it already sent.
    pub parts_sent: usize,
    /// Sent and recorded.
    pub done: bool,
}

/// The owed posts of a subscription up to `$2`, oldest first: detected
/// after it was created, with no outcome row, at most 8 days old (older
/// posts are beyond the partitions' retention of outcome rows). Columns:
/// the post's id, its text (or caption), its media kind and the
/// subscription's filters — a post the filters refuse is not listed, as
/// the fan-out and the resume deliver nothing for it.
const OWED_POSTS: &str = "
    SELECT p.id, p.text, p.media, s.filters::text
      FROM posts p JOIN subscriptions s ON s.channel_id = p.channel_id
     WHERE s.id = $1 AND p.detected_at >= s.created_at AND p.detected_at <= $2
       AND p.detected_at >= $2::timestamptz - interval '8 days'
       AND p.source_chat_id IS NOT NULL AND NOT p.history
       AND NOT EXISTS (
           SELECT 1 FROM forwarded_messages f
            WHERE f.subscription_id = s.id AND f.channel_id = p.channel_id
              AND f.source_message_id = p.message_id
              AND f.post_day = (p.detected_at AT TIME ZONE 'UTC')::date)
     ORDER BY p.detected_at, p.message_id";

impl Store {
    /// Active subscriptions with a digest that is due by `now`, has no due
    /// time yet, or has an unfinished run.
    pub async fn due_digests(&self, now: DateTime<Utc>) -> Result<Vec<DigestDue>, StoreError> {
        const OP: &str = "list due digests";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT s.id, s.channel_id, s.digest::text, s.digest_due_at,
                        (SELECT min(r.period) FROM digest_runs r
                          WHERE r.subscription_id = s.id AND r.done_at IS NULL)
                   FROM subscriptions s
                  WHERE s.digest IS NOT NULL AND s.is_active AND s.removed_at IS NULL
                    AND (s.digest_due_at IS NULL OR s.digest_due_at <= $1
                         OR EXISTS (SELECT 1 FROM digest_runs r
                                     WHERE r.subscription_id = s.id AND r.done_at IS NULL))
                  ORDER BY s.id",
                &[&now],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| DigestDue {
                subscription_id: r.get(0),
                channel_id: r.get(1),
                spec: r.get(2),
                due_at: r.get(3),
                open_period: r.get(4),
            })
            .collect())
    }

    /// Sets when a subscription's next digest is due.
    pub async fn set_digest_due(
        &self,
        subscription_id: i64,
        due_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "set digest due time";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE subscriptions SET digest_due_at = $2 WHERE id = $1 AND digest IS NOT NULL",
            &[&subscription_id, &due_at],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Claims the digest of `period`: its posts are the subscription's owed
    /// posts up to `now`, fixed by the first claim (any process); a later
    /// claim of the same period reads that run back.
    pub async fn claim_digest(
        &self,
        subscription_id: i64,
        period: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DigestRun, StoreError> {
        const OP: &str = "claim a digest";
        let c = self.conn(OP).await?;
        let claimed = c
            .query_opt(
                "SELECT 1 FROM digest_runs WHERE subscription_id = $1 AND period = $2",
                &[&subscription_id, &period],
            )
            .await
            .op(OP)?
            .is_some();
        if !claimed {
            // The list is fixed here, filtered as the fan-out filters; a
            // process claiming the same period at once loses the insert
            // and reads the winner's list back.
            let rows = c
                .query(OWED_POSTS, &[&subscription_id, &now])
                .await
                .op(OP)?;
            let filter = rows
                .first()
                .and_then(|r| PostFilter::from_stored(r.get::<_, &str>(3)));
            let post_ids: Vec<i64> = rows
                .iter()
                .filter(|r| {
                    filter.as_ref().is_none_or(|f| {
                        let media: Option<String> = r.get(2);
                        let media: Option<MediaKind> = media.and_then(|m| {
                            serde_json::from_value(serde_json::Value::String(m)).ok()
                        });
                        f.accepts_parts(r.get(1), media)
                    })
                })
                .map(|r| r.get(0))
                .collect();
            c.execute(
                "INSERT INTO digest_runs (subscription_id, period, post_ids)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (subscription_id, period) DO NOTHING",
                &[&subscription_id, &period, &post_ids],
            )
            .await
            .op(OP)?;
        }
        let r = c
            .query_one(
                "SELECT post_ids, parts_sent, done_at IS NOT NULL FROM digest_runs
                  WHERE subscription_id = $1 AND period = $2",
                &[&subscription_id, &period],
            )
            .await
            .op(OP)?;
        Ok(DigestRun {
            post_ids: r.get(0),
            parts_sent: usize::try_from(r.get::<_, i32>(1)).unwrap_or(0),
            done: r.get(2),
        })
    }

    /// The entries of `post_ids`, in that order (a post gone is left out).
    pub async fn digest_entries(&self, post_ids: &[i64]) -> Result<Vec<Entry>, StoreError> {
        const OP: &str = "read digest entries";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT p.id, COALESCE(p.channel_username, c.username), COALESCE(c.title, ''),
                        p.message_id, COALESCE(p.text, '')
                   FROM posts p JOIN channels c ON c.id = p.channel_id
                  WHERE p.id = ANY($1)",
                &[&post_ids],
            )
            .await
            .op(OP)?;
        let mut by_id: std::collections::HashMap<i64, Entry> = rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Entry {
                        username: r.get::<_, Option<String>>(1).filter(|u| !u.is_empty()),
                        title: r.get(2),
                        message_id: r.get(3),
                        text: r.get(4),
                    },
                )
            })
            .collect();
        Ok(post_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Where the subscription's digest goes (`None`: no active destination).
    pub async fn digest_target(
        &self,
        subscription_id: i64,
    ) -> Result<Option<DigestTarget>, StoreError> {
        const OP: &str = "read digest target";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT d.chat_id, d.bot_id, NULLIF(d.message_thread_id, 0), u.language, d.kind
                   FROM subscriptions s
                   JOIN destinations d ON d.id = s.destination_id AND d.is_active
                   JOIN users u ON u.id = s.user_id
                  WHERE s.id = $1",
                &[&subscription_id],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| DigestTarget {
            chat_id: r.get(0),
            bot_id: r.get(1),
            thread_id: r.get(2),
            language: r.get(3),
            kind: DestinationKind::parse(r.get(4)).unwrap_or(DestinationKind::Group),
        }))
    }

    /// Records that the first `parts` messages of a digest were sent.
    pub async fn digest_parts_sent(
        &self,
        subscription_id: i64,
        period: DateTime<Utc>,
        parts: usize,
    ) -> Result<(), StoreError> {
        const OP: &str = "record digest part";
        let c = self.conn(OP).await?;
        let parts = i32::try_from(parts).unwrap_or(i32::MAX);
        c.execute(
            "UPDATE digest_runs SET parts_sent = GREATEST(parts_sent, $3)
              WHERE subscription_id = $1 AND period = $2",
            &[&subscription_id, &period, &parts],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// The digest is sent: one outcome row per post it lists (status
    /// `skipped`, error `digest`: never sent again), the run done and the
    /// next one due at `next_due` — in one transaction.
    pub async fn finish_digest(
        &self,
        subscription_id: i64,
        period: DateTime<Utc>,
        next_due: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "finish a digest";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let n = tx
            .execute(
                "INSERT INTO forwarded_messages (subscription_id, channel_id, source_message_id,
                        post_day, destination_chat_id, sent_message_id, status, error)
                 SELECT s.id, p.channel_id, p.message_id, (p.detected_at AT TIME ZONE 'UTC')::date,
                        d.chat_id, NULL, 'skipped', 'digest'
                   FROM digest_runs r
                   JOIN subscriptions s ON s.id = r.subscription_id
                   JOIN destinations d ON d.id = s.destination_id
                   JOIN posts p ON p.id = ANY(r.post_ids)
                  WHERE r.subscription_id = $1 AND r.period = $2 AND r.done_at IS NULL
                 ON CONFLICT DO NOTHING",
                &[&subscription_id, &period],
            )
            .await
            .op(OP)?;
        tx.execute(
            "UPDATE digest_runs SET done_at = now() WHERE subscription_id = $1 AND period = $2",
            &[&subscription_id, &period],
        )
        .await
        .op(OP)?;
        tx.execute(
            "UPDATE subscriptions SET digest_due_at = $2 WHERE id = $1 AND digest IS NOT NULL",
            &[&subscription_id, &next_due],
        )
        .await
        .op(OP)?;
        // The last digest of one turned off: the setting goes (its trigger
        // tells every registry to stop holding).
        tx.execute(
            "UPDATE subscriptions SET digest = NULL, digest_due_at = NULL
              WHERE id = $1 AND digest->>'every' = 'closing'",
            &[&subscription_id],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(n)
    }
}
