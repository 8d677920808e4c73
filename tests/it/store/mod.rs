//! The schema and the store against a real PostgreSQL, one fresh database per test.

mod dead_holder;
mod migrations;
mod open;

use crate::common::TestDb;
use chrono::{Days, NaiveDate, Utc};
use kuryer::store::{NewPost, partitions};
use kuryer_actors::model::{
    ChannelUsername, DeliveryMode, DeliveryRecord, DeliveryStatus, DestinationKind,
};

fn name(s: &str) -> ChannelUsername {
    ChannelUsername::parse(s).unwrap()
}

#[tokio::test]
async fn add_subscription_creates_everything_once_and_is_idempotent() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let first = store
        .add_subscription(123456, &name("@Test_Channel"))
        .await
        .unwrap();
    assert!(first.created);
    let s = &first.subscription;
    assert_eq!(s.user_id, 123456);
    assert_eq!(s.channel_username.as_deref(), Some("test_channel"));
    assert_eq!(s.channel_status, "pending");
    assert_eq!(s.channel_id, None);
    assert_eq!(s.destination_chat_id, 123456);
    assert_eq!(s.destination_kind, DestinationKind::Private);
    assert_eq!(s.mode, DeliveryMode::Copy);
    assert!(s.active);

    let again = store
        .add_subscription(123456, &name("t.me/test_channel"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.subscription, first.subscription);

    let c = db.client().await;
    for (table, want) in [
        ("users", 1i64),
        ("channels", 1),
        ("destinations", 1),
        ("subscriptions", 1),
    ] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, want, "{table}");
    }

    // A removed subscription comes back on a new add.
    c.execute("UPDATE subscriptions SET is_active = false", &[])
        .await
        .unwrap();
    let back = store
        .add_subscription(123456, &name("test_channel"))
        .await
        .unwrap();
    assert!(!back.created);
    assert!(back.subscription.active);
}

#[tokio::test]
async fn concurrent_adds_of_the_same_pair_make_one_subscription() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let ch = name("race_channel");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, ch) = (store.clone(), ch.clone());
        tasks.push(tokio::spawn(async move {
            store.add_subscription(777, &ch).await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let added = t.await.unwrap().unwrap();
        created += added.created as usize;
        ids.insert(added.subscription.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn subscriptions_of_an_unknown_user_is_empty() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.add_subscription(1, &name("chan_one")).await.unwrap();
    store.add_subscription(1, &name("chan_two")).await.unwrap();
    assert!(store.subscriptions_of_user(2).await.unwrap().is_empty());
    let list = store.subscriptions_of_user(1).await.unwrap();
    let names: Vec<_> = list
        .iter()
        .map(|s| s.channel_username.clone().unwrap())
        .collect();
    assert_eq!(names, ["chan_one", "chan_two"]);
}

#[tokio::test]
async fn constraints_reject_duplicates_and_junk() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store
        .add_subscription(42, &name("dupe_channel"))
        .await
        .unwrap();
    let c = db.client().await;
    let dup_sub = c
        .execute(
            "INSERT INTO subscriptions (user_id, channel_id, destination_id)
             SELECT user_id, channel_id, destination_id FROM subscriptions",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        dup_sub.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );

    let dup_user = c
        .execute("INSERT INTO users (telegram_id) VALUES (42)", &[])
        .await
        .unwrap_err();
    assert_eq!(
        dup_user.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );

    let upper = c
        .execute("INSERT INTO channels (username) VALUES ('UpperCase')", &[])
        .await
        .unwrap_err();
    assert_eq!(
        upper.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
    );

    let bad_mode = c
        .execute("UPDATE subscriptions SET mode = 'teleport'", &[])
        .await
        .unwrap_err();
    assert_eq!(
        bad_mode.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
    );

    // Two rows for the same subscription + source message, even written a day
    // apart, are one row: the partition key is the post's day, not the send's.
    let sub: i64 = c
        .query_one("SELECT id FROM subscriptions", &[])
        .await
        .unwrap()
        .get(0);
    let ch: i64 = c
        .query_one("SELECT id FROM channels", &[])
        .await
        .unwrap()
        .get(0);
    let today = Utc::now().date_naive();
    c.execute(
        "INSERT INTO forwarded_messages (subscription_id, channel_id, source_message_id, post_day,
                                         destination_chat_id, status)
         VALUES ($1, $2, 10, $3, 42, 'sent')",
        &[&sub, &ch, &today],
    )
    .await
    .unwrap();
    let dup_fwd = c
        .execute(
            "INSERT INTO forwarded_messages (subscription_id, channel_id, source_message_id, post_day,
                                             destination_chat_id, status)
             VALUES ($1, $2, 10, $3, 42, 'sent')",
            &[&sub, &ch, &today],
        )
        .await
        .unwrap_err();
    assert_eq!(
        dup_fwd.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );

    let dup_post = {
        let post = NewPost {
            channel_id: ch,
            message_ids: vec![5],
            album_id: None,
            kind: "text".into(),
            detected_at: Utc::now(),
            ..Default::default()
        };
        assert!(store.record_post(&post).await.unwrap().is_some());
        store.record_post(&post).await.unwrap()
    };
    assert_eq!(dup_post, None, "the same post was recorded twice");
}

/// 10,000 users × 5 channels each out of 1,000: the registry's load.
async fn seed_population(c: &tokio_postgres::Client) {
    c.batch_execute(
        "INSERT INTO users (telegram_id) SELECT g FROM generate_series(1, 10000) g;
         INSERT INTO channels (username, telegram_id, status)
              SELECT 'chan_' || g, -1000000000000 - g, 'active' FROM generate_series(1, 1000) g;
         INSERT INTO destinations (chat_id, kind, owner_user_id)
              SELECT telegram_id, 'private', id FROM users;
         INSERT INTO subscriptions (user_id, channel_id, destination_id)
              SELECT u.id, c.id, d.id
                FROM users u
                JOIN destinations d ON d.owner_user_id = u.id
                CROSS JOIN generate_series(0, 4) k
                JOIN channels c ON c.id = ((u.id * 7 + k * 200) % 1000) + 1;",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn stream_loads_50000_subscriptions_in_bounded_chunks() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let c = db.client().await;
    seed_population(&c).await;
    // Inactive rows and rows of inactive destinations are not streamed.
    c.batch_execute(
        "INSERT INTO users (telegram_id) VALUES (999999);
         INSERT INTO destinations (chat_id, kind, owner_user_id, is_active)
              SELECT 999999, 'private', id, false FROM users WHERE telegram_id = 999999;
         INSERT INTO subscriptions (user_id, channel_id, destination_id)
              SELECT u.id, 1, d.id FROM users u JOIN destinations d ON d.owner_user_id = u.id
               WHERE u.telegram_id = 999999;",
    )
    .await
    .unwrap();

    const CHUNK: usize = 1000;
    let started = std::time::Instant::now();
    let mut stream = store.stream_active_subscriptions(CHUNK);
    let first = stream.next_chunk().await.unwrap().unwrap();
    assert_eq!(first.len(), CHUNK);
    // The consumer holds back: the producer must not run ahead by more than
    // the channel's two chunks plus the one it is sending.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        stream.fetched_rows() <= 4 * CHUNK,
        "fetched {} rows while the consumer had taken {CHUNK}",
        stream.fetched_rows()
    );

    let mut total = first.len();
    let mut chunks = 1;
    let mut ids = std::collections::HashSet::new();
    let mut last_channel = 0;
    for s in &first {
        ids.insert(s.subscription_id);
        last_channel = s.channel_id;
    }
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= CHUNK);
        chunks += 1;
        total += chunk.len();
        for s in &chunk {
            assert!(s.channel_id >= last_channel, "not ordered by channel");
            last_channel = s.channel_id;
            assert!(ids.insert(s.subscription_id), "subscription streamed twice");
            assert_eq!(s.destination_kind, DestinationKind::Private);
            assert_eq!(s.filters, "{}");
        }
    }
    eprintln!(
        "streamed {total} subscriptions in {chunks} chunks in {:?}",
        started.elapsed()
    );
    assert_eq!(total, 50_000);
    assert_eq!(chunks, 50);
}

#[tokio::test]
async fn record_post_advances_the_high_water_mark_and_never_back() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let ch = store
        .add_subscription(5, &name("hwm_channel"))
        .await
        .unwrap();
    let channel_id: i64 = db
        .client()
        .await
        .query_one(
            "SELECT id FROM channels WHERE username = 'hwm_channel'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let _ = ch;
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(0));
    let album = NewPost {
        channel_id,
        message_ids: vec![10, 11, 12],
        album_id: Some(777),
        kind: "album".into(),
        detected_at: Utc::now(),
        ..Default::default()
    };
    assert!(store.record_post(&album).await.unwrap().is_some());
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(12));
    // An older id (out of order) neither fails nor moves the mark back.
    assert!(!store.advance_high_water_mark(channel_id, 7).await.unwrap());
    assert!(store.advance_high_water_mark(channel_id, 20).await.unwrap());
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(20));
    assert_eq!(store.high_water_mark(99999).await.unwrap(), None);
}

#[tokio::test]
async fn forwarded_rows_are_written_in_one_batch_and_final_outcomes_stay() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(3, 30).await.unwrap();
    let today = Utc::now().date_naive();
    let row = |sub: i64, msg: i64, status: &'static str| DeliveryRecord {
        subscription_id: sub,
        channel_id: 1,
        source_message_id: msg,
        post_day: today,
        destination_chat_id: 100 + sub,
        sent_message_id: (status == "sent").then_some(msg * 10),
        status: match status {
            "sent" => DeliveryStatus::Sent,
            "failed" => DeliveryStatus::Failed,
            "ambiguous" => DeliveryStatus::Ambiguous,
            other => panic!("no status {other}"),
        },
        error: (status == "failed").then(|| "Forbidden: bot was blocked by the user".to_owned()),
        sent_message_ids: None,
        backfill: false,
    };
    let batch: Vec<DeliveryRecord> = (1..=2000).map(|i| row(i, 1, "sent")).collect();
    assert_eq!(store.insert_forwarded(&batch).await.unwrap(), 2000);
    // Retrying the same batch writes nothing new.
    assert_eq!(store.insert_forwarded(&batch).await.unwrap(), 0);
    // A failure recorded first is overwritten by the later success, never the reverse.
    assert_eq!(
        store
            .insert_forwarded(&[row(5000, 1, "failed")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .insert_forwarded(&[row(5000, 1, "sent")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .insert_forwarded(&[row(5000, 1, "failed")])
            .await
            .unwrap(),
        0
    );
    let c = db.client().await;
    let (n, in_default): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM forwarded_messages),
                        (SELECT count(*) FROM forwarded_messages_default)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(n, 2001);
    assert_eq!(
        in_default, 0,
        "today's rows fell into the default partition"
    );
    let status: String = c
        .query_one(
            "SELECT status FROM forwarded_messages WHERE subscription_id = 5000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "sent");

    // Batches are written concurrently: an older 'ambiguous' row arriving
    // after the delivery's final outcome never replaces it.
    for (status, written, why) in [
        ("ambiguous", 1, "first"),
        ("ambiguous", 1, "ambiguous again"),
        ("failed", 1, "the outcome replaces it"),
        ("ambiguous", 0, "a late ambiguous row"),
    ] {
        let n = store
            .insert_forwarded(&[row(7000, 1, status)])
            .await
            .unwrap();
        assert_eq!(n, written, "{why}");
    }
    let status: String = c
        .query_one(
            "SELECT status FROM forwarded_messages WHERE subscription_id = 7000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "failed");

    // One bad row fails the statement as a whole (the DbWriter splits such a
    // batch). The status is typed now, so the bad value is text PostgreSQL
    // refuses (a NUL byte).
    let mut bad = vec![row(6000, 1, "sent")];
    bad.push(DeliveryRecord {
        error: Some("bad\0byte".to_owned()),
        ..row(6001, 1, "failed")
    });
    let err = store.insert_forwarded(&bad).await.unwrap_err();
    assert!(!err.is_retriable(), "bad data is not worth retrying: {err}");
}

#[tokio::test]
async fn partitions_are_created_ahead_and_dropped_past_retention() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let r = store.maintain_partitions_at(today, 3, 5).await.unwrap();
    // Yesterday, today, and three days ahead.
    assert_eq!(r.created.len(), 5, "{:?}", r.created);
    assert!(r.created.contains(&partitions::partition_name(today)));
    // Nothing to do a second time.
    let again = store.maintain_partitions_at(today, 3, 5).await.unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty());

    // Ten days later with five days of retention: the first days go.
    let later = today + Days::new(10);
    let r = store.maintain_partitions_at(later, 1, 5).await.unwrap();
    let dropped: Vec<NaiveDate> = r
        .dropped
        .iter()
        .map(|n| partitions::parse_partition_day(n).unwrap())
        .collect();
    assert!(!dropped.is_empty());
    let cutoff = later - Days::new(5);
    assert!(dropped.iter().all(|d| *d < cutoff), "{dropped:?}");
    let c = db.client().await;
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
              WHERE p.relname = 'forwarded_messages'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // default + partitions from the cutoff on.
    assert!(left >= 3, "{left}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_retriable_error() {
    let mut cfg = kuryer::config::DatabaseConfig {
        url: kuryer::secret::SecretUrl::new("postgres://postgres:hunter2@127.0.0.1:1/nowhere"),
        connect_timeout_ms: 500,
        pool_wait_timeout_ms: 500,
        ..Default::default()
    };
    cfg.pool_max = 1;
    let store = kuryer::store::Store::new(&cfg).unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// Rows of a day without a partition land in the default
/// partition; creating that day's partition was then refused and skipped,
/// so the day stayed in the default partition for good, and no retention
/// ever removed its rows.
#[tokio::test]
async fn rows_in_the_default_partition_move_to_their_day_and_are_retained() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let old = today - Days::new(40);
    let row = |sub: i64, day: NaiveDate| DeliveryRecord {
        subscription_id: sub,
        channel_id: 1,
        source_message_id: 7,
        post_day: day,
        destination_chat_id: 100 + sub,
        sent_message_id: Some(70),
        status: DeliveryStatus::Sent,
        error: None,
        sent_message_ids: None,
        backfill: false,
    };
    // No partition exists yet: everything lands in the default one.
    let mut rows: Vec<DeliveryRecord> = (1..=30).map(|i| row(i, today)).collect();
    rows.extend((31..=40).map(|i| row(i, old)));
    assert_eq!(store.insert_forwarded(&rows).await.unwrap(), 40);
    let r = store.maintain_partitions_at(today, 1, 5).await.unwrap();
    assert!(
        r.created.contains(&partitions::partition_name(today)),
        "{r:?}"
    );
    assert_eq!(
        (r.moved_from_default, r.default_rows_deleted),
        (30, 10),
        "{r:?}"
    );
    let c = db.client().await;
    let count = async |sql: &str| -> i64 { c.query_one(sql, &[]).await.unwrap().get(0) };
    assert_eq!(
        count("SELECT count(*) FROM forwarded_messages_default").await,
        0
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM {}",
            partitions::partition_name(today)
        ))
        .await,
        30
    );
    // The moved rows still stop a second delivery row.
    assert_eq!(store.insert_forwarded(&rows[..30]).await.unwrap(), 0);
}

/// The CA that vouches for the test server's certificate: made by
/// `.ci/services.sh` (a throw-away CA, the server's certificate for
/// `localhost` and `127.0.0.1`), or `KURYER_TEST_PG_CA_FILE` for a server
/// set up otherwise.
fn test_server_ca() -> std::path::PathBuf {
    std::env::var_os("KURYER_TEST_PG_CA_FILE")
        .map(Into::into)
        .unwrap_or_else(|| "/var/lib/postgresql/kuryer-ci-tls/ca.pem".into())
}

/// `NoTls` was hard-coded once, so a PostgreSQL requiring TLS could not be
/// used and all traffic was plain. With `sslmode=require` the connection is
/// TLS and the server's certificate is verified (trusted through
/// `database.tls_ca_file`); without a root that vouches for it the same
/// server is refused, never reached in plain text. A server without TLS
/// fails the test: `.ci/services.sh` turns it on.
#[tokio::test]
async fn tls_to_postgres_is_verified_and_used_when_the_url_asks() {
    let ca = test_server_ca();
    let admin = crate::common::connect(&crate::common::admin_url()).await;
    let ssl_on: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl_on, "on",
        "the test server has ssl = {ssl_on}: run `bash .ci/services.sh`, which turns TLS on \
         with a throw-away CA"
    );
    assert!(
        ca.is_file(),
        "no CA for the test server's certificate at {} (made by `bash .ci/services.sh`, \
         or set KURYER_TEST_PG_CA_FILE)",
        ca.display()
    );
    let db = TestDb::new().await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_host(Some("localhost")).unwrap();
    url.set_query(Some("sslmode=require"));
    let cfg = kuryer::config::DatabaseConfig {
        url: kuryer::secret::SecretUrl::new(url.to_string()),
        tls_ca_file: Some(ca),
        pool_max: 2,
        ..Default::default()
    };
    let store = kuryer::store::Store::new(&cfg).unwrap();
    let over_tls: bool = store
        .conn("tls test")
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(over_tls, "the connection is not TLS");
    // The same server without a root that vouches for its certificate.
    let untrusted = kuryer::store::Store::new(&kuryer::config::DatabaseConfig {
        tls_ca_file: None,
        ..cfg.clone()
    })
    .unwrap();
    let err = untrusted.ping().await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // No sslmode: plain, as before.
    let plain: bool = db
        .store()
        .conn("plain test")
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!plain);
}
