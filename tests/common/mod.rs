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
