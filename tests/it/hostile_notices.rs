//! One channel owner or one digest hour hurts no one: a bot-admin channel
//! whose owner renames it back and forth and takes the bot's admin rights
//! away and back again, over and over, and eighty digests due at once —
//! against the real `kuryer run` and the fake Bot API enforcing Telegram's
//! own limits (30 messages a second a bot, 1 a second a private chat).
//! Every subscriber is told at most once a debounce window (the final
//! state), and the fake answers no 429: notices and digests go through the
//! rate limiter with the deliveries.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{
    ChatKind, FakeLimits, FakeTelegram, NewChannelMessage, ReceivedMessage,
};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port};

const TOKEN: &str = "4924:noticeSECRETnoticeSECRETnotice";
const API_TOKEN: &str = "black-box-api-token-0123";
const CHANNEL: i64 = -1_009_924;
/// The debounce window the daemon runs with here.
const WINDOW: Duration = Duration::from_secs(3);

async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `kuryer run` at Telegram's limits × `scale` (the fake's too).
fn start(db: &TestDb, fake: &FakeTelegram, port: u16, scale: f64) -> Daemon {
    Daemon::start_with(
        &db.url,
        fake,
        TOKEN,
        port,
        scale,
        &[
            ("KURYER_DELIVERY_SWEEP_INTERVAL_S", "1".to_owned()),
            (
                "KURYER_DELIVERY_NOTICE_DEBOUNCE_MS",
                WINDOW.as_millis().to_string(),
            ),
        ],
    )
}

async fn ready(http: &reqwest::Client, base: &str, daemon: &Daemon) {
    let ok = wait_until(Duration::from_secs(60), async || {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(ok, "kuryer never became ready:\n{}", daemon.log_text());
}

/// `users` private chats subscribed (through the HTTP API) to the channel
/// `@name`; their subscription ids, once the channel is active.
async fn subscribe(
    http: &reqwest::Client,
    base: &str,
    fake: &FakeTelegram,
    users: &[i64],
    name: &str,
    daemon: &Daemon,
) -> Vec<i64> {
    let mut subs = Vec::new();
    for &u in users {
        fake.create_chat(u, ChatKind::Private);
        let r: Value = http
            .post(format!("{base}/add_channel"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": u, "channel_username": name}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        subs.push(r["id"].as_i64().unwrap_or_else(|| panic!("{r}")));
    }
    let active = wait_until(Duration::from_secs(30), async || {
        let list: Value = http
            .get(format!("{base}/subscriptions/{}", users[0]))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list[0]["channel_status"] == "active"
    })
    .await;
    assert!(active, "channel never resolved:\n{}", daemon.log_text());
    subs
}

/// The bot's own messages to `user` (notices and digests: not copies of a
/// channel's post).
fn own(fake: &FakeTelegram, user: i64) -> Vec<ReceivedMessage> {
    fake.received(user)
        .into_iter()
        .filter(|m| m.method == "sendMessage" && m.source.is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_toggling_a_channel_tells_each_subscriber_once_a_window_without_429() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::telegram()).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "toggle_a", "Toggled");
    fake.set_admin(CHANNEL, TOKEN, true);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut daemon = start(&db, &fake, port, 1.0);
    ready(&http, &base, &daemon).await;
    let users: Vec<i64> = (0..60).map(|i| 924_000 + i).collect();
    subscribe(&http, &base, &fake, &users, "@toggle_a", &daemon).await;
    let before = fake.stats().rate_limited_429;

    // Renamed five times back and forth within a second (a post after each
    // rename is how a bot-admin channel's new name is seen), ending on
    // `toggle_b`; then the bot's rights taken and given back four times,
    // ending as admin.
    let mut posts = Vec::new();
    for i in 0..5 {
        fake.rename_channel(CHANNEL, if i % 2 == 0 { "toggle_b" } else { "toggle_a" });
        posts.push(fake.post(CHANNEL, NewChannelMessage::text(format!("toggle post {i}"))));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for i in 0..4 {
        fake.set_admin(CHANNEL, TOKEN, i % 2 == 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let expected: Vec<(i64, i64, i32)> = users
        .iter()
        .flat_map(|u| posts.iter().map(move |p| (*u, CHANNEL, *p)))
        .collect();
    let delivered = wait_until(Duration::from_secs(90), async || {
        fake.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        fake.report(&expected),
        daemon.log_text()
    );
    // Every window ended and was told.
    let told = wait_until(Duration::from_secs(60), async || {
        users.iter().all(|u| {
            own(&fake, *u)
                .iter()
                .any(|m| m.text.as_deref().is_some_and(|t| t.contains("@toggle_b")))
        })
    })
    .await;
    tokio::time::sleep(WINDOW * 2).await;
    let log = daemon.log_text();
    assert!(told, "{:?}\n{log}", own(&fake, users[0]));
    for u in &users {
        let mine = own(&fake, *u);
        // The final state only: one rename notice (to the last name), and
        // nothing of the rights taken and given back.
        assert_eq!(mine.len(), 1, "user {u}: {mine:?}");
        for pair in mine.windows(2) {
            assert!(pair[1].received_at - pair[0].received_at >= WINDOW);
        }
    }
    assert_eq!(
        fake.stats().rate_limited_429 - before,
        0,
        "429 answers while telling the subscribers\n{log}"
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_digests_due_at_once_go_out_within_the_limits() {
    let db = TestDb::new().await;
    // Half Telegram's rates (15 a second a bot): a worker sending its
    // digests back to back, each after a few queries, outruns it.
    let fake = FakeTelegram::start(FakeLimits::scaled(0.5)).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "digest_burst", "Digest burst");
    fake.set_admin(CHANNEL, TOKEN, true);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut daemon = start(&db, &fake, port, 0.5);
    ready(&http, &base, &daemon).await;
    let users: Vec<i64> = (0..80).map(|i| 925_000 + i).collect();
    let subs = subscribe(&http, &base, &fake, &users, "@digest_burst", &daemon).await;
    for (u, s) in users.iter().zip(&subs) {
        let r = http
            .put(format!("{base}/subscriptions/{u}/{s}/digest"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"every": "daily", "at": "09:00", "tz": "UTC"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for i in 0..3 {
        fake.post(
            CHANNEL,
            NewChannelMessage::text(format!("held for the digest {i}")),
        );
    }
    // Held, not sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(own(&fake, users[0]).is_empty(), "{}", daemon.log_text());
    let before = fake.stats().rate_limited_429;
    db.client()
        .await
        .execute(
            "UPDATE subscriptions SET digest_due_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let sent = wait_until(Duration::from_secs(60), async || {
        users.iter().all(|u| !own(&fake, *u).is_empty())
    })
    .await;
    let log = daemon.log_text();
    assert!(sent, "{:?}\n{log}", own(&fake, users[0]));
    for u in &users {
        assert_eq!(own(&fake, *u).len(), 1, "user {u}");
    }
    assert_eq!(
        fake.stats().rate_limited_429 - before,
        0,
        "429 answers while sending the digests\n{log}"
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
}

/// Rows of `table` for channels with these Telegram ids.
async fn rows_of(db: &TestDb, table: &str, chats: &[i64]) -> i64 {
    db.client()
        .await
        .query_one(
            &format!(
                "SELECT count(*) FROM {table} t JOIN channels c ON c.id = t.channel_id
                  WHERE c.telegram_id = ANY($1)"
            ),
            &[&chats],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_that_make_our_bot_admin_are_not_kept_or_polled_until_someone_subscribes() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut daemon = start(&db, &fake, port, 20.0);
    ready(&http, &base, &daemon).await;
    // A stranger makes our bot admin of 20 channels and posts in each.
    let chats: Vec<i64> = (0..20).map(|i| -1_009_930 - i).collect();
    for (i, chat) in chats.iter().enumerate() {
        fake.create_channel(*chat, &format!("stray_{i}"), "Stray");
        fake.set_admin(*chat, TOKEN, true);
        for n in 0..3 {
            fake.post(*chat, NewChannelMessage::text(format!("stray {i} {n}")));
        }
    }
    let seen = wait_until(Duration::from_secs(30), async || {
        db.client()
            .await
            .query_one(
                "SELECT count(*) FROM channels WHERE telegram_id = ANY($1) AND bot_is_admin",
                &[&chats],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == chats.len() as i64
    })
    .await;
    assert!(seen, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows_of(&db, "bot_inbox", &chats).await, 0, "no post kept");
    assert_eq!(rows_of(&db, "posts", &chats).await, 0, "no post recorded");

    // Someone subscribes to one: its posts from then on are delivered.
    let user = 926_001;
    subscribe(&http, &base, &fake, &[user], "@stray_0", &daemon).await;
    let p = fake.post(chats[0], NewChannelMessage::text("for the subscriber"));
    let expected = [(user, chats[0], p)];
    let delivered = wait_until(Duration::from_secs(30), async || {
        fake.report(&expected).delivered == 1
    })
    .await;
    assert!(delivered, "{}", daemon.log_text());
    assert_eq!(rows_of(&db, "bot_inbox", &chats[1..]).await, 0);
    assert_eq!(rows_of(&db, "posts", &chats[1..]).await, 0);
    // Across a restart nothing of the others is polled or kept either.
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = start(&db, &fake, port, 20.0);
    ready(&http, &base, &daemon).await;
    fake.post(chats[5], NewChannelMessage::text("still nobody"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows_of(&db, "bot_inbox", &chats[1..]).await, 0);
    assert_eq!(rows_of(&db, "posts", &chats[1..]).await, 0);
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
}
