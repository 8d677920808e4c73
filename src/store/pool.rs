//! The `Store` handle: building the connection pools (primary and read
//! replicas) and handing out connections.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};

use super::StoreError;
use super::error::OpContext;
use crate::config::{DatabaseConfig, DbConnect};

/// The PostgreSQL store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Where `pool` connects: LISTEN sessions open the same way.
    primary: Arc<DbConnect>,
    replicas: Vec<Pool>,
    next_replica: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool.status())
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

/// How long a read that must see the primary's latest commits waits for a
/// replica to replay them before it reads from the primary instead.
const REPLICA_CATCH_UP: Duration = Duration::from_secs(5);

/// `application_name` of the replica pools' sessions (the primary's are
/// `kuryer`), so `pg_stat_activity` shows which reads went where.
pub const REPLICA_APPLICATION_NAME: &str = "kuryer-replica";

/// A pool on `target` whose sessions are named `app`, sized and timed by `cfg`.
fn build_pool(target: &DbConnect, cfg: &DatabaseConfig, app: &str) -> Result<Pool, StoreError> {
    let pg = target.session(app);
    let manager = Manager::from_config(
        pg,
        super::tls::connector(target)?,
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
        // Last in, first out: the connection used most recently is handed
        // out again, so the work of a calm moment stays on a few connections.
        // Each connection keeps buffers as large as the largest statement it
        // sent (a DbWriter batch of 2,000 rows is hundreds of KiB); first in,
        // first out rotated every batch through all `pool_max` connections,
        // and each kept such buffers.
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(wait))
        .create_timeout(Some(target.connect_timeout()))
        .recycle_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

impl Store {
    /// Builds the pools. Connects lazily: the first query opens the first
    /// connection. (To create the database and apply migrations as well:
    /// [`Store::open`].)
    pub fn new(cfg: &DatabaseConfig) -> Result<Self, StoreError> {
        let primary = cfg
            .primary()
            .map_err(|e| StoreError::Config(format!("database.url: {e}")))?;
        Self::on(primary, cfg)
    }

    /// Builds the pools on `primary` (already parsed from `cfg.url`).
    pub(super) fn on(primary: DbConnect, cfg: &DatabaseConfig) -> Result<Self, StoreError> {
        let pool = build_pool(&primary, cfg, "kuryer")?;
        let replicas = cfg
            .replicas()
            .map_err(|(i, e)| StoreError::Config(format!("database.replica_urls[{i}]: {e}")))?
            .iter()
            .map(|r| build_pool(r, cfg, REPLICA_APPLICATION_NAME))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pool,
            primary: Arc::new(primary),
            replicas,
            next_replica: Default::default(),
        })
    }

    /// Where the primary pool connects.
    pub fn primary(&self) -> &DbConnect {
        &self.primary
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
    pub(super) async fn read_conn(
        &self,
        op: &'static str,
    ) -> Result<deadpool_postgres::Object, StoreError> {
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

    /// Whether read replicas are configured.
    pub(super) fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// A connection for a read that must see everything committed on the
    /// primary before the call (the registry's load): a replica once it
    /// has replayed the primary's current WAL position, waiting up to
    /// [`REPLICA_CATCH_UP`]; the primary when no replica is configured, up
    /// or caught up in time.
    pub(super) async fn read_conn_fresh(
        &self,
        op: &'static str,
    ) -> Result<deadpool_postgres::Object, StoreError> {
        if self.replicas.is_empty() {
            return self.conn(op).await;
        }
        let lsn: String = self
            .conn(op)
            .await?
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .op(op)?
            .get(0);
        let c = self.read_conn(op).await?;
        let started = std::time::Instant::now();
        loop {
            let caught_up = c
                .query_one(
                    "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .await;
            match caught_up {
                Ok(r) if r.get::<_, bool>(0) => return Ok(c),
                Ok(_) if started.elapsed() < REPLICA_CATCH_UP => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(_) => {
                    tracing::warn!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "Read replica lags behind the primary; reading from the primary."
                    );
                    return self.conn(op).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Read replica failed; reading from the primary.");
                    return self.conn(op).await;
                }
            }
        }
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
}

/// deadpool's error text, which never includes the connection string.
fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Timeout(kind) => format!("timed out ({kind:?})"),
        // With its causes: "error performing TLS handshake" alone does not
        // say that the server's certificate was not trusted. (tokio-postgres
        // errors name no password.)
        deadpool_postgres::PoolError::Backend(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
        other => other.to_string(),
    }
}
