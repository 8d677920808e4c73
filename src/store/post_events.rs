//! Edits and deletions of source posts (`post_events`, what was applied of
//! each: `post_event_applied`), the per-subscription `edits`/`deletions`
//! settings, and history on subscribe (`backfills`). Migration 0010.

use std::sync::Arc;

use kuryer_actors::model::{ActiveSubscription, Post};

use super::error::OpContext;
use super::pending::post_at;
use super::subscriptions::{parse_kind, parse_mode};
use super::{Store, StoreError};

/// Column list of a post, in the order `post_at` reads (0–10; the relay
/// ids follow at 11).
const POST_COLS: &str = "p.channel_id, p.message_ids, p.album_id, p.source_chat_id,
       p.channel_username, p.text, p.entities::text, p.media, p.copyable,
       COALESCE(p.published_at, p.detected_at), p.detected_at";

/// What an edit of a source post does to a subscription's copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditsMode {
    /// Edit the copies.
    Mirror,
    /// Leave them.
    Ignore,
    /// Send the edited post as a new copy.
    Repost,
}

impl EditsMode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mirror => "mirror",
            Self::Ignore => "ignore",
            Self::Repost => "repost",
        }
    }
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mirror" => Some(Self::Mirror),
            "ignore" => Some(Self::Ignore),
            "repost" => Some(Self::Repost),
            _ => None,
        }
    }
}

/// Whether a deleted source post deletes the copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionsMode {
    /// Delete them.
    Mirror,
    /// Leave them.
    Ignore,
}

impl DeletionsMode {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mirror => "mirror",
            Self::Ignore => "ignore",
        }
    }
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mirror" => Some(Self::Mirror),
            "ignore" => Some(Self::Ignore),
            _ => None,
        }
    }
}

/// A subscription's mirror settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MirrorSettings {
    /// On edits.
    pub edits: EditsMode,
    /// On deletions.
    pub deletions: DeletionsMode,
}

/// An edit or deletion of a source message, as queued.
#[derive(Debug, Clone, PartialEq)]
pub struct PostEvent {
    /// `post_events.id`: the version (later edits have higher ids).
    pub id: i64,
    /// `channels.id`.
    pub channel_id: i64,
    /// The source message edited or deleted.
    pub message_id: i32,
    /// True: deleted; false: edited.
    pub delete: bool,
    /// The message as edited.
    pub text: Option<String>,
    /// Its entities (Bot API JSON).
    pub entities: Option<String>,
    /// Its media kind (`photo`, …).
    pub media: Option<String>,
    /// A Bot API file id of the media, when the update carried one.
    pub file_id: Option<String>,
    /// When it arrived.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One subscription's side of an event: its copy, if any.
#[derive(Debug, Clone)]
pub struct EventTarget {
    /// The subscription as the limiter needs it.
    pub sub: Arc<ActiveSubscription>,
    /// Its mirror settings.
    pub settings: MirrorSettings,
    /// The outcome row's status (`sent`, `failed`, …); `None`: no row yet.
    pub status: Option<String>,
    /// The copy's ids in the destination, in the post's message order.
    pub sent_ids: Vec<i64>,
    /// The chat the copy is in (the destination may have moved since).
    pub sent_chat_id: Option<i64>,
}

/// An event's post and the subscriptions it concerns (not yet applied).
#[derive(Debug, Clone)]
pub struct EventTargets {
    /// The post, as recorded.
    pub post: Post,
    /// Subscriptions of its channel with no applied row for the event.
    pub targets: Vec<EventTarget>,
}

/// An applied (or refused, or skipped) event for a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRow {
    /// `post_events.id`.
    pub event_id: i64,
    /// `subscriptions.id`.
    pub subscription_id: i64,
    /// `done`, `refused` or `skipped`.
    pub status: &'static str,
    /// A repost's new message.
    pub sent_message_id: Option<i64>,
    /// Why refused or skipped.
    pub error: Option<String>,
}

/// What asking for a backfill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillAsked {
    /// Asked; its id.
    Asked(i64),
    /// The subscription has one still running: no second one.
    AlreadyOpen,
    /// Its user asked for the day's allowance already.
    OverBudget,
    /// No such subscription.
    NoSubscription,
}

/// A backfill not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    /// `backfills.id`.
    pub id: i64,
    /// The subscription.
    pub subscription_id: i64,
    /// How many posts.
    pub count: i32,
    /// The newest message id it covers (0: asked before the channel was
    /// read; then where its reading started).
    pub upto_message_id: i64,
    /// The channel's history below it was read for it (0015).
    pub history_read: bool,
}

const ACTIVE_SUB_COLS: &str = "s.id, s.channel_id, u.telegram_id, d.id, d.chat_id, d.kind, s.mode,
       s.filters::text, d.bot_id, s.transform::text,
       COALESCE(CASE WHEN s.digest IS NOT NULL THEN '{\"hold\":\"digest\"}' END, s.quiet::text),
       NULLIF(d.message_thread_id, 0)";
/// How many columns [`ACTIVE_SUB_COLS`] has.
const ACTIVE_SUB_LEN: usize = 12;

fn active_sub_at(r: &tokio_postgres::Row, at: usize) -> Result<ActiveSubscription, StoreError> {
    const OP: &str = "read subscription";
    Ok(ActiveSubscription {
        subscription_id: r.get(at),
        channel_id: r.get(at + 1),
        user_telegram_id: r.get(at + 2),
        destination_id: r.get(at + 3),
        chat_id: r.get(at + 4),
        destination_kind: parse_kind(OP, r.get(at + 5))?,
        mode: parse_mode(OP, r.get(at + 6))?,
        filters: r.get(at + 7),
        bot_id: r.get(at + 8),
        transform: r.get(at + 9),
        quiet: r.get(at + 10),
        thread_id: r.get(at + 11),
    })
}

fn settings_at(r: &tokio_postgres::Row, at: usize) -> Result<MirrorSettings, StoreError> {
    let bad = |s: &str| StoreError::Data {
        op: "read mirror settings",
        message: format!("unknown setting {s:?}"),
    };
    let e: &str = r.get(at);
    let d: &str = r.get(at + 1);
    Ok(MirrorSettings {
        edits: EditsMode::parse(e).ok_or_else(|| bad(e))?,
        deletions: DeletionsMode::parse(d).ok_or_else(|| bad(d))?,
    })
}

impl Store {
    /// Queues an edit (`delete` false, with the message as edited) or a
    /// deletion of a source message; returns its id.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_post_event(
        &self,
        channel_id: i64,
        message_id: i32,
        delete: bool,
        text: Option<&str>,
        entities: Option<&serde_json::Value>,
        media: Option<&str>,
        file_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        const OP: &str = "record post event";
        let c = self.conn(OP).await?;
        let row = c
            .query_one(
                "INSERT INTO post_events (channel_id, message_id, kind, text, entities, media, file_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &channel_id,
                    &i64::from(message_id),
                    &if delete { "delete" } else { "edit" },
                    &text,
                    &entities,
                    &media,
                    &file_id,
                ],
            )
            .await
            .op(OP)?;
        Ok(row.get(0))
    }

    /// Queues deletions of source messages, one statement.
    pub async fn record_post_deletions(
        &self,
        channel_id: i64,
        message_ids: &[i32],
    ) -> Result<(), StoreError> {
        const OP: &str = "record post deletions";
        if message_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = message_ids.iter().map(|&i| i64::from(i)).collect();
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO post_events (channel_id, message_id, kind)
             SELECT $1, m, 'delete' FROM unnest($2::bigint[]) AS m WHERE m > 0",
            &[&channel_id, &ids],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Events not yet done, oldest first.
    pub async fn pending_post_events(&self, limit: i64) -> Result<Vec<PostEvent>, StoreError> {
        const OP: &str = "read pending post events";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id, channel_id, message_id, kind = 'delete', text, entities::text, media,
                        file_id, created_at
                   FROM post_events WHERE done_at IS NULL ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| PostEvent {
                id: r.get(0),
                channel_id: r.get(1),
                message_id: r.get::<_, i64>(2) as i32,
                delete: r.get(3),
                text: r.get(4),
                entities: r.get(5),
                media: r.get(6),
                file_id: r.get(7),
                created_at: r.get(8),
            })
            .collect())
    }

    /// An edit of a one-message post becomes its recorded text: a copy not
    /// sent yet (held by quiet hours or a digest, owed after a crash) goes
    /// out edited, and a digest lists the new words. The media stays as
    /// recorded (a relay copy keeps the media it was forwarded with).
    /// Returns whether the post was changed.
    pub async fn record_edit_in_post(&self, e: &PostEvent) -> Result<bool, StoreError> {
        const OP: &str = "record an edit in its post";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "UPDATE posts SET text = $3, entities = $4::text::jsonb
                  WHERE channel_id = $1 AND message_id = $2
                    AND cardinality(message_ids) = 1",
                &[
                    &e.channel_id,
                    &i64::from(e.message_id),
                    &e.text,
                    &e.entities,
                ],
            )
            .await
            .op(OP)?;
        Ok(n > 0)
    }

    /// Marks events done with how they ended.
    pub async fn finish_post_events(&self, ids: &[i64], outcome: &str) -> Result<(), StoreError> {
        const OP: &str = "finish post events";
        if ids.is_empty() {
            return Ok(());
        }
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE post_events SET done_at = now(), outcome = $2
              WHERE id = ANY($1) AND done_at IS NULL",
            &[&ids, &outcome],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// `channels.id` of a channel by its Telegram chat id.
    pub async fn channel_id_by_chat(&self, chat_id: i64) -> Result<Option<i64>, StoreError> {
        const OP: &str = "find channel by chat id";
        let c = self.conn(OP).await?;
        let r = c
            .query_opt(
                "SELECT id FROM channels WHERE telegram_id = $1",
                &[&chat_id],
            )
            .await
            .op(OP)?;
        Ok(r.map(|r| r.get(0)))
    }

    /// The newest recorded message id of a channel (its high-water mark).
    pub async fn channel_mark(&self, channel_id: i64) -> Result<i64, StoreError> {
        const OP: &str = "read channel mark";
        let c = self.conn(OP).await?;
        let r = c
            .query_opt(
                "SELECT last_message_id FROM channels WHERE id = $1",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(r.map_or(0, |r| r.get(0)))
    }

    /// The recorded post holding `message_id` and every subscription of its
    /// channel that has no applied row for `event_id` yet, with its copy.
    /// `None`: no such post recorded (yet).
    pub async fn post_event_targets(
        &self,
        channel_id: i64,
        message_id: i32,
        event_id: i64,
    ) -> Result<Option<EventTargets>, StoreError> {
        const OP: &str = "read post event targets";
        let c = self.conn(OP).await?;
        let post = c
            .query_opt(
                &format!(
                    "SELECT {POST_COLS}, p.relay_message_ids, p.history FROM posts p
                      WHERE p.channel_id = $1 AND $2 = ANY(p.message_ids)
                        AND p.source_chat_id IS NOT NULL
                      ORDER BY p.message_id DESC LIMIT 1"
                ),
                &[&channel_id, &i64::from(message_id)],
            )
            .await
            .op(OP)?;
        let Some(post) = post else { return Ok(None) };
        // A history post was sent only where a backfill asked for it: no
        // other subscription has a copy to wait for.
        let history: bool = post.get(12);
        let post = resumed_post_with_relay(&post);
        let rows = c
            .query(
                &format!(
                    "SELECT {ACTIVE_SUB_COLS}, s.edits, s.deletions, f.status,
                            COALESCE(f.sent_message_ids, ARRAY[f.sent_message_id]),
                            f.destination_chat_id
                       FROM subscriptions s
                       JOIN users u ON u.id = s.user_id
                       JOIN destinations d ON d.id = s.destination_id
                       LEFT JOIN forwarded_messages f
                              ON f.subscription_id = s.id AND f.channel_id = s.channel_id
                             AND f.source_message_id = $2 AND f.post_day = $3
                      WHERE s.channel_id = $1
                        AND NOT EXISTS (SELECT 1 FROM post_event_applied a
                                         WHERE a.event_id = $4 AND a.subscription_id = s.id)
                        AND (f.status IS NOT NULL OR (s.is_active AND d.is_active
                                                      AND s.created_at <= $5 AND NOT $6))
                      ORDER BY s.id"
                ),
                &[
                    &channel_id,
                    &i64::from(post.message_ids[0]),
                    &post.post_day(),
                    &event_id,
                    &post.detected_at,
                    &history,
                ],
            )
            .await
            .op(OP)?;
        let mut targets = Vec::with_capacity(rows.len());
        for r in &rows {
            const N: usize = ACTIVE_SUB_LEN;
            let ids: Option<Vec<Option<i64>>> = r.get(N + 3);
            targets.push(EventTarget {
                sub: Arc::new(active_sub_at(r, 0)?),
                settings: settings_at(r, N)?,
                status: r.get(N + 2),
                sent_ids: ids.unwrap_or_default().into_iter().flatten().collect(),
                sent_chat_id: r.get(N + 4),
            });
        }
        Ok(Some(EventTargets { post, targets }))
    }

    /// Records what was done of events per subscription; a row already
    /// there is kept (the first outcome stands).
    pub async fn record_applied(&self, rows: &[AppliedRow]) -> Result<(), StoreError> {
        const OP: &str = "record applied post events";
        if rows.is_empty() {
            return Ok(());
        }
        let event: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        let sub: Vec<i64> = rows.iter().map(|r| r.subscription_id).collect();
        let status: Vec<&str> = rows.iter().map(|r| r.status).collect();
        let sent: Vec<Option<i64>> = rows.iter().map(|r| r.sent_message_id).collect();
        let error: Vec<Option<&str>> = rows.iter().map(|r| r.error.as_deref()).collect();
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO post_event_applied (event_id, subscription_id, status, sent_message_id, error)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])
             ON CONFLICT DO NOTHING",
            &[&event, &sub, &status, &sent, &error],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// A subscription's mirror settings (`None`: no such subscription of `owner`).
    pub async fn mirror_settings(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
    ) -> Result<Option<MirrorSettings>, StoreError> {
        const OP: &str = "read mirror settings";
        let c = self.conn(OP).await?;
        let r = c
            .query_opt(
                "SELECT s.edits, s.deletions FROM subscriptions s JOIN users u ON u.id = s.user_id
                  WHERE s.id = $1 AND s.removed_at IS NULL
                    AND ($2::bigint IS NULL OR u.telegram_id = $2)",
                &[&subscription_id, &owner],
            )
            .await
            .op(OP)?;
        r.map(|r| settings_at(&r, 0)).transpose()
    }

    /// The mirror settings of every live subscription of user `user`
    /// (Telegram id), by subscription id: one query for a whole list.
    pub async fn mirror_settings_of_user(
        &self,
        user: i64,
    ) -> Result<std::collections::HashMap<i64, MirrorSettings>, StoreError> {
        const OP: &str = "read a user's mirror settings";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT s.edits, s.deletions, s.id FROM subscriptions s JOIN users u ON u.id = s.user_id
                  WHERE u.telegram_id = $1 AND s.removed_at IS NULL",
                &[&user],
            )
            .await
            .op(OP)?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i64>(2), settings_at(r, 0)?)))
            .collect()
    }

    /// Sets either or both mirror settings; false: no such subscription (of `owner`).
    pub async fn set_mirror_settings(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
        edits: Option<EditsMode>,
        deletions: Option<DeletionsMode>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "change mirror settings";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "UPDATE subscriptions s
                    SET edits = COALESCE($3, s.edits), deletions = COALESCE($4, s.deletions),
                        updated_at = now()
                   FROM users u
                  WHERE s.id = $1 AND u.id = s.user_id AND s.removed_at IS NULL
                    AND ($2::bigint IS NULL OR u.telegram_id = $2)",
                &[
                    &subscription_id,
                    &owner,
                    &edits.map(EditsMode::as_str),
                    &deletions.map(DeletionsMode::as_str),
                ],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// Asks for the last `count` posts of the subscription's channel (as
    /// recorded now) to be sent to it. A subscription has one open backfill
    /// at a time; `daily_max`, when given, bounds the backfills its user
    /// asked for in the last day.
    pub async fn request_backfill(
        &self,
        subscription_id: i64,
        count: i32,
        daily_max: Option<i64>,
    ) -> Result<BackfillAsked, StoreError> {
        const OP: &str = "request backfill";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "WITH sub AS (
                   SELECT s.id, s.user_id, ch.last_message_id FROM subscriptions s
                     JOIN channels ch ON ch.id = s.channel_id WHERE s.id = $1),
                 today AS (
                   SELECT count(*) AS n FROM backfills b
                     JOIN subscriptions s ON s.id = b.subscription_id
                    WHERE s.user_id = (SELECT user_id FROM sub)
                      AND b.created_at > now() - interval '1 day'),
                 open AS (
                   SELECT EXISTS (SELECT 1 FROM backfills
                                   WHERE subscription_id = $1 AND done_at IS NULL) AS open),
                 asked AS (
                   INSERT INTO backfills (subscription_id, count, upto_message_id)
                   SELECT sub.id, $2, sub.last_message_id FROM sub, today, open
                    WHERE NOT open.open AND ($3::bigint IS NULL OR today.n < $3)
                   ON CONFLICT (subscription_id) WHERE done_at IS NULL DO NOTHING
                   RETURNING id)
                 SELECT (SELECT id FROM asked), today.n,
                        EXISTS (SELECT 1 FROM sub)
                   FROM today",
                &[&subscription_id, &count, &daily_max],
            )
            .await
            .op(OP)?;
        let Some(r) = row else {
            return Ok(BackfillAsked::NoSubscription);
        };
        let (id, today, exists): (Option<i64>, i64, bool) = (r.get(0), r.get(1), r.get(2));
        Ok(match id {
            Some(id) => BackfillAsked::Asked(id),
            None if !exists => BackfillAsked::NoSubscription,
            None if daily_max.is_some_and(|max| today >= max) => BackfillAsked::OverBudget,
            // One is open (or was opened by a concurrent request meanwhile).
            None => BackfillAsked::AlreadyOpen,
        })
    }

    /// Backfills not finished, oldest first.
    pub async fn pending_backfills(&self) -> Result<Vec<Backfill>, StoreError> {
        const OP: &str = "read pending backfills";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id, subscription_id, count, upto_message_id, history_read_at IS NOT NULL
                   FROM backfills WHERE done_at IS NULL ORDER BY id LIMIT 1000",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| Backfill {
                id: r.get(0),
                subscription_id: r.get(1),
                count: r.get(2),
                upto_message_id: r.get(3),
                history_read: r.get(4),
            })
            .collect())
    }

    /// The posts of a backfill still to send, oldest first, with the
    /// subscription (`None` when it is no longer active); posts with an
    /// outcome for the subscription (sent before, by this backfill or
    /// another, or as new posts) are left out.
    pub async fn backfill_posts(
        &self,
        b: &Backfill,
    ) -> Result<Option<(Arc<ActiveSubscription>, Vec<Post>)>, StoreError> {
        const OP: &str = "read backfill posts";
        let c = self.conn(OP).await?;
        let sub = c
            .query_opt(
                &format!(
                    "SELECT {ACTIVE_SUB_COLS} FROM subscriptions s
                       JOIN users u ON u.id = s.user_id
                       JOIN destinations d ON d.id = s.destination_id
                      WHERE s.id = $1 AND s.is_active AND d.is_active"
                ),
                &[&b.subscription_id],
            )
            .await
            .op(OP)?;
        let Some(sub) = sub else { return Ok(None) };
        let sub = Arc::new(active_sub_at(&sub, 0)?);
        let rows = c
            .query(
                &format!(
                    "SELECT * FROM (
                       SELECT {POST_COLS}, p.relay_message_ids, p.message_id AS first
                         FROM posts p
                        WHERE p.channel_id = $1 AND p.message_id <= $2
                          AND p.source_chat_id IS NOT NULL
                        ORDER BY p.message_id DESC LIMIT $3) last
                     WHERE NOT EXISTS (
                       SELECT 1 FROM forwarded_messages f
                        WHERE f.subscription_id = $4 AND f.channel_id = $1
                          AND f.source_message_id = last.first
                          AND f.post_day = (last.detected_at AT TIME ZONE 'UTC')::date
                          AND f.status <> 'ambiguous')
                     ORDER BY last.first"
                ),
                &[
                    &sub.channel_id,
                    &b.upto_message_id,
                    &i64::from(b.count),
                    &sub.subscription_id,
                ],
            )
            .await
            .op(OP)?;
        Ok(Some((
            sub,
            rows.iter().map(resumed_post_with_relay).collect(),
        )))
    }

    /// Marks a backfill finished.
    pub async fn finish_backfill(&self, id: i64) -> Result<(), StoreError> {
        const OP: &str = "finish backfill";
        let c = self.conn(OP).await?;
        c.execute("UPDATE backfills SET done_at = now() WHERE id = $1", &[&id])
            .await
            .op(OP)?;
        Ok(())
    }
}

/// A post row of `POST_COLS` followed by the relay ids (column 11).
fn resumed_post_with_relay(r: &tokio_postgres::Row) -> Post {
    post_at(r, 11)
}
