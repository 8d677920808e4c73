//! One lazily made Redis connection, shared by the dedup layer and the
//! shared rate limits: made on first use, and while Redis cannot be
//! reached, tried again at most once per `retry_every` by one caller, with
//! no lock held while it connects (connecting under the lock made every
//! send wait up to a second whenever Redis was away); the others get `None`
//! at once and go on without Redis.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The connection (once made) and when the last attempt began.
pub(crate) struct LazyRedis {
    client: Option<redis::Client>,
    conn: Mutex<(Option<ConnectionManager>, Option<Instant>)>,
    retry_every: Duration,
    op_timeout: Duration,
}

impl LazyRedis {
    /// Over `client` (`None`: Redis not configured or its URL unusable).
    pub(crate) fn new(
        client: Option<redis::Client>,
        retry_every: Duration,
        op_timeout: Duration,
    ) -> Self {
        Self {
            client,
            conn: Mutex::new((None, None)),
            retry_every,
            op_timeout,
        }
    }

    /// Whether there is a Redis to connect to at all.
    pub(crate) fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// The connection; `Ok(None)` without a client or while an attempt is
    /// throttled; `Err(why)` when this attempt failed.
    pub(crate) async fn connection(&self) -> Result<Option<ConnectionManager>, String> {
        let Some(client) = self.client.as_ref() else {
            return Ok(None);
        };
        {
            let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = &guard.0 {
                return Ok(Some(c.clone()));
            }
            if guard.1.is_some_and(|t| t.elapsed() < self.retry_every) {
                return Ok(None);
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
                Ok(Some(guard.0.get_or_insert(c).clone()))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".to_owned()),
        }
    }
}
