//! Read replicas (`database.replica_urls`): against the real streaming
//! replica `.ci/replica.sh` starts on 127.0.0.1:5433 (a physical copy of the
//! whole test cluster, so every throw-away database appears on it), the
//! registry's load and the API's listing read the replica, writes go to
//! the primary; a replica that is down costs a WARN and a read on the
//! primary, never an error.

use std::time::{Duration, Instant};

use crate::common::TestDb;
use kuryer::config::HttpConfig;
use kuryer::secret::{Secret, SecretUrl};
use kuryer::store::{REPLICA_APPLICATION_NAME, Store};
use kuryer_actors::model::ChannelUsername;

const TOKEN: &str = "test-api-token-0123456789";

/// The replica server (no database in the URL).
fn replica_server() -> String {
    std::env::var("KURYER_TEST_REPLICA_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433".to_owned())
}

/// Connects to `db` on the replica once it has replayed its creation.
async fn on_replica(db: &str) -> (String, tokio_postgres::Client) {
    let url = format!("{}/{db}", replica_server());
    let start = Instant::now();
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let in_recovery: bool = client
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .unwrap()
                    .get(0);
                assert!(in_recovery, "{url} is not a replica");
                return (url, client);
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "no streaming replica with database {db} at {} ({e}); .ci/services.sh starts one (.ci/replica.sh)",
                replica_server()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sessions named kuryer-replica on `client`'s server in `db`.
async fn replica_sessions(client: &tokio_postgres::Client, db: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
            &[&REPLICA_APPLICATION_NAME, &db],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_rt::test]
async fn the_registry_load_and_the_api_listing_read_a_real_streaming_replica() {
    let db = TestDb::new().await;
    db.migrated().await;
    let (replica_url, replica) = on_replica(&db.name).await;
    let mut cfg = db.config();
    cfg.replica_urls = vec![SecretUrl::new(&replica_url)];
    let store = Store::new(&cfg).unwrap();

    // A write goes to the primary (a replica would refuse it) …
    let added = store
        .add_subscription(424_242, &ChannelUsername::parse("replicated").unwrap())
        .await
        .unwrap();
    // … and the registry's load, right after, sees it through the replica
    // (it waits for the replica to replay the primary's WAL position).
    let mut stream = store.stream_active_subscriptions(100);
    let mut loaded = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        loaded.extend(chunk.unwrap());
    }
    assert!(
        loaded
            .iter()
            .any(|s| s.subscription_id == added.subscription.id),
        "the load missed a subscription committed before it began"
    );
    assert!(
        replica_sessions(&replica, &db.name).await >= 1,
        "the load did not read the replica"
    );
    // The primary holds no session of the replica pool.
    assert_eq!(replica_sessions(&db.client().await, &db.name).await, 0);

    // The API's GET /subscriptions/{user} reads the replica too: a fresh
    // store whose only way to the replica is that request.
    let api_store = Store::new(&cfg).unwrap();
    let http = HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_token: Some(Secret::new(TOKEN)),
        workers: 1,
        ..HttpConfig::default()
    };
    let api = kuryer::http::bind(&http, api_store.clone()).unwrap();
    let handle = api.server.handle();
    actix_rt::spawn(api.server);
    let (_, replica_admin) = on_replica("postgres").await;
    let before: i64 = replica_admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&REPLICA_APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    let r = reqwest::Client::new()
        .get(format!("http://{}/subscriptions/424242", api.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    let after: i64 = replica_admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&REPLICA_APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        after,
        before + 1,
        "the API's read opened no session on the replica"
    );
    handle.stop(true).await;
    api_store.close();
    store.close();
}

#[actix_rt::test]
async fn a_replica_that_is_down_falls_back_to_the_primary() {
    let db = TestDb::new().await;
    db.migrated().await;
    let dead = crate::common::free_port();
    let mut cfg = db.config();
    cfg.connect_timeout_ms = 1000;
    cfg.replica_urls = vec![SecretUrl::new(format!(
        "postgres://postgres@127.0.0.1:{dead}/{}",
        db.name
    ))];
    let store = Store::new(&cfg).unwrap();
    let added = store
        .add_subscription(515_151, &ChannelUsername::parse("fallback").unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let listed = store.subscriptions_of_user(515_151).await.unwrap();
    assert_eq!(listed.len(), 1);
    let mut stream = store.stream_active_subscriptions(100);
    let mut loaded = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        loaded.extend(chunk.unwrap());
    }
    assert!(
        loaded
            .iter()
            .any(|s| s.subscription_id == added.subscription.id)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
