//! Migrations against a real PostgreSQL, one fresh database per test:
//! applied once, taking turns, refusing changed or newer ones, rolling back
//! whole.

use crate::common::TestDb;
use kuryer::store::migrate::{self, MigrateError, Migration};

#[tokio::test]
async fn migrations_apply_once_and_reapply_as_a_no_op() {
    let db = TestDb::new().await;
    let store = db.store();
    let first = migrate::apply(&store, migrate::MIGRATIONS).await.unwrap();
    assert_eq!(first.applied.len(), migrate::MIGRATIONS.len());
    assert_eq!(first.already, 0);

    let client = db.client().await;
    let before = schema(&client).await;
    for table in [
        "users",
        "channels",
        "destinations",
        "subscriptions",
        "posts",
        "forwarded_messages",
    ] {
        assert!(
            before.iter().any(|c| c.starts_with(&format!("{table}."))),
            "{table} missing"
        );
    }

    let second = migrate::apply(&store, migrate::MIGRATIONS).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already, migrate::MIGRATIONS.len());
    assert_eq!(
        schema(&client).await,
        before,
        "a second run changed the schema"
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM kuryer_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, migrate::MIGRATIONS.len());
}

#[tokio::test]
async fn concurrent_migrations_take_turns() {
    let db = TestDb::new().await;
    let (a, b) = (db.store(), db.store());
    let (ra, rb) = tokio::join!(
        migrate::apply(&a, migrate::MIGRATIONS),
        migrate::apply(&b, migrate::MIGRATIONS)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // Exactly one of them applied the files; the other found them applied.
    assert_eq!(
        ra.applied.len() + rb.applied.len(),
        migrate::MIGRATIONS.len()
    );
}

#[tokio::test]
async fn a_changed_migration_is_refused_and_nothing_runs() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let mut changed: Vec<Migration> = migrate::MIGRATIONS.to_vec();
    changed[0].sql = "SELECT 1; -- edited after it was applied";
    changed.push(Migration {
        version: migrate::MIGRATIONS.len() as i32 + 1,
        name: "0002_next.sql",
        sql: "CREATE TABLE must_not_exist (x int)",
    });
    let err = migrate::apply(&store, &changed).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::Changed { name, .. } if name == "0001_init.sql"),
        "{err}"
    );
    assert!(err.to_string().contains("0001_init.sql"));
    let exists: bool = db
        .client()
        .await
        .query_one("SELECT to_regclass('must_not_exist') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "a later migration ran after a checksum mismatch");
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    db.client()
        .await
        .execute(
            "INSERT INTO kuryer_migrations (version, name, checksum) VALUES (99, '0099_future.sql', 'x')",
            &[],
        )
        .await
        .unwrap();
    let err = migrate::apply(&store, migrate::MIGRATIONS)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Unknown { version: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_migration_rolls_back_whole() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let mut list: Vec<Migration> = migrate::MIGRATIONS.to_vec();
    list.push(Migration {
        version: migrate::MIGRATIONS.len() as i32 + 1,
        name: "0002_broken.sql",
        sql: "CREATE TABLE half_done (x int); SELECT no_such_function();",
    });
    let err = migrate::apply(&store, &list).await.unwrap_err();
    assert!(err.to_string().contains("0002_broken.sql"), "{err}");
    let c = db.client().await;
    let exists: bool = c
        .query_one("SELECT to_regclass('half_done') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the failed migration left a table behind");
    let n: i64 = c
        .query_one("SELECT count(*) FROM kuryer_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, migrate::MIGRATIONS.len());
}

async fn schema(c: &tokio_postgres::Client) -> Vec<String> {
    c.query(
        "SELECT table_name::text, column_name::text, data_type::text
           FROM information_schema.columns WHERE table_schema = 'public'
          ORDER BY 1, 2",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        format!(
            "{}.{}:{}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        )
    })
    .collect()
}
