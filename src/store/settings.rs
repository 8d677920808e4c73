//! What the bot and the API change on a subscription: pause, resume,
//! remove, the destination it goes to, its mode and filters; and the
//! figures of the admins' `/stats`.
//!
//! Every change names an `owner` (a Telegram user id) when it comes from
//! the bot, so a user can only touch their own rows (a button from another
//! user's message finds nothing); the API passes `None`.

use kuryer_actors::model::{DeliveryMode, DestinationKind};
use serde::Serialize;

use super::error::OpContext;
use super::subscriptions::{parse_kind, parse_mode};
use super::{Store, StoreError};

/// A subscription as `/list`, its settings and the API's routes show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSubscription {
    /// `subscriptions.id`.
    pub id: i64,
    /// The subscriber's Telegram id.
    pub user_id: i64,
    /// The channel's username (no `@`).
    pub channel_username: Option<String>,
    /// The channel's title, once known.
    pub channel_title: Option<String>,
    /// `pending`, `active`, `invalid` or `gone`.
    pub channel_status: String,
    /// Why the channel delivers nothing yet (`no_reader_account`,
    /// `resolving`, …); `None` while it is read.
    pub channel_status_reason: Option<String>,
    /// `destinations.id` posts go to.
    pub destination_id: i64,
    /// Its chat.
    pub destination_chat_id: i64,
    /// Its kind.
    pub destination_kind: DestinationKind,
    /// Its title (groups, channels).
    pub destination_title: Option<String>,
    /// Copy or forward.
    pub mode: DeliveryMode,
    /// The filters' JSON.
    pub filters: serde_json::Value,
    /// Paused by the user.
    pub paused: bool,
    /// Delivering now (not paused, destination active).
    pub active: bool,
    /// Paused because the channel cannot be read, and since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_paused: Option<super::ChannelPause>,
}

/// A state the user can put a subscription in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// Delivering.
    Active,
    /// Kept, not delivering.
    Paused,
    /// Gone from `/list`; `/add` brings it back.
    Removed,
}

/// What routing a subscription to another destination did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOutcome {
    /// It goes there now.
    Moved,
    /// It went there already.
    Unchanged,
    /// No such subscription or destination of this user (or inactive).
    NotFound,
}

/// Figures for the admins' `/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BotStats {
    /// Users.
    pub users: i64,
    /// Channels by status (`pending`, `active`, …).
    pub channels: Vec<(String, i64)>,
    /// Active subscriptions.
    pub subscriptions_active: i64,
    /// All subscriptions not removed.
    pub subscriptions: i64,
    /// Deliveries sent in the last hour.
    pub sent_last_hour: i64,
    /// Deliveries sent in the last 24 hours.
    pub sent_last_day: i64,
}

const USER_SUBSCRIPTION_SQL: &str = concat!(
    "
    SELECT s.id, u.telegram_id, c.username, c.title, c.status, d.id, d.chat_id, d.kind, d.title,
           s.mode, s.filters, NOT s.is_active, s.is_active AND d.is_active,
           c.unreadable, c.unreadable_since, ",
    channel_status_reason_sql!(),
    "
      FROM subscriptions s
      JOIN users u ON u.id = s.user_id
      JOIN channels c ON c.id = s.channel_id
      JOIN destinations d ON d.id = s.destination_id
     WHERE s.removed_at IS NULL"
);

fn user_subscription(r: &tokio_postgres::Row) -> Result<UserSubscription, StoreError> {
    const OP: &str = "read subscription";
    Ok(UserSubscription {
        id: r.get(0),
        user_id: r.get(1),
        channel_username: r.get(2),
        channel_title: r.get(3),
        channel_status: r.get(4),
        channel_status_reason: r.get(15),
        destination_id: r.get(5),
        destination_chat_id: r.get(6),
        destination_kind: parse_kind(OP, r.get(7))?,
        destination_title: r.get(8),
        mode: parse_mode(OP, r.get(9))?,
        filters: r.get(10),
        paused: r.get(11),
        active: r.get(12),
        channel_paused: super::ChannelPause::from_columns(r.get(13), r.get(14)),
    })
}

impl Store {
    /// A user's subscriptions that are not removed, oldest first.
    pub async fn user_subscriptions(
        &self,
        owner: i64,
    ) -> Result<Vec<UserSubscription>, StoreError> {
        const OP: &str = "list user subscriptions";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                &format!("{USER_SUBSCRIPTION_SQL} AND u.telegram_id = $1 ORDER BY s.id"),
                &[&owner],
            )
            .await
            .op(OP)?;
        rows.iter().map(user_subscription).collect()
    }

    /// One subscription (not removed), of `owner` when given.
    pub async fn user_subscription(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
    ) -> Result<Option<UserSubscription>, StoreError> {
        const OP: &str = "read subscription";
        let c = self.conn(OP).await?;
        c.query_opt(
            &format!(
                "{USER_SUBSCRIPTION_SQL} AND s.id = $1 AND ($2::bigint IS NULL OR u.telegram_id = $2)"
            ),
            &[&subscription_id, &owner],
        )
        .await
        .op(OP)?
        .as_ref()
        .map(user_subscription)
        .transpose()
    }

    /// How many subscriptions (not removed) a user has: the quota's count.
    pub async fn count_user_subscriptions(&self, owner: i64) -> Result<i64, StoreError> {
        const OP: &str = "count subscriptions";
        let c = self.conn(OP).await?;
        Ok(c.query_one(
            "SELECT count(*) FROM subscriptions s JOIN users u ON u.id = s.user_id
              WHERE u.telegram_id = $1 AND s.removed_at IS NULL",
            &[&owner],
        )
        .await
        .op(OP)?
        .get(0))
    }

    /// Puts a subscription in `state`. `Ok(None)`: no such subscription
    /// (of `owner`), or removed already; `Ok(Some(changed))` otherwise.
    pub async fn set_subscription_state(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
        state: SubState,
    ) -> Result<Option<bool>, StoreError> {
        const OP: &str = "change subscription state";
        let (active, removed) = match state {
            SubState::Active => (true, false),
            SubState::Paused => (false, false),
            SubState::Removed => (false, true),
        };
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "WITH target AS (
                    SELECT s.id, s.is_active, s.removed_at IS NOT NULL AS removed
                      FROM subscriptions s JOIN users u ON u.id = s.user_id
                     WHERE s.id = $1 AND ($2::bigint IS NULL OR u.telegram_id = $2)
                       AND s.removed_at IS NULL
                 ), upd AS (
                    UPDATE subscriptions s
                       SET is_active = $3,
                           removed_at = CASE WHEN $4 THEN now() END,
                           updated_at = now()
                      FROM target t
                     WHERE s.id = t.id AND (t.is_active <> $3 OR t.removed <> $4)
                    RETURNING s.id
                 )
                 SELECT (SELECT count(*) FROM upd) > 0 FROM target",
                &[&subscription_id, &owner, &active, &removed],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Sends a subscription's posts to another destination of its owner.
    /// A removed or paused row that already joins that user, channel and
    /// destination makes way (it is deleted: it delivers nothing).
    pub async fn route_subscription(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
        destination_id: i64,
    ) -> Result<RouteOutcome, StoreError> {
        const OP: &str = "route subscription";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        let row = tx
            .query_opt(
                "SELECT s.user_id, s.channel_id, s.destination_id
                   FROM subscriptions s
                   JOIN users u ON u.id = s.user_id
                   JOIN destinations d ON d.id = $3 AND d.owner_user_id = s.user_id AND d.is_active
                  WHERE s.id = $1 AND s.removed_at IS NULL
                    AND ($2::bigint IS NULL OR u.telegram_id = $2)
                  FOR UPDATE OF s",
                &[&subscription_id, &owner, &destination_id],
            )
            .await
            .op(OP)?;
        let Some(row) = row else {
            return Ok(RouteOutcome::NotFound);
        };
        let (user_id, channel_id, current): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if current == destination_id {
            return Ok(RouteOutcome::Unchanged);
        }
        let blocking: Option<bool> = tx
            .query_opt(
                "SELECT is_active AND removed_at IS NULL FROM subscriptions
                  WHERE user_id = $1 AND channel_id = $2 AND destination_id = $3",
                &[&user_id, &channel_id, &destination_id],
            )
            .await
            .op(OP)?
            .map(|r| r.get(0));
        if blocking == Some(true) {
            // An active twin already delivers there: this one is redundant.
            return Ok(RouteOutcome::Unchanged);
        }
        tx.execute(
            "DELETE FROM subscriptions
              WHERE user_id = $1 AND channel_id = $2 AND destination_id = $3",
            &[&user_id, &channel_id, &destination_id],
        )
        .await
        .op(OP)?;
        tx.execute(
            "UPDATE subscriptions SET destination_id = $2, updated_at = now() WHERE id = $1",
            &[&subscription_id, &destination_id],
        )
        .await
        .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(RouteOutcome::Moved)
    }

    /// Sets a subscription's mode and/or filters (already validated).
    /// False: no such subscription (of `owner`).
    pub async fn set_subscription_settings(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
        mode: Option<DeliveryMode>,
        filters: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "change subscription settings";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "UPDATE subscriptions s
                    SET mode = COALESCE($3, s.mode), filters = COALESCE($4, s.filters),
                        updated_at = now()
                   FROM users u
                  WHERE s.id = $1 AND u.id = s.user_id AND s.removed_at IS NULL
                    AND ($2::bigint IS NULL OR u.telegram_id = $2)",
                &[
                    &subscription_id,
                    &owner,
                    &mode.map(DeliveryMode::as_str),
                    &filters,
                ],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// The figures of `/stats`.
    pub async fn bot_stats(&self) -> Result<BotStats, StoreError> {
        const OP: &str = "read statistics";
        let c = self.conn(OP).await?;
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM users),
                        (SELECT count(*) FROM subscriptions WHERE is_active),
                        (SELECT count(*) FROM subscriptions WHERE removed_at IS NULL),
                        (SELECT count(*) FROM forwarded_messages
                          WHERE status = 'sent' AND created_at > now() - interval '1 hour'),
                        (SELECT count(*) FROM forwarded_messages
                          WHERE status = 'sent' AND created_at > now() - interval '1 day')",
                &[],
            )
            .await
            .op(OP)?;
        let channels = c
            .query(
                "SELECT status, count(*) FROM channels GROUP BY status ORDER BY status",
                &[],
            )
            .await
            .op(OP)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(BotStats {
            users: row.get(0),
            channels,
            subscriptions_active: row.get(1),
            subscriptions: row.get(2),
            sent_last_hour: row.get(3),
            sent_last_day: row.get(4),
        })
    }
}
