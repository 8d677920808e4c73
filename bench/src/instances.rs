//! The `instances` scenario: 1, 2 and 3 `kuryer run` processes (the real
//! binary next to `kuryer-bench`) over one PostgreSQL, one Redis and the
//! fake Telegram (in this process), each with a bot token of its own.
//!
//! - **real limits**: Telegram's limits in the fake and in kuryer; every
//!   instance's deliveries go through its own bot (30/s each), so k
//!   instances may send 30·k a second. Rate over the middle 80 % of the
//!   arrivals (by the fake's clock), as a fraction of that, and 429s.
//! - **limits off**: what the shared machine allows with k instances.
//! - **failover**: three instances, limits off; ten times: `kill -9` of one,
//!   one post in each channel it held, time until the first of them is
//!   delivered (by another instance, after the lease TTL); a new instance
//!   replaces it before the next kill.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuryer::config::Config;
use kuryer::secret::Secret;
use kuryer::store::{Open, Store};
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use kuryer_sim::fixtures::{self, nth_bot_token};
use serde::Serialize;

use crate::util::BenchDb;

/// The lease TTL of the failover runs (s): the take-over takes about this.
const FAILOVER_TTL_S: u64 = 5;

/// One rate measurement with k instances.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RateRun {
    pub(crate) instances: usize,
    pub(crate) deliveries: usize,
    pub(crate) per_second: f64,
    /// Allowed rate (30 × bots) with real limits; 0 with limits off.
    pub(crate) allowed_per_second: f64,
    pub(crate) rate_429: u64,
    pub(crate) duplicates: u64,
    pub(crate) lost: u64,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstancesResult {
    pub(crate) real_limits: Vec<RateRun>,
    pub(crate) limits_off: Vec<RateRun>,
    pub(crate) failover_ttl_s: u64,
    /// Kill → first delivery of a moved channel (ms), one per kill.
    pub(crate) failover_ms: Vec<f64>,
    pub(crate) failover_p50_ms: f64,
    pub(crate) failover_p99_ms: f64,
}

struct World {
    _db: BenchDb,
    url: String,
    fake: FakeTelegram,
    pairs: Vec<(i64, i64)>,
    channels: u32,
    redis_url: String,
    prefix: String,
}

struct Proc {
    name: String,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kuryer_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("kuryer");
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it with `cargo build --release -p kuryer`",
        bin.display()
    );
    Ok(bin)
}

impl World {
    async fn new(
        cfg: &Config,
        channels: u32,
        users: u32,
        subs: u32,
        bots: usize,
        limits: FakeLimits,
    ) -> anyhow::Result<Self> {
        let db = BenchDb::create(cfg, "instances").await?;
        let store = Store::open(&db.cfg, Open::fresh()).await?.store;
        store.close();
        let url = db.cfg.url.expose().to_owned();
        let client = kuryer_sim::throwaway_db::connect(&url).await?;
        let pairs = fixtures::populate(&client, channels, users, subs).await?;
        client
            .batch_execute("UPDATE channels SET bot_is_admin = true")
            .await?;
        let fake = fixtures::start_fake(limits, channels, users)?;
        for k in 0..bots {
            let token = Secret::new(nth_bot_token(k));
            fake.add_bot(token.expose());
            for i in 1..=i64::from(channels) {
                fake.set_admin(fixtures::channel_chat(i), token.expose(), true);
            }
        }
        Ok(Self {
            _db: db,
            url,
            fake,
            pairs,
            channels,
            redis_url: cfg.redis.url.expose().to_owned(),
            prefix: format!("bench:inst:{}:", rand::random::<u64>()),
        })
    }

    /// Starts instance `name` with bot `bot` alone; `limits`: Telegram's
    /// real limits, else ×1000.
    fn start(&self, name: &str, bot: usize, real_limits: bool, ttl_s: u64) -> anyhow::Result<Proc> {
        let scale = if real_limits { 1.0 } else { 1000.0 };
        let mut cmd = Command::new(kuryer_binary()?);
        for (k, _) in std::env::vars() {
            if k.starts_with("KURYER_") || k == "RUST_LOG" || k == "CREDENTIALS_DIRECTORY" {
                cmd.env_remove(k);
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        cmd.args(["run", "--config", "/dev/null"])
            .env("KURYER_DATABASE_URL", &self.url)
            .env("KURYER_REDIS_URL", &self.redis_url)
            .env("KURYER_REDIS_KEY_PREFIX", &self.prefix)
            .env(
                "KURYER_TELEGRAM_BOT_TOKENS",
                format!("[\"{}\"]", nth_bot_token(bot)),
            )
            .env("KURYER_TELEGRAM_BOT_API_URL", self.fake.client_url(name))
            .env("KURYER_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("KURYER_INSTANCE_ID", name)
            .env("KURYER_INSTANCE_LEASE_TTL_S", ttl_s.to_string())
            .env("KURYER_DELIVERY_POLL_MIN_INTERVAL_MS", "100")
            .env("KURYER_DELIVERY_POLL_MAX_INTERVAL_MS", "300")
            .env("KURYER_LOG_FORMAT", "json")
            .env("KURYER_LOG_LEVEL", "warn")
            .env(
                "KURYER_LIMITS_PER_BOT_PER_SECOND",
                (30.0 * scale).to_string(),
            )
            .env("KURYER_LIMITS_PER_CHAT_PER_SECOND", scale.to_string())
            .env(
                "KURYER_LIMITS_PER_GROUP_PER_MINUTE",
                (20.0 * scale).to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().context("start kuryer run")?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    async fn shares(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let c = kuryer_sim::throwaway_db::connect(&self.url).await?;
        Ok(c.query(
            "SELECT lease_owner, count(*) FROM channels WHERE lease_owner IS NOT NULL GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    /// Waits until every channel is leased among exactly `owners`.
    async fn wait_split(&self, owners: &[String]) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut want = owners.to_vec();
        want.sort();
        loop {
            let s = self.shares().await?;
            let total: i64 = s.iter().map(|(_, n)| n).sum();
            let names: Vec<String> = s.iter().map(|(o, _)| o.clone()).collect();
            let max = s.iter().map(|(_, n)| *n).max().unwrap_or(0);
            let min = s.iter().map(|(_, n)| *n).min().unwrap_or(0);
            if total == i64::from(self.channels) && names == want && max - min <= 1 {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(90),
                "channels never split among {want:?}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn publish(&self, rounds: std::ops::Range<u32>, posts: &mut Vec<(i64, i32)>) {
        for round in rounds {
            for i in 1..=i64::from(self.channels) {
                let chat = fixtures::channel_chat(i);
                posts.push((chat, fixtures::publish(&self.fake, chat, i, round)));
            }
        }
    }

    async fn wait_all(&self, posts: &[(i64, i32)], limit: Duration) -> anyhow::Result<()> {
        let expected = fixtures::expected_list(&self.pairs, posts);
        let started = Instant::now();
        while self.fake.report(&expected).delivered < expected.len() as u64 {
            anyhow::ensure!(
                started.elapsed() < limit,
                "not all delivered: {:?}",
                self.fake.report(&expected)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Rate over the middle 80 % of the arrivals.
    fn rate(&self) -> f64 {
        let mut at: Vec<Instant> = self
            .pairs
            .iter()
            .map(|(d, _)| *d)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .flat_map(|d| self.fake.received(d).into_iter().map(|m| m.received_at))
            .collect();
        at.sort();
        let n = at.len();
        if n < 10 {
            return 0.0;
        }
        let (a, b) = (n / 10, n * 9 / 10);
        (b - a) as f64 / (at[b] - at[a]).as_secs_f64().max(1e-6)
    }
}

async fn rate_run(cfg: &Config, k: usize, real_limits: bool) -> anyhow::Result<RateRun> {
    // Real limits: ~15 s of sending at 30/s for each instance, one message
    // a chat (the per-chat limit never binds). Limits off: 18,000.
    let (users, subs, rounds) = if real_limits {
        (450 * k as u32, 1, 1)
    } else {
        (2000, 3, 3)
    };
    let limits = if real_limits {
        FakeLimits::scaled(1.0)
    } else {
        FakeLimits::off()
    };
    let w = World::new(cfg, 30, users, subs, k, limits).await?;
    let procs: Vec<Proc> = (0..k)
        .map(|i| w.start(&format!("i{i}"), i, real_limits, 30))
        .collect::<anyhow::Result<_>>()?;
    w.wait_split(&procs.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
        .await?;
    let mut posts = Vec::new();
    w.publish(0..rounds, &mut posts);
    w.wait_all(&posts, Duration::from_secs(300)).await?;
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    let run = RateRun {
        instances: k,
        deliveries: expected.len(),
        per_second: w.rate(),
        allowed_per_second: if real_limits { 30.0 * k as f64 } else { 0.0 },
        rate_429: w.fake.stats().rate_limited_429,
        duplicates: r.duplicates,
        lost: r.lost,
    };
    drop(procs);
    w.fake.stop();
    Ok(run)
}

async fn failover(cfg: &Config, kills: usize) -> anyhow::Result<Vec<f64>> {
    let w = World::new(cfg, 30, 300, 1, 3 + kills, FakeLimits::off()).await?;
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| w.start(&format!("f{i}"), i, false, FAILOVER_TTL_S))
        .collect::<anyhow::Result<_>>()?;
    let mut times = Vec::new();
    let mut posts = Vec::new();
    for kill in 0..kills {
        w.wait_split(&procs.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
            .await?;
        // A heartbeat round at a random phase: kill at a random moment.
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..2000))).await;
        let victim = procs.remove(kill % procs.len());
        let c = kuryer_sim::throwaway_db::connect(&w.url).await?;
        let held: Vec<i64> = c
            .query(
                "SELECT telegram_id FROM channels WHERE lease_owner = $1",
                &[&victim.name],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let before = w.fake.stats().messages_received;
        drop(victim);
        let killed = Instant::now();
        for chat in &held {
            let i = fixtures::channel_chat(0) - chat;
            posts.push((*chat, fixtures::publish(&w.fake, *chat, i, kill as u32)));
        }
        while w.fake.stats().messages_received == before {
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(120),
                "no delivery after the kill"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ms = killed.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "[bench] instances: kill {}: first delivery of a moved channel after {ms:.0} ms",
            kill + 1
        );
        times.push(ms);
        w.wait_all(&posts, Duration::from_secs(120)).await?;
        // Each replacement with a bot of its own, never used before.
        let next = 3 + kill;
        procs.push(w.start(&format!("f{next}"), next, false, FAILOVER_TTL_S)?);
    }
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    anyhow::ensure!(r.lost == 0, "failover lost deliveries: {r:?}");
    drop(procs);
    w.fake.stop();
    Ok(times)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the scenario and prints its lines and one JSON line.
pub(crate) async fn run(cfg: &Config, tiny: bool) -> anyhow::Result<InstancesResult> {
    let mut real_limits = Vec::new();
    let mut limits_off = Vec::new();
    let ks: &[usize] = if tiny { &[1, 2] } else { &[1, 2, 3] };
    for &k in ks {
        let r = rate_run(cfg, k, true).await?;
        eprintln!(
            "[bench] instances: {k} × real limits: {:.1}/s of {:.0} allowed ({:.1} %), {} × 429, {} duplicates, {} lost",
            r.per_second,
            r.allowed_per_second,
            100.0 * r.per_second / r.allowed_per_second,
            r.rate_429,
            r.duplicates,
            r.lost
        );
        real_limits.push(r);
    }
    for &k in ks {
        let r = rate_run(cfg, k, false).await?;
        eprintln!(
            "[bench] instances: {k} × limits off: {:.0}/s over {} deliveries, {} duplicates, {} lost",
            r.per_second, r.deliveries, r.duplicates, r.lost
        );
        limits_off.push(r);
    }
    let mut failover_ms = failover(cfg, if tiny { 2 } else { 10 }).await?;
    let mut sorted = failover_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let result = InstancesResult {
        real_limits,
        limits_off,
        failover_ttl_s: FAILOVER_TTL_S,
        failover_p50_ms: percentile(&sorted, 0.5),
        failover_p99_ms: percentile(&sorted, 0.99),
        failover_ms: std::mem::take(&mut failover_ms),
    };
    eprintln!(
        "[bench] instances: failover (TTL {} s) p50 {:.0} ms, p99 {:.0} ms over {} kills",
        result.failover_ttl_s,
        result.failover_p50_ms,
        result.failover_p99_ms,
        result.failover_ms.len()
    );
    Ok(result)
}
