//! Edits, deletions and history on subscribe against the real `kuryer run` and the simulated
//! Telegram: edits mirrored (or ignored, or reposted) per subscription, an
//! edit racing the first delivery, a pending edit across a `kill -9`, and
//! history on subscribe (backfill) finished after a restart. The reader's
//! side (deletions, which the Bot API never sends) is in `mirror_reader.rs`.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{
    ChatKind, FakeLimits, FakeTelegram, Fault, MediaKind, MirrorCall, NewChannelMessage,
};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port};

const TOKEN: &str = "4646:mirrorSECRETmirrorSECRET";
const API_TOKEN: &str = "black-box-api-token-0123";
const CHANNEL: i64 = -1_009_046;

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

/// The calls made on the copies `ids` in `chat` (not on the bot's menus).
pub(crate) fn calls_on(fake: &FakeTelegram, chat: i64, ids: &[i32]) -> Vec<MirrorCall> {
    fake.mirror_calls()
        .into_iter()
        .filter(|c| c.chat_id == chat && c.message_ids.iter().any(|m| ids.contains(m)))
        .collect()
}

/// The HTTP API of a running daemon.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn ready(&self, daemon: &Daemon) {
        let ok = wait_until(Duration::from_secs(60), async || {
            matches!(self.http.get(format!("{}/readyz", self.base)).send().await, Ok(r) if r.status() == 200)
        })
        .await;
        assert!(ok, "kuryer never became ready:\n{}", daemon.log_text());
    }

    pub(crate) async fn add(&self, user: i64, name: &str, backfill: Option<i64>) -> Value {
        let mut body = json!({"user_id": user, "channel_username": name});
        if let Some(n) = backfill {
            body["backfill"] = json!(n);
        }
        let r = self
            .http
            .post(format!("{}/add_channel", self.base))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        r.json().await.unwrap()
    }

    pub(crate) async fn subs(&self, user: i64) -> Value {
        self.http
            .get(format!("{}/subscriptions/{user}", self.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn patch(&self, user: i64, sub: i64, body: Value) -> (u16, Value) {
        let r = self
            .http
            .patch(format!("{}/subscriptions/{user}/{sub}/settings", self.base))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// A fake with our bot admin of CHANNEL (`@mirror_news`) and private chats.
fn fake_with(users: &[i64]) -> FakeTelegram {
    let fake = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    fake.add_bot(TOKEN);
    fake.create_channel(CHANNEL, "mirror_news", "Mirror news");
    for u in users {
        fake.create_chat(*u, ChatKind::Private);
    }
    fake.set_admin(CHANNEL, TOKEN, true);
    fake
}

async fn subscribe_all(api: &Api, daemon: &Daemon, users: &[i64]) -> Vec<i64> {
    let mut subs = Vec::new();
    for u in users {
        let added = api.add(*u, "@mirror_news", None).await;
        subs.push(added["id"].as_i64().unwrap());
    }
    let ok = wait_until(Duration::from_secs(30), async || {
        api.subs(users[0]).await[0]["channel_status"] == "active"
    })
    .await;
    assert!(ok, "channel never resolved:\n{}", daemon.log_text());
    subs
}

async fn received_n(fake: &FakeTelegram, daemon: &Daemon, chat: i64, n: usize) {
    let ok = wait_until(Duration::from_secs(30), async || {
        fake.received(chat).len() >= n
    })
    .await;
    assert!(
        ok,
        "chat {chat} got {} of {n}:\n{}",
        fake.received(chat).len(),
        daemon.log_text()
    );
}

async fn applied(db: &TestDb) -> Vec<(i64, String, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT subscription_id, status, error FROM post_event_applied ORDER BY event_id, subscription_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn edits_are_mirrored_ignored_or_reposted_per_subscription_and_forwards_are_left() {
    let db = TestDb::new().await;
    let users = [760_001, 760_002, 760_003, 760_004];
    let fake = fake_with(&users);
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    let api = Api::new(port);
    api.ready(&daemon).await;
    let subs = subscribe_all(&api, &daemon, &users).await;
    // users[1] ignores edits through the bot's settings buttons; [2]
    // reposts, [3] forwards (its copies cannot be edited), through the API.
    let (u, s) = (users[1], subs[1]);
    fake.user_says(TOKEN, u, "/list", Some("en"));
    received_n(&fake, &daemon, u, 1).await;
    let list = fake.received(u).pop().unwrap();
    fake.press(TOKEN, u, u, list.message_id, &format!("s:{s}"));
    let shown = wait_until(Duration::from_secs(15), async || {
        fake.received(u).iter().any(|m| {
            m.text
                .as_deref()
                .is_some_and(|t| t.contains("Edits of the post"))
        })
    })
    .await;
    assert!(
        shown,
        "settings view without the edits line:\n{}",
        daemon.log_text()
    );
    fake.press(TOKEN, u, u, list.message_id, &format!("e:{s}:i"));
    let (status, body) = api
        .patch(users[2], subs[2], json!({"edits": "repost"}))
        .await;
    assert_eq!(
        (status, body["edits"].as_str()),
        (200, Some("repost")),
        "{body}"
    );
    let (status, body) = api
        .patch(users[3], subs[3], json!({"mode": "forward"}))
        .await;
    assert_eq!(
        (status, body["deletions"].as_str()),
        (200, Some("mirror")),
        "{body}"
    );
    let (status, _) = api
        .patch(users[3], subs[3], json!({"edits": "sometimes"}))
        .await;
    assert_eq!(status, 400);
    let set = wait_until(Duration::from_secs(10), async || {
        let r = db
            .client()
            .await
            .query_one("SELECT edits FROM subscriptions WHERE id = $1", &[&s])
            .await
            .unwrap();
        r.get::<_, String>(0) == "ignore"
    })
    .await;
    assert!(
        set,
        "the ignore button did not store:\n{}",
        daemon.log_text()
    );

    let before: Vec<usize> = users.iter().map(|u| fake.received(*u).len()).collect();
    let bold = json!({"type": "bold", "offset": 0, "length": 5});
    let text_id = fake.post(
        CHANNEL,
        NewChannelMessage::text("Price 100 today").with_entities(vec![bold.clone()]),
    );
    let photo_id = fake.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Photo, Some("cap v1")),
    );
    for (u, b) in users.iter().zip(&before) {
        received_n(&fake, &daemon, *u, b + 2).await;
    }
    let copies: Vec<Vec<i32>> = users
        .iter()
        .zip(&before)
        .map(|(u, b)| {
            fake.received(*u)[*b..]
                .iter()
                .map(|m| m.message_id)
                .collect()
        })
        .collect();

    assert!(fake.edit_post(CHANNEL, text_id, Some("Price 120 today")));
    assert!(fake.edit_post(CHANNEL, photo_id, Some("cap v2")));
    let done = wait_until(Duration::from_secs(30), async || {
        applied(&db).await.len() == 8
    })
    .await;
    assert!(done, "{:?}\n{}", applied(&db).await, daemon.log_text());
    // The repost's copies arrive after their rows are written: wait for them.
    received_n(&fake, &daemon, users[2], before[2] + 4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Mirror: one editMessageText and one editMessageMedia (the update gave
    // the photo's file id), nothing else.
    let c = calls_on(&fake, users[0], &copies[0]);
    type Call<'a> = (&'a str, Vec<i32>, Option<&'a str>, Option<&'a str>);
    let got: Vec<Call> = c
        .iter()
        .map(|c| {
            (
                c.method,
                c.message_ids.clone(),
                c.text.as_deref(),
                c.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "editMessageText",
                vec![copies[0][0]],
                Some("Price 120 today"),
                None
            ),
            ("editMessageMedia", vec![copies[0][1]], Some("cap v2"), None),
        ],
        "{:?}\n{:?}",
        fake.mirror_calls(),
        applied(&db).await
    );
    assert_eq!(
        c[1].file_id.as_deref(),
        Some(&*format!("fake-{CHANNEL}-{photo_id}"))
    );
    let r0 = fake.received(users[0]);
    assert_eq!(r0.len(), before[0] + 2, "mirror sends no second copy");
    assert_eq!(r0[before[0]].text.as_deref(), Some("Price 120 today"));
    assert_eq!(r0[before[0]].entities, vec![bold.clone()]);
    assert_eq!(r0[before[0] + 1].text.as_deref(), Some("cap v2"));
    assert_eq!((r0[before[0]].edits, r0[before[0] + 1].edits), (1, 1));
    // Ignore: nothing at all.
    assert!(calls_on(&fake, users[1], &copies[1]).is_empty());
    let r1 = fake.received(users[1]);
    assert_eq!(r1[before[1]].text.as_deref(), Some("Price 100 today"));
    // Repost: two new copies, the edited texts, no edit call.
    assert!(calls_on(&fake, users[2], &copies[2]).is_empty());
    let r2 = fake.received(users[2]);
    assert_eq!(r2.len(), before[2] + 4, "{r2:?}");
    let reposts: Vec<(&str, Option<&str>)> = r2[before[2] + 2..]
        .iter()
        .map(|m| (m.method, m.text.as_deref()))
        .collect();
    assert_eq!(
        reposts,
        vec![
            ("sendMessage", Some("Price 120 today")),
            ("copyMessage", Some("cap v2"))
        ]
    );
    // Forward: left as they are, and the record says why.
    assert!(calls_on(&fake, users[3], &copies[3]).is_empty());
    let rows = applied(&db).await;
    let forward: Vec<_> = rows.iter().filter(|r| r.0 == subs[3]).collect();
    assert_eq!(forward.len(), 2);
    assert!(
        forward.iter().all(
            |r| r.1 == "skipped" && r.2.as_deref() == Some("forwarded copies cannot be edited")
        )
    );
    let ignored: Vec<_> = rows.iter().filter(|r| r.0 == subs[1]).collect();
    assert!(ignored.iter().all(|r| r.1 == "skipped"), "{ignored:?}");
    let pending: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM post_events WHERE done_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let done_all = wait_until(Duration::from_secs(10), async || {
        db.client()
            .await
            .query_one(
                "SELECT count(*) FROM post_events WHERE done_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    assert!(done_all, "events left pending ({pending})");
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    fake.stop();
}

#[tokio::test]
async fn an_edit_racing_the_first_delivery_edits_its_one_copy_and_a_killed_edit_is_applied_after_the_restart()
 {
    let db = TestDb::new().await;
    let user = 761_001;
    let fake = fake_with(&[user]);
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    let api = Api::new(port);
    api.ready(&daemon).await;
    subscribe_all(&api, &daemon, &[user]).await;

    // The first delivery is in flight (accepted, its answer held back 2 s)
    // when the edit arrives.
    fake.set_fault(user, Fault::Slow(Duration::from_secs(2)), Some(1));
    let id = fake.post(CHANNEL, NewChannelMessage::text("draft v1"));
    received_n(&fake, &daemon, user, 1).await;
    assert!(fake.edit_post(CHANNEL, id, Some("final v2")));
    let copy = fake.received(user)[0].message_id;
    let edited = wait_until(Duration::from_secs(20), async || {
        calls_on(&fake, user, &[copy])
            .iter()
            .any(|c| c.error.is_none())
    })
    .await;
    assert!(edited, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = fake.received(user);
    assert_eq!(r.len(), 1, "one copy: {r:?}");
    assert_eq!((r[0].text.as_deref(), r[0].edits), (Some("final v2"), 1));
    let calls = calls_on(&fake, user, &[copy]);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].method, calls[0].text.as_deref()),
        ("editMessageText", Some("final v2"))
    );

    // An edit whose answer never comes back: the process is killed with
    // the call made. After the restart it is made again, and "message is
    // not modified" counts as done.
    fake.set_fault(user, Fault::Slow(Duration::from_secs(8)), Some(1));
    assert!(fake.edit_post(CHANNEL, id, Some("final v3")));
    let sent = wait_until(Duration::from_secs(20), async || {
        calls_on(&fake, user, &[copy]).len() == 2
    })
    .await;
    assert!(sent, "{}", daemon.log_text());
    daemon.kill9();
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 20.0, &[]);
    api.ready(&daemon).await;
    let done = wait_until(Duration::from_secs(30), async || {
        applied(&db).await.len() == 2
    })
    .await;
    assert!(done, "{:?}\n{}", applied(&db).await, daemon.log_text());
    let calls: Vec<(&str, Option<String>, Option<String>)> = calls_on(&fake, user, &[copy])
        .into_iter()
        .map(|c| (c.method, c.text, c.error))
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[1], ("editMessageText", Some("final v3".into()), None));
    assert_eq!(calls[2].1.as_deref(), Some("final v3"));
    assert!(
        calls[2]
            .2
            .as_deref()
            .is_some_and(|e| e.contains("message is not modified")),
        "{calls:?}"
    );
    let r = fake.received(user);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].text.as_deref(), r[0].edits), (Some("final v3"), 2));
    assert!(applied(&db).await.iter().all(|r| r.1 == "done"));
    daemon.terminate();
    fake.stop();
}

#[tokio::test]
async fn a_backfill_sends_the_last_posts_oldest_first_once_and_is_finished_after_a_restart() {
    let db = TestDb::new().await;
    let users = [762_001, 762_002];
    // Someone follows the channel before it posts: a bot-admin channel
    // nobody subscribes to has its posts neither kept nor polled.
    let watcher = 762_003;
    let fake = fake_with(&[users[0], users[1], watcher]);
    let port = free_port();
    // One message a second a chat (Telegram's own limit): the backfill of
    // users[1] is still under way when the process is stopped.
    let extra = [("KURYER_DELIVERY_SHUTDOWN_DEADLINE_MS", "100".to_owned())];
    let mut daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 1.0, &extra);
    let api = Api::new(port);
    api.ready(&daemon).await;
    api.add(watcher, "@mirror_news", None).await;
    let texts: Vec<String> = (1..=6).map(|i| format!("history post {i}")).collect();
    for t in &texts {
        fake.post(CHANNEL, NewChannelMessage::text(t.clone()));
    }
    let recorded = wait_until(Duration::from_secs(30), async || {
        db.client()
            .await
            .query_one("SELECT count(*) FROM posts", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 6
    })
    .await;
    assert!(recorded, "{}", daemon.log_text());

    // The API: the last 3, oldest first; again with 10: only the 3 older
    // ones are new. N is checked.
    let u = users[0];
    let r = api
        .http
        .post(format!("{}/add_channel", api.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({"user_id": u, "channel_username": "@mirror_news", "backfill": 51}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let first = api.add(u, "@mirror_news", Some(3)).await;
    assert_eq!(first["backfill"], "asked", "{first}");
    received_n(&fake, &daemon, u, 3).await;
    // One backfill at a time a subscription: asked while the first is still
    // open, the answer says so; asked again once it is done, it runs.
    let again = wait_until(Duration::from_secs(30), async || {
        api.add(u, "@mirror_news", Some(10)).await["backfill"] == "asked"
    })
    .await;
    assert!(again, "the second backfill was never taken");
    received_n(&fake, &daemon, u, 6).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got: Vec<String> = fake
        .received(u)
        .iter()
        .map(|m| m.text.clone().unwrap_or_default())
        .collect();
    let want: Vec<String> = [4, 5, 6, 1, 2, 3]
        .iter()
        .map(|i| texts[i - 1].clone())
        .collect();
    assert_eq!(got, want);

    // The bot: `/add @name last 5`; stopped after two have arrived (the
    // shutdown deadline cuts the drain), finished after the restart.
    let v = users[1];
    fake.user_says(TOKEN, v, "/add @mirror_news last 5", Some("en"));
    let two = wait_until(Duration::from_secs(30), async || {
        fake.received(v)
            .iter()
            .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with("history")))
            .count()
            >= 2
    })
    .await;
    assert!(two, "{}", daemon.log_text());
    daemon.terminate();
    let half: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM backfills WHERE done_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(half, 1, "the bot's backfill is unfinished at the stop");
    let daemon = Daemon::start_with(&db.url, &fake, TOKEN, port, 1.0, &extra);
    api.ready(&daemon).await;
    let all = wait_until(Duration::from_secs(30), async || {
        fake.received(v)
            .iter()
            .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with("history")))
            .count()
            >= 5
    })
    .await;
    assert!(all, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let msgs = fake.received(v);
    let reply = msgs.iter().find(|m| {
        m.text
            .as_deref()
            .is_some_and(|t| t.contains("Sending the last 5 posts"))
    });
    assert!(reply.is_some(), "{msgs:?}");
    let history: Vec<String> = msgs
        .iter()
        .filter_map(|m| m.text.clone())
        .filter(|t| t.starts_with("history"))
        .collect();
    assert_eq!(history, texts[1..].to_vec(), "oldest first, each once");
    let c = db.client().await;
    let rows: Vec<(i64, bool)> = c
        .query(
            "SELECT count(*), bool_and(f.backfill) FROM forwarded_messages f
               JOIN subscriptions s ON s.id = f.subscription_id
               JOIN users u ON u.id = s.user_id
              WHERE u.telegram_id <> $1
              GROUP BY f.subscription_id",
            &[&watcher],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| r.1),
        "every row is marked backfill: {rows:?}"
    );
    let left: i64 = c
        .query_one("SELECT count(*) FROM backfills WHERE done_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    drop(daemon);
    fake.stop();
}
