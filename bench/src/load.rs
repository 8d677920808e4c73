//! Load against a whole `kuryer run` (its `daemon::run`, in this child
//! process, on a throw-away database, the fake Bot API in-process):
//!
//! - **api-load**: the seed's Locust test as a Rust load generator — `users`
//!   simulated clients, each in a loop of `POST /add_channel` then
//!   `GET /subscriptions/{user_id}` with no think time, for `seconds`:
//!   throughput, latency percentiles, failures (anything but a 200).
//! - **bot-load**: commands from `users` simulated people through the fake's
//!   people API at `rate` a second (each user's first is `/start`, then
//!   `/list` and `/help`): replies a second, the latency from a command
//!   queued at the fake to the bot's reply recorded by it, commands lost.
//!
//! The load generators run on threads of their own, on the same two cores
//! as the daemon, the fake and PostgreSQL.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuryer::config::Config;
use kuryer::secret::Secret;
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use serde::{Deserialize, Serialize};

use crate::util::{BenchDb, cpu_seconds, reset_peak_rss};

const TOKEN: &str = "7070:benchLOADbotTOKENbenchLOAD";
const API_TOKEN: &str = "bench-load-api-token-0123456789";

/// Latency percentiles (ms).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    pub(crate) fn of(mut us: Vec<u64>) -> Self {
        if us.is_empty() {
            return Self::default();
        }
        us.sort_unstable();
        let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The size of an api-load run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiLoadSpec {
    pub(crate) users: u32,
    pub(crate) seconds: f64,
}

/// What an api-load run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct ApiLoadResult {
    pub(crate) users: u32,
    pub(crate) requests: u64,
    /// Anything but a 200, and transport errors.
    pub(crate) failures: u64,
    pub(crate) seconds: f64,
    pub(crate) per_s: f64,
    pub(crate) add: Percentiles,
    pub(crate) get: Percentiles,
    pub(crate) all: Percentiles,
    /// CPU seconds of this process (daemon, fake and generator).
    pub(crate) cpu_s: f64,
}

/// The size of a bot-load run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BotLoadSpec {
    pub(crate) users: u32,
    /// Commands a second offered.
    pub(crate) rate: f64,
    pub(crate) seconds: f64,
    /// The fake's latency of every answer but getUpdates' (ms; 0: none).
    #[serde(default)]
    pub(crate) latency_ms: u64,
}

/// What a bot-load run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct BotLoadResult {
    pub(crate) users: u32,
    pub(crate) commands: u64,
    /// Commands a second actually offered (the generator's own rate).
    pub(crate) offered_per_s: f64,
    pub(crate) replies: u64,
    /// Replies a second, first command to last reply.
    pub(crate) replies_per_s: f64,
    /// Commands without a reply 60 s after the last was sent.
    pub(crate) lost: u64,
    /// Command queued at the fake → reply recorded by the fake.
    pub(crate) latency: Percentiles,
    /// The same over the first and the last tenth of the commands: where
    /// in the run a backlog formed.
    pub(crate) latency_first_tenth: Percentiles,
    pub(crate) latency_last_tenth: Percentiles,
    /// Replies that are not the answer to the command at their place in
    /// their chat (a user's replies out of order).
    pub(crate) out_of_order: u64,
    /// The fake's latency (ms).
    pub(crate) latency_ms: u64,
    pub(crate) cpu_s: f64,
}

/// `kuryer run` in this process, stopped when dropped.
struct Daemon {
    fake: FakeTelegram,
    http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_daemon(cfg: &Config, db: &BenchDb) -> anyhow::Result<Daemon> {
    let fake = FakeTelegram::start(FakeLimits::off())?;
    fake.add_bot(TOKEN);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut c = Config {
        database: db.cfg.clone(),
        redis: cfg.redis.clone(),
        log: cfg.log.clone(),
        ..Config::default()
    };
    c.redis.key_prefix = format!("bench:load:{}:", rand::random::<u64>());
    c.telegram.bot_tokens = vec![Secret::new(TOKEN)];
    c.telegram.bot_api_url = fake.url();
    c.http.listen = format!("127.0.0.1:{port}").parse()?;
    c.http.api_token = Some(Secret::new(API_TOKEN));
    // Every reply is measured, not the limiter's pacing.
    c.limits.per_bot_per_second = 100_000.0;
    c.limits.per_chat_per_second = 100_000.0;
    c.limits.per_group_per_minute = 1_000_000.0;
    let http = c.http.listen;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    actix_rt::spawn(async move {
        let r = kuryer::daemon::run(c, async move {
            let _ = stopped.await;
            "bench over"
        })
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "kuryer run ended with an error");
        }
    });
    let d = Daemon {
        fake,
        http,
        stop: Some(stop),
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("http://{http}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready && d.fake.my_commands(TOKEN, "uz").is_some() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "kuryer run never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(d)
}

/// Runs `f` on a thread of its own and waits for it without blocking the
/// daemon's thread.
pub(crate) async fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.context("the load thread died")
}

/// Runs one api-load measurement.
pub(crate) async fn api_load(spec: &ApiLoadSpec, cfg: &Config) -> anyhow::Result<ApiLoadResult> {
    let db = BenchDb::create(cfg, "api_load").await?;
    let out = async {
        let d = start_daemon(cfg, &db).await?;
        reset_peak_rss();
        let cpu0 = cpu_seconds();
        let (users, seconds) = (spec.users, spec.seconds);
        let base = format!("http://{}", d.http);
        let mut res = on_thread(move || generate_api(&base, users, seconds)).await??;
        res.cpu_s = cpu_seconds() - cpu0;
        drop(d);
        Ok(res)
    }
    .await;
    db.drop_db().await;
    out
}

fn generate_api(base: &str, users: u32, seconds: f64) -> anyhow::Result<ApiLoadResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(users as usize)
            .timeout(Duration::from_secs(30))
            .build()?;
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        for u in 0..users {
            let (client, base) = (client.clone(), base.to_owned());
            tasks.push(tokio::spawn(async move {
                let user_id = 1_000_000 + i64::from(u);
                let (mut adds, mut gets, mut failures) = (Vec::new(), Vec::new(), 0u64);
                let mut i = 0u32;
                while Instant::now() < deadline {
                    // A few channels a user, so most adds are the idempotent
                    // repeat the seed's test made (one user, one channel).
                    let channel = format!("load_channel_{}", (u + i) % 200);
                    let t = Instant::now();
                    let ok = client
                        .post(format!("{base}/add_channel"))
                        .bearer_auth(API_TOKEN)
                        .json(&serde_json::json!({"user_id": user_id, "channel_username": channel}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
                    adds.push(t.elapsed().as_micros() as u64);
                    failures += u64::from(!ok);
                    let t = Instant::now();
                    let ok = match client
                        .get(format!("{base}/subscriptions/{user_id}"))
                        .bearer_auth(API_TOKEN)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == reqwest::StatusCode::OK => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    gets.push(t.elapsed().as_micros() as u64);
                    failures += u64::from(!ok);
                    i += 1;
                }
                (adds, gets, failures)
            }));
        }
        let (mut adds, mut gets, mut failures) = (Vec::new(), Vec::new(), 0);
        for t in tasks {
            let (a, g, f) = t.await?;
            adds.extend(a);
            gets.extend(g);
            failures += f;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let requests = (adds.len() + gets.len()) as u64;
        let all: Vec<u64> = adds.iter().chain(gets.iter()).copied().collect();
        Ok(ApiLoadResult {
            users,
            requests,
            failures,
            seconds: elapsed,
            per_s: requests as f64 / elapsed,
            add: Percentiles::of(adds),
            get: Percentiles::of(gets),
            all: Percentiles::of(all),
            cpu_s: 0.0,
        })
    })
}

/// Runs one bot-load measurement.
pub(crate) async fn bot_load(spec: &BotLoadSpec, cfg: &Config) -> anyhow::Result<BotLoadResult> {
    let db = BenchDb::create(cfg, "bot_load").await?;
    let out = async {
        let d = start_daemon(cfg, &db).await?;
        d.fake.set_latency(Duration::from_millis(spec.latency_ms));
        reset_peak_rss();
        let cpu0 = cpu_seconds();
        let fake = d.fake.clone();
        let spec2 = spec.clone();
        let sent = on_thread(move || offer_commands(&fake, &spec2)).await?;
        // Wait for the replies (or 60 s without them all).
        let commands = sent.0.len() as u64;
        let drained = Instant::now();
        while replies_of(&d.fake, spec.users) < sent.0.len()
            && drained.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut res = measure_replies(&d.fake, spec, &sent);
        res.commands = commands;
        res.cpu_s = cpu_seconds() - cpu0;
        drop(d);
        Ok(res)
    }
    .await;
    db.drop_db().await;
    out
}

/// How many replies (not delivered posts) the bot sent to the users' chats.
fn replies_of(fake: &FakeTelegram, users: u32) -> usize {
    (0..users)
        .map(|u| crate::reply_order::replies_in(fake, user_id(u)).len())
        .sum()
}

fn user_id(u: u32) -> i64 {
    2_000_000 + i64::from(u)
}

/// Every command sent (chat, command and language, when), and the
/// generator's own rate.
type Sent = (Vec<crate::reply_order::Sent>, f64);

/// Sends `rate` commands a second for `seconds`, round-robin over the users
/// (each user has one command in flight at most: its next comes
/// `users / rate` seconds later, far beyond any reply's latency).
fn offer_commands(fake: &FakeTelegram, spec: &BotLoadSpec) -> Sent {
    let total = (spec.rate * spec.seconds) as u64;
    let langs = ["uz", "ru", "en"];
    let start = Instant::now();
    let mut sent = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / spec.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let u = (i % u64::from(spec.users)) as u32;
        let round = i / u64::from(spec.users);
        let text = match round {
            0 => "/start",
            r if r % 2 == 1 => "/list",
            _ => "/help",
        };
        let chat = user_id(u);
        let lang = langs[u as usize % 3];
        sent.push((chat, format!("{text} {lang}"), Instant::now()));
        fake.user_says(TOKEN, chat, text, Some(lang));
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    (sent, rate)
}

fn measure_replies(fake: &FakeTelegram, spec: &BotLoadSpec, sent: &Sent) -> BotLoadResult {
    // The k-th reply in a chat answers its k-th command, and must be its answer.
    let check = crate::reply_order::check(fake, &sent.0);
    let lat = check.latencies_us;
    let span = match (sent.0.first(), check.last) {
        (Some((_, _, first)), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    BotLoadResult {
        users: spec.users,
        commands: 0,
        offered_per_s: sent.1,
        replies: check.replies,
        replies_per_s: if span > 0.0 {
            check.replies as f64 / span
        } else {
            0.0
        },
        lost: check.lost,
        latency_first_tenth: Percentiles::of(lat[..lat.len() / 10].to_vec()),
        latency_last_tenth: Percentiles::of(lat[lat.len() - lat.len() / 10..].to_vec()),
        latency: Percentiles::of(lat),
        out_of_order: check.out_of_order,
        latency_ms: spec.latency_ms,
        cpu_s: 0.0,
    }
}
