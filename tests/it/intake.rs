//! Faults on the production intake path: the real `kuryer run` reading
//! bot-admin channels through `getUpdates` from the fake Bot API. Each test
//! failed on the code before the fix it names; counts come from the
//! fake (what arrived) and the database (what was recorded).

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, NewChannelMessage};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, admin_url, connect, free_port};

pub(crate) const TOKEN: &str = "4343:intakeSECRETintakeSECRETintake";
pub(crate) const API_TOKEN: &str = "black-box-api-token-0123";

pub(crate) async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The real binary on a fresh database, the fake Bot API, and channels our
/// bot administers, each followed by its own users.
pub(crate) struct Intake {
    pub(crate) db: TestDb,
    pub(crate) fake: FakeTelegram,
    pub(crate) daemon: Daemon,
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Intake {
    /// Channels `(chat id, username)`, the bot made admin of each before
    /// kuryer starts.
    pub(crate) async fn start(channels: &[(i64, &str)]) -> Self {
        Self::start_env(channels, &[]).await
    }

    /// [`Intake::start`] with more environment for `kuryer run`.
    pub(crate) async fn start_env(channels: &[(i64, &str)], extra: &[(&str, String)]) -> Self {
        let db = TestDb::new().await;
        let fake = FakeTelegram::start(FakeLimits::off()).unwrap();
        fake.add_bot(TOKEN);
        for (chat, name) in channels {
            fake.create_channel(*chat, name, name);
            fake.set_admin(*chat, TOKEN, true);
        }
        let port = free_port();
        let mut env = no_limits();
        env.extend(extra.iter().cloned());
        let daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 0.0, &env);
        let me = Self {
            db,
            fake,
            daemon,
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = wait_until(Duration::from_secs(60), async || {
            matches!(me.http.get(format!("{}/readyz", me.base)).send().await, Ok(r) if r.status() == 200)
        })
        .await;
        assert!(
            ready,
            "kuryer never became ready:\n{}",
            me.daemon.log_text()
        );
        me
    }

    /// Subscribes `user` (a private chat the fake knows) to `@name` and
    /// waits until the channel is active for them.
    pub(crate) async fn subscribe(&self, user: i64, name: &str) {
        self.fake.create_chat(user, ChatKind::Private);
        let r = self
            .http
            .post(format!("{}/add_channel", self.base))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": user, "channel_username": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        let active = wait_until(Duration::from_secs(30), async || {
            let list: Value = self
                .http
                .get(format!("{}/subscriptions/{user}", self.base))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list.as_array().is_some_and(|l| {
                l.iter().any(|s| {
                    s["channel_username"] == name.trim_start_matches('@')
                        && s["channel_status"] == "active"
                })
            })
        })
        .await;
        assert!(
            active,
            "@{name} never active for {user}:\n{}",
            self.daemon.log_text()
        );
    }

    /// Waits until every expected delivery arrived; asserts nothing was lost
    /// or sent twice.
    pub(crate) async fn expect(&self, expected: &[(i64, i64, i32)], limit: Duration) {
        let arrived = wait_until(limit, async || {
            self.fake.report(expected).delivered == expected.len() as u64
        })
        .await;
        let r = self.fake.report(expected);
        assert!(arrived, "{r:?}\n{}", self.daemon.log_text());
        assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// SIGTERM; the exit must be clean and the log free of the token.
    pub(crate) fn stop(mut self) {
        let code = self.daemon.terminate();
        let log = self.daemon.log_text();
        assert_eq!(code, Some(0), "{log}");
        assert!(!log.contains("intakeSECRET"), "bot token in the log");
        self.fake.stop();
    }
}

fn no_limits() -> Vec<(&'static str, String)> {
    vec![
        ("KURYER_LIMITS_PER_BOT_PER_SECOND", "100000".into()),
        ("KURYER_LIMITS_PER_CHAT_PER_SECOND", "1000".into()),
        ("KURYER_LIMITS_PER_GROUP_PER_MINUTE", "100000".into()),
    ]
}

pub(crate) fn text(fake: &FakeTelegram, chat: i64, body: &str) -> i32 {
    fake.post(chat, NewChannelMessage::text(body))
}

/// Item 2: channel A was @trap; A is renamed, channel B takes @trap and our
/// bot is added there. B's row fell into an INSERT violating
/// UNIQUE(username), the update loop never moved past it, and every
/// bot-admin channel stopped for good (across restarts).
#[tokio::test]
async fn a_name_moving_to_another_channel_wedges_nothing() {
    const A: i64 = -1_009_101;
    const B: i64 = -1_009_102;
    let t = Intake::start(&[(A, "trap")]).await;
    t.subscribe(810_001, "trap").await;
    let mut expected = vec![(810_001, A, text(&t.fake, A, "A as @trap"))];
    t.expect(&expected, Duration::from_secs(30)).await;

    t.fake.rename_channel(A, "a_renamed");
    t.fake.create_channel(B, "trap", "the new trap");
    t.fake.set_admin(B, TOKEN, true);
    let b_post = text(&t.fake, B, "B as @trap, before anyone follows it");
    // A keeps delivering: nothing holds the loop.
    expected.push((810_001, A, text(&t.fake, A, "A renamed")));
    t.expect(&expected, Duration::from_secs(30)).await;
    // The name belongs to B now: a new subscriber of @trap follows B.
    t.subscribe(810_002, "trap").await;
    expected.push((810_002, B, text(&t.fake, B, "B's second post")));
    t.expect(&expected, Duration::from_secs(30)).await;
    // A's subscriber is told of the rename once, with a
    // button to the channel under its new name.
    let renamed = || {
        t.fake
            .received(810_001)
            .into_iter()
            .filter(|m| m.source.is_none())
            .filter(|m| {
                m.reply_markup
                    .as_ref()
                    .is_some_and(|k| k.to_string().contains("https://t.me/a_renamed"))
                    && m.text.as_deref().is_some_and(|x| x.contains("@trap"))
            })
            .count()
    };
    let told = wait_until(Duration::from_secs(30), async || renamed() >= 1).await;
    assert!(told, "{:?}", t.fake.received(810_001));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(renamed(), 1);
    assert!(
        t.fake.received(810_002).len() == 1,
        "B's first post ({b_post}) predates its subscriber"
    );
    let names = t
        .db
        .client()
        .await
        .query(
            "SELECT telegram_id, username FROM channels WHERE telegram_id IN ($1, $2) ORDER BY telegram_id",
            &[&A, &B],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Option<String>>(1)))
        .collect::<Vec<_>>();
    assert_eq!(
        names,
        vec![(B, Some("trap".into())), (A, Some("a_renamed".into()))]
    );
    assert_eq!(t.count("SELECT count(*) FROM dead_letters").await, 0);
    t.stop();
}

/// Item 3: one channel whose posts the database refuses (here a trigger
/// raising a check violation; in the wild, text PostgreSQL rejects). The
/// global offset waited for it, so after ~100 more updates every bot-admin
/// channel froze. Now its post is a dead letter, its poller reads on, and
/// the others never notice.
#[tokio::test]
async fn a_channel_whose_post_cannot_be_recorded_holds_no_other_channel() {
    const STUCK: i64 = -1_009_201;
    const OTHERS: [i64; 2] = [-1_009_202, -1_009_203];
    let t = Intake::start(&[
        (STUCK, "stuck_one"),
        (OTHERS[0], "fine_one"),
        (OTHERS[1], "fine_two"),
    ])
    .await;
    t.subscribe(820_001, "stuck_one").await;
    t.subscribe(820_002, "fine_one").await;
    t.subscribe(820_003, "fine_two").await;
    t.db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_stuck() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.channel_id = (SELECT id FROM channels WHERE telegram_id = {STUCK}) THEN
                 RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_stuck BEFORE INSERT ON posts
               FOR EACH ROW EXECUTE FUNCTION refuse_stuck();"
        ))
        .await
        .unwrap();
    let refused = text(&t.fake, STUCK, "the database refuses this one");
    // Well past one getUpdates batch (100) of other channels' posts.
    let mut expected = Vec::new();
    for i in 0..150 {
        let chat = OTHERS[i % 2];
        let user = if i % 2 == 0 { 820_002 } else { 820_003 };
        expected.push((user, chat, text(&t.fake, chat, &format!("post {i}"))));
    }
    t.expect(&expected, Duration::from_secs(90)).await;
    // The refused post is set aside once, and its channel reads on.
    let kept = wait_until(Duration::from_secs(30), async || {
        t.count("SELECT count(*) FROM dead_letters WHERE kind = 'post'")
            .await
            == 1
    })
    .await;
    assert!(kept, "no dead letter:\n{}", t.daemon.log_text());
    assert!(
        t.fake.received(820_001).is_empty(),
        "post {refused} was sent"
    );
    t.db.client()
        .await
        .batch_execute("DROP TRIGGER refuse_stuck ON posts")
        .await
        .unwrap();
    expected.push((820_001, STUCK, text(&t.fake, STUCK, "accepted again")));
    t.expect(&expected, Duration::from_secs(30)).await;
    t.stop();
}

/// Item 7: updates teloxide cannot parse (a kind newer than it, a known
/// kind of the wrong shape) were confirmed and dropped without a word. Now
/// each is counted by kind, kept as a dead letter, and the loop goes on.
#[tokio::test]
async fn unparsable_updates_are_kept_counted_and_passed() {
    const CHANNEL: i64 = -1_009_301;
    let t = Intake::start(&[(CHANNEL, "parsing")]).await;
    t.subscribe(830_001, "parsing").await;
    let mut expected = vec![(830_001, CHANNEL, text(&t.fake, CHANNEL, "before"))];
    t.fake.push_raw_update(
        TOKEN,
        "brand_new_kind",
        json!({"text": "a user's private words"}),
    );
    t.fake
        .push_raw_update(TOKEN, "my_chat_member", json!("not an object"));
    expected.push((830_001, CHANNEL, text(&t.fake, CHANNEL, "after")));
    t.expect(&expected, Duration::from_secs(30)).await;
    assert_eq!(
        t.count("SELECT count(*) FROM dead_letters WHERE kind = 'update'")
            .await,
        2
    );
    let metrics = t
        .http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["brand_new_kind", "my_chat_member"] {
        assert!(
            metrics.contains(&format!(
                "kuryer_updates_unparsable_total{{kind=\"{kind}\"}} 1"
            )),
            "{kind} not counted:\n{metrics}"
        );
    }
    let log = t.daemon.log_text();
    assert!(!log.contains("private words"), "update content in the log");
    t.stop();
}

/// The database away for longer than a poller's whole retry budget (20
/// tries, ~21 s), while the owner adds our bot to a new channel and posts:
/// the `my_chat_member` whose write failed was confirmed and lost, and so
/// was the new channel. Now the loop holds on it until the database is back.
#[tokio::test]
async fn a_database_outage_longer_than_the_retry_budget_loses_no_update() {
    const OLD: i64 = -1_009_401;
    const NEW: i64 = -1_009_402;
    let t = Intake::start(&[(OLD, "old_chan")]).await;
    t.subscribe(840_001, "old_chan").await;
    // A subscriber of the new channel before our bot is there (pending).
    t.fake.create_channel(NEW, "new_chan", "new_chan");
    let r = t
        .http
        .post(format!("{}/add_channel", t.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"user_id": 840_002, "channel_username": "new_chan"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    t.fake.create_chat(840_002, ChatKind::Private);
    let mut expected = vec![(840_001, OLD, text(&t.fake, OLD, "before the outage"))];
    t.expect(&expected, Duration::from_secs(30)).await;

    let admin = connect(&admin_url()).await;
    let name = t.db.name.clone();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    t.fake.set_admin(NEW, TOKEN, true);
    for i in 0..5 {
        expected.push((840_001, OLD, text(&t.fake, OLD, &format!("during {i}"))));
        expected.push((840_002, NEW, text(&t.fake, NEW, &format!("new during {i}"))));
    }
    tokio::time::sleep(Duration::from_secs(65)).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    // Generous: pollers and the loop back off during the outage, and the
    // whole suite shares two cores.
    t.expect(&expected, Duration::from_secs(150)).await;
    assert_eq!(t.count("SELECT count(*) FROM dead_letters").await, 0);
    // A delivery's row is written just after Telegram accepted it (the
    // writer batches, and backs off after the outage): wait for the last.
    let recorded = wait_until(Duration::from_secs(30), async || {
        t.count("SELECT count(*) FROM forwarded_messages WHERE status = 'sent'")
            .await as usize
            == expected.len()
    })
    .await;
    assert!(
        recorded,
        "{} of {} deliveries have their sent row",
        t.count("SELECT count(*) FROM forwarded_messages WHERE status = 'sent'")
            .await,
        expected.len()
    );
    t.stop();
}
