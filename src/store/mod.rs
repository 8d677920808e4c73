//! The PostgreSQL store: a connection pool and the typed queries the daemon needs.
//!
//! Every query here is one round trip or one transaction, and none runs once
//! per subscriber: the hot paths (loading the registry, recording deliveries)
//! stream or batch.

/// The database's identity, for keys kept outside it.
mod installation;
/// Numbered migrations from `sql/`, applied with a checksum guard.
pub mod migrate;
/// Daily partitions of `forwarded_messages` and retention.
pub mod partitions;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;

use kuryer_actors::model::{
    ActiveSubscription, ChannelRef, ChannelUsername, Delivery, DeliveryMode, DestinationKind, Post,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::config::DatabaseConfig;

/// A failed store operation: which operation, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The pool could not hand out a connection (database down, pool exhausted).
    #[error("{op}: no database connection: {message}")]
    Pool { op: &'static str, message: String },
    /// The database answered with an error, or the connection broke mid-query.
    #[error("{op}: {source}")]
    Query {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The configuration cannot produce a pool (bad URL and the like).
    #[error("database configuration: {0}")]
    Config(String),
    /// The data broke an invariant the schema cannot express.
    #[error("{op}: {message}")]
    Data { op: &'static str, message: String },
}

impl StoreError {
    /// The one place that decides whether an operation is worth retrying.
    ///
    /// Retriable: no connection (pool timeout, refused, reset), connection
    /// class SQLSTATE 08, serialization failures and deadlocks (40001,
    /// 40P01), resource exhaustion (53), operator intervention such as a
    /// server shutting down (57P01..57P03), and statement cancellations by
    /// timeout (57014). Everything else — constraint violations, syntax,
    /// bad data — fails the same way again, so it is not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Pool { .. } => true,
            Self::Config(_) | Self::Data { .. } => false,
            Self::Query { source, .. } => {
                if source.is_closed() {
                    return true;
                }
                match source.code() {
                    // No SQLSTATE: retriable only when it is the connection
                    // (I/O); a conversion or protocol error fails again.
                    None => {
                        std::error::Error::source(source).is_some_and(|s| s.is::<std::io::Error>())
                    }
                    Some(code) => {
                        let c = code.code();
                        c.starts_with("08")
                            || c.starts_with("53")
                            || *code == SqlState::T_R_SERIALIZATION_FAILURE
                            || *code == SqlState::T_R_DEADLOCK_DETECTED
                            || *code == SqlState::ADMIN_SHUTDOWN
                            || *code == SqlState::CRASH_SHUTDOWN
                            || *code == SqlState::CANNOT_CONNECT_NOW
                            || *code == SqlState::QUERY_CANCELED
                    }
                }
            }
        }
    }

    /// The SQLSTATE when the database reported one.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            Self::Query { source, .. } => source.code(),
            _ => None,
        }
    }

    /// True when the error is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        self.sql_state() == Some(&SqlState::UNIQUE_VIOLATION)
    }
}

/// Attaches the operation name to a tokio-postgres error.
trait OpContext<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> OpContext<T> for Result<T, tokio_postgres::Error> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { op, source })
    }
}

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
    /// The chat posts go to.
    pub destination_chat_id: i64,
    /// Its kind.
    pub destination_kind: DestinationKind,
    /// Copy or forward.
    pub mode: DeliveryMode,
    /// False while paused or removed.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
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
}

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

/// The PostgreSQL store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    replicas: Vec<Pool>,
    next_replica: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool.status())
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

fn build_pool(url: &str, cfg: &DatabaseConfig) -> Result<Pool, StoreError> {
    let mut pg = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Config(format!("unparsable database URL: {e}")))?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    pg.application_name("kuryer");
    // Server notices ("relation already exists, skipping") are not worth a
    // log line each; warnings and errors still arrive.
    let mut options = pg.get_options().unwrap_or_default().to_owned();
    options.push_str(" -c client_min_messages=warning");
    if cfg.statement_timeout_ms > 0 {
        options.push_str(&format!(
            " -c statement_timeout={}",
            cfg.statement_timeout_ms
        ));
    }
    pg.options(options.trim_start());
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            // Fast: a broken connection shows itself on first use and the
            // caller's retry takes a fresh one; a probe query per checkout
            // would add a round trip to every operation.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let wait = Duration::from_millis(cfg.pool_wait_timeout_ms);
    Pool::builder(manager)
        .max_size(cfg.pool_max)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
        .recycle_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

impl Store {
    /// Builds the pools. Connects lazily: the first query opens the first connection.
    pub fn new(cfg: &DatabaseConfig) -> Result<Self, StoreError> {
        let pool = build_pool(cfg.url.expose(), cfg)?;
        let replicas = cfg
            .replica_urls
            .iter()
            .map(|u| build_pool(u.expose(), cfg))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pool,
            replicas,
            next_replica: Default::default(),
        })
    }

    /// A connection to the primary.
    pub async fn conn(&self, op: &'static str) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Pool {
            op,
            message: pool_error_text(&e),
        })
    }

    /// A connection for a read that tolerates replication lag: a replica in
    /// turn when any are configured, else the primary; a replica that cannot
    /// be reached falls back to the primary.
    async fn read_conn(&self, op: &'static str) -> Result<deadpool_postgres::Object, StoreError> {
        if !self.replicas.is_empty() {
            let i = self
                .next_replica
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                % self.replicas.len();
            match self.replicas[i].get().await {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    replica = i,
                    error = %pool_error_text(&e),
                    "Read replica unavailable; reading from the primary."
                ),
            }
        }
        self.conn(op).await
    }

    /// Closes the pools: connections are dropped as they come back.
    pub fn close(&self) {
        self.pool.close();
        for r in &self.replicas {
            r.close();
        }
    }

    /// Checks that the primary answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let c = self.conn("ping").await?;
        c.simple_query("SELECT 1").await.op("ping")?;
        Ok(())
    }

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
                "INSERT INTO channels (username) VALUES ($1)
                 ON CONFLICT (username) DO UPDATE SET username = EXCLUDED.username
                 RETURNING id",
                &[&channel.as_str()],
            )
            .await
            .op(OP)?
            .get(0);
        let destination_id: i64 = tx
            .query_one(
                "INSERT INTO destinations (chat_id, kind, owner_user_id) VALUES ($1, 'private', $2)
                 ON CONFLICT (chat_id) DO UPDATE
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
                    SET is_active = true,
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

    /// Every subscription of a user (active or not), oldest first; empty for
    /// an unknown user.
    pub async fn subscriptions_of_user(
        &self,
        user_telegram_id: i64,
    ) -> Result<Vec<SubscriptionView>, StoreError> {
        const OP: &str = "list subscriptions";
        let c = self.read_conn(OP).await?;
        let stmt = c
            .prepare_cached(&format!(
                "{SUBSCRIPTION_VIEW_SQL} WHERE u.telegram_id = $1 ORDER BY s.id"
            ))
            .await
            .op(OP)?;
        let rows = c.query(&stmt, &[&user_telegram_id]).await.op(OP)?;
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
                let mut c = store.conn(OP).await?;
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

    /// Records a new post and advances its channel's high-water mark in one
    /// transaction. Returns the post's id, or `None` when it was already
    /// recorded (a re-read after a crash); the mark is advanced either way.
    pub async fn record_post(&self, post: &NewPost) -> Result<Option<i64>, StoreError> {
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
            .prepare_cached(
                "WITH ins AS (
                    INSERT INTO posts (channel_id, message_id, message_ids, album_id, kind,
                                       detected_at, source_chat_id, channel_username, text,
                                       entities, media, copyable, published_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                    ON CONFLICT ON CONSTRAINT posts_unique DO NOTHING
                    RETURNING id
                 ), mark AS (
                    UPDATE channels SET last_message_id = GREATEST(last_message_id, $14),
                                        updated_at = now()
                     WHERE id = $1
                 )
                 SELECT id FROM ins",
            )
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
                ],
            )
            .await
            .op(OP)?
            .map(|r| r.get::<_, i64>(0));
        Ok(id)
    }

    /// Channels to poll: resolved and active, with at least one active
    /// subscription — or administered by our bot, whose pushed posts must be
    /// read (and so confirmed to Telegram) whether anyone subscribes or not.
    pub async fn active_channels(&self) -> Result<Vec<ChannelRef>, StoreError> {
        const OP: &str = "list active channels";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT c.id, c.telegram_id, c.username, c.bot_is_admin
                   FROM channels c
                  WHERE c.telegram_id IS NOT NULL AND c.status = 'active'
                    AND (c.bot_is_admin
                         OR EXISTS (SELECT 1 FROM subscriptions s
                                     WHERE s.channel_id = c.id AND s.is_active))
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
        // A pending channel added by username earlier becomes this one.
        let row = tx
            .query_opt(
                "UPDATE channels SET telegram_id = $1, title = COALESCE($3, title),
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
            out.push(Delivery {
                post,
                sub: Arc::new(sub),
                attempt: 0,
                dedup: Default::default(),
            });
        }
        Ok(out)
    }

    /// Deactivates a destination (bot blocked or kicked, or failing) with the reason.
    /// Returns its owner's Telegram id and whether it is the owner's private chat.
    pub async fn deactivate_destination(
        &self,
        destination_id: i64,
        reason: &str,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        const OP: &str = "deactivate destination";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "UPDATE destinations d SET is_active = false, deactivated_reason = $2,
                        updated_at = now()
                   FROM users u
                  WHERE d.id = $1 AND u.id = d.owner_user_id
                  RETURNING u.telegram_id, d.kind = 'private' AND d.chat_id = u.telegram_id",
                &[&destination_id, &reason],
            )
            .await
            .op(OP)?;
        if row.is_some() {
            c.execute(
                "UPDATE users SET is_blocked = true, updated_at = now()
                  WHERE telegram_id = (SELECT chat_id FROM destinations
                                        WHERE id = $1 AND kind = 'private')
                    AND $2 = 'blocked'",
                &[&destination_id, &reason],
            )
            .await
            .op(OP)?;
        }
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// A group became a supergroup: the destination moves to the new chat id.
    pub async fn migrate_destination(
        &self,
        old_chat_id: i64,
        new_chat_id: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "move destination";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE destinations SET chat_id = $2, kind = 'supergroup', updated_at = now()
              WHERE chat_id = $1
                AND NOT EXISTS (SELECT 1 FROM destinations WHERE chat_id = $2)",
            &[&old_chat_id, &new_chat_id],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Moves a channel's high-water mark forward (never back). Returns false
    /// when the mark was already at or past `message_id`.
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

/// Active subscriptions arriving in chunks; see [`Store::stream_active_subscriptions`].
pub struct SubscriptionStream {
    rx: mpsc::Receiver<Result<Vec<ActiveSubscription>, StoreError>>,
    fetched: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SubscriptionStream {
    /// Rows fetched from the database so far; at most three chunks ahead of
    /// what the consumer has taken.
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
           d.bot_id
      FROM subscriptions s
      JOIN users u ON u.id = s.user_id
      JOIN destinations d ON d.id = s.destination_id
     WHERE s.is_active AND d.is_active";

const SUBSCRIPTION_VIEW_SQL: &str = "
    SELECT s.id, u.telegram_id, c.username, c.telegram_id, c.title, c.status,
           d.chat_id, d.kind, s.mode, s.is_active AND d.is_active, s.created_at
      FROM subscriptions s
      JOIN users u ON u.id = s.user_id
      JOIN channels c ON c.id = s.channel_id
      JOIN destinations d ON d.id = s.destination_id";

fn subscription_view(r: &tokio_postgres::Row) -> Result<SubscriptionView, StoreError> {
    const OP: &str = "read subscription";
    Ok(SubscriptionView {
        id: r.get(0),
        user_id: r.get(1),
        channel_username: r.get(2),
        channel_id: r.get(3),
        channel_title: r.get(4),
        channel_status: r.get(5),
        destination_chat_id: r.get(6),
        destination_kind: parse_kind(OP, r.get(7))?,
        mode: parse_mode(OP, r.get(8))?,
        active: r.get(9),
        created_at: r.get(10),
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
    })
}

fn parse_kind(op: &'static str, s: &str) -> Result<DestinationKind, StoreError> {
    DestinationKind::parse(s).ok_or_else(|| StoreError::Data {
        op,
        message: format!("unknown destination kind {s:?}"),
    })
}

fn parse_mode(op: &'static str, s: &str) -> Result<DeliveryMode, StoreError> {
    DeliveryMode::parse(s).ok_or_else(|| StoreError::Data {
        op,
        message: format!("unknown delivery mode {s:?}"),
    })
}

/// deadpool's error text, which never includes the connection string.
fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Timeout(kind) => format!("timed out ({kind:?})"),
        deadpool_postgres::PoolError::Backend(e) => e.to_string(),
        other => other.to_string(),
    }
}
