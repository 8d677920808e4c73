//! What every benchmark run needs: its throw-away database, the process's own
//! CPU time and peak memory, PostgreSQL's statistics, and the machine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use anyhow::Context as _;
use kuryer::config::{Config, DatabaseConfig};
use kuryer::secret::SecretUrl;
use kuryer_sim::process::{FakeProcess, FakeSpec};
use kuryer_sim::throwaway_db::{PgStats, ThrowawayDb, with_dbname};

/// A throw-away database for one run (the simulator's helper) and the
/// daemon's configuration pointing at it.
pub(crate) struct BenchDb {
    db: ThrowawayDb,
    /// Configuration pointing at it (no replicas).
    pub(crate) cfg: DatabaseConfig,
}

impl BenchDb {
    /// Creates an empty database `kuryer_bench_<tag>_…` on the configured server.
    pub(crate) async fn create(cfg: &Config, tag: &str) -> anyhow::Result<Self> {
        let db = ThrowawayDb::create(cfg.database.url.expose(), &format!("kuryer_bench_{tag}"))
            .await
            // The error of a failed connection may hold the URL: name the key.
            .map_err(|e| anyhow::anyhow!("creating a database on database.url: {e}"))?;
        let mut db_cfg = cfg.database.clone();
        db_cfg.url = SecretUrl::new(db.url().to_owned());
        db_cfg.replica_urls.clear();
        Ok(Self { db, cfg: db_cfg })
    }

    /// Its name.
    pub(crate) fn name(&self) -> &str {
        self.db.name()
    }

    /// Transactions and server-side statement time of this database so far.
    pub(crate) async fn stats(&self) -> anyhow::Result<PgStats> {
        Ok(self.db.stats().await?)
    }

    /// Drops the database, whatever state it is in.
    pub(crate) async fn drop_db(self) {
        self.db.drop_now().await;
    }
}

/// Starts the simulated Telegram as a child process (this binary's hidden
/// `fake-telegram`), so its bookkeeping is not counted in the run's memory.
pub(crate) fn spawn_fake(spec: &FakeSpec) -> anyhow::Result<FakeProcess> {
    let exe = std::env::current_exe().context("locating the kuryer-bench binary")?;
    FakeProcess::spawn(&exe, &["fake-telegram"], spec)
}

/// Waits until the sessions of a closed pool have reported their statistics.
pub(crate) async fn settle_stats() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// CPU time (user + system) of this process so far, seconds.
pub(crate) fn cpu_seconds() -> f64 {
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
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Machine {
    /// CPU model name.
    pub(crate) cpu: String,
    /// Logical CPUs available to the process.
    pub(crate) cores: usize,
    /// Total memory, GiB.
    pub(crate) memory_gib: f64,
    /// Kernel release.
    pub(crate) kernel: String,
    /// PostgreSQL server version.
    pub(crate) postgres: String,
    /// Build profile of this binary.
    pub(crate) profile: String,
}

/// Reads the machine's description (PostgreSQL's version through `cfg`).
pub(crate) async fn machine(cfg: &Config) -> Machine {
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
    let admin = with_dbname(cfg.database.url.expose(), "postgres");
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
pub(crate) struct Spread {
    /// Smallest.
    pub(crate) min: f64,
    /// Median (mean of the middle two for an even count).
    pub(crate) median: f64,
    /// Largest.
    pub(crate) max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
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
