//! The seed's design as a baseline: `bench/baseline/seed_baseline.py`
//! (aiogram, asyncpg, redis) against the same fake Bot API process, database
//! schema, population and posts as the seed scenario. It reads the channels
//! through the fake's history route over HTTP; so does the kuryer run it is
//! compared with (`Reading::Http`). It runs in two variants: without the
//! seed's `sleep(0.05)` after each send (the like-with-like comparison), and
//! as the seed writes it, with the sleep.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::util::{BenchDb, settle_stats};
use kuryer::config::Config;
use kuryer::store::{Open, Store};
use kuryer_sim::fixtures;
use kuryer_sim::process::{FakeProcess, FakeSpec};

/// The baseline program, built into the binary so `kuryer bench` works from anywhere.
pub(crate) const SCRIPT: &str = include_str!("../baseline/seed_baseline.py");
/// Its Python packages.
pub(crate) const REQUIREMENTS: &str = include_str!("../baseline/requirements.txt");

/// What the baseline run processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BaselineSpec {
    pub(crate) channels: u32,
    pub(crate) users: u32,
    pub(crate) subs: u32,
    pub(crate) posts: u32,
    /// Seconds slept after each send inside the semaphore: the seed's 0.05,
    /// or 0 to measure the design without its pause.
    pub(crate) send_pause_s: f64,
    /// The Python interpreter with aiogram, asyncpg and redis.
    pub(crate) python: PathBuf,
}

/// What the baseline achieved, counted by the fake like kuryer's runs.
/// Units are in the names (`_ms`, `_s`, `_per_s`, `_mb` = MiB).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct BaselineResult {
    pub(crate) channels: u32,
    pub(crate) users: u32,
    pub(crate) subscriptions: u64,
    pub(crate) posts: u32,
    /// The pause after each send (0.05: the seed as written; 0: none).
    #[serde(default = "seed_send_pause")]
    pub(crate) send_pause_s: f64,
    pub(crate) deliveries_expected: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) rows_persisted: u64,
    /// Posts published at once → the program has sent and persisted all.
    pub(crate) elapsed_s: f64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p99_ms: f64,
    pub(crate) latency_max_ms: f64,
    /// A cycle over every channel that found nothing (the seed's poll cycle).
    pub(crate) empty_cycle_ms: Option<f64>,
    /// The first cycle that found the posts (includes delivering them).
    pub(crate) first_busy_cycle_ms: Option<f64>,
    pub(crate) cycles: u64,
    /// Client-side averages, measured in the program.
    pub(crate) db_ops: u64,
    pub(crate) db_avg_ms: f64,
    pub(crate) redis_ops: u64,
    pub(crate) redis_avg_ms: f64,
    /// Server-side average per transaction (`pg_stat_database`).
    pub(crate) db_transactions: u64,
    pub(crate) db_server_avg_ms: f64,
    pub(crate) peak_rss_mb: f64,
    pub(crate) rate_limited_429: u64,
    pub(crate) python: String,
}

/// The seed's `asyncio.sleep(0.05)` after each send (reports written before
/// the pause was an option had it).
pub(crate) fn seed_send_pause() -> f64 {
    0.05
}

#[derive(Deserialize)]
struct ProgramOutput {
    cycles: u64,
    first_busy_cycle_ms: Option<f64>,
    empty_cycle_ms: Option<f64>,
    db_ops: u64,
    db_avg_ms: f64,
    redis_ops: u64,
    redis_avg_ms: f64,
    peak_rss_mb: f64,
    python: String,
}

fn has_packages(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import aiogram, asyncpg, redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where the baseline's virtualenv lives: `$KURYER_BENCH_VENV`, else
/// `target/bench-venv` beside this binary's profile directory.
fn venv_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("KURYER_BENCH_VENV") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|t| t.join("bench-venv")))
        .unwrap_or_else(|| std::env::temp_dir().join("kuryer-bench-venv"))
}

/// A Python interpreter with the baseline's packages: `$KURYER_BENCH_PYTHON`,
/// else the bench virtualenv, created and filled from
/// `benches/requirements.txt` when missing. `Err` says why there is none.
pub(crate) fn find_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("KURYER_BENCH_PYTHON") {
        let p = PathBuf::from(p);
        return if has_packages(&p) {
            Ok(p)
        } else {
            Err(format!(
                "KURYER_BENCH_PYTHON={} lacks aiogram, asyncpg or redis",
                p.display()
            ))
        };
    }
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if has_packages(&python) {
        return Ok(python);
    }
    eprintln!(
        "kuryer bench: installing the baseline's Python packages into {} …",
        venv.display()
    );
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            Err(format!(
                "{:?} failed: {}",
                cmd.get_program(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ))
        }
    };
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(|e| e.to_string())?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    if has_packages(&python) {
        Ok(python)
    } else {
        Err("the packages installed but do not import".into())
    }
}

/// Runs the baseline once on the seed workload.
pub(crate) async fn run(spec: &BaselineSpec, cfg: &Config) -> anyhow::Result<BaselineResult> {
    let db = BenchDb::create(cfg, "b").await?;
    let result = run_in(spec, cfg, &db).await;
    // The seed's keys live 24 h; a benchmark leaves none behind.
    let prefix = format!("{}{}:", cfg.redis.key_prefix, db.name());
    db.drop_db().await;
    if let Err(e) = crate::pipeline_run::drop_redis_keys(cfg, &prefix).await {
        tracing::warn!(error = %e, "Could not remove the baseline's Redis keys.");
    }
    result
}

/// Populates, starts the program, publishes the posts, waits for it and gathers the result.
async fn run_in(spec: &BaselineSpec, cfg: &Config, db: &BenchDb) -> anyhow::Result<BaselineResult> {
    let channels = spec.channels.max(1);
    let users = spec.users.max(1);
    let pairs = populate(db, channels, users, spec.subs).await?;
    let fake = crate::util::spawn_fake(&FakeSpec {
        limit_scale: 0.0,
        channels,
        users,
        groups: 0,
        bots: 1,
        ..FakeSpec::default()
    })?;
    fake.set_pairs(&pairs).await?;
    let expected = pairs.len() as u64 * u64::from(spec.posts);

    let dir = std::env::temp_dir().join(format!("kuryer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("seed_baseline.py");
    std::fs::write(&script, SCRIPT)?;
    let prefix = format!("{}{}:", cfg.redis.key_prefix, db.name());
    settle_stats().await;
    let pg0 = db.stats().await?;
    let mut program = Program::spawn(spec, cfg, db, &fake, &script, &prefix, expected)?;
    let ready = program.recv(Duration::from_secs(60))?;
    anyhow::ensure!(ready.contains("ready"), "unexpected first line: {ready}");

    publish_posts(&fake, spec.posts, channels).await?;
    let t0 = Instant::now();
    let last = program.last_line_at_exit().await;
    let elapsed = t0.elapsed().as_secs_f64();
    let status = program.child.wait()?;
    let out: ProgramOutput = serde_json::from_str(last.as_deref().unwrap_or(""))
        .with_context(|| format!("the baseline program ended ({status}) without its results"))?;
    let _ = std::io::stdout().flush();

    let r = fake.report(None, 0.0).await?;
    let store = Store::new(&db.cfg)?;
    let persisted = store.sent_deliveries().await?;
    store.close();
    settle_stats().await;
    let (n, avg) = db.stats().await?.since(&pg0);
    fake.quit().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(BaselineResult {
        channels,
        users,
        subscriptions: pairs.len() as u64,
        posts: spec.posts,
        send_pause_s: spec.send_pause_s,
        deliveries_expected: r.expected,
        delivered: r.delivered,
        lost: r.lost,
        duplicates: r.duplicates,
        rows_persisted: persisted,
        elapsed_s: elapsed,
        deliveries_per_s: r.delivered as f64 / elapsed.max(1e-9),
        latency_p50_ms: r.latency_p50_ms,
        latency_p99_ms: r.latency_p99_ms,
        latency_max_ms: r.latency_max_ms,
        empty_cycle_ms: out.empty_cycle_ms,
        first_busy_cycle_ms: out.first_busy_cycle_ms,
        cycles: out.cycles,
        db_ops: out.db_ops,
        db_avg_ms: out.db_avg_ms,
        redis_ops: out.redis_ops,
        redis_avg_ms: out.redis_avg_ms,
        db_transactions: n,
        db_server_avg_ms: avg,
        peak_rss_mb: out.peak_rss_mb,
        rate_limited_429: r.stats.rate_limited_429,
        python: out.python,
    })
}

/// Populates a fresh schema with the seed's channels, users and subscriptions; returns the (channel, user) pairs.
async fn populate(
    db: &BenchDb,
    channels: u32,
    users: u32,
    subs: u32,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let store = Store::open(&db.cfg, Open::fresh()).await?.store;
    let pairs = fixtures::populate(
        &*store.conn("bench population").await?,
        channels,
        users,
        subs,
    )
    .await?;
    store.close();
    Ok(pairs)
}

/// Publishes `posts` rounds on every channel, once more if the first try published nothing.
async fn publish_posts(fake: &FakeProcess, posts: u32, channels: u32) -> anyhow::Result<()> {
    let posts: Vec<(i64, u32)> = (0..posts)
        .flat_map(|round| (1..=i64::from(channels)).map(move |i| (i, round)))
        .collect();
    if let Err(e) = fake.publish(&posts).await {
        // The fake's control server closes a keep-alive connection left idle
        // while the program started (seconds); the first request on it can
        // fail. Published again only if nothing was published.
        anyhow::ensure!(
            fake.report(None, 0.0).await?.expected == 0,
            "publishing failed after some posts were published: {e:#}"
        );
        tracing::warn!(error = %e, "Publishing to the fake failed; publishing again.");
        fake.publish(&posts).await?;
    }
    Ok(())
}

/// The running baseline program and the lines of its stdout, read on a thread of their own.
struct Program {
    /// The Python process.
    child: Child,
    /// Its stdout, a line at a time.
    rx: mpsc::Receiver<String>,
}

impl Program {
    /// Starts the program against the fake, the database and Redis, its stdout piped to a reader thread.
    fn spawn(
        spec: &BaselineSpec,
        cfg: &Config,
        db: &BenchDb,
        fake: &FakeProcess,
        script: &Path,
        prefix: &str,
        expected: u64,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(&spec.python)
            .arg(script)
            .args(["--bot-api", &fake.bot_api])
            .args(["--control", fake.control_url()])
            .args(["--key-prefix", prefix])
            .args(["--expect", &expected.to_string()])
            .args(["--send-pause", &spec.send_pause_s.to_string()])
            // Secrets (URLs may hold passwords) stay off the command line, which `ps` shows.
            .env("BENCH_BOT_TOKEN", fixtures::bot_token())
            .env("BENCH_DATABASE_URL", db.cfg.url.expose())
            .env("BENCH_REDIS_URL", cfg.redis.url.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", spec.python.display()))?;
        let stdout = child.stdout.take().context("baseline stdout")?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, rx })
    }

    /// The program's next line, or an error when none comes within `timeout`.
    fn recv(&self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => return Ok(line),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(e) => anyhow::bail!("the baseline program stopped answering: {e}"),
            }
        }
    }

    /// Waits for the program to exit; returns the last line it printed.
    async fn last_line_at_exit(&mut self) -> Option<String> {
        // Blocking waits on a helper thread would be tidier; the actix thread
        // has nothing else to do here, and each wait is short.
        let mut last = None;
        loop {
            match self.rx.try_recv() {
                Ok(line) => last = Some(line),
                Err(mpsc::TryRecvError::Empty) => {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        // Drain what it printed before exiting.
                        while let Ok(line) = self.rx.recv_timeout(Duration::from_millis(200)) {
                            last = Some(line);
                        }
                        return last;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    let _ = self.child.wait();
                    return last;
                }
            }
        }
    }
}
