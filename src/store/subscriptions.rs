//! Subscriptions: adding them, listing them for the API, and loading the
//! active ones into the registry (one by id, or all as a stream).

use chrono::{DateTime, Utc};
use kuryer_actors::model::{ActiveSubscription, ChannelUsername, DeliveryMode, DestinationKind};
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::OpContext;
use super::{Store, StoreError};

/// The `channel_status_reason` of a channel that waits for a reader
/// account none exists of (`channel_status_reason_sql!`).
pub const NO_READER_ACCOUNT: &str = "no_reader_account";

/// A subscription as the API and `/list` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionView {
    /// `subscriptions.id`.
    pub id: i64,
    /// The subscriber's Telegram user id.
    pub user_id: i64,
    /// The channel's username, without `@` (None for channels known only by id).
    pub channel_username: Option<String>,
    /// Telegram's id of the channel, once resolved.
    pub channel_id: Option<i64>,
    /// The channel's title, once resolved.
    pub channel_title: Option<String>,
    /// `pending`, `active`, `invalid` or `gone`.
    pub channel_status: String,
    /// Why the channel delivers nothing yet (`no_reader_account`,
    /// `resolving`, `budget_exhausted_today`, …); `None` while it is read.
    pub channel_status_reason: Option<String>,
    /// `destinations.id` posts go to (`GET /destinations/{user_id}`).
    pub destination_id: i64,
    /// The chat posts go to.
    pub destination_chat_id: i64,
    /// Its kind.
    pub destination_kind: DestinationKind,
    /// Copy or forward.
    pub mode: DeliveryMode,
    /// The filters' JSON (`{}`: every post).
    pub filters: serde_json::Value,
    /// Paused by its user (or removed).
    pub paused: bool,
    /// Delivering now: neither paused nor removed, its destination active.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Text transforms (`TransformSpec`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<serde_json::Value>,
    /// Quiet hours (`QuietSpec`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet: Option<serde_json::Value>,
    /// Paused because the channel cannot be read (private, deleted, our
    /// bot no longer its admin), and since when; resumes by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_paused: Option<super::ChannelPause>,
}

/// What `add_subscription` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddedSubscription {
    /// The subscription as it now stands.
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// True when this call created it (false: it existed, and is active again).
    pub created: bool,
}

impl Store {
    /// Subscribes a user's private chat to a channel, creating the user, the
    /// channel (pending until resolved) and the destination when new.
    /// Idempotent: a second call returns the same subscription (reactivated
    /// if it had been removed or paused).
    pub async fn add_subscription(
        &self,
        user_telegram_id: i64,
        channel: &ChannelUsername,
    ) -> Result<AddedSubscription, StoreError> {
        const OP: &str = "add subscription";
        if user_telegram_id <= 0 {
            return Err(StoreError::Data {
                op: OP,
                message: format!("user id must be positive, got {user_telegram_id}"),
            });
        }
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        // `DO UPDATE … SET x = EXCLUDED.x` rather than `DO NOTHING`, so
        // RETURNING yields the row even when it already existed, also when a
        // concurrent transaction inserted it a moment ago.
        let user_id: i64 = tx
            .query_one(
                "INSERT INTO users (telegram_id) VALUES ($1)
                 ON CONFLICT (telegram_id) DO UPDATE SET is_blocked = false
                 RETURNING id",
                &[&user_telegram_id],
            )
            .await
            .op(OP)?
            .get(0);
        let channel_id: i64 = tx
            .query_one(
                "INSERT INTO channels (username, added_by_user_id) VALUES ($1, $2)
                 ON CONFLICT (username) DO UPDATE SET username = EXCLUDED.username
                 RETURNING id",
                &[&channel.as_str(), &user_id],
            )
            .await
            .op(OP)?
            .get(0);
        let destination_id: i64 = tx
            .query_one(
                "INSERT INTO destinations (chat_id, kind, owner_user_id) VALUES ($1, 'private', $2)
                 ON CONFLICT (chat_id, message_thread_id) DO UPDATE
                    SET is_active = true, deactivated_reason = NULL,
                        updated_at = CASE WHEN destinations.is_active
                                          THEN destinations.updated_at ELSE now() END
                 RETURNING id",
                &[&user_telegram_id, &user_id],
            )
            .await
            .op(OP)?
            .get(0);
        let row = tx
            .query_one(
                "INSERT INTO subscriptions (user_id, channel_id, destination_id)
                 VALUES ($1, $2, $3)
                 ON CONFLICT ON CONSTRAINT subscriptions_unique DO UPDATE
                    SET is_active = true, removed_at = NULL,
                        updated_at = CASE WHEN subscriptions.is_active
                                          THEN subscriptions.updated_at ELSE now() END
                 RETURNING id, (xmax = 0) AS created",
                &[&user_id, &channel_id, &destination_id],
            )
            .await
            .op(OP)?;
        let (subscription_id, created): (i64, bool) = (row.get(0), row.get(1));
        let view = tx
            .query_one(
                &format!("{SUBSCRIPTION_VIEW_SQL} WHERE s.id = $1"),
                &[&subscription_id],
            )
            .await
            .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(AddedSubscription {
            subscription: subscription_view(&view)?,
            created,
        })
    }

    /// Every subscription of a user (paused or not; removed ones are gone),
    /// oldest first; empty for an unknown user.
    pub async fn subscriptions_of_user(
        &self,
        user_telegram_id: i64,
    ) -> Result<Vec<SubscriptionView>, StoreError> {
        const OP: &str = "list subscriptions";
        async fn list(
            c: &deadpool_postgres::Object,
            user_telegram_id: i64,
        ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
            let stmt = c
                .prepare_cached(&format!(
                    "{SUBSCRIPTION_VIEW_SQL} WHERE u.telegram_id = $1 AND s.removed_at IS NULL ORDER BY s.id"
                ))
                .await
                .op(OP)?;
            c.query(&stmt, &[&user_telegram_id]).await.op(OP)
        }
        let c = self.read_conn(OP).await?;
        let rows = match list(&c, user_telegram_id).await {
            Ok(rows) => rows,
            // A replica that failed mid-way (its pooled session died with
            // it): the primary answers instead.
            Err(e) if self.has_replicas() => {
                tracing::warn!(error = %e, "Read replica failed; reading from the primary.");
                list(&self.conn(OP).await?, user_telegram_id).await?
            }
            Err(e) => return Err(e),
        };
        rows.iter().map(subscription_view).collect()
    }

    /// Streams every active subscription of an active destination, in chunks
    /// of at most `chunk` rows, ordered by channel.
    ///
    /// A server-side portal (cursor) fetches `chunk` rows at a time, and the
    /// bounded channel holds at most two chunks ahead of the consumer, so
    /// memory stays flat however many subscriptions there are.
    pub fn stream_active_subscriptions(&self, chunk: usize) -> SubscriptionStream {
        const OP: &str = "stream active subscriptions";
        let chunk = chunk.clamp(1, i32::MAX as usize);
        let (tx, rx) = mpsc::channel(2);
        let store = self.clone();
        let fetched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fetched_by_task = fetched.clone();
        tokio::spawn(async move {
            let result: Result<(), StoreError> = async {
                // A replica when configured, once it has every change
                // committed before this load began.
                let mut c = store.read_conn_fresh(OP).await?;
                let t = c
                    .build_transaction()
                    .read_only(true)
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .start()
                    .await
                    .op(OP)?;
                let stmt = t
                    .prepare(&format!(
                        "{ACTIVE_SUBSCRIPTION_SQL} ORDER BY s.channel_id, s.id"
                    ))
                    .await
                    .op(OP)?;
                let portal = t.bind(&stmt, &[]).await.op(OP)?;
                loop {
                    let rows = t.query_portal(&portal, chunk as i32).await.op(OP)?;
                    fetched_by_task.fetch_add(rows.len(), std::sync::atomic::Ordering::Relaxed);
                    let done = rows.len() < chunk;
                    if !rows.is_empty() {
                        let items = rows
                            .iter()
                            .map(active_subscription)
                            .collect::<Result<Vec<_>, _>>()?;
                        if tx.send(Ok(items)).await.is_err() {
                            // The consumer went away; nothing more to do.
                            return Ok(());
                        }
                    }
                    if done {
                        break;
                    }
                }
                t.commit().await.op(OP)?;
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        SubscriptionStream { rx, fetched }
    }

    /// The active subscription as the registry holds it, by id (after a change).
    pub async fn active_subscription(
        &self,
        subscription_id: i64,
    ) -> Result<Option<ActiveSubscription>, StoreError> {
        const OP: &str = "read active subscription";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                &format!("{ACTIVE_SUBSCRIPTION_SQL} AND s.id = $1"),
                &[&subscription_id],
            )
            .await
            .op(OP)?;
        row.as_ref().map(active_subscription).transpose()
    }

    /// The ids of a destination's subscriptions (any state), to bring the
    /// registry in line after the destination changed.
    pub async fn subscription_ids_of_destination(
        &self,
        destination_id: i64,
    ) -> Result<Vec<i64>, StoreError> {
        const OP: &str = "subscriptions of a destination";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT id FROM subscriptions WHERE destination_id = $1",
                &[&destination_id],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Active subscriptions arriving in chunks; see [`Store::stream_active_subscriptions`].
pub struct SubscriptionStream {
    rx: mpsc::Receiver<Result<Vec<ActiveSubscription>, StoreError>>,
    // Read only by `fetched_rows`, which exists for tests.
    #[cfg_attr(not(any(test, feature = "test-hooks")), allow(dead_code))]
    fetched: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SubscriptionStream {
    /// Rows fetched from the database so far; at most three chunks ahead of
    /// what the consumer has taken.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn fetched_rows(&self) -> usize {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<ActiveSubscription>, StoreError>> {
        self.rx.recv().await
    }
}

const ACTIVE_SUBSCRIPTION_SQL: &str = "
    SELECT s.id, s.channel_id, u.telegram_id, d.id, d.chat_id, d.kind, s.mode, s.filters::text,
           d.bot_id, s.transform::text,
           -- A digest holds every post (`Quiet::from_stored`).
           COALESCE(CASE WHEN s.digest IS NOT NULL THEN '{\"hold\":\"digest\"}' END, s.quiet::text),
           NULLIF(d.message_thread_id, 0)
      FROM subscriptions s
      JOIN users u ON u.id = s.user_id
      JOIN destinations d ON d.id = s.destination_id
     WHERE s.is_active AND d.is_active";

const SUBSCRIPTION_VIEW_SQL: &str = concat!(
    "
    SELECT s.id, u.telegram_id, c.username, c.telegram_id, c.title, c.status,
           d.chat_id, d.kind, s.mode, s.is_active AND d.is_active, s.created_at,
           d.id, s.filters, NOT s.is_active, s.transform, s.quiet,
           c.unreadable, c.unreadable_since, ",
    channel_status_reason_sql!(),
    "
      FROM subscriptions s
      JOIN users u ON u.id = s.user_id
      JOIN channels c ON c.id = s.channel_id
      JOIN destinations d ON d.id = s.destination_id"
);

fn subscription_view(r: &tokio_postgres::Row) -> Result<SubscriptionView, StoreError> {
    const OP: &str = "read subscription";
    Ok(SubscriptionView {
        id: r.get(0),
        user_id: r.get(1),
        channel_username: r.get(2),
        channel_id: r.get(3),
        channel_title: r.get(4),
        channel_status: r.get(5),
        channel_status_reason: r.get(18),
        destination_chat_id: r.get(6),
        destination_kind: parse_kind(OP, r.get(7))?,
        mode: parse_mode(OP, r.get(8))?,
        active: r.get(9),
        created_at: r.get(10),
        destination_id: r.get(11),
        filters: r.get(12),
        paused: r.get(13),
        transform: r.get(14),
        quiet: r.get(15),
        channel_paused: super::ChannelPause::from_columns(r.get(16), r.get(17)),
    })
}

fn active_subscription(r: &tokio_postgres::Row) -> Result<ActiveSubscription, StoreError> {
    const OP: &str = "stream active subscriptions";
    Ok(ActiveSubscription {
        subscription_id: r.get(0),
        channel_id: r.get(1),
        user_telegram_id: r.get(2),
        destination_id: r.get(3),
        chat_id: r.get(4),
        destination_kind: parse_kind(OP, r.get(5))?,
        mode: parse_mode(OP, r.get(6))?,
        filters: r.get(7),
        bot_id: r.get(8),
        transform: r.get(9),
        quiet: r.get(10),
        thread_id: r.get(11),
    })
}

pub(super) fn parse_kind(op: &'static str, s: &str) -> Result<DestinationKind, StoreError> {
    DestinationKind::parse(s).ok_or_else(|| StoreError::Data {
        op,
        message: format!("unknown destination kind {s:?}"),
    })
}

pub(super) fn parse_mode(op: &'static str, s: &str) -> Result<DeliveryMode, StoreError> {
    DeliveryMode::parse(s).ok_or_else(|| StoreError::Data {
        op,
        message: format!("unknown delivery mode {s:?}"),
    })
}
