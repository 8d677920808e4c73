//! What every benchmark run needs: a throw-away database, the process's own
//! CPU time and peak memory, PostgreSQL's statistics, and the machine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, DatabaseConfig};
use crate::demo;
use crate::secret::SecretUrl;
use crate::store::migrate;

/// A database that exists for one run, on the configured server.
pub struct ThrowawayDb {
    /// Its name.
    pub name: String,
    /// Configuration pointing at it (no replicas).
    pub cfg: DatabaseConfig,
    admin: SecretUrl,
}

impl ThrowawayDb {
    /// Creates an empty database `kuryer_bench_<tag>_<pid>_<random>`.
    pub async fn create(cfg: &Config, tag: &str) -> anyhow::Result<Self> {
        let name = format!(
            "kuryer_bench_{tag}_{}_{}",
            std::process::id(),
            rand::random::<u16>()
        );
        let mut db = cfg.database.clone();
        db.url = SecretUrl::new(demo::with_dbname(cfg.database.url.expose(), &name));
        db.replica_urls.clear();
        migrate::create_database_if_missing(&db).await?;
        Ok(Self {
            name,
            cfg: db,
            admin: SecretUrl::new(demo::with_dbname(cfg.database.url.expose(), "postgres")),
        })
    }

    async fn admin(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, conn) =
            tokio_postgres::connect(self.admin.expose(), tokio_postgres::NoTls).await?;
        actix_rt::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Transactions and server-side statement time of this database so far.
    /// Backends report their figures when idle (at most once a second) and
    /// when they disconnect, so read this after the pool is closed.
    pub async fn stats(&self) -> anyhow::Result<PgStats> {
        let client = self.admin().await?;
        let row = client
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

    /// Drops the database, whatever state it is in.
    pub async fn drop_db(&self) {
        if let Ok(client) = self.admin().await {
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
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

/// Waits until the sessions of a closed pool have reported their statistics.
pub async fn settle_stats() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// CPU time (user + system) of this process so far, seconds.
pub fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks; the command name
    // (field 2) may hold spaces, so count from the closing parenthesis.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        // USER_HZ is 100 on every Linux architecture kuryer runs on.
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => 0.0,
    }
}

/// Resets the peak RSS (VmHWM) to the current RSS, so the next reading is
/// the peak of what runs from now on. Linux 4.0+; ignored elsewhere.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// PostgreSQL server version.
    pub postgres: String,
    /// Build profile of this binary.
    pub profile: String,
}

/// Reads the machine's description (PostgreSQL's version through `cfg`).
pub async fn machine(cfg: &Config) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let admin = demo::with_dbname(cfg.database.url.expose(), "postgres");
    let postgres = match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            actix_rt::spawn(async move {
                let _ = conn.await;
            });
            client
                .query_one("SHOW server_version", &[])
                .await
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_default()
        }
        Err(_) => String::new(),
    };
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib,
        kernel,
        postgres,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
    }
}

/// Minimum, median and maximum of some values.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            min: v[0],
            median,
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Spread::of([]).is_none());
    }

    #[test]
    fn own_cpu_time_is_readable() {
        // Burn a little CPU so the counter has something to show.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds() >= 0.0);
    }
}
