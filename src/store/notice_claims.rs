//! Subscribers told once when the channel they follow
//! became private, was renamed or is gone. Claimed in `problem_notices`
//! (subject `subscription`), one row per subscription and problem, so
//! whichever process sees the problem first tells, and a restart tells
//! nothing again; a problem that ends clears its rows, so the next time
//! it happens is news again.

use super::error::OpContext;
use super::{Store, StoreError};

/// The channel's problem the notices are about.
pub const PRIVATE: &str = "channel-private";
/// The channel is gone (deleted, or its id no longer valid).
pub const GONE: &str = "channel-gone";
/// Our bot, through which a bot-admin channel's posts come, was removed
/// from it or is no longer its admin.
pub const BOT_REMOVED: &str = "channel-bot-removed";
/// The channel protects its content: its posts are sent as links.
pub const PROTECTED: &str = "channel-protected";
/// The problems that pause a channel's subscriptions (nothing of it can
/// be read). All end when its posts come again, whichever way: a good read
/// by the reader, or our bot made its admin again.
pub const PAUSING: &[&str] = &[PRIVATE, GONE, BOT_REMOVED];

/// Prefix of a rename's problem: `channel-renamed:<new name>` (a later
/// rename to another name is another problem).
pub const RENAMED: &str = "channel-renamed:";

/// Why a channel's subscriptions are paused: it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelPause {
    /// The problem: `channel-private`, `channel-gone` or
    /// `channel-bot-removed`.
    pub why: String,
    /// Since when.
    pub since: chrono::DateTime<chrono::Utc>,
}

impl ChannelPause {
    /// From the `channels.unreadable`, `unreadable_since` columns.
    pub(super) fn from_columns(
        why: Option<String>,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<Self> {
        Some(Self {
            why: why?,
            since: since?,
        })
    }
}

/// One subscription to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNotice {
    /// `subscriptions.id` (the buttons act on it).
    pub subscription_id: i64,
    /// The owner's Telegram id.
    pub user: i64,
    /// Their language code.
    pub language: String,
    /// The bot they started.
    pub bot_id: Option<i64>,
}

/// Claims `problem`'s notices for every live subscription to the channel.
const CLAIM_SQL: &str = "WITH subs AS (
                     SELECT s.id, u.telegram_id, u.language, u.bot_id
                       FROM subscriptions s JOIN users u ON u.id = s.user_id
                      WHERE s.channel_id = $1 AND s.removed_at IS NULL),
                 claimed AS (
                     INSERT INTO problem_notices (subject, subject_id, problem)
                     SELECT 'subscription', id, $2 FROM subs
                     ON CONFLICT DO NOTHING RETURNING subject_id)
                 SELECT subs.id, subs.telegram_id, subs.language, subs.bot_id
                   FROM subs JOIN claimed ON claimed.subject_id = subs.id
                  ORDER BY subs.id";

fn notices(rows: &[tokio_postgres::Row]) -> Vec<ChannelNotice> {
    rows.iter()
        .map(|r| ChannelNotice {
            subscription_id: r.get(0),
            user: r.get(1),
            language: r.get(2),
            bot_id: r.get(3),
        })
        .collect()
}

impl Store {
    /// Claims the notices of `problem` for every live subscription to the
    /// channel: returns those not told before (each claimed exactly once,
    /// in any process).
    pub async fn claim_channel_notices(
        &self,
        channel_id: i64,
        problem: &str,
    ) -> Result<Vec<ChannelNotice>, StoreError> {
        const OP: &str = "claim channel problem notices";
        let c = self.conn(OP).await?;
        let rows = c.query(CLAIM_SQL, &[&channel_id, &problem]).await.op(OP)?;
        Ok(notices(&rows))
    }

    /// The channel cannot be read because of `problem` (one of
    /// [`PAUSING`]): its subscriptions are
    /// paused (stored on the channel, since the first problem), and the
    /// notices not sent yet are claimed, in one transaction.
    pub async fn pause_channel(
        &self,
        channel_id: i64,
        problem: &str,
    ) -> Result<Vec<ChannelNotice>, StoreError> {
        const OP: &str = "pause a channel's subscriptions";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        tx.execute(
            "UPDATE channels
                SET unreadable = $2, unreadable_since = COALESCE(unreadable_since, now())
              WHERE id = $1 AND unreadable IS DISTINCT FROM $2",
            &[&channel_id, &problem],
        )
        .await
        .op(OP)?;
        let rows = tx.query(CLAIM_SQL, &[&channel_id, &problem]).await.op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(notices(&rows))
    }

    /// The channel's posts come again: the pause is lifted and the claims
    /// of [`PAUSING`] problems cleared, so a later problem is news again.
    /// Returns the subscriptions whose owners had been told (once each,
    /// however many claims they had): exactly those to tell "resumed",
    /// whichever process clears first.
    pub async fn resume_channel(&self, channel_id: i64) -> Result<Vec<ChannelNotice>, StoreError> {
        const OP: &str = "resume a channel's subscriptions";
        let problems: Vec<&str> = PAUSING.to_vec();
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "WITH lifted AS (
                     UPDATE channels SET unreadable = NULL, unreadable_since = NULL
                      WHERE id = $1 AND unreadable = ANY($2) RETURNING id),
                 cleared AS (
                     DELETE FROM problem_notices p USING subscriptions s
                      WHERE p.subject = 'subscription' AND p.subject_id = s.id
                        AND s.channel_id = $1 AND p.problem = ANY($2)
                  RETURNING s.id)
                 -- Both statements run to completion whether read or not.
                 SELECT s.id, u.telegram_id, u.language, u.bot_id
                   FROM subscriptions s JOIN users u ON u.id = s.user_id
                  WHERE s.id IN (SELECT id FROM cleared) AND s.removed_at IS NULL
                  ORDER BY s.id",
                &[&channel_id, &problems],
            )
            .await
            .op(OP)?;
        Ok(notices(&rows))
    }

    /// Why the channel's subscriptions are paused, and since when (None:
    /// they are not).
    pub async fn channel_unreadable(
        &self,
        channel_id: i64,
    ) -> Result<Option<ChannelPause>, StoreError> {
        const OP: &str = "read a channel's pause";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT unreadable, unreadable_since FROM channels WHERE id = $1",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        Ok(row.and_then(|r| ChannelPause::from_columns(r.get(0), r.get(1))))
    }

    /// The channel reads again: its private/gone notices may be news again.
    /// Returns how many rows were cleared.
    pub async fn clear_channel_notices(&self, channel_id: i64) -> Result<u64, StoreError> {
        const OP: &str = "clear channel problem notices";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM problem_notices p USING subscriptions s
              WHERE p.subject = 'subscription' AND p.subject_id = s.id
                AND s.channel_id = $1 AND p.problem IN ($2, $3)",
            &[&channel_id, &PRIVATE, &GONE],
        )
        .await
        .op(OP)
    }

    /// The channel's name on record is now `username` (None: it has none,
    /// it became private). Returns whether it changed. Another resolved
    /// channel that still has the name on record loses it; a pending row
    /// added by that name is this channel, and is folded into it. Rename
    /// notices of other names are cleared (a rename back is news again).
    pub async fn channel_renamed(
        &self,
        channel_id: i64,
        username: Option<&str>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "record a channel's new name";
        let username = username.map(str::to_ascii_lowercase);
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let old: Option<Option<String>> = tx
            .query_opt(
                "SELECT username FROM channels WHERE id = $1 FOR UPDATE",
                &[&channel_id],
            )
            .await
            .op(OP)?
            .map(|r| r.get(0));
        let Some(old) = old else {
            return Ok(false);
        };
        // Unchanged (the bot's intake stored it already): only the claims
        // of other names are cleared.
        let changed = old != username;
        if let Some(name) = username.as_ref().filter(|_| changed) {
            let pending: Option<i64> = tx
                .query_opt(
                    "SELECT id FROM channels WHERE username = $1 AND telegram_id IS NULL AND id <> $2",
                    &[name, &channel_id],
                )
                .await
                .op(OP)?
                .map(|r| r.get(0));
            if let Some(pending) = pending {
                super::channels::merge_channel_rows(&tx, pending, channel_id, OP).await?;
            }
            tx.execute(
                "UPDATE channels SET username = NULL, updated_at = now()
                  WHERE username = $1 AND id <> $2",
                &[name, &channel_id],
            )
            .await
            .op(OP)?;
        }
        if changed {
            tx.execute(
                "UPDATE channels SET username = $2, updated_at = now() WHERE id = $1",
                &[&channel_id, &username],
            )
            .await
            .op(OP)?;
        }
        let keep = format!("{RENAMED}{}", username.as_deref().unwrap_or(""));
        tx.execute(
            "DELETE FROM problem_notices p USING subscriptions s
              WHERE p.subject = 'subscription' AND p.subject_id = s.id
                AND s.channel_id = $1 AND p.problem LIKE 'channel-renamed:%'
                AND p.problem <> $2",
            &[&channel_id, &keep],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(changed)
    }
}
