//! A PostgreSQL database that exists for one run or one test: created empty
//! on a given server, dropped (`WITH (FORCE)`) when it is dropped. The one
//! helper behind `kuryer demo`'s, the benchmarks' and the tests' databases.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The URL with its database name replaced (URL or key=value form).
pub fn with_dbname(url: &str, name: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if url.contains("://") => {
            u.set_path(name);
            u.to_string()
        }
        _ => format!("{url} dbname={name}"),
    }
}

/// Connects a plain client, its connection driven in the background.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A database that exists for one run or test.
pub struct ThrowawayDb {
    name: String,
    url: String,
    admin: String,
    dropped: bool,
}

impl ThrowawayDb {
    /// Creates an empty database `<prefix>_<pid>_<n>_<random>` on the server
    /// of `server_url` (whatever database that URL names; the `postgres`
    /// database is used to create and drop it).
    pub async fn create(server_url: &str, prefix: &str) -> Result<Self, tokio_postgres::Error> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let admin = with_dbname(server_url, "postgres");
        connect(&admin)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(Self {
            url: with_dbname(server_url, &name),
            name,
            admin,
            dropped: false,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// URL of this database (a secret when the server's URL holds a password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain client on this database, for setup and assertions in SQL.
    pub async fn client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        connect(&self.url).await
    }

    /// Transactions and server-side statement time of this database so far.
    /// Backends report their figures when idle (at most once a second) and
    /// when they disconnect, so read this after the pool is closed.
    pub async fn stats(&self) -> Result<PgStats, tokio_postgres::Error> {
        let row = connect(&self.admin)
            .await?
            .query_one(
                "SELECT (xact_commit + xact_rollback)::bigint, active_time::float8
                   FROM pg_stat_database WHERE datname = $1",
                &[&self.name],
            )
            .await?;
        Ok(PgStats {
            transactions: row.get::<_, i64>(0).max(0) as u64,
            active_ms: row.get::<_, Option<f64>>(1).unwrap_or(0.0),
        })
    }

    /// Drops the database now, whatever state it is in.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.admin, &self.name).await;
    }
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(client) = connect(admin).await {
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside a runtime, which cannot be blocked on; a thread
        // with its own small runtime does the clean-up.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&admin, &name));
            }
        })
        .join();
    }
}

/// `pg_stat_database` figures of one database.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgStats {
    /// Committed plus rolled back transactions.
    pub transactions: u64,
    /// Time spent executing statements, server side (ms).
    pub active_ms: f64,
}

impl PgStats {
    /// Transactions and average server time per transaction between two readings.
    pub fn since(&self, before: &PgStats) -> (u64, f64) {
        let n = self.transactions.saturating_sub(before.transactions);
        let ms = (self.active_ms - before.active_ms).max(0.0);
        (n, if n > 0 { ms / n as f64 } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_dbname_replaces_the_database_in_both_forms() {
        assert_eq!(
            with_dbname("postgres://u:p@h:5432/old?sslmode=disable", "new"),
            "postgres://u:p@h:5432/new?sslmode=disable"
        );
        assert_eq!(
            with_dbname("host=h user=u", "new"),
            "host=h user=u dbname=new"
        );
    }
}
