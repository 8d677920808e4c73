//! `/link` codes and destination ownership (migration 0023): a user's one
//! live code (kept as its hash, with an expiry), wrong codes counted per
//! chat, and a group or channel taken back from an owner who is no longer
//! its admin.

use std::time::Duration;

use super::error::OpContext;
use super::{Store, StoreError};

/// A destination and its owner, as the ownership check needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationOwner {
    /// `destinations.id`.
    pub destination_id: i64,
    /// The owner's Telegram id.
    pub owner_telegram_id: i64,
    /// The owner's language.
    pub owner_language: String,
    /// The bot the owner started.
    pub owner_bot_id: Option<i64>,
    /// The chat's title.
    pub title: Option<String>,
    /// Active now.
    pub active: bool,
}

/// What [`Store::drop_destination_owner`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedOwner {
    /// Subscriptions moved to the owner's private chat.
    pub moved: Vec<i64>,
    /// Subscriptions removed (the owner already had the same channel in
    /// their private chat).
    pub removed: Vec<i64>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Makes `code_hash` the one live link code of `owner_telegram_id`
    /// (replacing any earlier one) until `ttl` from now; false when the
    /// user is unknown. Expired codes of everyone are forgotten on the way.
    pub async fn issue_link_code(
        &self,
        owner_telegram_id: i64,
        code_hash: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "issue link code";
        let c = self.conn(OP).await?;
        c.execute("DELETE FROM link_codes WHERE expires_at < now()", &[])
            .await
            .op(OP)?;
        let n = c
            .execute(
                "INSERT INTO link_codes (user_id, code_hash, expires_at)
                 SELECT id, $2, now() + make_interval(secs => $3)
                   FROM users WHERE telegram_id = $1
                 ON CONFLICT (user_id) DO UPDATE
                    SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at",
                &[&owner_telegram_id, &code_hash, &secs(ttl)],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// Uses up the live code whose hash is `code_hash`: its owner's
    /// Telegram id, or `None` when no such code is live.
    pub async fn take_link_code(&self, code_hash: &[u8]) -> Result<Option<i64>, StoreError> {
        const OP: &str = "take link code";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "WITH taken AS (
                   DELETE FROM link_codes WHERE code_hash = $1 RETURNING user_id, expires_at)
                 SELECT u.telegram_id FROM taken JOIN users u ON u.id = taken.user_id
                  WHERE taken.expires_at > now()",
                &[&code_hash],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Wrong codes posted in `chat_id` within the current window (a window
    /// older than `window` counts none).
    pub async fn link_failures(&self, chat_id: i64, window: Duration) -> Result<i32, StoreError> {
        const OP: &str = "read link failures";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT failures FROM link_failures
                  WHERE chat_id = $1 AND window_start > now() - make_interval(secs => $2)",
                &[&chat_id, &secs(window)],
            )
            .await
            .op(OP)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Counts one more wrong code in `chat_id` (a new window when the last
    /// one is over); returns the count in the window. Windows a day old are
    /// forgotten on the way.
    pub async fn link_failed(&self, chat_id: i64, window: Duration) -> Result<i32, StoreError> {
        const OP: &str = "count link failure";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM link_failures WHERE window_start < now() - interval '1 day'",
            &[],
        )
        .await
        .op(OP)?;
        let row = c
            .query_one(
                "INSERT INTO link_failures (chat_id, failures, window_start)
                 VALUES ($1, 1, now())
                 ON CONFLICT (chat_id) DO UPDATE SET
                   failures = CASE WHEN link_failures.window_start
                                        > now() - make_interval(secs => $2)
                                   THEN link_failures.failures + 1 ELSE 1 END,
                   window_start = CASE WHEN link_failures.window_start
                                        > now() - make_interval(secs => $2)
                                       THEN link_failures.window_start ELSE now() END
                 RETURNING failures",
                &[&chat_id, &secs(window)],
            )
            .await
            .op(OP)?;
        Ok(row.get(0))
    }

    /// The destination in chat `chat_id` (topic `thread`, 0 for the whole
    /// chat) and its owner, active or not.
    pub async fn destination_owner(
        &self,
        (chat_id, thread): (i64, i32),
    ) -> Result<Option<DestinationOwner>, StoreError> {
        const OP: &str = "read destination owner";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "SELECT d.id, u.telegram_id, u.language, u.bot_id, d.title, d.is_active
                   FROM destinations d JOIN users u ON u.id = d.owner_user_id
                  WHERE d.chat_id = $1 AND d.message_thread_id = $2 AND d.kind <> 'private'",
                &[&chat_id, &thread],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| DestinationOwner {
            destination_id: r.get(0),
            owner_telegram_id: r.get(1),
            owner_language: r.get(2),
            owner_bot_id: r.get(3),
            title: r.get(4),
            active: r.get(5),
        }))
    }

    /// The owner of group or channel destination `destination_id` is no
    /// longer its admin: it is deactivated (`owner_not_admin`, so another
    /// admin may link it), and the owner's subscriptions routed there go
    /// back to their private chat (removed where that chat already gets
    /// the same channel). Nothing of theirs is left pointing at the chat.
    pub async fn drop_destination_owner(
        &self,
        destination_id: i64,
    ) -> Result<DroppedOwner, StoreError> {
        const OP: &str = "drop destination owner";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let Some(owner) = tx
            .query_opt(
                "UPDATE destinations SET is_active = false,
                        deactivated_reason = 'owner_not_admin', updated_at = now()
                  WHERE id = $1 AND kind <> 'private'
                 RETURNING owner_user_id",
                &[&destination_id],
            )
            .await
            .op(OP)?
        else {
            return Ok(DroppedOwner::default());
        };
        let owner: i64 = owner.get(0);
        let private: i64 = tx
            .query_one(
                "INSERT INTO destinations (chat_id, kind, owner_user_id)
                 SELECT telegram_id, 'private', id FROM users WHERE id = $1
                 ON CONFLICT (chat_id, message_thread_id) DO UPDATE
                    SET updated_at = destinations.updated_at
                 RETURNING id",
                &[&owner],
            )
            .await
            .op(OP)?
            .get(0);
        let moved = tx
            .query(
                "UPDATE subscriptions s SET destination_id = $2, updated_at = now()
                  WHERE s.destination_id = $1
                    AND NOT EXISTS (SELECT 1 FROM subscriptions o
                                     WHERE o.user_id = s.user_id AND o.channel_id = s.channel_id
                                       AND o.destination_id = $2)
                 RETURNING s.id",
                &[&destination_id, &private],
            )
            .await
            .op(OP)?;
        let removed = tx
            .query(
                "UPDATE subscriptions SET is_active = false,
                        removed_at = COALESCE(removed_at, now()), updated_at = now()
                  WHERE destination_id = $1
                 RETURNING id",
                &[&destination_id],
            )
            .await
            .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(DroppedOwner {
            moved: moved.iter().map(|r| r.get(0)).collect(),
            removed: removed.iter().map(|r| r.get(0)).collect(),
        })
    }
}
