//! The Redis layer of dedup: `{prefix}{installation}:fwd:{subscription_id}:{message_id}`
//! holds the sent message id for `redis.dedup_ttl_s` (the seed's key, 24 h).
//!
//! `{installation}` is the database's own id (`Store::installation_id`,
//! made by `migrate`): subscription and message ids are only unique within
//! one database, so without it a second database on the same Redis — or
//! this one recreated while Redis kept its keys — would find "already
//! delivered" keys for deliveries it never made, and record them as sent
//! without sending. `redis.key_prefix` stays the operator's namespace.
//!
//! Redis is an accelerator here, never a dependency: every call has a short
//! timeout, an error means "not seen" (the database's unique constraint is
//! the final word), and the state — up or down, kept by `redis_conn` — is
//! logged once per change and shown by `/readyz`. The connection manager
//! reconnects by itself; if Redis was down at start, a connection is
//! attempted again at most every two seconds, so kuryer uses Redis again
//! without a restart.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use kuryer_actors::ports::Dedup;
use redis::AsyncCommands;

use crate::config::RedisConfig;
use crate::redis_conn::{HealthLog, LazyRedis};

/// Timeout of one Redis command on the delivery path.
const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Dedup keys in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisDedup {
    inner: Arc<Inner>,
}

struct Inner {
    redis: LazyRedis,
    prefix: String,
    ttl_s: u64,
}

impl RedisDedup {
    /// A dedup layer on `cfg.url` for the database whose installation id is
    /// `installation`; connects lazily.
    pub fn new(cfg: &RedisConfig, installation: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis: LazyRedis::open(
                    &cfg.url,
                    Duration::from_secs(2),
                    OP_TIMEOUT,
                    HealthLog {
                        lost: "Redis unavailable; dedup continues on the database alone.",
                        back: "Redis is back; dedup uses it again.",
                    },
                ),
                prefix: format!("{}{installation}:", cfg.key_prefix),
                ttl_s: cfg.dedup_ttl_s,
            }),
        }
    }

    /// Whether the last Redis operation worked.
    pub fn is_healthy(&self) -> bool {
        self.inner.redis.healthy()
    }

    fn key(&self, subscription_id: i64, message_id: i32) -> String {
        format!("{}fwd:{subscription_id}:{message_id}", self.inner.prefix)
    }

    /// Checks the connection (for `/readyz`).
    pub async fn ping(&self) -> bool {
        let lazy = &self.inner.redis;
        let Some(mut c) = lazy.connection().await else {
            return false;
        };
        lazy.timed(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .is_ok()
    }
}

impl Dedup for RedisDedup {
    fn seen(&self, subscription_id: i64, message_id: i32) -> BoxFuture<'static, Option<i64>> {
        let this = self.clone();
        Box::pin(async move {
            let lazy = &this.inner.redis;
            let mut c = lazy.connection().await?;
            let key = this.key(subscription_id, message_id);
            lazy.timed(c.get::<_, Option<i64>>(&key)).await.ok()?
        })
    }

    /// One `MGET` for a post's whole fan-out.
    fn seen_many(&self, keys: Vec<(i64, i32)>) -> BoxFuture<'static, Option<Vec<Option<i64>>>> {
        let this = self.clone();
        Box::pin(async move {
            if keys.is_empty() {
                return Some(Vec::new());
            }
            let lazy = &this.inner.redis;
            let mut c = lazy.connection().await?;
            let mut cmd = redis::cmd("MGET");
            for (subscription_id, message_id) in &keys {
                cmd.arg(this.key(*subscription_id, *message_id));
            }
            let values = lazy
                .timed(cmd.query_async::<Vec<Option<i64>>>(&mut c))
                .await
                .ok()?;
            if values.len() != keys.len() {
                tracing::warn!(
                    asked = keys.len(),
                    answered = values.len(),
                    "Redis answered MGET with the wrong number of values."
                );
                return None;
            }
            Some(values)
        })
    }

    fn mark(
        &self,
        subscription_id: i64,
        message_id: i32,
        sent_message_id: i64,
    ) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let lazy = &this.inner.redis;
            let Some(mut c) = lazy.connection().await else {
                return;
            };
            let key = this.key(subscription_id, message_id);
            let ttl = this.inner.ttl_s;
            let _ = lazy
                .timed(c.set_ex::<_, _, ()>(&key, sent_message_id, ttl))
                .await;
        })
    }
}

/// Removes every key under `prefix` on `cfg.url` (`SCAN` and `UNLINK`, a
/// batch at a time): what a throw-away run (`kuryer demo`) leaves behind.
/// Returns how many went.
pub async fn remove_keys_under(cfg: &RedisConfig, prefix: &str) -> redis::RedisResult<u64> {
    let client = redis::Client::open(cfg.url.expose())?;
    let mut c = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let pattern = format!("{prefix}*");
    let (mut cursor, mut removed) = (0u64, 0u64);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut c)
            .await?;
        if !keys.is_empty() {
            removed += redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<u64>(&mut c)
                .await?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}
