//! The `instances` scenario: 1, 2 and 3 `kuryer run` processes (the real
//! binary next to `kuryer-bench`) over one PostgreSQL, one Redis and the
//! fake Telegram (in this process), each with a bot token of its own.
//!
//! - **real limits**: Telegram's limits in the fake and in kuryer; every
//!   instance's deliveries go through its own bot (30/s each), so k
//!   instances may send 30·k a second. Rate over the middle 80 % of the
//!   arrivals (by the fake's clock), as a fraction of that, and 429s.
//! - **limits off**: what the shared machine allows with k instances.
//! - **one shared bot at Telegram's limits**: 1, 2 and 3 instances all
//!   configured with the same bot token (the limits shared through Redis):
//!   the rate they reach together as a share of that one bot's 30/s, and
//!   429s.
//! - **failover**: three instances, limits off; ten times: `kill -9` of one,
//!   one post in each channel it held, time until the first of them is
//!   delivered (by another instance, after the lease TTL); a new instance
//!   replaces it before the next kill.
//! - **failover with reader accounts**: channels read over MTProto from the
//!   fake data centre (in this process, at its Telegram-like limits, three
//!   reader accounts, one shared bot); `kill -9` of the holder of an
//!   account, one post in each channel that account read, time until the
//!   first and the last of them is delivered (read by the account's new
//!   holder, or the channel's new account), and the calls the fake answered
//!   with `AUTH_KEY_DUPLICATED` — an account's key used from two holders at
//!   once (must be 0).

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

/// The fake's getHistory limit in the reader failover: 10 calls an account
/// in any 30 s (the public report the faithful fake follows).
const READER_HISTORY_LIMIT: (u32, u64) = (10, 30);

/// The reader's getHistory pace there, under that limit.
const READER_HISTORY_PER_SECOND: f64 = 0.3;

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

/// One reader-account failover: `kill -9` of an account's holder.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ReaderKill {
    /// The account whose holder was killed.
    pub(crate) account: String,
    /// Channels that account read (one post published on each after the kill).
    pub(crate) channels: usize,
    /// Kill → the account's lease held by another instance (ms; 0: never
    /// within the wait).
    pub(crate) new_holder_ms: f64,
    /// Kill → the first of those posts delivered (ms).
    pub(crate) first_ms: f64,
    /// Kill → the last of them delivered (ms).
    pub(crate) last_ms: f64,
}

/// Failover with reader accounts.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ReaderFailover {
    /// `reader.lease_ttl_s` and `instance.lease_ttl_s` of the run (s).
    pub(crate) ttl_s: u64,
    /// The fake's getHistory limit (calls an account per window in s) and
    /// the reader's pace (calls a second).
    pub(crate) history_limit: (u32, u64),
    pub(crate) history_per_second: f64,
    pub(crate) kills: Vec<ReaderKill>,
    /// Posts published (one a channel before the kills, then the kills').
    pub(crate) deliveries: usize,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    /// Calls answered `AUTH_KEY_DUPLICATED`: one account's key used by two
    /// holders at once (counted by the fake data centre, all accounts).
    pub(crate) two_holders_calls: u64,
    /// Calls made during a flood wait (counted by the fake).
    pub(crate) calls_during_flood_wait: u64,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstancesResult {
    pub(crate) real_limits: Vec<RateRun>,
    /// All instances on one bot token at Telegram's limits.
    pub(crate) shared_bot: Vec<RateRun>,
    pub(crate) reader_failover: ReaderFailover,
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
    /// Variables every instance also gets (the reader's).
    extra_env: Vec<(String, String)>,
    /// The fake data centre, when channels are read over MTProto.
    reader: Option<kuryer::demo_mtproto::ReaderWorld>,
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
            extra_env: Vec::new(),
            reader: None,
        })
    }

    /// Like `new` with one bot, limits off, but every channel read over
    /// MTProto: the fake data centre (joined to the Bot API face) at its
    /// Telegram-like limits with getHistory at 10 per 30 s an account,
    /// `accounts` reader accounts with their sessions stored, and the
    /// instances configured to use them with the daily budgets as
    /// configured and a lease TTL of `ttl_s`.
    async fn new_reader(
        cfg: &Config,
        channels: u32,
        users: u32,
        accounts: u32,
        ttl_s: u64,
    ) -> anyhow::Result<Self> {
        let db = BenchDb::create(cfg, "instances").await?;
        let store = Store::open(&db.cfg, Open::fresh()).await?.store;
        let url = db.cfg.url.expose().to_owned();
        let client = kuryer_sim::throwaway_db::connect(&url).await?;
        let pairs = fixtures::populate(&client, channels, users, 1).await?;
        let fake = fixtures::start_fake(FakeLimits::off(), channels, users)?;
        let (calls, per_s) = READER_HISTORY_LIMIT;
        let world = kuryer::demo_mtproto::ReaderWorld::create(
            &store,
            Some(&fake),
            crate::reader::faithful_dc(calls, per_s),
            channels,
            accounts,
        )
        .await?;
        store.close();
        let rcfg = world.reader_config(cfg);
        let secret = |s: &Option<Secret>| {
            s.as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default()
        };
        let mut extra_env = vec![
            (
                "KURYER_TELEGRAM_API_ID".to_owned(),
                rcfg.telegram.api_id.to_string(),
            ),
            (
                "KURYER_TELEGRAM_API_HASH".to_owned(),
                secret(&rcfg.telegram.api_hash),
            ),
            (
                "KURYER_READER_SESSION_KEY".to_owned(),
                secret(&rcfg.reader.session_key),
            ),
            ("KURYER_READER_LEASE_TTL_S".to_owned(), ttl_s.to_string()),
            (
                "KURYER_READER_HISTORY_PER_SECOND".to_owned(),
                READER_HISTORY_PER_SECOND.to_string(),
            ),
        ];
        if let Some(relay) = rcfg.telegram.relay_chat_id {
            extra_env.push((
                "KURYER_TELEGRAM_RELAY_CHAT_ID".to_owned(),
                relay.to_string(),
            ));
        }
        if let Some(hash) = rcfg.reader.relay_access_hash {
            extra_env.push((
                "KURYER_READER_RELAY_ACCESS_HASH".to_owned(),
                hash.to_string(),
            ));
        }
        // The subscriptions with the data centre's chat ids.
        let pairs = pairs
            .iter()
            .map(|&(dest, chat)| {
                let i = fixtures::channel_chat(0) - chat;
                (dest, world.channels[(i - 1) as usize].bot_api_chat_id())
            })
            .collect();
        Ok(Self {
            _db: db,
            url,
            fake,
            pairs,
            channels,
            redis_url: cfg.redis.url.expose().to_owned(),
            prefix: format!("bench:inst:{}:", rand::random::<u64>()),
            extra_env,
            reader: Some(world),
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
            // A small pool each: three instances at the default 60 would
            // pass the machine's PostgreSQL `max_connections` (100), which
            // other processes share.
            .env("KURYER_DATABASE_POOL_MAX", "16")
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
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
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

/// `k` instances all on bot 0 at Telegram's real limits: 600 deliveries,
/// one a chat, through the one bot (the limits shared through Redis).
async fn shared_bot_run(cfg: &Config, k: usize) -> anyhow::Result<RateRun> {
    let w = World::new(cfg, 30, 600, 1, 1, FakeLimits::scaled(1.0)).await?;
    let procs: Vec<Proc> = (0..k)
        .map(|i| w.start(&format!("s{i}"), 0, true, 30))
        .collect::<anyhow::Result<_>>()?;
    w.wait_split(&procs.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
        .await?;
    let mut posts = Vec::new();
    w.publish(0..1, &mut posts);
    w.wait_all(&posts, Duration::from_secs(300)).await?;
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    let run = RateRun {
        instances: k,
        deliveries: expected.len(),
        per_second: w.rate(),
        allowed_per_second: 30.0,
        rate_429: w.fake.stats().rate_limited_429,
        duplicates: r.duplicates,
        lost: r.lost,
    };
    drop(procs);
    w.fake.stop();
    Ok(run)
}

/// The live holder of reader account `account`, if any.
async fn holder(c: &tokio_postgres::Client, account: &str) -> anyhow::Result<Option<String>> {
    Ok(c.query_opt(
        "SELECT lease_holder FROM reader_accounts WHERE name = $1 AND lease_expires_at > now()",
        &[&account],
    )
    .await?
    .and_then(|r| r.get(0)))
}

/// Three instances reading every channel over MTProto with three reader
/// accounts; `kills` times `kill -9` of an account's holder (the accounts
/// in turn), one post on each channel that account read, and the times
/// until the account has a new holder and the posts are delivered; a new
/// instance replaces the killed one.
async fn reader_failover(cfg: &Config, kills: usize) -> anyhow::Result<ReaderFailover> {
    let ttl = FAILOVER_TTL_S;
    let w = World::new_reader(cfg, 30, 60, 3, ttl).await?;
    let Some(rw) = w.reader.as_ref() else {
        anyhow::bail!("no data centre");
    };
    let chat = |i: i64| rw.channels[(i - 1) as usize].bot_api_chat_id();
    let c = kuryer_sim::throwaway_db::connect(&w.url).await?;
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| w.start(&format!("r{i}"), 0, false, ttl))
        .collect::<anyhow::Result<_>>()?;
    w.wait_split(&procs.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
        .await?;
    // A first post on every channel, delivered: every channel is read
    // (its first read from its mark, at the accounts' getHistory pace).
    let mut posts = Vec::new();
    for i in 1..=i64::from(w.channels) {
        posts.push((chat(i), fixtures::publish(&w.fake, chat(i), i, 0)));
    }
    w.wait_all(&posts, Duration::from_secs(600)).await?;
    let mut out = ReaderFailover {
        ttl_s: ttl,
        history_limit: READER_HISTORY_LIMIT,
        history_per_second: READER_HISTORY_PER_SECOND,
        ..ReaderFailover::default()
    };
    for kill in 0..kills {
        let account = format!("demo{}", kill % 3);
        let started = Instant::now();
        let victim = loop {
            if let Some(h) = holder(&c, &account).await?
                && let Some(at) = procs.iter().position(|p| p.name == h)
            {
                break at;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "{account} has no live holder"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let rows: Vec<i64> = c
            .query(
                "SELECT channel_id FROM reader_assignments WHERE account = $1",
                &[&account],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let victim = procs.remove(victim);
        let victim_name = victim.name.clone();
        let before = w.fake.stats().messages_received;
        drop(victim);
        let killed = Instant::now();
        let mut these = Vec::new();
        // Round 5·k: a text post (`fixtures::publish`'s kinds repeat by 5).
        let round = 5 * (kill as u32 + 1);
        for &i in &rows {
            these.push((chat(i), fixtures::publish(&w.fake, chat(i), i, round)));
        }
        let expected = fixtures::expected_list(&w.pairs, &these);
        let mut k = ReaderKill {
            account: account.clone(),
            channels: rows.len(),
            ..ReaderKill::default()
        };
        let mut last_check = Instant::now() - Duration::from_secs(1);
        loop {
            let ms = killed.elapsed().as_secs_f64() * 1000.0;
            if k.first_ms == 0.0 && w.fake.stats().messages_received > before {
                k.first_ms = ms;
            }
            if k.new_holder_ms == 0.0 && last_check.elapsed() > Duration::from_millis(200) {
                last_check = Instant::now();
                if holder(&c, &account)
                    .await?
                    .is_some_and(|h| h != victim_name)
                {
                    k.new_holder_ms = killed.elapsed().as_secs_f64() * 1000.0;
                }
            }
            if w.fake.report(&expected).delivered >= expected.len() as u64 {
                k.last_ms = ms;
                break;
            }
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(600),
                "kill {}: not all delivered: {:?}",
                kill + 1,
                w.fake.report(&expected)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "[bench] instances: reader kill {} ({account}, {} channels): new holder after {:.0} ms, first post delivered after {:.0} ms, last after {:.0} ms",
            kill + 1,
            k.channels,
            k.new_holder_ms,
            k.first_ms,
            k.last_ms
        );
        out.kills.push(k);
        posts.extend(these);
        let next = 3 + kill;
        procs.push(w.start(&format!("r{next}"), 0, false, ttl)?);
    }
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    out.deliveries = expected.len();
    out.lost = r.lost;
    out.duplicates = r.duplicates;
    for &a in &rw.accounts {
        for m in rw.dc.stats(a).methods.values() {
            out.two_holders_calls += m.errors.get("AUTH_KEY_DUPLICATED").copied().unwrap_or(0);
            out.calls_during_flood_wait += m.calls_during_flood_wait;
        }
    }
    drop(procs);
    rw.dc.stop();
    w.fake.stop();
    Ok(out)
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
    let mut shared_bot = Vec::new();
    for &k in ks {
        let r = shared_bot_run(cfg, k).await?;
        eprintln!(
            "[bench] instances: {k} × one shared bot, real limits: {:.1}/s of {:.0} allowed ({:.1} %), {} × 429, {} duplicates, {} lost",
            r.per_second,
            r.allowed_per_second,
            100.0 * r.per_second / r.allowed_per_second,
            r.rate_429,
            r.duplicates,
            r.lost
        );
        shared_bot.push(r);
    }
    let reader_failover = reader_failover(cfg, if tiny { 1 } else { 3 }).await?;
    eprintln!(
        "[bench] instances: reader failover (TTL {} s): {} deliveries, {} lost, {} duplicates, {} calls from an account's two holders at once, {} calls during a flood wait",
        reader_failover.ttl_s,
        reader_failover.deliveries,
        reader_failover.lost,
        reader_failover.duplicates,
        reader_failover.two_holders_calls,
        reader_failover.calls_during_flood_wait
    );
    let mut failover_ms = failover(cfg, if tiny { 2 } else { 10 }).await?;
    let mut sorted = failover_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let result = InstancesResult {
        real_limits,
        shared_bot,
        reader_failover,
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
