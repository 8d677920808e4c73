//! Quiet hours against the real `kuryer run` binary: posts published during
//! them reach the fake as nothing at all; the binary is stopped and started
//! again in the middle (more posts published while it is down); the held
//! posts stay owed (no outcome row), are not sent early by the resume or the
//! sweep, and once the hours are switched off they arrive in order, before
//! any newer post. A held post edited while held goes out with the new
//! text, with no edit call for it.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, NewChannelMessage};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port};

const TOKEN: &str = "4343:quietSECRETquietSECRETquiet";
const API_TOKEN: &str = "black-box-api-token-0123";
const CHANNEL: i64 = -1_009_161;
const USER: i64 = 716_001;
const OTHER: i64 = 716_002;

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

fn start(db: &TestDb, fake: &FakeTelegram, port: u16) -> Daemon {
    Daemon::start_with(
        &db.url,
        fake,
        TOKEN,
        port,
        20.0,
        &[("KURYER_DELIVERY_SWEEP_INTERVAL_S", "1".to_owned())],
    )
}

async fn ready(http: &reqwest::Client, base: &str, daemon: &Daemon) {
    let ok = wait_until(Duration::from_secs(60), async || {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(ok, "kuryer never became ready:\n{}", daemon.log_text());
}

/// The texts `chat` received from the channel, in order.
fn texts(fake: &FakeTelegram, chat: i64) -> Vec<String> {
    fake.received(chat)
        .into_iter()
        .filter(|m| m.method == "sendMessage")
        .filter_map(|m| m.text)
        .collect()
}

#[tokio::test]
async fn held_posts_survive_a_restart_of_the_real_binary_and_arrive_in_order_after() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "quiet_news", "Quiet news");
    fake.create_chat(USER, ChatKind::Private);
    fake.create_chat(OTHER, ChatKind::Private);
    fake.set_admin(CHANNEL, TOKEN, true);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut daemon = start(&db, &fake, port);
    ready(&http, &base, &daemon).await;

    let mut subs = Vec::new();
    for u in [USER, OTHER] {
        let r: Value = http
            .post(format!("{base}/add_channel"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": u, "channel_username": "@quiet_news"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        subs.push(r["id"].as_i64().unwrap());
    }
    // Quiet now, whatever the time: from an hour ago to two hours ahead, UTC.
    let now = chrono::Utc::now();
    let hm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let span = json!({"from": hm(now - chrono::Duration::hours(1)),
                      "to": hm(now + chrono::Duration::hours(2)), "tz": "UTC"});
    let r = http
        .put(format!("{base}/subscriptions/{USER}/{}/quiet", subs[0]))
        .bearer_auth(API_TOKEN)
        .json(&span)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["quiet"]["tz"], "UTC", "{body}");
    // Bad input is refused and changes nothing.
    let r = http
        .put(format!("{base}/subscriptions/{USER}/{}/quiet", subs[0]))
        .bearer_auth(API_TOKEN)
        .json(&json!({"from": "23:00", "to": "07:00", "tz": "Mars/Olympus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let resolved = wait_until(Duration::from_secs(30), async || {
        let list: Value = http
            .get(format!("{base}/subscriptions/{USER}"))
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
    assert!(resolved, "channel never resolved:\n{}", daemon.log_text());

    let ids: Vec<i32> = (1..=3)
        .map(|i| fake.post(CHANNEL, NewChannelMessage::text(format!("quiet post {i}"))))
        .collect();
    // The other subscriber (no quiet hours) gets them at once.
    let other = wait_until(Duration::from_secs(20), async || {
        texts(&fake, OTHER).len() == 3
    })
    .await;
    assert!(other, "{:?}\n{}", texts(&fake, OTHER), daemon.log_text());
    // An edit of a held post: the other's copy is edited; the held copy
    // will go out with the new text (no edit call for it).
    assert!(fake.edit_post(CHANNEL, ids[1], Some("quiet post 2, edited")));
    let edited = wait_until(Duration::from_secs(20), async || {
        fake.received(OTHER)
            .iter()
            .any(|m| m.edits == 1 && m.text.as_deref() == Some("quiet post 2, edited"))
    })
    .await;
    assert!(edited, "{:?}\n{}", fake.received(OTHER), daemon.log_text());
    // Several sweeps (every second) pass; nothing reaches the quiet one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(texts(&fake, USER), Vec::<String>::new());

    // Restart in the middle; two more posts while it is down.
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    for i in 4..=5 {
        fake.post(CHANNEL, NewChannelMessage::text(format!("quiet post {i}")));
    }
    let mut daemon = start(&db, &fake, port);
    ready(&http, &base, &daemon).await;
    let other = wait_until(Duration::from_secs(20), async || {
        texts(&fake, OTHER).len() == 5
    })
    .await;
    assert!(other, "{:?}\n{}", texts(&fake, OTHER), daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        texts(&fake, USER),
        Vec::<String>::new(),
        "{}",
        daemon.log_text()
    );
    // Held, not lost: five owed deliveries with no outcome row.
    let c = db.client().await;
    let rows: i64 = c
        .query_one(
            "SELECT count(*) FROM forwarded_messages WHERE subscription_id = $1",
            &[&subs[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);

    // Quiet hours off: the five arrive in order, then a new post after them.
    let r = http
        .put(format!("{base}/subscriptions/{USER}/{}/quiet", subs[0]))
        .bearer_auth(API_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    fake.post(CHANNEL, NewChannelMessage::text("after quiet"));
    let all = wait_until(Duration::from_secs(30), async || {
        texts(&fake, USER).len() == 6
    })
    .await;
    let expected: Vec<String> = (1..=5)
        .map(|i| match i {
            2 => "quiet post 2, edited".to_owned(),
            _ => format!("quiet post {i}"),
        })
        .chain(["after quiet".to_owned()])
        .collect();
    assert!(all, "{:?}\n{}", texts(&fake, USER), daemon.log_text());
    assert_eq!(texts(&fake, USER), expected);
    // Exactly one sendMessage each, nothing else sent to the chat, and
    // the held copy was never edited (it went out edited).
    assert_eq!(fake.received(USER).len(), 6);
    assert!(fake.received(USER).iter().all(|m| m.edits == 0));
    assert_eq!(daemon.terminate(), Some(0));
}
