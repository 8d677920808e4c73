//! The `kuryer` binary's database commands, run as a child process.

use std::process::Command;

use crate::common::TestDb;

fn kuryer(db_url: &str, command: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kuryer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" {
            c.env_remove(k);
        }
    }
    c.env("KURYER_DATABASE_URL", db_url)
        .env("KURYER_LOG_FORMAT", "json")
        .args([command, "--config", "/dev/null"]);
    c
}

#[tokio::test]
async fn migrate_creates_the_schema_and_a_second_run_changes_nothing() {
    let db = TestDb::new().await;
    let out = kuryer(&db.url, "migrate").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("migrations: 0001_init.sql to "), "{stdout}");
    // Each step once: no list of every migration after the progress.
    assert_eq!(stdout.matches(".sql").count(), 2, "{stdout}");

    let c = db.client().await;
    let count = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace";
    let before: i64 = c.query_one(count, &[]).await.unwrap().get(0);

    let out = kuryer(&db.url, "migrate").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("schema is up to date"), "{stdout}");
    let after: i64 = c.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(
        before, after,
        "the second migrate created or dropped relations"
    );
}

#[tokio::test]
async fn migrate_creates_a_missing_database() {
    let db = TestDb::new().await;
    // Point at a database of that name that does not exist yet; the TestDb
    // guard drops the real one, and this test drops its own below.
    let missing = format!("{}_new", db.name);
    let url = db.url.replace(&db.name, &missing);
    let out = kuryer(&url, "migrate").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let admin = crate::common::connect(&crate::common::admin_url()).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {missing} WITH (FORCE)"))
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("created the database"), "{stdout}");
    assert!(stdout.contains("migrations: 0001_init.sql to "), "{stdout}");
    // Each step once: no list of every migration after the progress.
    assert_eq!(stdout.matches(".sql").count(), 2, "{stdout}");
}

#[tokio::test]
async fn migrate_against_a_dead_database_fails_without_the_password() {
    let out = kuryer("postgres://postgres:hunter2@127.0.0.1:1/none", "migrate")
        .env("KURYER_DATABASE_CONNECT_TIMEOUT_MS", "500")
        .env("KURYER_DATABASE_POOL_WAIT_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("migrate"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
    // Where and which key, each cause once.
    assert!(
        all.contains("127.0.0.1:1") && all.contains("database.url"),
        "{all}"
    );
    assert_eq!(
        all.matches("error connecting to server").count(),
        1,
        "{all}"
    );
}

/// `accounts`, `instances`, `logout` and `check-config --connect` only read
/// or change rows: against a database that does not exist they create none
/// and say which database is missing and that `kuryer migrate` creates it;
/// against an empty one they apply no migration and say so. (They created
/// the database and applied every migration before.)
#[tokio::test]
async fn read_only_commands_never_create_or_migrate_a_database() {
    let db = TestDb::new().await;
    let missing = format!("{}_typo", db.name);
    let url = db.url.replace(&db.name, &missing);
    let admin = crate::common::connect(&crate::common::admin_url()).await;
    let exists = async |name: &str| -> bool {
        admin
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    };
    let commands: [&[&str]; 4] = [
        &["accounts"],
        &["instances"],
        &["logout", "--account", "main"],
        &["check-config", "--connect"],
    ];
    for args in commands {
        let out = kuryer(&url, args[0]).args(&args[1..]).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(
            all.contains(&format!("database \"{missing}\" does not exist"))
                && all.contains("kuryer migrate"),
            "{args:?}: {all}"
        );
        assert!(!exists(&missing).await, "{args:?} created {missing}");
    }
    // An empty database: nothing applied, the command that applies it named.
    for args in commands.iter().take(3) {
        let out = kuryer(&db.url, args[0]).args(&args[1..]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains("has 0 of") && err.contains("`kuryer migrate` applies the rest"),
            "{args:?}: {err}"
        );
    }
    let tables: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "a read-only command migrated");
}

/// `kuryer demo` explains itself: no INFO log lines unless asked (500 "Post
/// fanned out" lines broke the progress line), `--limit-scale 0` is "no
/// limits" (it printed "limits × 0"), and a line under the throughput and
/// latency figures says what bounds them.
#[test]
fn the_demo_says_what_bounds_its_figures_and_logs_only_warnings() {
    // A prefix of this test alone: the demo's keys go under it.
    let prefix = format!("kuryer_demo_test_{}:", std::process::id());
    let demo = |scale: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kuryer"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        let out = c
            .env("KURYER_DATABASE_URL", crate::common::admin_url())
            .env("KURYER_REDIS_KEY_PREFIX", &prefix)
            .args([
                "demo",
                "--config",
                "/dev/null",
                "--channels",
                "3",
                "--users",
                "20",
            ])
            .args([
                "--subs-per-user",
                "2",
                "--posts-per-channel",
                "2",
                "--limit-scale",
                scale,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = demo("0");
    assert!(stdout.contains("(no limits)"), "{stdout}");
    assert!(!stdout.contains("limits × 0"), "{stdout}");
    assert!(
        stdout.contains("no limits: bounded by this machine")
            && stdout.contains("publishing alone takes 2 s")
            && stdout.contains("no limits: the figures are the pipeline's own delay"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("INFO") && !stderr.contains("Post fanned out"),
        "{stderr}"
    );
    assert!(stderr.contains("deliveries"), "no progress line: {stderr}");
    let (stdout, _) = demo("30");
    assert!(
        stdout.contains("(Telegram's limits × 30)")
            && stdout.contains("1 bot × 30/s × 30 = 900 deliveries/s"),
        "{stdout}"
    );
    // Its dedup keys went with it (they stayed for 10 minutes: ~57,600
    // after a default run).
    let left: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut c)
            .await
            .unwrap()
    });
    assert!(
        left.is_empty(),
        "{} keys left, e.g. {:?}",
        left.len(),
        left.first()
    );
}

/// A database URL the demo cannot use: the error keeps the reason
/// (it said only "error connecting to server").
#[test]
fn the_demo_says_why_it_cannot_reach_the_database() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kuryer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    // Port 1 on the loopback: nothing listens, the connection is refused.
    let out = c
        .env(
            "KURYER_DATABASE_URL",
            "postgres://postgres:hunter2secret@127.0.0.1:1/kuryer",
        )
        .args([
            "demo",
            "--config",
            "/dev/null",
            "--channels",
            "1",
            "--users",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.url"), "{err}");
    assert!(
        err.to_lowercase().contains("connection refused"),
        "the reason is lost: {err}"
    );
    assert!(!err.contains("hunter2secret"), "{err}");
}

/// `kuryer instances` says where each instance runs: with several hosts,
/// an id alone (often `host:pid`) does not tell an operator which machine
/// to look at.
#[tokio::test]
async fn instances_names_the_host_and_machine_of_each_instance() {
    let db = TestDb::new().await;
    let out = kuryer(&db.url, "migrate").output().unwrap();
    assert!(out.status.success());
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO instances (id, lease_ttl_s, version, host_name, machine_id)
              VALUES ('a', 30, '0.1.0', 'host-a', '0123456789abcdef0123456789abcdef'),
                     ('old', 30, '0.0.9', NULL, NULL)",
    )
    .await
    .unwrap();
    let out = kuryer(&db.url, "instances").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.contains("host") && header.contains("machine"),
        "{stdout}"
    );
    let a = stdout
        .lines()
        .find(|l| l.starts_with("a "))
        .unwrap_or_default();
    assert!(a.contains("host-a"), "{stdout}");
    // The machine id shortened to 12 characters, as git shortens a hash.
    assert!(a.contains("0123456789ab "), "{stdout}");
    assert!(!a.contains("0123456789abc"), "{stdout}");
    let old = stdout
        .lines()
        .find(|l| l.starts_with("old "))
        .unwrap_or_default();
    assert!(
        old.contains(" - "),
        "a row without a host shows '-': {stdout}"
    );
}
