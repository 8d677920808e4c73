//! One lazily made Redis connection and whether Redis is reachable, for the
//! dedup layer and the shared rate limits: the one place that knows.
//!
//! The connection is made on first use, and while Redis cannot be reached,
//! tried again at most once per `retry_every` by one caller, with no lock
//! held while it connects (connecting under the lock made every send wait
//! up to a second whenever Redis was away); the others get `None` at once
//! and go on without Redis. Every command runs through [`LazyRedis::timed`]
//! (its timeout, its outcome recorded), so the health follows the last
//! answer, and a change either way is logged once, in its user's words.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::secret::SecretUrl;

/// What a user of the connection says when Redis goes away and comes back
/// (what it does without Redis differs: dedup falls back on the database,
/// the shared limits on a share of every limit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthLog {
    /// Logged (warning, with the error) when Redis stops answering.
    pub(crate) lost: &'static str,
    /// Logged (info) when it answers again.
    pub(crate) back: &'static str,
}

/// The connection (once made), when the last attempt began, and whether the
/// last operation worked.
pub(crate) struct LazyRedis {
    client: Option<redis::Client>,
    conn: Mutex<(Option<ConnectionManager>, Option<Instant>)>,
    retry_every: Duration,
    op_timeout: Duration,
    healthy: AtomicBool,
    log: HealthLog,
}

impl LazyRedis {
    /// A connection to `url`, tried again at most every `retry_every`, each
    /// command given `op_timeout`. A URL the client refuses (validation
    /// already checked it) means no Redis: logged, then never healthy.
    pub(crate) fn open(
        url: &SecretUrl,
        retry_every: Duration,
        op_timeout: Duration,
        log: HealthLog,
    ) -> Self {
        let client = match redis::Client::open(url.expose()) {
            Ok(c) => Some(c),
            Err(e) => {
                // The client's error names no part of the URL.
                tracing::error!(error = %e, "Redis URL refused. {}", log.lost);
                None
            }
        };
        Self {
            client,
            conn: Mutex::new((None, None)),
            retry_every,
            op_timeout,
            healthy: AtomicBool::new(true),
            log,
        }
    }

    /// Whether there is a Redis and its last operation worked.
    pub(crate) fn healthy(&self) -> bool {
        self.client.is_some() && self.healthy.load(Ordering::Relaxed)
    }

    /// Records an operation's outcome; logs a change of health.
    pub(crate) fn record(&self, ok: bool, detail: &str) {
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        if was && !ok {
            tracing::warn!(error = %detail, "{}", self.log.lost);
        } else if !was && ok {
            tracing::info!("{}", self.log.back);
        }
    }

    /// Runs one command within the operation timeout and records how it
    /// went; `Err` is the reason it did not answer.
    pub(crate) async fn timed<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        let outcome = match tokio::time::timeout(self.op_timeout, command).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        match &outcome {
            Ok(_) => self.record(true, ""),
            Err(why) => self.record(false, why),
        }
        outcome
    }

    /// The connection; `None` without a client, while an attempt is
    /// throttled, or when this attempt failed (recorded as unhealthy).
    pub(crate) async fn connection(&self) -> Option<ConnectionManager> {
        let client = self.client.as_ref()?;
        {
            let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = &guard.0 {
                return Some(c.clone());
            }
            if guard.1.is_some_and(|t| t.elapsed() < self.retry_every) {
                return None;
            }
            // Claim this attempt; later callers see it and do not wait.
            guard.1 = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(self.op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.retry_every);
        match tokio::time::timeout(
            Duration::from_secs(1),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
                Some(guard.0.get_or_insert(c).clone())
            }
            Ok(Err(e)) => {
                self.record(false, &e.to_string());
                None
            }
            Err(_) => {
                self.record(false, "connect timed out");
                None
            }
        }
    }
}
