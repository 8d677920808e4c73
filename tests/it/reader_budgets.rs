//! Reader accounts against the fake's daily limits: look-ups and joins
//! within each account's budget for the day (counted in PostgreSQL, so a
//! restart continues the count), joins ramped over an account's first
//! days, `PEER_FLOOD` stopping its joins for the day, a frozen account
//! marked frozen and told (never waited out), and names nobody subscribes
//! to never looked up.

use std::sync::Arc;
use std::time::Duration;

use kuryer::reader::ReaderPool;
use kuryer_actors::model::ChannelRef;
use kuryer_actors::ports::ChannelSource;
use kuryer_sim::mtproto::{AccountSpec, ChannelSpec, EscalatingLimit, MtprotoConfig, MtprotoFake};

use crate::common::TestDb;
use crate::reader::{reader_config, seed_session};

const RESOLVE: &str = "contacts.resolveUsername";
const JOIN: &str = "channels.joinChannel";

struct NoEvents;

impl kuryer::source_events::SourceEvents for NoEvents {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: ChannelRef) {}
}

/// A live subscription of `channel_id` (the resolve queue looks up only
/// names someone subscribes to); `removed`: one that was removed.
pub(crate) async fn subscribe(c: &tokio_postgres::Client, channel_id: i64, removed: bool) {
    let user: i64 = c
        .query_one(
            "INSERT INTO users (telegram_id) VALUES (424242)
             ON CONFLICT (telegram_id) DO UPDATE SET username = users.username RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let found = c
        .query_opt("SELECT id FROM destinations WHERE chat_id = 424242", &[])
        .await
        .unwrap();
    let dest: i64 = match found {
        Some(r) => r.get(0),
        None => c
            .query_one(
                "INSERT INTO destinations (chat_id, kind, owner_user_id)
                 VALUES (424242, 'private', $1) RETURNING id",
                &[&user],
            )
            .await
            .unwrap()
            .get(0),
    };
    c.execute(
        "INSERT INTO subscriptions (user_id, channel_id, destination_id, is_active, removed_at)
         VALUES ($1, $2, $3, NOT $4, CASE WHEN $4 THEN now() END)",
        &[&user, &channel_id, &dest, &removed],
    )
    .await
    .unwrap();
}

/// An account signed in on the fake and stored as session `name`.
async fn account(store: &kuryer::store::Store, fake: &MtprotoFake, name: &str, phone: &str) -> i64 {
    let id = fake.create_account(AccountSpec {
        phone: phone.to_owned(),
        ..AccountSpec::default()
    });
    let key = fake.issue_auth_key(Some(id));
    seed_session(store, fake, name, key).await;
    store.set_session_user(name, id, 0).await.unwrap();
    id
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits until `sql` counts `want` (or 10 s pass); returns the last count.
async fn until_count(c: &tokio_postgres::Client, sql: &str, want: i64) -> i64 {
    let mut n = count(c, sql).await;
    for _ in 0..200 {
        if n == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        n = count(c, sql).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_stay_within_each_accounts_budget_across_restarts_and_unwanted_names_are_never_looked_up()
 {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    // The reported escalation, scaled down: 4 look-ups a day, then 3 s,
    // 26 s, then 66,230 s.
    let fake = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    fake.set_escalating_limit(
        RESOLVE,
        Some(EscalatingLimit {
            free: 4,
            per: Duration::from_secs(86_400),
            waits: [3, 26, 66_230].map(Duration::from_secs).to_vec(),
        }),
    );
    let a = account(&store, &fake, "b0", "+998900004400").await;
    let b = account(&store, &fake, "b1", "+998900004401").await;
    let c = db.client().await;
    for i in 0..12 {
        let name = format!("budgeted_{i:02}");
        fake.create_channel(ChannelSpec {
            title: name.clone(),
            username: Some(name.clone()),
            protected: false,
        });
        let id: i64 = c
            .query_one(
                "INSERT INTO channels (username, status) VALUES ($1, 'pending') RETURNING id",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        // Two names nobody wants any more: never looked up.
        subscribe(&c, id, i >= 10).await;
    }
    let mut cfg = reader_config(&db);
    cfg.reader.resolve_interval_ms = 20;
    cfg.reader.resolves_per_day = 3;
    let resolved = "SELECT count(*) FROM channels WHERE status = 'active'";
    let pool = ReaderPool::start(store.clone(), &cfg, "one".to_owned(), Arc::new(NoEvents)).await;
    assert_eq!(until_count(&c, resolved, 6).await, 6, "3 look-ups each");
    // Nothing more today, however long it waits.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&c, resolved).await, 6);
    pool.close().await;
    // A restart (or another instance) continues today's count.
    let pool = ReaderPool::start(store.clone(), &cfg, "two".to_owned(), Arc::new(NoEvents)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&c, resolved).await, 6, "no look-up after a restart");
    for id in [a, b] {
        let s = fake.stats(id);
        assert_eq!(s.calls(RESOLVE), 3, "{s:?}");
        assert_eq!(
            s.methods[RESOLVE].errors,
            Default::default(),
            "no flood wait earned"
        );
        assert_eq!(s.methods[RESOLVE].calls_during_flood_wait, 0);
    }
    pool.close().await;
    // Another account with budget takes the rest up to its own.
    let d = account(&store, &fake, "b2", "+998900004402").await;
    let pool = ReaderPool::start(store.clone(), &cfg, "three".to_owned(), Arc::new(NoEvents)).await;
    assert_eq!(until_count(&c, resolved, 9).await, 9);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&c, resolved).await, 9);
    assert_eq!(fake.stats(d).calls(RESOLVE), 3);
    pool.close().await;
    let unwanted: Vec<String> = c
        .query(
            "SELECT status FROM channels WHERE username >= 'budgeted_10' ORDER BY username",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(unwanted, ["pending", "pending"], "never looked up");
    let budgets: Vec<(String, i32, i32)> = c
        .query(
            "SELECT account, resolves, resolve_limit FROM reader_budgets ORDER BY account",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        budgets,
        [
            ("b0".to_owned(), 3, 3),
            ("b1".to_owned(), 3, 3),
            ("b2".to_owned(), 3, 3)
        ]
    );
}

/// Public channels already resolved by `account` (its hash), read from
/// their first post: what the joiner works on once the pool reads them.
async fn resolved_channels(
    c: &tokio_postgres::Client,
    fake: &MtprotoFake,
    account: i64,
    n: usize,
) -> Vec<ChannelRef> {
    let mut refs = Vec::new();
    for i in 0..n {
        let name = format!("joinable_{i}");
        let ch = fake.create_channel(ChannelSpec {
            title: name.clone(),
            username: Some(name.clone()),
            protected: false,
        });
        fake.publish_text(ch, "first");
        let id: i64 = c
            .query_one(
                "INSERT INTO channels (telegram_id, username, access_hash, status, start_message_id)
                 VALUES ($1, $2, $3, 'active', 0) RETURNING id",
                &[&ch.bot_api_chat_id(), &name, &fake.access_hash(ch, account)],
            )
            .await
            .unwrap()
            .get(0);
        refs.push(ChannelRef {
            channel_id: id,
            chat_id: ch.bot_api_chat_id(),
            username: Some(name),
            bot_is_admin: false,
        });
    }
    refs
}

/// Reads every channel once (the pool assigns each to an account).
async fn read_all(pool: &ReaderPool, refs: &[ChannelRef]) {
    for r in refs {
        let mut s = pool.source(r);
        let mut ok = false;
        for _ in 0..100 {
            if s.fetch(0, 100).await.is_ok_and(|m| !m.is_empty()) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "channel {r:?} read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_ramp_up_within_the_days_budget_and_peer_flood_stops_them_for_the_day() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let fake = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let a = account(&store, &fake, "j0", "+998900004500").await;
    let c = db.client().await;
    let refs = resolved_channels(&c, &fake, a, 8).await;
    let mut cfg = reader_config(&db);
    cfg.reader.join_interval_ms = 20;
    cfg.reader.history_per_second = 50.0;
    cfg.reader.poll_interval_s = 1;
    cfg.reader.joins_first_day = 2;
    cfg.reader.joins_per_day = 4;
    cfg.reader.join_ramp_days = 2;
    let joined = "SELECT count(*) FROM reader_assignments WHERE joined";
    // Day one: 2 joins.
    let pool = ReaderPool::start(store.clone(), &cfg, "one".to_owned(), Arc::new(NoEvents)).await;
    read_all(&pool, &refs).await;
    assert_eq!(until_count(&c, joined, 2).await, 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&c, joined).await, 2, "no more on day one");
    assert_eq!(fake.stats(a).calls(JOIN), 2);
    pool.close().await;
    // The account a day older: 3 a day, so one more today (the count is
    // PostgreSQL's, not this process's).
    c.execute(
        "UPDATE reader_accounts SET created_at = created_at - interval '1 day'",
        &[],
    )
    .await
    .unwrap();
    let pool = ReaderPool::start(store.clone(), &cfg, "two".to_owned(), Arc::new(NoEvents)).await;
    read_all(&pool, &refs).await;
    assert_eq!(until_count(&c, joined, 3).await, 3);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&c, joined).await, 3);
    assert_eq!(fake.stats(a).calls(JOIN), 3);
    pool.close().await;
    // Two days old (4 a day), but Telegram limits it for spam: the join
    // refused with PEER_FLOOD is its last today.
    c.execute(
        "UPDATE reader_accounts SET created_at = created_at - interval '1 day'",
        &[],
    )
    .await
    .unwrap();
    assert!(fake.set_peer_flood(a, true));
    let pool = ReaderPool::start(store.clone(), &cfg, "three".to_owned(), Arc::new(NoEvents)).await;
    read_all(&pool, &refs).await;
    for _ in 0..100 {
        if fake.stats(a).errors(JOIN, "PEER_FLOOD") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = fake.stats(a);
    assert_eq!(s.errors(JOIN, "PEER_FLOOD"), 1, "{s:?}");
    assert_eq!(s.calls(JOIN), 4, "none after PEER_FLOOD");
    pool.close().await;
    // Remembered in PostgreSQL: a restart joins nothing more today.
    assert!(fake.set_peer_flood(a, false));
    let pool = ReaderPool::start(store.clone(), &cfg, "four".to_owned(), Arc::new(NoEvents)).await;
    read_all(&pool, &refs).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.stats(a).calls(JOIN), 4);
    assert_eq!(count(&c, joined).await, 3);
    let row = c
        .query_one(
            "SELECT joins, join_limit, joins_stopped FROM reader_budgets WHERE account = 'j0'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i32>(0),
            row.get::<_, i32>(1),
            row.get::<_, Option<String>>(2)
        ),
        (4, 4, Some("PEER_FLOOD".to_owned()))
    );
    let table = kuryer::reader::login::accounts_table(
        &kuryer::reader::login::accounts(&store).await.unwrap(),
    );
    assert!(
        table.contains(
            "left today: 30 of 30 look-ups, 0 of 4 joins (joins stopped today: PEER_FLOOD)"
        ),
        "kuryer accounts shows it: {table}"
    );
    pool.close().await;
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// One thread: the pool's tasks log into this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_frozen_account_is_marked_frozen_and_told_never_waited_out_as_a_flood_wait() {
    let log = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    );
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let fake = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let f = account(&store, &fake, "frosty", "+998900004600").await;
    assert!(fake.set_frozen(f, true));
    let c = db.client().await;
    fake.create_channel(ChannelSpec {
        title: "wanted".to_owned(),
        username: Some("wanted_news".to_owned()),
        protected: false,
    });
    let id: i64 = c
        .query_one(
            "INSERT INTO channels (username, status) VALUES ('wanted_news', 'pending') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    subscribe(&c, id, false).await;
    let mut cfg = reader_config(&db);
    cfg.reader.resolve_interval_ms = 20;
    let frozen_before = frozen_metric();
    let pool = ReaderPool::start(store.clone(), &cfg, "one".to_owned(), Arc::new(NoEvents)).await;
    let status = "SELECT count(*) FROM reader_accounts WHERE status = 'frozen' AND lost_reason = 'FROZEN_METHOD_INVALID'";
    assert_eq!(until_count(&c, status, 1).await, 1, "marked frozen");
    // Not retried after a second, nor ever.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(fake.stats(f).calls(RESOLVE), 1);
    assert!(pool.live_accounts().is_empty(), "no longer used");
    let text = log.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&text);
    let line = text
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("frozen"))
        .unwrap_or_else(|| panic!("no ERROR line: {text}"));
    assert!(
        line.contains("account=\"frosty\"") || line.contains("account=frosty"),
        "{line}"
    );
    assert!(
        line.contains("method=\"contacts.resolveUsername\"")
            || line.contains("method=contacts.resolveUsername"),
        "{line}"
    );
    assert!(frozen_metric() > frozen_before, "counted in the metric");
    let rows = kuryer::reader::login::accounts(&store).await.unwrap();
    let table = kuryer::reader::login::accounts_table(&rows);
    assert!(
        table.contains("frozen (FROZEN_METHOD_INVALID)"),
        "kuryer accounts shows it: {table}"
    );
    pool.close().await;
}

/// `kuryer_reader_accounts_frozen_total` in this process's metrics.
fn frozen_metric() -> f64 {
    kuryer::telemetry::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("kuryer_reader_accounts_frozen_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
