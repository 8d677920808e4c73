//! The world of the abuse scenario: a throw-away database with the ordinary
//! population (users, channels, subscriptions), the fake Telegram in this
//! process with Telegram's limits and a per-call latency, and one real
//! `kuryer run` process (the binary next to `kuryer-bench`) watched from
//! outside: its CPU time and peak RSS from /proc, its systemd watchdog pings
//! on a notify socket of ours, and its `/healthz` answers over time.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuryer::config::Config;
use kuryer::store::{Open, Store};
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use kuryer_sim::fixtures;
use serde::Serialize;

use crate::util::BenchDb;

/// `WATCHDOG_USEC` given to kuryer: it earns a ping every third of it (1 s),
/// so a gap in the pings shows a stall of the actor thread to about a
/// second. systemd would restart kuryer after a gap longer than this.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(3);

/// What the world is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorldSize {
    pub(crate) channels: u32,
    pub(crate) users: u32,
    pub(crate) subs: u32,
    /// Telegram's limits in the fake and in kuryer (else both off).
    pub(crate) real_limits: bool,
    /// Every Bot API answer but getUpdates' comes this late.
    pub(crate) latency: Duration,
}

/// The database, the fake and the ordinary users' subscriptions.
pub(crate) struct World {
    pub(crate) db: BenchDb,
    pub(crate) url: String,
    pub(crate) fake: FakeTelegram,
    /// Subscribers (private chats) of each ordinary channel.
    pub(crate) subscribers: HashMap<i64, Vec<i64>>,
    pub(crate) size: WorldSize,
    redis_url: String,
    prefix: String,
}

impl World {
    /// A migrated database holding the ordinary population, and the fake
    /// knowing the same channels (the bot an admin in each) and chats.
    pub(crate) async fn new(cfg: &Config, size: WorldSize) -> anyhow::Result<Self> {
        let db = BenchDb::create(cfg, "abuse").await?;
        Store::open(&db.cfg, Open::fresh()).await?.store.close();
        let url = db.cfg.url.expose().to_owned();
        let client = kuryer_sim::throwaway_db::connect(&url).await?;
        let pairs = fixtures::populate(&client, size.channels, size.users, size.subs).await?;
        client
            .batch_execute("UPDATE channels SET bot_is_admin = true")
            .await?;
        let limits = if size.real_limits {
            FakeLimits::telegram()
        } else {
            FakeLimits::off()
        };
        let fake = fixtures::start_fake(limits, size.channels, size.users)?;
        for i in 1..=i64::from(size.channels) {
            fake.set_admin(fixtures::channel_chat(i), fixtures::bot_token(), true);
        }
        fake.set_latency(size.latency);
        let mut subscribers: HashMap<i64, Vec<i64>> = HashMap::new();
        for (dest, channel) in pairs {
            subscribers.entry(channel).or_default().push(dest);
        }
        Ok(Self {
            db,
            url,
            fake,
            subscribers,
            size,
            redis_url: cfg.redis.url.expose().to_owned(),
            prefix: format!("bench:abuse:{}:", rand::random::<u64>()),
        })
    }

    /// Private chat of ordinary user `u` (0-based).
    pub(crate) fn user_chat(u: u32) -> i64 {
        fixtures::FIRST_USER + 1 + i64::from(u)
    }

    /// Starts `kuryer run` on this world, waits until it serves and its bot
    /// has set its commands.
    pub(crate) async fn start_kuryer(&self) -> anyhow::Result<Kuryer> {
        Kuryer::start(self).await
    }

    /// Drops the database.
    pub(crate) async fn finish(self) {
        self.fake.stop();
        self.db.drop_db().await;
    }
}

/// The kuryer binary next to this one.
fn kuryer_binary() -> anyhow::Result<std::path::PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("kuryer");
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it with `cargo build --release -p kuryer`",
        bin.display()
    );
    Ok(bin)
}

/// How the kuryer process fared while watched.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ProcessReading {
    /// CPU time (user + system) from the start of the load to its end (s).
    pub(crate) cpu_s: f64,
    /// Peak RSS of the process over its life (VmHWM, MiB).
    pub(crate) peak_rss_mib: f64,
    /// Watchdog pings received while watched.
    pub(crate) watchdog_pings: u64,
    /// Longest time between two pings (or from the start of the watch to
    /// the first, or from the last to its end), ms.
    pub(crate) watchdog_max_gap_ms: f64,
    /// The `WATCHDOG_USEC` kuryer was given, ms: systemd's bound.
    pub(crate) watchdog_bound_ms: f64,
    /// `/healthz` asked every 200 ms: answers, failures, the slowest.
    pub(crate) healthz_answers: u64,
    pub(crate) healthz_failures: u64,
    pub(crate) healthz_max_ms: f64,
    /// Whether the process was still running at the end.
    pub(crate) alive: bool,
}

/// One `kuryer run` process, killed when dropped.
pub(crate) struct Kuryer {
    child: Child,
    pid: u32,
    http: std::net::SocketAddr,
    pings: Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    socket_path: std::path::PathBuf,
    log_path: std::path::PathBuf,
}

impl Drop for Kuryer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

impl Kuryer {
    async fn start(w: &World) -> anyhow::Result<Self> {
        let tag = rand::random::<u64>();
        let dir = std::env::temp_dir();
        let socket_path = dir.join(format!("kuryer-bench-notify-{tag}.sock"));
        let log_path = dir.join(format!("kuryer-bench-abuse-{tag}.log"));
        let socket = UnixDatagram::bind(&socket_path).context("binding the notify socket")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let pings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (pings, stop) = (pings.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let msg = String::from_utf8_lossy(&buf[..n]);
                        if msg.lines().any(|l| l == "WATCHDOG=1") {
                            pings
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(Instant::now());
                        }
                    }
                }
            });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let http: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut cmd = Command::new(kuryer_binary()?);
        for (k, _) in std::env::vars() {
            if k.starts_with("KURYER_")
                || k == "RUST_LOG"
                || k == "CREDENTIALS_DIRECTORY"
                || k.starts_with("WATCHDOG_")
            {
                cmd.env_remove(k);
            }
        }
        // Telegram's limits are kuryer's defaults; with them off in the
        // fake, kuryer's are raised so that replies are measured, not pacing.
        if !w.size.real_limits {
            cmd.env("KURYER_LIMITS_PER_BOT_PER_SECOND", "100000")
                .env("KURYER_LIMITS_PER_CHAT_PER_SECOND", "100000")
                .env("KURYER_LIMITS_PER_GROUP_PER_MINUTE", "1000000")
                .env("KURYER_LIMITS_BOT_COMMANDS_PER_MINUTE", "100000");
        }
        let log = std::fs::File::create(&log_path)?;
        cmd.args(["run", "--config", "/dev/null"])
            .env("KURYER_DATABASE_URL", &w.url)
            .env("KURYER_REDIS_URL", &w.redis_url)
            .env("KURYER_REDIS_KEY_PREFIX", &w.prefix)
            .env(
                "KURYER_TELEGRAM_BOT_TOKENS",
                format!("[\"{}\"]", fixtures::bot_token()),
            )
            .env("KURYER_TELEGRAM_BOT_API_URL", w.fake.url())
            .env("KURYER_HTTP_LISTEN", http.to_string())
            .env("KURYER_DELIVERY_POLL_MIN_INTERVAL_MS", "100")
            .env("KURYER_DELIVERY_POLL_MAX_INTERVAL_MS", "300")
            .env("KURYER_LOG_FORMAT", "json")
            .env("KURYER_LOG_LEVEL", "warn")
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            // As the systemd unit sets it (see systemd/kuryer.service).
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd.spawn().context("starting kuryer run")?;
        let pid = child.id();
        let k = Self {
            child,
            pid,
            http,
            pings,
            stop,
            socket_path,
            log_path,
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client
                .get(format!("http://{http}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready && w.fake.my_commands(fixtures::bot_token(), "uz").is_some() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(90),
                "kuryer run never became ready (its log: {})",
                k.log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(k)
    }

    /// CPU seconds (user + system) of the process so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return 0.0;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
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

    /// Peak RSS of the process (VmHWM), MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Whether the process still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its log file (stderr), for when something went wrong.
    pub(crate) fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }

    /// Starts watching: `/healthz` every 200 ms on a thread of its own
    /// until the returned watch is finished.
    pub(crate) fn watch(&self) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, http) = (stop.clone(), self.http);
        let prober = std::thread::spawn(move || {
            let (mut ok, mut failed, mut max) = (0u64, 0u64, Duration::ZERO);
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                if healthz(http) {
                    ok += 1;
                } else {
                    failed += 1;
                }
                max = max.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(200));
            }
            (ok, failed, max)
        });
        Watch {
            started: Instant::now(),
            cpu0: self.cpu_seconds(),
            stop,
            prober,
        }
    }

    /// Ends a watch: what the process did during it.
    pub(crate) fn reading(&mut self, watch: Watch) -> ProcessReading {
        let end = Instant::now();
        watch.stop.store(true, Ordering::Relaxed);
        let (ok, failed, max) = watch.prober.join().unwrap_or_default();
        let pings: Vec<Instant> = self
            .pings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .filter(|t| *t >= watch.started && *t <= end)
            .collect();
        let mut edges = vec![watch.started];
        edges.extend(pings.iter().copied());
        edges.push(end);
        let gap = edges
            .windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .unwrap_or_default();
        ProcessReading {
            cpu_s: self.cpu_seconds() - watch.cpu0,
            peak_rss_mib: self.peak_rss_mib(),
            watchdog_pings: pings.len() as u64,
            watchdog_max_gap_ms: gap.as_secs_f64() * 1000.0,
            watchdog_bound_ms: WATCHDOG.as_secs_f64() * 1000.0,
            healthz_answers: ok,
            healthz_failures: failed,
            healthz_max_ms: max.as_secs_f64() * 1000.0,
            alive: self.alive(),
        }
    }
}

/// A watch of the process under way.
pub(crate) struct Watch {
    started: Instant,
    cpu0: f64,
    stop: Arc<AtomicBool>,
    prober: std::thread::JoinHandle<(u64, u64, Duration)>,
}

/// One `GET /healthz` over a fresh connection (10 s at most): answered 200?
fn healthz(http: std::net::SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let timeout = Duration::from_secs(10);
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&http, timeout) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(timeout));
    let _ = conn.set_write_timeout(Some(timeout));
    if conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kuryer\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
