//! Forum topics: `/link` sent inside a topic links that topic; every send
//! to it carries its `message_thread_id`; a deleted topic (the fake answers
//! Telegram's "Bad Request: message thread not found") deactivates that
//! destination alone and tells its owner once, in their language; the
//! other topic of the same forum keeps receiving.

use std::time::Duration;

use kuryer::secret::Secret;
use kuryer_sim::fake_bot_api::{ChatKind, MemberStatus, NewChannelMessage};
use serde_json::{Value, json};

use crate::bot::{TOKEN, World, wait_until};

const CHANNEL: i64 = -100_716_101;
const FORUM: i64 = -100_716_900;
const USER: i64 = 816_101;
const API: &str = "topics-api-token-0123456789";

async fn route(w: &World, sub: i64, destination: i64) {
    let r = reqwest::Client::new()
        .put(format!(
            "http://{}/subscriptions/{USER}/{sub}/destination",
            w.http
        ))
        .bearer_auth(API)
        .json(&json!({"destination_id": destination}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[actix_rt::test]
async fn a_topic_is_linked_posted_to_and_deactivated_alone_when_deleted() {
    let w = World::start(
        &[TOKEN],
        &[(CHANNEL, "topic_news"), (CHANNEL - 1, "topic_more")],
        |c| {
            c.http.api_token = Some(Secret::new(API));
            c.limits.bot_commands_per_minute = 1_000;
        },
    )
    .await;
    w.say(TOKEN, USER, "/start", "ru").await;
    w.say(TOKEN, USER, "/add @topic_news @topic_more", "ru")
        .await;
    w.fake.create_forum(FORUM);
    let before = w.replies(FORUM).len();
    w.fake
        .add_bot_to_chat(TOKEN, FORUM, ChatKind::Supergroup, USER, false);
    w.fake.set_member(FORUM, USER, MemberStatus::Administrator);
    w.next_reply(FORUM, before).await;
    let news = w.fake.create_topic(FORUM);
    let more = w.fake.create_topic(FORUM);
    for topic in [news, more] {
        let before = w.replies(USER).len();
        w.fake
            .user_says_in_topic(TOKEN, FORUM, topic, USER, "/link");
        let t = w.next_reply(USER, before).await.text.unwrap();
        assert!(t.contains("среди ваших получателей"), "{t}");
    }
    // Two destinations, one per topic.
    let dests: Value = reqwest::Client::new()
        .get(format!("http://{}/destinations/{USER}", w.http))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let topic_dests: Vec<i64> = dests
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["chat_id"] == FORUM)
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(topic_dests.len(), 2, "{dests}");
    let subs: Value = reqwest::Client::new()
        .get(format!("http://{}/subscriptions/{USER}", w.http))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub_of = |name: &str| {
        subs.as_array()
            .unwrap()
            .iter()
            .find(|s| s["channel_username"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    route(&w, sub_of("topic_news"), topic_dests[0]).await;
    route(&w, sub_of("topic_more"), topic_dests[1]).await;

    w.fake.post(CHANNEL, NewChannelMessage::text("news one"));
    w.fake
        .post(CHANNEL - 1, NewChannelMessage::text("more one"));
    let posted = |text: &str| {
        w.fake
            .received(FORUM)
            .into_iter()
            .find(|m| m.text.as_deref() == Some(text))
    };
    let ok = wait_until(Duration::from_secs(20), || {
        posted("news one").is_some() && posted("more one").is_some()
    })
    .await;
    assert!(ok, "{:#?}", w.fake.received(FORUM));
    assert_eq!(posted("news one").unwrap().message_thread_id, Some(news));
    assert_eq!(posted("more one").unwrap().message_thread_id, Some(more));
    assert_eq!(posted("news one").unwrap().method, "sendMessage");

    // The first topic is deleted: two posts fail there; the owner is told
    // once; the other topic keeps receiving.
    w.fake.delete_topic(FORUM, news);
    let before = w.replies(USER).len();
    w.fake.post(CHANNEL, NewChannelMessage::text("news two"));
    w.fake.post(CHANNEL, NewChannelMessage::text("news three"));
    let t = w.next_reply(USER, before).await.text.unwrap();
    assert!(t.contains("удалена"), "{t}");
    w.fake
        .post(CHANNEL - 1, NewChannelMessage::text("more two"));
    let ok = wait_until(Duration::from_secs(20), || posted("more two").is_some()).await;
    assert!(ok, "{:#?}", w.fake.received(FORUM));
    assert_eq!(posted("more two").unwrap().message_thread_id, Some(more));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.replies(USER).len(), before + 1, "told once");
    assert!(posted("news two").is_none() && posted("news three").is_none());
    let dests: Value = reqwest::Client::new()
        .get(format!("http://{}/destinations/{USER}", w.http))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let active = |id: i64| {
        dests
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()["active"]
            .clone()
    };
    assert_eq!(active(topic_dests[0]), json!(false), "{dests}");
    assert_eq!(active(topic_dests[1]), json!(true), "{dests}");
}

/// The stored once-per-problem claim: the first claim tells, a second of
/// the same problem does not (in any process), another problem does, and
/// linking the destination again makes the problem news again.
#[tokio::test]
async fn a_problem_notice_is_claimed_once_until_the_destination_is_linked_again() {
    let db = crate::common::TestDb::new().await;
    let s = db.migrated().await;
    assert!(
        s.claim_destination_notice(7, "topic deleted")
            .await
            .unwrap()
    );
    assert!(
        !s.claim_destination_notice(7, "topic deleted")
            .await
            .unwrap()
    );
    assert!(s.claim_destination_notice(7, "kicked").await.unwrap());
    assert!(
        s.claim_destination_notice(8, "topic deleted")
            .await
            .unwrap()
    );
    s.clear_destination_notices(7).await.unwrap();
    assert!(
        s.claim_destination_notice(7, "topic deleted")
            .await
            .unwrap()
    );
}
