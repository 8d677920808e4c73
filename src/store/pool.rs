//! The `Store` handle: building the connection pools (primary and read
//! replicas) and handing out connections.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::StoreError;
use super::error::OpContext;
use crate::config::DatabaseConfig;

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
    pg.ssl_mode(super::tls::effective_ssl_mode(url)?);
    let manager = Manager::from_config(
        pg,
        super::tls::connector(cfg)?,
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
