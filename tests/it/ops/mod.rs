//! What an operator relies on, on the real binary: the systemd notify
//! sequence and the earned watchdog, start-up token checks, `check-config
//! --connect`, metrics that equal what Telegram (the fake) received, and
//! logs with their fields and without secrets.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `/metrics` against what the fake received; the dashboard's names.
mod metrics;

use crate::common::{Daemon, TestDb, free_port};
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use serde_json::Value;

pub(super) const TOKEN: &str = "5353:opsSECRETopsSECRETopsSECRET";
const SECRET: &str = "opsSECRETopsSECRET";
const REVOKED: &str = "6161:revokedSECRETrevokedSECRET";
pub(super) const API_TOKEN: &str = "black-box-api-token-0123";

pub(super) async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The socket systemd would listen on: a Unix datagram socket the test
/// binds, every datagram kept in arrival order.
struct NotifySocket {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let messages = messages.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        messages.lock().unwrap().push(text);
                    }
                }
            });
        }
        Self {
            path,
            messages,
            stop,
            _dir: dir,
        }
    }

    fn env(&self, watchdog: Duration) -> Vec<(&'static str, String)> {
        vec![
            ("NOTIFY_SOCKET", self.path.display().to_string()),
            ("WATCHDOG_USEC", watchdog.as_micros().to_string()),
        ]
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn count(&self, what: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.lines().any(|l| l == what))
            .count()
    }

    fn position(&self, what: &str) -> Option<usize> {
        self.messages()
            .iter()
            .position(|m| m.lines().any(|l| l == what))
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The value of a metric in Prometheus text: the sum over the series of
/// `name` whose labels include every one of `labels`.
pub(super) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some((l, v)) = r.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            && let Ok(v) = value.trim().parse::<f64>()
        {
            sum += v;
        }
    }
    sum
}

pub(super) async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(super) fn assert_no_secret(log: &str) {
    for (i, line) in log.lines().enumerate() {
        assert!(
            !line.contains(SECRET) && !line.contains("revokedSECRET"),
            "line {i} of the log carries a bot token's secret: {line}"
        );
        assert!(!line.contains(API_TOKEN), "line {i} carries the API token");
    }
}

#[tokio::test]
async fn the_notify_sequence_is_status_ready_watchdog_stopping_and_a_webhook_is_removed() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    // Set by someone else: it would make getUpdates answer 409 forever.
    fake.set_webhook(TOKEN, Some("https://hooks.example/very-secret-path"));
    let notify = NotifySocket::bind();
    let port = free_port();
    let mut daemon = Daemon::start_with(
        &db.url,
        &fake,
        TOKEN,
        port,
        20.0,
        &notify.env(Duration::from_millis(900)),
    );
    let ready = wait_until(Duration::from_secs(60), async || {
        notify.position("READY=1").is_some()
    })
    .await;
    assert!(
        ready,
        "no READY=1: {:?}\n{}",
        notify.messages(),
        daemon.log_text()
    );
    // READY=1 means served: /readyz answers at once.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats = fake.stats();
    assert!(
        stats.per_method.get("getMe").copied().unwrap_or(0) >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.per_method.get("deleteWebhook"), Some(&1), "{stats:?}");
    // Pings follow, each after a heartbeat the actors answered.
    let pinged = wait_until(Duration::from_secs(10), async || {
        notify.count("WATCHDOG=1") >= 3
    })
    .await;
    assert!(pinged, "{:?}", notify.messages());

    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let messages = notify.messages();
    let ready_at = notify.position("READY=1").unwrap();
    let first_ping = notify.position("WATCHDOG=1").unwrap();
    let stopping = notify.position("STOPPING=1").expect("STOPPING=1 sent");
    assert!(
        ready_at < first_ping && first_ping < stopping,
        "{messages:?}"
    );
    // Start-up steps are told before READY, live figures with it and after.
    assert!(
        messages[..ready_at]
            .iter()
            .any(|m| m.contains("STATUS=applying migrations")),
        "{messages:?}"
    );
    assert!(
        messages[ready_at].contains("STATUS=0 channels, 0 subscriptions"),
        "{messages:?}"
    );
    assert!(
        messages[first_ping].contains("deliveries in the last minute"),
        "{messages:?}"
    );
    // Nothing but STOPPING-time news after STOPPING=1: no ping.
    assert!(
        messages[stopping..]
            .iter()
            .all(|m| !m.contains("WATCHDOG=1")),
        "{messages:?}"
    );
    let log = daemon.log_text();
    assert!(log.contains("A webhook was set on this bot"), "{log}");
    assert!(!log.contains("very-secret-path"), "webhook path in the log");
    assert_no_secret(&log);
    fake.stop();
}

#[tokio::test]
async fn a_wedged_pipeline_gets_no_more_watchdog_pings() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    let notify = NotifySocket::bind();
    let mut daemon = Daemon::start_with(
        &db.url,
        &fake,
        TOKEN,
        free_port(),
        20.0,
        &notify.env(Duration::from_millis(900)),
    );
    let pinged = wait_until(Duration::from_secs(60), async || {
        notify.count("WATCHDOG=1") >= 3
    })
    .await;
    assert!(pinged, "{:?}\n{}", notify.messages(), daemon.log_text());
    // The test hook: the registry stops reading its mailbox, alive.
    let _ = Command::new("kill")
        .args(["-USR1", &daemon.child.id().to_string()])
        .status();
    // A heartbeat already on its way may still be answered.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = notify.count("WATCHDOG=1");
    // Ten periods (a third of 0.9 s each) without a ping.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        notify.count("WATCHDOG=1"),
        before,
        "pings went on with the registry wedged\n{}",
        daemon.log_text()
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "kuryer exited instead of staying wedged for systemd to restart"
    );
    let log = daemon.log_text();
    assert!(log.contains("did not answer a heartbeat"), "{log}");
    daemon.kill9();
    fake.stop();
}

#[tokio::test]
async fn a_refused_token_is_an_error_naming_its_bot_and_only_all_refused_stop_the_start() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    // Only the first bot exists: the second token is refused (401).
    fake.add_bot(TOKEN);

    // One good, one refused: an ERROR naming bot 6161, and the start goes
    // on with the other (as a token revoked at run time halts only its bot).
    let notify = NotifySocket::bind();
    let mut extra = notify.env(Duration::from_secs(5));
    extra.push((
        "KURYER_TELEGRAM_BOT_TOKENS",
        format!("[\"{TOKEN}\", \"{REVOKED}\"]"),
    ));
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &extra);
    let ready = wait_until(Duration::from_secs(60), async || {
        notify.position("READY=1").is_some()
    })
    .await;
    assert!(ready, "{}", daemon.log_text());
    let m = scrape(port).await;
    assert_eq!(
        metric(&m, "kuryer_bot_token_revoked", &[("bot_id", "6161")]),
        1.0,
        "{m}"
    );
    assert_eq!(daemon.terminate(), Some(0));
    let log = daemon.log_text();
    let refused: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["error_kind"] == "token_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert_eq!(refused[0]["level"], "ERROR");
    assert_eq!(refused[0]["bot_id"], 6161);
    assert_no_secret(&log);

    // Every token refused: nothing to run, the start fails naming it.
    let notify = NotifySocket::bind();
    let mut extra = notify.env(Duration::from_secs(5));
    extra.push(("KURYER_TELEGRAM_BOT_TOKENS", format!("[\"{REVOKED}\"]")));
    let mut daemon = Daemon::start_with(&db.url, &fake, REVOKED, free_port(), 20.0, &extra);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "kuryer kept running with no valid token\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let log = daemon.log_text();
    assert!(
        log.contains("Telegram refused the token of bot 6161"),
        "{log}"
    );
    assert_eq!(notify.position("READY=1"), None, "READY=1 sent anyway");
    assert_no_secret(&log);
    fake.stop();
}

#[tokio::test]
async fn check_config_connect_prints_one_line_per_check() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    let run = |db_url: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" {
                cmd.env_remove(k);
            }
        }
        cmd.args(["check-config", "--connect", "--config", "/dev/null"])
            .env("KURYER_DATABASE_URL", db_url)
            .env(
                "KURYER_TELEGRAM_BOT_TOKENS",
                format!("[\"{TOKEN}\", \"{REVOKED}\"]"),
            )
            .env("KURYER_TELEGRAM_BOT_API_URL", fake.url())
            .output()
            .unwrap()
    };
    let out = run(&db.url);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}\n{stderr}");
    assert!(lines[0].starts_with("✓ database:"), "{stdout}");
    assert!(lines[1].starts_with("✓ redis:"), "{stdout}");
    assert_eq!(lines[2], "✓ bot 5353: getMe answered: @fake5353_bot");
    assert!(
        lines[3].starts_with("✗ bot 6161: Telegram refused the token of bot 6161"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1), "one check failed");
    assert_no_secret(&stdout);
    assert_no_secret(&stderr);

    // A database that does not answer is a ✗ with its reason, no password.
    let out = run("postgres://kuryer:dbPASSWORD@127.0.0.1:1/nowhere");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.lines().next().unwrap().starts_with("✗ database:"),
        "{stdout}"
    );
    assert!(!stdout.contains("dbPASSWORD"), "{stdout}");
    fake.stop();
}

async fn readyz(port: u16) -> Option<(u16, Value)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.ok()?))
}

#[tokio::test]
async fn readyz_is_degraded_while_redis_is_down_and_ready_again_after() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    let redis_port = free_port();
    let mut redis = crate::common::PrivateRedis::start(redis_port);
    let port = free_port();
    let mut daemon = Daemon::start_with(
        &db.url,
        &fake,
        TOKEN,
        port,
        20.0,
        &[(
            "KURYER_REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}/"),
        )],
    );
    assert!(
        crate::common::wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        daemon.log_text()
    );
    let (code, body) = readyz(port).await.unwrap();
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    assert_eq!(body["redis"], "ok");

    redis.stop();
    let (code, body) = readyz(port).await.unwrap();
    // Still delivering (dedup on the database alone): 200, but said.
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["redis"].as_str().unwrap().starts_with("unavailable"),
        "{body}"
    );
    assert_eq!(body["database"], "ok");

    redis.restart();
    let back = wait_until(Duration::from_secs(20), async || {
        readyz(port)
            .await
            .is_some_and(|(c, b)| c == 200 && b["status"] == "ready")
    })
    .await;
    assert!(back, "{:?}", readyz(port).await);
    assert_eq!(daemon.terminate(), Some(0));
    fake.stop();
}

#[tokio::test]
async fn an_actor_gone_makes_readyz_503_and_kuryer_exit_non_zero_for_a_restart() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    let notify = NotifySocket::bind();
    let port = free_port();
    let mut daemon = Daemon::start_with(
        &db.url,
        &fake,
        TOKEN,
        port,
        20.0,
        &notify.env(Duration::from_secs(30)),
    );
    assert!(
        crate::common::wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        daemon.log_text()
    );
    // The test hook: the limiter stops, as a panic in its handler would.
    let _ = Command::new("kill")
        .args(["-USR2", &daemon.child.id().to_string()])
        .status();
    // Before kuryer notices (it looks twice a second) and stops.
    let mut seen = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if let Some((503, body)) = readyz(port).await {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body = seen.expect("/readyz never answered 503 with the limiter gone");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["actors"]["limiter"], "stopped", "{body}");
    assert_eq!(body["actors"]["registry"], "running", "{body}");

    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "kuryer did not stop\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{}", daemon.log_text());
    assert!(
        notify.position("STOPPING=1").is_some(),
        "{:?}",
        notify.messages()
    );
    let log = daemon.log_text();
    assert!(log.contains("the limiter stopped unexpectedly"), "{log}");
    fake.stop();
}

/// `kuryer migrate` off a terminal: a line per migration with its place
/// (`step` of `of`), then how long it all took; the schema is applied.
#[tokio::test]
async fn migrate_reports_its_progress_a_line_per_step_off_a_terminal() {
    let db = TestDb::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_kuryer"))
        .args(["migrate", "--config", "/dev/null"])
        .env("KURYER_DATABASE_URL", &db.url)
        .env("KURYER_LOG_FORMAT", "json")
        .env_remove("KURYER_TELEGRAM_BOT_TOKENS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let steps: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "Applying a migration.")
        .collect();
    let n = kuryer::store::migrate::MIGRATIONS.len();
    assert_eq!(steps.len(), n, "{stderr}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i + 1);
        assert_eq!(s["of"], n);
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "Done." && l["what"] == "applying migrations"),
        "{stderr}"
    );
    // No bar drawn when stderr is not a terminal.
    assert!(!stderr.contains('\r'), "{stderr}");
}

/// `log.format = "auto"` picks journald only when stderr *is* the stream
/// `JOURNAL_STREAM` names (device:inode), as systemd documents; a stale
/// variable inherited with stderr redirected keeps text on stderr.
#[tokio::test]
async fn auto_log_format_follows_journal_stream_only_when_it_is_our_stderr() {
    use std::os::unix::fs::MetadataExt;
    // A database each, so both runs apply (and log) every migration.
    let (db_a, db_b) = (TestDb::new().await, TestDb::new().await);
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, db: &TestDb, journal_stream: Option<String>| {
        let path = dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer"));
        cmd.args(["migrate", "--config", "/dev/null"])
            .env("KURYER_DATABASE_URL", &db.url)
            .env("KURYER_LOG_FORMAT", "auto")
            .env_remove("RUST_LOG")
            .env(
                "JOURNAL_STREAM",
                journal_stream.unwrap_or(format!("{}:{}", meta.dev(), meta.ino())),
            )
            .stdout(std::process::Stdio::null())
            .stderr(file);
        assert!(cmd.status().unwrap().success());
        std::fs::read_to_string(&path).unwrap()
    };
    // A stream that is not ours: text on stderr, as on a terminal.
    let stale = run("stale.log", &db_a, Some("1:1".into()));
    assert!(stale.contains("Applying a migration."), "{stale}");
    assert!(!stale.contains("journald"), "{stale}");
    // Our stderr: journald. Without a journal socket (a container) kuryer
    // says so and falls back to stderr; with one, the lines went there.
    let ours = run("ours.log", &db_b, None);
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        assert!(!ours.contains("Applying a migration."), "{ours}");
    } else {
        assert!(
            ours.contains("journald is not reachable; logging to stderr."),
            "{ours}"
        );
        assert!(ours.contains("Applying a migration."), "{ours}");
    }
}
