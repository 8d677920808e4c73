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
//! the final word), and the state — up or down — is logged once per change
//! and shown by `/readyz`. The connection manager reconnects by itself; if
//! Redis was down at start, a connection is attempted again at most every
//! two seconds, so kuryer uses Redis again without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kuryer_actors::ports::Dedup;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::config::RedisConfig;

/// Timeout of one Redis command on the delivery path.
const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Dedup keys in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisDedup {
    inner: Arc<Inner>,
}

struct Inner {
    redis: crate::redis_conn::LazyRedis,
    healthy: AtomicBool,
    prefix: String,
    ttl_s: u64,
}

impl RedisDedup {
    /// A dedup layer on `cfg.url` for the database whose installation id is
    /// `installation`; connects lazily.
    pub fn new(cfg: &RedisConfig, installation: &str) -> Self {
        let client = match redis::Client::open(cfg.url.expose()) {
            Ok(c) => Some(c),
            Err(e) => {
                // Validation already checked the URL; this is unexpected.
                tracing::error!(error = %e, "Redis URL refused; dedup runs on the database alone.");
                None
            }
        };
        Self {
            inner: Arc::new(Inner {
                redis: crate::redis_conn::LazyRedis::new(
                    client,
                    Duration::from_secs(2),
                    OP_TIMEOUT,
                ),
                healthy: AtomicBool::new(true),
                prefix: format!("{}{installation}:", cfg.key_prefix),
                ttl_s: cfg.dedup_ttl_s,
            }),
        }
    }

    /// Whether the last Redis operation worked.
    pub fn is_healthy(&self) -> bool {
        self.inner.redis.configured() && self.inner.healthy.load(Ordering::Relaxed)
    }

    fn key(&self, subscription_id: i64, message_id: i32) -> String {
        format!("{}fwd:{subscription_id}:{message_id}", self.inner.prefix)
    }

    /// The connection, or `None` while Redis cannot be reached (see
    /// `redis_conn`).
    async fn connection(&self) -> Option<ConnectionManager> {
        match self.inner.redis.connection().await {
            Ok(c) => c,
            Err(why) => {
                self.set_health(false, &why);
                None
            }
        }
    }

    fn set_health(&self, ok: bool, detail: &str) {
        let was = self.inner.healthy.swap(ok, Ordering::Relaxed);
        if was && !ok {
            tracing::warn!(error = %detail, "Redis unavailable; dedup continues on the database alone.");
        } else if !was && ok {
            tracing::info!("Redis is back; dedup uses it again.");
        }
    }

    /// Checks the connection (for `/readyz`).
    pub async fn ping(&self) -> bool {
        let Some(mut c) = self.connection().await else {
            return false;
        };
        let r: Result<Result<String, _>, _> =
            tokio::time::timeout(OP_TIMEOUT, redis::cmd("PING").query_async(&mut c)).await;
        let ok = matches!(r, Ok(Ok(_)));
        self.set_health(ok, "ping failed");
        ok
    }
}

impl Dedup for RedisDedup {
    fn seen(&self, subscription_id: i64, message_id: i32) -> BoxFuture<'static, Option<i64>> {
        let this = self.clone();
        Box::pin(async move {
            let mut c = this.connection().await?;
            let key = this.key(subscription_id, message_id);
            match tokio::time::timeout(OP_TIMEOUT, c.get::<_, Option<i64>>(&key)).await {
                Ok(Ok(v)) => {
                    this.set_health(true, "");
                    v
                }
                Ok(Err(e)) => {
                    this.set_health(false, &e.to_string());
                    None
                }
                Err(_) => {
                    this.set_health(false, "timed out");
                    None
                }
            }
        })
    }

    /// One `MGET` for a post's whole fan-out.
    fn seen_many(&self, keys: Vec<(i64, i32)>) -> BoxFuture<'static, Option<Vec<Option<i64>>>> {
        let this = self.clone();
        Box::pin(async move {
            if keys.is_empty() {
                return Some(Vec::new());
            }
            let mut c = this.connection().await?;
            let mut cmd = redis::cmd("MGET");
            for (subscription_id, message_id) in &keys {
                cmd.arg(this.key(*subscription_id, *message_id));
            }
            match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<Vec<Option<i64>>>(&mut c))
                .await
            {
                Ok(Ok(v)) if v.len() == keys.len() => {
                    this.set_health(true, "");
                    Some(v)
                }
                Ok(Ok(v)) => {
                    tracing::warn!(
                        asked = keys.len(),
                        answered = v.len(),
                        "Redis answered MGET with the wrong number of values."
                    );
                    None
                }
                Ok(Err(e)) => {
                    this.set_health(false, &e.to_string());
                    None
                }
                Err(_) => {
                    this.set_health(false, "timed out");
                    None
                }
            }
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
            let Some(mut c) = this.connection().await else {
                return;
            };
            let key = this.key(subscription_id, message_id);
            let ttl = this.inner.ttl_s;
            match tokio::time::timeout(OP_TIMEOUT, c.set_ex::<_, _, ()>(&key, sent_message_id, ttl))
                .await
            {
                Ok(Ok(())) => this.set_health(true, ""),
                Ok(Err(e)) => this.set_health(false, &e.to_string()),
                Err(_) => this.set_health(false, "timed out"),
            }
        })
    }
}
