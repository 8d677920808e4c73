//! Digests against the real `kuryer run` binary: posts of a subscription
//! with a digest reach the fake as nothing until the digest is due (the test
//! sets `digest_due_at` in the database, the period being an hour or a day);
//! then exactly one sendMessage lists them, linked, oldest first — across a
//! restart of the binary in the middle. A long digest is split into
//! messages of at most 4,096 UTF-16 units between entries, and a restart
//! after its first part was sent sends only the rest.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, NewChannelMessage};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port};

const TOKEN: &str = "4344:digestSECRETdigestSECRETdigest";
const API_TOKEN: &str = "black-box-api-token-0123";
const CHANNEL: i64 = -1_009_171;
const USER: i64 = 717_001;
const OTHER: i64 = 717_002;

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

fn texts(fake: &FakeTelegram, chat: i64) -> Vec<String> {
    fake.received(chat)
        .into_iter()
        .filter(|m| m.method == "sendMessage")
        .filter_map(|m| m.text)
        .collect()
}

/// The message ids a digest text links to, in order.
fn linked_ids(text: &str) -> Vec<i32> {
    text.lines()
        .filter_map(|l| l.strip_prefix("• https://t.me/digest_news/"))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

async fn outcome_rows(db: &TestDb, sub: i64) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM forwarded_messages
              WHERE subscription_id = $1 AND status = 'skipped' AND error = 'digest'",
            &[&sub],
        )
        .await
        .unwrap()
        .get(0)
}

async fn make_due(db: &TestDb, sub: i64) {
    db.client()
        .await
        .execute(
            "UPDATE subscriptions SET digest_due_at = now() - interval '1 second' WHERE id = $1",
            &[&sub],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn held_posts_arrive_as_one_linked_digest_once_across_restarts() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "digest_news", "Digest news");
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
            .json(&json!({"user_id": u, "channel_username": "@digest_news"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        subs.push(r["id"].as_i64().unwrap());
    }
    let sub = subs[0];
    // A daily digest (not due for hours: the test makes it due).
    let r = http
        .put(format!("{base}/subscriptions/{USER}/{sub}/digest"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"every": "daily", "at": "09:00", "tz": "Asia/Tashkent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["digest"]["tz"], "Asia/Tashkent", "{body}");
    for bad in [
        json!({"every": "daily", "at": "25:00", "tz": "UTC"}),
        json!({"every": "weekly"}),
        json!({"every": "daily", "at": "09:00", "tz": "Mars/Olympus"}),
    ] {
        let r = http
            .put(format!("{base}/subscriptions/{USER}/{sub}/digest"))
            .bearer_auth(API_TOKEN)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
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

    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(fake.post(
            CHANNEL,
            NewChannelMessage::text(format!("digest post {i} with some words")),
        ));
    }
    let other = wait_until(Duration::from_secs(20), async || {
        texts(&fake, OTHER).len() == 3
    })
    .await;
    assert!(other, "{:?}\n{}", texts(&fake, OTHER), daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(texts(&fake, USER), Vec::<String>::new());

    // Restart; two more posts while it is down.
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    for i in 4..=5 {
        ids.push(fake.post(
            CHANNEL,
            NewChannelMessage::text(format!("digest post {i} with some words")),
        ));
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
    assert_eq!(outcome_rows(&db, sub).await, 0);

    // Due: exactly one sendMessage with the five links, oldest first.
    make_due(&db, sub).await;
    let sent = wait_until(Duration::from_secs(20), async || {
        !texts(&fake, USER).is_empty()
    })
    .await;
    assert!(sent, "{}", daemon.log_text());
    let got = texts(&fake, USER);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("📰 Digest: 5 posts\n"), "{}", got[0]);
    assert_eq!(linked_ids(&got[0]), ids);
    assert!(
        got[0].contains("— digest post 1 with some words\n"),
        "{}",
        got[0]
    );
    let recorded = wait_until(Duration::from_secs(10), async || {
        outcome_rows(&db, sub).await == 5
    })
    .await;
    assert!(recorded, "{}", daemon.log_text());
    // Next due time is set from the schedule (09:00 Tashkent = 04:00 UTC).
    let next: chrono::DateTime<chrono::Utc> = db
        .client()
        .await
        .query_one(
            "SELECT digest_due_at FROM subscriptions WHERE id = $1",
            &[&sub],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next.format("%H:%M").to_string(), "04:00");
    // Due again with nothing new: nothing sent; never twice.
    make_due(&db, sub).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.received(USER).len(), 1);

    // A long digest: 100 posts whose entries take ~130 units each.
    let long_words = "Ўзбекистон 😀 информационный news digest словосочетание длинное";
    let mut long_ids = Vec::new();
    for i in 1..=100 {
        long_ids.push(fake.post(
            CHANNEL,
            NewChannelMessage::text(format!("{i} {long_words} {long_words} {long_words}")),
        ));
    }
    let other = wait_until(Duration::from_secs(60), async || {
        texts(&fake, OTHER).len() == 105
    })
    .await;
    assert!(other, "{}", daemon.log_text());
    // A crash after the digest's first part was sent: the run is claimed
    // (its posts fixed) and one part recorded, then the binary stops.
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    db.client()
        .await
        .execute(
            "INSERT INTO digest_runs (subscription_id, period, post_ids, parts_sent)
             SELECT $1, now(), ARRAY(SELECT p.id FROM posts p
                                      WHERE p.message_id = ANY($2::bigint[])
                                      ORDER BY p.detected_at, p.message_id), 1",
            &[
                &sub,
                &long_ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
            ],
        )
        .await
        .unwrap();
    let mut daemon = start(&db, &fake, port);
    ready(&http, &base, &daemon).await;
    let rest = wait_until(Duration::from_secs(30), async || {
        outcome_rows(&db, sub).await == 105
    })
    .await;
    assert!(rest, "{}", daemon.log_text());
    let got = texts(&fake, USER);
    let parts = &got[1..];
    // 100 entries of ~130 units: four messages, the first already sent.
    assert!(parts.len() >= 2, "{parts:?}");
    let mut seen = Vec::new();
    for p in parts {
        assert!(
            p.encode_utf16().count() <= 4096,
            "{} units",
            p.encode_utf16().count()
        );
        assert!(!p.starts_with("📰"), "the first part was sent again");
        // Whole entries only.
        for line in p.lines() {
            assert!(line.starts_with("• https://t.me/digest_news/"), "{line}");
            assert!(line.ends_with('…'), "{line}");
        }
        seen.extend(linked_ids(p));
    }
    // The parts after the first: the tail of the 100, in order, none twice.
    let first_missing = 100 - seen.len();
    assert!(first_missing > 0);
    assert_eq!(seen, long_ids[first_missing..].to_vec());
    // Nothing more arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(texts(&fake, USER).len(), 1 + parts.len());
    assert_eq!(daemon.terminate(), Some(0));
}

/// `/digest` through the bot: set for one subscription (its posts are held,
/// the other gets them), bad input answered with the usage, `off` sends
/// what it held in one last digest at once, then posts go one by one.
#[actix_rt::test]
async fn the_bot_sets_and_clears_a_digest() {
    use crate::bot::{TOKEN as BOT, World};
    const NEWS: i64 = -100_717_301;
    const MORE: i64 = -100_717_302;
    const U: i64 = 817_301;
    let w = World::start(&[BOT], &[(NEWS, "dg_news"), (MORE, "dg_more")], |c| {
        c.limits.bot_commands_per_minute = 1_000;
        c.delivery.sweep_interval_s = 1;
    })
    .await;
    w.say(BOT, U, "/start", "en").await;
    w.say(BOT, U, "/add @dg_news @dg_more", "en").await;
    let t = w.say(BOT, U, "/digest @dg_news weekly", "en").await;
    assert!(t.contains("/digest daily 09:00"), "{t}");
    let t = w
        .say(BOT, U, "/digest @dg_news daily 09:00 Mars/Olympus", "en")
        .await;
    assert!(t.contains("Mars/Olympus"), "{t}");
    let t = w
        .say(BOT, U, "/digest @dg_news daily 09:00 Asia/Tashkent", "uz")
        .await;
    assert!(t.contains("09:00") && t.contains("Asia/Tashkent"), "{t}");
    // Until the channels are resolved and polled: a probe reaches the chat.
    let mut probed = false;
    for _ in 0..30 {
        w.fake.post(MORE, NewChannelMessage::text("probe"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        if texts(&w.fake, U).iter().any(|t| t == "probe") {
            probed = true;
            break;
        }
    }
    assert!(probed, "the channels were never polled");
    w.fake
        .post(NEWS, NewChannelMessage::text("held for the digest"));
    w.fake.post(MORE, NewChannelMessage::text("sent at once"));
    let got = wait_until(Duration::from_secs(20), async || {
        texts(&w.fake, U).iter().any(|t| t == "sent at once")
    })
    .await;
    assert!(got);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!texts(&w.fake, U).iter().any(|t| t == "held for the digest"));
    let t = w.say(BOT, U, "/digest @dg_news off", "en").await;
    assert!(t.contains("one last digest"), "{t}");
    // What it held comes at once in one last digest (not due for hours),
    // then the setting is gone and posts come one by one.
    let last = wait_until(Duration::from_secs(20), async || {
        texts(&w.fake, U)
            .iter()
            .any(|t| t.starts_with("📰 Digest: 1 posts\n"))
    })
    .await;
    assert!(last, "{:?}", texts(&w.fake, U));
    let digests: Vec<String> = texts(&w.fake, U)
        .into_iter()
        .filter(|t| t.starts_with("📰 Digest:"))
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    assert!(
        digests[0].contains("https://t.me/dg_news/"),
        "{}",
        digests[0]
    );
    assert!(digests[0].contains("held for the digest"), "{}", digests[0]);
    let cleared = wait_until(Duration::from_secs(10), async || {
        w.db.client()
            .await
            .query_one(
                "SELECT count(*) FROM subscriptions WHERE digest IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    assert!(cleared, "the closing digest setting was never cleared");
    w.fake
        .post(NEWS, NewChannelMessage::text("one by one again"));
    let got = wait_until(Duration::from_secs(20), async || {
        texts(&w.fake, U).iter().any(|t| t == "one by one again")
    })
    .await;
    assert!(got, "{:?}", texts(&w.fake, U));
    assert!(
        !texts(&w.fake, U).iter().any(|t| t == "held for the digest"),
        "the held post was sent on its own too"
    );
}

/// The store's side of the filters: a digest lists only the owed posts the
/// subscription's filters accept (a refused post has no delivery, as in the
/// fan-out and the resume), and a second claim of the period reads the same
/// list back even after the filters changed.
#[tokio::test]
async fn a_digest_lists_only_the_posts_its_filters_accept() {
    use chrono::Utc;
    use kuryer::store::NewPost;
    use kuryer_actors::model::ChannelUsername;

    let db = TestDb::new().await;
    let store = db.migrated().await;
    let name = ChannelUsername::parse("@digest_filtered").unwrap();
    let added = store.add_subscription(717_101, &name).await.unwrap();
    let sub = added.subscription.id;
    let c = db.client().await;
    let channel: i64 = c
        .query_one(
            "SELECT channel_id FROM subscriptions WHERE id = $1",
            &[&sub],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "UPDATE subscriptions SET filters = '{\"exclude\": [\"casino\"], \"skip_media\": [\"video\"]}'
          WHERE id = $1",
        &[&sub],
    )
    .await
    .unwrap();
    let posts = [
        ("news one", None),
        ("best CASINO bonus", None),
        ("a clip", Some("video")),
        ("a photo", Some("photo")),
        ("news two", None),
    ];
    let mut ids = Vec::new();
    for (i, (text, media)) in posts.iter().enumerate() {
        let id = store
            .record_post(&NewPost {
                channel_id: channel,
                message_ids: vec![i as i64 + 1],
                kind: media.unwrap_or("text").into(),
                detected_at: Utc::now(),
                source_chat_id: Some(-1_000_717_101),
                channel_username: Some("digest_filtered".into()),
                text: Some((*text).into()),
                media: media.map(str::to_owned),
                copyable: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .expect("recorded");
        ids.push(id);
    }
    let period = Utc::now();
    let run = store.claim_digest(sub, period, Utc::now()).await.unwrap();
    assert_eq!(
        run.post_ids,
        [ids[0], ids[3], ids[4]],
        "casino and video are filtered out"
    );
    c.execute(
        "UPDATE subscriptions SET filters = '{}' WHERE id = $1",
        &[&sub],
    )
    .await
    .unwrap();
    let again = store.claim_digest(sub, period, Utc::now()).await.unwrap();
    assert_eq!(again.post_ids, run.post_ids, "the claimed list is fixed");
}
