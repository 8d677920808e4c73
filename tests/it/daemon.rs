//! The real `kuryer run` binary as a black box: a child process talking to
//! the fake Bot API (in this test's process) and to a real PostgreSQL.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Daemon, TestDb, free_port};
use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, NewChannelMessage};
use serde_json::{Value, json};

const TOKEN: &str = "4242:blackboxSECRETblackboxSECRET";
const API_TOKEN: &str = "black-box-api-token-0123";
const CHANNEL: i64 = -1_009_001;

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

#[tokio::test]
async fn the_real_binary_forwards_every_post_of_a_channel_it_administers() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "owner_news", "Owner news");
    let users: Vec<i64> = (1..=20).map(|i| 700_000 + i).collect();
    for u in &users {
        fake.create_chat(*u, ChatKind::Private);
    }
    // The owner makes our bot an admin before kuryer even starts: the
    // my_chat_member update waits in the fake's queue.
    fake.set_admin(CHANNEL, TOKEN, true);

    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = wait_until(Duration::from_secs(60), async || {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(ready, "kuryer never became ready:\n{}", daemon.log_text());

    // Subscribe every user through the API, as the seed's load test does.
    for u in &users {
        let r = http
            .post(format!("{base}/add_channel"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": u, "channel_username": "@owner_news"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The channel resolves from the my_chat_member update.
    let resolved = wait_until(Duration::from_secs(30), async || {
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
    assert!(resolved, "channel never resolved:\n{}", daemon.log_text());

    // The owner posts: text with entities, a photo, an album.
    let bold = json!({"type": "bold", "offset": 0, "length": 5});
    let mut posts = Vec::new();
    for i in 0..8 {
        posts.push(
            fake.post(
                CHANNEL,
                NewChannelMessage::text(format!("Hello number {i} from the owner"))
                    .with_entities(vec![bold.clone()]),
            ),
        );
    }
    posts.push(fake.post(
        CHANNEL,
        NewChannelMessage::media(kuryer_sim::fake_bot_api::MediaKind::Photo, Some("a photo")),
    ));
    let album = fake.post(
        CHANNEL,
        NewChannelMessage::media(kuryer_sim::fake_bot_api::MediaKind::Photo, Some("album"))
            .in_album("77001"),
    );
    for _ in 0..2 {
        fake.post(
            CHANNEL,
            NewChannelMessage::media(kuryer_sim::fake_bot_api::MediaKind::Photo, None)
                .in_album("77001"),
        );
    }
    posts.push(album);
    let expected: Vec<(i64, i64, i32)> = users
        .iter()
        .flat_map(|u| posts.iter().map(move |p| (*u, CHANNEL, *p)))
        .collect();
    let delivered = wait_until(Duration::from_secs(60), async || {
        fake.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let report = fake.report(&expected);
    assert!(delivered, "{report:?}\n{}", daemon.log_text());

    let code = daemon.terminate();
    let log = daemon.log_text();
    assert_eq!(code, Some(0), "exit code after SIGTERM\n{log}");
    assert_eq!(
        (
            report.lost,
            report.duplicates,
            report.out_of_order,
            report.albums_split
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(fake.stats().rate_limited_429, 0);
    assert!(log.contains("Shutdown complete"), "{log}");
    // Logs never carry the bot token's secret or the API token.
    assert!(!log.contains("blackboxSECRET"), "bot token in the log");
    assert!(!log.contains(API_TOKEN), "API token in the log");
    let rows: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, expected.len());
    fake.stop();
}

#[tokio::test]
async fn run_without_a_bot_token_exits_with_a_clear_error() {
    let db = TestDb::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_kuryer"))
        .args(["run", "--config", "/dev/null"])
        .env("KURYER_DATABASE_URL", &db.url)
        .env_remove("KURYER_TELEGRAM_BOT_TOKENS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("telegram.bot_tokens"), "{err}");
}
