//! Posts of shapes kuryer cannot read: the real `kuryer run` reading a
//! bot-admin channel from the fake Bot API, whose posts are given field by
//! field (`FakeTelegram::post_raw`), some straight from the published
//! specification (`kuryer_sim::spec_updates`). teloxide 0.13 reads a
//! `live_photo`, a `video` with newer fields, a `paid_media` post or a
//! text with an `external_reply` it does not expect as an empty service
//! message, and the intake skipped them without a trace. Each must reach
//! its subscriber by id, be counted by kind and logged once per kind.

use std::time::Duration;

use kuryer_sim::spec_updates::classes::FieldClass;
use kuryer_sim::spec_updates::{self, MessageShape};
use serde_json::{Map, Value, json};

use crate::intake::{Intake, TOKEN, text, wait_until};

fn content(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn spec_shape(name: &str) -> MessageShape {
    spec_updates::message_shapes("shapes")
        .into_iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no shape {name} in the specification"))
}

async fn metrics(t: &Intake) -> String {
    t.http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Fails on the intake that took teloxide's `Empty` for a service message:
/// none of the unreadable posts arrived (checked by running it on the code
/// before the change).
#[tokio::test]
async fn a_post_kuryer_cannot_read_still_goes_out_by_id() {
    const CHANNEL: i64 = -1_009_501;
    const USER: i64 = 850_001;
    let t = Intake::start(&[(CHANNEL, "shapes_one")]).await;
    t.subscribe(USER, "shapes_one").await;
    let live = json!({"file_id": "lp1", "file_unique_id": "ulp1", "width": 1080,
        "height": 1920, "duration": 3});
    let posts = [
        // A content kind newer than teloxide 0.13: twice, logged once.
        content(json!({"live_photo": live, "caption": "a live photo"})),
        content(json!({"live_photo": live})),
        // Straight from the specification: a video, a paid-media post
        // (Telegram copies no paid media: it must be forwarded).
        spec_shape("video/min").content,
        spec_shape("paid_media/min").content,
        // A text replying to a message elsewhere, in a shape teloxide refuses.
        content(json!({"text": "a reply to elsewhere", "external_reply": {
            "origin": {"type": "hidden_user", "date": 1_780_000_000,
                       "sender_user_name": "someone"}}})),
        // A content field no Bot API version has had yet.
        content(json!({"hologram": {"id": "h1"}, "caption": "the future"})),
    ];
    let mut expected = Vec::new();
    for p in posts {
        expected.push((USER, CHANNEL, t.fake.post_raw(CHANNEL, p)));
    }
    // A service message is still skipped: it is known to be one.
    let pin = t.fake.post_raw(
        CHANNEL,
        content(json!({"pinned_message": {"message_id": 1, "date": 0,
            "chat": t.fake.channel_chat(CHANNEL).unwrap()}})),
    );
    expected.push((
        USER,
        CHANNEL,
        text(&t.fake, CHANNEL, "a readable one after"),
    ));
    t.expect(&expected, Duration::from_secs(60)).await;

    let received = t.fake.received(USER);
    assert!(
        received.iter().all(|m| m.source != Some((CHANNEL, pin))),
        "the pin was delivered: {received:?}"
    );
    let paid = expected[3].2;
    assert!(
        received
            .iter()
            .any(|m| m.source == Some((CHANNEL, paid)) && m.method == "forwardMessage"),
        "paid media not forwarded: {received:?}"
    );
    let counted = wait_until(Duration::from_secs(10), async || {
        let m = metrics(&t).await;
        [
            ("live_photo", 2),
            ("video", 1),
            ("paid_media", 1),
            ("text", 1),
            ("hologram", 1),
        ]
        .iter()
        .all(|(kind, n)| {
            m.contains(&format!(
                "kuryer_posts_unreadable_total{{kind=\"{kind}\"}} {n}"
            ))
        })
    })
    .await;
    assert!(counted, "{}", metrics(&t).await);
    // Delivered, so nothing was kept aside.
    assert_eq!(t.count("SELECT count(*) FROM dead_letters").await, 0);
    let log = t.daemon.log_text();
    let warned = |kind: &str| {
        log.lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") && l.contains("cannot read"))
            .filter(|l| l.contains(&format!("\"kind\":\"{kind}\"")))
            .count()
    };
    assert_eq!(warned("live_photo"), 1, "{log}");
    assert_eq!(warned("hologram"), 1, "{log}");
    assert!(!log.contains("the future"), "post content in the log");
    t.stop();
}

/// The first message ids of the post dead letters, in order.
async fn dead_post_ids(t: &Intake) -> Vec<i64> {
    t.db.client()
        .await
        .query(
            "SELECT message_id FROM dead_letters WHERE kind = 'post' ORDER BY message_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect()
}

/// A post kuryer cannot read that Telegram refuses by id — `copyMessage`
/// answers "Bad Request: message can't be copied", `forwardMessage` "…
/// can't be forwarded" — is kept as one dead letter, however many
/// subscribers found the refusal, for the operator to see (`/dead_letters`,
/// `kuryer dead-letters`) and replay; the posts after it go on. Fails on
/// the code before the change: no dead letter was kept.
#[tokio::test]
async fn a_post_refused_by_id_is_kept_as_one_dead_letter() {
    const CHANNEL: i64 = -1_009_701;
    const USERS: [i64; 3] = [870_001, 870_002, 870_003];
    let t = Intake::start(&[(CHANNEL, "shapes_refused")]).await;
    for u in USERS {
        t.subscribe(u, "shapes_refused").await;
    }
    let id = t.fake.next_message_id(CHANNEL).unwrap();
    assert!(t.fake.refuse_by_id(CHANNEL, id));
    let posted = t.fake.post_raw(
        CHANNEL,
        content(json!({"hologram": {"id": "h2"}, "caption": "refused by id"})),
    );
    assert_eq!(posted, id);
    let after = text(&t.fake, CHANNEL, "the post after the refused one");
    let expected: Vec<_> = USERS.iter().map(|&u| (u, CHANNEL, after)).collect();
    t.expect(&expected, Duration::from_secs(60)).await;
    let kept = wait_until(Duration::from_secs(30), async || {
        !dead_post_ids(&t).await.is_empty()
    })
    .await;
    assert!(kept, "not kept:\n{}", t.daemon.log_text());
    // Every subscriber's delivery found the refusal: one is kept.
    let settled = wait_until(Duration::from_secs(30), async || {
        t.count(&format!(
            "SELECT count(*) FROM forwarded_messages WHERE source_message_id = {id}"
        ))
        .await
            == USERS.len() as i64
    })
    .await;
    assert!(settled, "{}", t.daemon.log_text());
    assert_eq!(dead_post_ids(&t).await, vec![i64::from(id)]);
    // What the operator sees: the post, Telegram's words, nothing of its text.
    let list: Value = t
        .http
        .get(format!("{}/dead_letters?kind=post&state=waiting", t.base))
        .bearer_auth(crate::intake::API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &list[0];
    assert_eq!(d["message_id"], i64::from(id), "{list}");
    let reason = d["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("message can't be forwarded"), "{reason}");
    let log = t.daemon.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("\"level\":\"ERROR\"") && l.contains("refused by id as well")),
        "{log}"
    );
    assert!(!log.contains("refused by id\""), "post content in the log");
    // Replayed: its deliveries have their outcome (a link went out, the
    // channel being public), so nothing is sent twice.
    let before = USERS
        .iter()
        .map(|&u| t.fake.received(u).len())
        .sum::<usize>();
    let r = t
        .http
        .post(format!("{}/dead_letters/{}/replay", t.base, d["id"]))
        .bearer_auth(crate::intake::API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = USERS
        .iter()
        .map(|&u| t.fake.received(u).len())
        .sum::<usize>();
    assert_eq!(before, now);
    t.stop();
}

/// Sums a counter's lines in Prometheus text: (label value, count).
fn counted(metrics: &str, name: &str) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|l| {
            let (labels, n) = l.rsplit_once(' ')?;
            let kind = labels.split('"').nth(1)?.to_owned();
            Some((kind, n.trim().parse().ok()?))
        })
        .collect()
}

/// Every update shape the published Bot API specification (10.1, vendored
/// under `sim/spec/`) allows for what kuryer reads, fed to the real
/// binary: nothing stops the update loop, every post Telegram lets a bot
/// copy or forward reaches its subscriber, and what kuryer cannot read is
/// counted by kind. Fails on the code before the change (about a third of
/// the forwardable posts arrived).
#[tokio::test]
async fn every_update_shape_of_the_specification_passes_the_intake() {
    const CHANNEL: i64 = -1_009_601;
    const GROUP: i64 = -1_009_602;
    const USER: i64 = 860_001;
    const PERSON: i64 = 860_002;
    let t = Intake::start(&[(CHANNEL, "spec_shapes")]).await;
    t.subscribe(USER, "spec_shapes").await;
    t.fake
        .create_chat(GROUP, kuryer_sim::fake_bot_api::ChatKind::Supergroup);
    t.fake
        .create_chat(PERSON, kuryer_sim::fake_bot_api::ChatKind::Private);
    let chat = t.fake.channel_chat(CHANNEL).unwrap();
    let person = json!({"id": PERSON, "is_bot": false, "first_name": "Person"});
    let person_chat = json!({"id": PERSON, "type": "private", "first_name": "Person"});
    let group_chat = json!({"id": GROUP, "type": "supergroup", "title": "Group"});
    let bot_id: i64 = TOKEN.split(':').next().unwrap().parse().unwrap();
    let bot_user = json!({"id": bot_id, "is_bot": true, "first_name": format!("Fake bot {bot_id}"),
        "username": format!("fake{bot_id}_bot")});
    let mut shapes = 0usize;
    let mut expected = Vec::new();
    let mut service = Vec::new();
    let mut forwardable = 0usize;

    // Channel posts, and an edit of each non-service one. Every 7th post
    // Telegram would copy, it refuses by id here: one kuryer cannot read
    // must then be kept as a dead letter.
    let mut refused = Vec::new();
    for s in spec_updates::message_shapes("post") {
        let refuse = s.class != FieldClass::Service && forwardable % 7 == 6;
        if refuse {
            let next = t.fake.next_message_id(CHANNEL).unwrap();
            assert!(t.fake.refuse_by_id(CHANNEL, next));
        }
        let id = t.fake.post_raw(CHANNEL, s.content.clone());
        shapes += 1;
        if s.class == FieldClass::Service {
            service.push((s.name(), id));
            continue;
        }
        forwardable += 1;
        if refuse {
            refused.push(id);
        } else {
            expected.push((USER, CHANNEL, id));
        }
        let mut edit = s.content.clone();
        edit.insert("message_id".into(), json!(id));
        edit.insert("date".into(), json!(1_780_000_000));
        edit.insert("chat".into(), chat.clone());
        edit.insert("edit_date".into(), json!(1_780_000_100));
        t.fake
            .push_raw_update(TOKEN, "edited_channel_post", Value::Object(edit));
        shapes += 1;
    }
    // A person's messages of every content and service kind.
    for (n, s) in spec_updates::message_shapes("message")
        .into_iter()
        .enumerate()
    {
        let mut m = s.content.clone();
        m.insert("message_id".into(), json!(n + 1));
        m.insert("date".into(), json!(1_780_000_000));
        m.insert("chat".into(), person_chat.clone());
        m.insert("from".into(), person.clone());
        t.fake.push_raw_update(TOKEN, "message", Value::Object(m));
        shapes += 1;
    }
    for v in spec_updates::my_chat_member_shapes(&group_chat, &person, &bot_user) {
        t.fake.push_raw_update(TOKEN, "my_chat_member", v);
        shapes += 1;
    }
    for v in spec_updates::callback_query_shapes(&person, &person_chat) {
        t.fake.push_raw_update(TOKEN, "callback_query", v);
        shapes += 1;
    }
    // The loop still reads after all of them.
    expected.push((USER, CHANNEL, text(&t.fake, CHANNEL, "the last post")));
    t.expect(&expected, Duration::from_secs(180)).await;
    let drained = wait_until(Duration::from_secs(30), async || {
        t.fake.pending_updates(TOKEN) == 0
    })
    .await;
    assert!(
        drained,
        "{} updates never confirmed",
        t.fake.pending_updates(TOKEN)
    );

    let received = t.fake.received(USER);
    for (name, id) in &service {
        assert!(
            received.iter().all(|m| m.source != Some((CHANNEL, *id))),
            "service message {name} delivered"
        );
    }
    let log = t.daemon.log_text();
    let loop_stops = log.matches("Update loop stopped").count();
    assert_eq!(loop_stops, 0, "{log}");
    let m = metrics(&t).await;
    let unreadable = counted(&m, "kuryer_posts_unreadable_total");
    for kind in ["video", "live_photo", "paid_media", "text"] {
        assert!(
            unreadable.iter().any(|(k, n)| k == kind && *n >= 1),
            "{kind} not counted: {unreadable:?}"
        );
    }
    // Kept aside: exactly the refused posts kuryer cannot read (one a
    // post), none it delivered.
    let kept = wait_until(Duration::from_secs(30), async || {
        !dead_post_ids(&t).await.is_empty()
    })
    .await;
    assert!(kept, "no refused post kept:\n{}", t.daemon.log_text());
    // Give every refused delivery time to settle before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dead = dead_post_ids(&t).await;
    let refused_ids: Vec<i64> = refused.iter().map(|&i| i64::from(i)).collect();
    assert!(
        dead.iter().all(|d| refused_ids.contains(d)),
        "kept {dead:?}, refused {refused_ids:?}"
    );
    let mut once = dead.clone();
    once.dedup();
    assert_eq!(once, dead, "a post kept twice");
    let dead_posts = dead.len();
    let dead_updates = t
        .count("SELECT count(*) FROM dead_letters WHERE kind = 'update'")
        .await;
    let forwarded = t.fake.report(&expected).delivered - 1;
    println!(
        "spec {}: {shapes} update shapes ({} channel posts, {forwardable} forwardable, {} service); \
         loop stops {loop_stops}; forwarded {forwarded}; unreadable {} by kind {unreadable:?}; \
         refused by id {}; dead letters: {dead_posts} posts, {dead_updates} updates; unparsable updates {:?}",
        spec_updates::spec_version(),
        forwardable + service.len(),
        service.len(),
        unreadable.iter().map(|(_, n)| n).sum::<u64>(),
        refused.len(),
        counted(&m, "kuryer_updates_unparsable_total"),
    );
    t.stop();
}
