//! Opening the store: `Store::open`'s steps, and the connections of their
//! own (create-database, LISTEN) opened like the pool's — within the
//! connect timeout, with the statement timeout.

use std::time::{Duration, Instant};

use kuryer::config::DatabaseConfig;
use kuryer::secret::SecretUrl;
use kuryer::store::{Open, OpenError, Store, migrate};
use kuryer_sim::throwaway_db::with_dbname;

use crate::common::{TestDb, admin_url, connect};

/// A socket that accepts connections (the kernel completes the handshake)
/// and never says a word: the server that hangs a client without a timeout.
fn silent_server() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn config_for(url: String, connect_timeout_ms: u64) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretUrl::new(url),
        connect_timeout_ms,
        pool_wait_timeout_ms: connect_timeout_ms,
        pool_max: 2,
        ..DatabaseConfig::default()
    }
}

#[tokio::test]
async fn create_database_gives_up_within_the_connect_timeout_naming_host_and_port() {
    let (_silent, port) = silent_server();
    let cfg = config_for(
        format!("postgres://postgres:hunter2@127.0.0.1:{port}/kuryer"),
        300,
    );
    let started = Instant::now();
    let err = migrate::create_database_if_missing(&cfg.primary().unwrap())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("300 ms"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(err.is_retriable(), "{text}");

    // What `kuryer run` does first: the same error, in the same time.
    let started = Instant::now();
    let err = Store::open(&cfg, Open::everything(&cfg)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    assert!(
        matches!(&err, OpenError::Store(e) if e.is_retriable()),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_port_is_named_too() {
    let cfg = config_for("postgres://postgres@127.0.0.1:1/kuryer".to_owned(), 500);
    let err = migrate::create_database_if_missing(&cfg.primary().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.is_retriable(), "{err}");
}

#[tokio::test]
async fn listen_gives_up_within_the_connect_timeout() {
    let (_silent, port) = silent_server();
    let cfg = config_for(format!("postgres://postgres@127.0.0.1:{port}/kuryer"), 300);
    let started = Instant::now();
    let err = kuryer::store::listen::listen(&cfg.primary().unwrap(), "kuryer_subscriptions")
        .await
        .err()
        .expect("no server answered");
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn the_listen_session_has_the_statement_timeout_of_the_pool() {
    let db = TestDb::new().await;
    let cfg = DatabaseConfig {
        statement_timeout_ms: 4_321,
        ..db.config()
    };
    let store = Store::new(&cfg).unwrap();
    let listener = store.listen("kuryer_subscriptions").await.unwrap();
    assert_eq!(listener.show("statement_timeout").await.unwrap(), "4321ms");
    assert_eq!(
        listener.show("application_name").await.unwrap(),
        "kuryer-listen"
    );
    // The pool's sessions say the same.
    let pooled: String = store
        .conn("test")
        .await
        .unwrap()
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pooled, "4321ms");
}

#[tokio::test]
async fn open_creates_a_missing_database_then_finds_it() {
    let name = format!("kuryer_open_{}_{}", std::process::id(), rand_suffix());
    let cfg = DatabaseConfig {
        url: SecretUrl::new(with_dbname(&admin_url(), &name)),
        pool_max: 2,
        ..DatabaseConfig::default()
    };
    let first = Store::open(&cfg, Open::everything(&cfg)).await.unwrap();
    assert!(first.created);
    let report = first.migrations.as_ref().unwrap();
    assert_eq!(report.applied.len(), migrate::MIGRATIONS.len());
    assert!(!first.partitions.as_ref().unwrap().created.is_empty());
    first.store.ping().await.unwrap();
    first.store.close();

    let again = Store::open(&cfg, Open::schema()).await.unwrap();
    assert!(!again.created);
    assert!(again.migrations.as_ref().unwrap().applied.is_empty());
    assert!(again.partitions.is_none(), "left to the daemon");
    again.store.close();
    drop(again);

    connect(&admin_url())
        .await
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
