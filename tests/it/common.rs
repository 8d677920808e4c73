//! Helpers shared by the integration tests: a fresh PostgreSQL database per
//! test, dropped when the test ends; the real binary as a child process; a
//! private Redis.

use kuryer::config::DatabaseConfig;
use kuryer::secret::SecretUrl;
use kuryer::store::{Store, migrate};
use kuryer_sim::throwaway_db::ThrowawayDb;

/// The server the tests create their databases on. CI and the README's test
/// command start it when it is not running.
pub(crate) fn admin_url() -> String {
    std::env::var("KURYER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test (the simulator's throw-away
/// database), dropped when the test ends.
pub(crate) struct TestDb {
    db: ThrowawayDb,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub(crate) async fn new() -> Self {
        let db = ThrowawayDb::create(&admin_url(), "kuryer_t")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create a test database: {} (is PostgreSQL running? see README)",
                    pg_error(&e)
                )
            });
        Self {
            name: db.name().to_owned(),
            url: db.url().to_owned(),
            db,
        }
    }

    /// The database configuration pointing at this database.
    pub(crate) fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretUrl::new(self.db.url()),
            pool_max: 8,
            ..DatabaseConfig::default()
        }
    }

    /// A store on this database, schema not yet applied.
    pub(crate) fn store(&self) -> Store {
        Store::new(&self.config()).expect("store")
    }

    /// A store on this database with every migration applied.
    pub(crate) async fn migrated(&self) -> Store {
        let store = self.store();
        migrate::apply(&store, migrate::MIGRATIONS)
            .await
            .expect("migrate");
        store
    }

    /// A plain client on this database, for assertions in SQL.
    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// Connects a plain tokio-postgres client, its connection driven in the background.
pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect to {url}: {} (is PostgreSQL running? see README)",
                pg_error(&e)
            )
        });
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A PostgreSQL error with the server's own words: tokio-postgres' `Display`
/// of a server error is only "db error", which hid "too many clients" once.
pub(crate) fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.message(), db.code().code(), e),
        None => format!("{e:?}"),
    }
}

/// The real `kuryer run` binary as a child process, its log in a file.
pub(crate) struct Daemon {
    pub(crate) child: std::process::Child,
    pub(crate) log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `kuryer run` against `db_url` and `fake`, HTTP on `port`,
    /// Telegram's limits × `scale`, plus `extra` environment variables.
    pub(crate) fn start_with(
        db_url: &str,
        fake: &kuryer_sim::fake_bot_api::FakeTelegram,
        token: &str,
        port: u16,
        scale: f64,
        extra: &[(&str, String)],
    ) -> Self {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kuryer.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryer"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.args(["run", "--config", "/dev/null"])
            .env("KURYER_DATABASE_URL", db_url)
            .env("KURYER_TELEGRAM_BOT_TOKENS", format!("[\"{token}\"]"))
            .env("KURYER_TELEGRAM_BOT_API_URL", fake.url())
            .env("KURYER_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("KURYER_HTTP_API_TOKEN", "black-box-api-token-0123")
            .env("KURYER_LOG_FORMAT", "json")
            .env(
                "KURYER_LOG_LEVEL",
                "debug,tokio_postgres=info,hyper=info,reqwest=info,h2=info,rustls=info",
            )
            .env("KURYER_DELIVERY_POLL_MIN_INTERVAL_MS", "100")
            // The default pool (60) suits one production instance; tests
            // run up to four daemons at once beside other tests, and 4 × 60
            // is past PostgreSQL's default `max_connections` (100). A test
            // that needs more passes its own in `extra`.
            .env("KURYER_DATABASE_POOL_MAX", "12")
            // Dedup keys of this run alone: a key left by another test (same
            // subscription and message ids in another database) must not hit.
            .env(
                "KURYER_REDIS_KEY_PREFIX",
                format!("test:{}:", rand::random::<u64>()),
            )
            .env(
                "KURYER_LIMITS_PER_BOT_PER_SECOND",
                (30.0 * scale).to_string(),
            )
            .env("KURYER_LIMITS_PER_CHAT_PER_SECOND", scale.to_string())
            .env(
                "KURYER_LIMITS_PER_GROUP_PER_MINUTE",
                (20.0 * scale).to_string(),
            );
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .expect("start kuryer run");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// The log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit; returns the exit status code.
    pub(crate) fn terminate(&mut self) -> Option<i32> {
        self.signal("-TERM");
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(40) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "kuryer did not stop within 40 s of SIGTERM:\n{}",
            self.log_text()
        );
    }

    /// SIGKILL: no shutdown at all.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free at the time of asking.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `/readyz` answers 200.
pub(crate) async fn wait_ready(port: u16, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    let client = reqwest::Client::new();
    while start.elapsed() < limit {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// A private Redis on its own port, so stopping it touches no other test.
pub(crate) struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub(crate) fn start(port: u16) -> Self {
        let mut r = Self { port, child: None };
        r.restart();
        r
    }
    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
    pub(crate) fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by .ci/services.sh)");
        self.child = Some(child);
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
