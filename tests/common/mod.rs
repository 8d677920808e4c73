//! Helpers shared by the integration tests: a fresh PostgreSQL database per
//! test, dropped when the test ends.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use kuryer::config::DatabaseConfig;
use kuryer::secret::SecretUrl;
use kuryer::store::{Store, migrate};

/// The server the tests create their databases on. CI and the README's test
/// command start it when it is not running.
pub fn admin_url() -> String {
    std::env::var("KURYER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub async fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "kuryer_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin_url()).expect("admin url");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }

    /// The database configuration pointing at this database.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretUrl::new(self.url.clone()),
            pool_max: 8,
            ..DatabaseConfig::default()
        }
    }

    /// A store on this database, schema not yet applied.
    pub fn store(&self) -> Store {
        Store::new(&self.config()).expect("store")
    }

    /// A store on this database with every migration applied.
    pub async fn migrated(&self) -> Store {
        let store = self.store();
        migrate::apply(&store, migrate::MIGRATIONS)
            .await
            .expect("migrate");
        store
    }

    /// A plain client on this database, for assertions in SQL.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a thread with its own small runtime does the clean-up.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let admin = connect(&admin_url()).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// Connects a plain tokio-postgres client, its connection driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e} (is PostgreSQL running? see README)"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The real `kuryer run` binary as a child process, its log in a file.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `kuryer run` against `db_url` and `fake`, HTTP on `port`,
    /// Telegram's limits × `scale`, plus `extra` environment variables.
    pub fn start_with(
        db_url: &str,
        fake: &kuryer::sim::fake_bot_api::FakeTelegram,
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
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
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
    pub fn kill9(&mut self) {
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `/readyz` answers 200.
pub async fn wait_ready(port: u16, limit: std::time::Duration) -> bool {
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
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start(port: u16) -> Self {
        let mut r = Self { port, child: None };
        r.restart();
        r
    }
    pub fn restart(&mut self) {
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
    pub fn stop(&mut self) {
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
