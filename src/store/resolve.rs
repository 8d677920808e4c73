//! The resolve queue: channels added by name (`pending`) waiting for a
//! reader account to look them up once, and the outcome stored for good.

use chrono::{DateTime, Utc};
use kuryer_actors::model::ChannelRef;

use super::error::OpContext;
use super::{Store, StoreError};

/// A channel waiting to be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChannel {
    /// `channels.id`.
    pub channel_id: i64,
    /// Its username (lower case, no `@`).
    pub username: String,
    /// Failed attempts so far (flood waits, network).
    pub attempts: i32,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundChannel {
    /// Telegram's bare channel id.
    pub bare_id: i64,
    /// Its access hash.
    pub access_hash: i64,
    /// Its title.
    pub title: String,
    /// Protected content.
    pub protected: bool,
}

/// Why a name does not lead to a readable channel (the `channels.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolvable {
    /// No such name.
    Invalid,
    /// A private channel.
    Private,
    /// A user, bot or group.
    NotAChannel,
}

impl Unresolvable {
    /// Its spelling in `channels.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Private => "private",
            Self::NotAChannel => "not_a_channel",
        }
    }
}

impl Store {
    /// The next pending channel whose turn has come, oldest first.
    pub async fn next_pending_channel(&self) -> Result<Option<PendingChannel>, StoreError> {
        const OP: &str = "next channel to resolve";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT id, username, resolve_attempts FROM channels
                  WHERE status = 'pending' AND telegram_id IS NULL AND username IS NOT NULL
                    AND (resolve_after IS NULL OR resolve_after <= now())
                    AND EXISTS (SELECT 1 FROM subscriptions s
                                 WHERE s.channel_id = channels.id AND s.removed_at IS NULL)
                  ORDER BY resolve_after NULLS FIRST, id LIMIT 1",
                &[],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| PendingChannel {
            channel_id: r.get(0),
            username: r.get(1),
            attempts: r.get(2),
        }))
    }

    /// Stores a resolved channel, for good. When another row already has
    /// this Telegram id (the channel was known under another name, or our
    /// bot administers it), the pending row's subscriptions move there and
    /// the pending row goes; that row takes the name. Returns the channel
    /// to read.
    pub async fn channel_resolved(
        &self,
        channel_id: i64,
        found: &FoundChannel,
    ) -> Result<ChannelRef, StoreError> {
        const OP: &str = "store resolved channel";
        let chat_id = super::accounts::bot_api_chat_id(found.bare_id);
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let username: Option<String> = tx
            .query_opt(
                "SELECT username FROM channels WHERE id = $1",
                &[&channel_id],
            )
            .await
            .op(OP)?
            .and_then(|r| r.get(0));
        let existing: Option<i64> = tx
            .query_opt(
                "SELECT id FROM channels WHERE telegram_id = $1 AND id <> $2",
                &[&chat_id, &channel_id],
            )
            .await
            .op(OP)?
            .map(|r| r.get(0));
        let target = if let Some(own) = existing {
            super::channels::merge_channel_rows(&tx, channel_id, own, OP).await?;
            tx.execute(
                "UPDATE channels SET username = $2, updated_at = now() WHERE id = $1",
                &[&own, &username],
            )
            .await
            .op(OP)?;
            own
        } else {
            channel_id
        };
        let row = tx
            .query_one(
                "UPDATE channels SET telegram_id = $2, access_hash = $3, title = $4,
                        protected = $5, status = 'active', resolved_at = now(),
                        resolve_after = NULL, updated_at = now()
                  WHERE id = $1
                  RETURNING id, telegram_id, username, bot_is_admin",
                &[
                    &target,
                    &chat_id,
                    &found.access_hash,
                    &found.title,
                    &found.protected,
                ],
            )
            .await
            .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(ChannelRef {
            channel_id: row.get(0),
            chat_id: row.get(1),
            username: row.get(2),
            bot_is_admin: row.get(3),
        })
    }

    /// Stores that the name leads nowhere readable, for good.
    pub async fn channel_unresolvable(
        &self,
        channel_id: i64,
        why: Unresolvable,
    ) -> Result<(), StoreError> {
        const OP: &str = "store unresolvable channel";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE channels SET status = $2, resolved_at = now(), resolve_after = NULL,
                    updated_at = now()
              WHERE id = $1 AND status = 'pending'",
            &[&channel_id, &why.as_str()],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Puts a lookup off until `after` (a flood wait, no account, network).
    pub async fn postpone_resolve(
        &self,
        channel_id: i64,
        after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "postpone resolve";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE channels SET resolve_after = $2, resolve_attempts = resolve_attempts + 1
              WHERE id = $1",
            &[&channel_id, &after],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Channels some live subscription wants that no reader account can
    /// read or look up (our bot is not their admin and no account is
    /// signed in): how many, and up to `sample` of their names.
    pub async fn channels_waiting_for_reader(
        &self,
        sample: i64,
    ) -> Result<(i64, Vec<String>), StoreError> {
        const OP: &str = "count channels waiting for a reader account";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                concat!(
                    "SELECT count(*) OVER (), COALESCE('@' || c.username, c.telegram_id::text)
                       FROM channels c
                      WHERE EXISTS (SELECT 1 FROM subscriptions s
                                     WHERE s.channel_id = c.id AND s.removed_at IS NULL)
                        AND ",
                    channel_status_reason_sql!(),
                    " = 'no_reader_account'
                      ORDER BY c.id LIMIT $1"
                ),
                &[&sample],
            )
            .await
            .op(OP)?;
        let n = rows.first().map_or(0, |r| r.get::<_, i64>(0));
        Ok((n, rows.iter().map(|r| r.get(1)).collect()))
    }

    /// A channel's status by name (`pending`, `active`, `invalid`, …).
    pub async fn channel_status(&self, username: &str) -> Result<Option<String>, StoreError> {
        const OP: &str = "read channel status";
        let c = self.conn(OP).await?;
        Ok(c.query_opt(
            "SELECT status FROM channels WHERE username = $1",
            &[&username.to_ascii_lowercase()],
        )
        .await
        .op(OP)?
        .map(|r| r.get(0)))
    }
}

/// A subscriber to tell how the look-up of a channel they added ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveNotice {
    /// Their Telegram user id (also the private chat's id).
    pub user: i64,
    /// Their language.
    pub language: String,
    /// The bot they started, if known.
    pub bot_id: Option<i64>,
    /// The channel's status now (`active`, `invalid`, `private`,
    /// `not_a_channel`).
    pub status: String,
}

impl Store {
    /// Marks that the subscriber was told "still checking", so they are
    /// told the outcome. Returns the channel's status when it was settled
    /// meanwhile and this call claimed the notice (the caller's reply says
    /// the outcome instead): without this second look, a look-up that ended
    /// between the subscription and the mark would never be told.
    pub async fn await_resolve_notice(
        &self,
        subscription_id: i64,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "mark resolve notice due";
        let c = self.conn(OP).await?;
        // Two statements, each its own transaction: the second must see a
        // settle committed while the first ran.
        c.execute(
            "UPDATE subscriptions SET resolve_notice_due = true
              WHERE id = $1 AND resolve_told_at IS NULL",
            &[&subscription_id],
        )
        .await
        .op(OP)?;
        Ok(c.query_opt(
            "UPDATE subscriptions s SET resolve_told_at = now()
               FROM channels ch
              WHERE s.id = $1 AND ch.id = s.channel_id AND ch.status <> 'pending'
                AND s.resolve_notice_due AND s.resolve_told_at IS NULL
          RETURNING ch.status",
            &[&subscription_id],
        )
        .await
        .op(OP)?
        .map(|r| r.get(0)))
    }

    /// The subscribers of a settled channel who were told "still checking"
    /// and not yet the outcome, marked told in the same statement, so no
    /// one is told twice whichever process settles it. One a person.
    pub async fn claim_resolve_notices(
        &self,
        channel_id: i64,
    ) -> Result<Vec<ResolveNotice>, StoreError> {
        const OP: &str = "claim resolve notices";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "UPDATE subscriptions s SET resolve_told_at = now()
                   FROM users u, channels ch
                  WHERE s.channel_id = $1 AND s.removed_at IS NULL AND s.resolve_notice_due
                    AND s.resolve_told_at IS NULL
                    AND u.id = s.user_id AND ch.id = s.channel_id AND ch.status <> 'pending'
              RETURNING u.telegram_id, u.language, u.bot_id, ch.status",
                &[&channel_id],
            )
            .await
            .op(OP)?;
        let mut out: Vec<ResolveNotice> = rows
            .iter()
            .map(|r| ResolveNotice {
                user: r.get(0),
                language: r.get(1),
                bot_id: r.get(2),
                status: r.get(3),
            })
            .collect();
        out.sort_by_key(|n| n.user);
        out.dedup_by_key(|n| n.user);
        Ok(out)
    }

    /// Settled channels with subscribers still owed the outcome (the
    /// process that settled them stopped before telling): (id, name).
    pub async fn channels_owing_resolve_notices(&self) -> Result<Vec<(i64, String)>, StoreError> {
        const OP: &str = "channels owing resolve notices";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT DISTINCT ch.id, ch.username FROM channels ch
                   JOIN subscriptions s ON s.channel_id = ch.id
                  WHERE ch.status <> 'pending' AND ch.username IS NOT NULL
                    AND s.removed_at IS NULL AND s.resolve_notice_due AND s.resolve_told_at IS NULL",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
