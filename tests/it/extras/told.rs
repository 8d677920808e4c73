//! Owners told once, the channel's side: a channel made private on the
//! MTProto face (the reader, which is not a member, now gets
//! `CHANNEL_PRIVATE` on every poll) and a channel whose `@name` moved. The
//! real `kuryer run`, the fake Bot API and the fake data centre: each
//! subscriber is told once, in their language, with the buttons, however
//! often the problem is seen and across a restart; the remove button (a
//! `callback_query` through the fake) removes that subscription only.

use std::time::Duration;

use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, ReceivedMessage};
use kuryer_sim::mtproto::{AccountSpec, ChannelSpec, MtprotoConfig, MtprotoFake};
use serde_json::Value;

use crate::common::{Daemon, TestDb, free_port};
use crate::reader::seed_session;

const TOKEN: &str = "4747:toldOWNERStoldOWNERStold";
const RU: i64 = 847_001;
const EN: i64 = 847_002;

pub(super) async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The bot's own messages to `user` whose text contains `needle`.
pub(super) fn notices(bot_api: &FakeTelegram, user: i64, needle: &str) -> Vec<ReceivedMessage> {
    bot_api
        .received(user)
        .into_iter()
        .filter(|m| m.method == "sendMessage" && m.source.is_none())
        .filter(|m| m.text.as_deref().is_some_and(|t| t.contains(needle)))
        .collect()
}

/// The callback data and URLs of a message's inline keyboard, in order.
pub(super) fn buttons(m: &ReceivedMessage) -> Vec<String> {
    let Some(Value::Array(rows)) = m
        .reply_markup
        .as_ref()
        .map(|k| k["inline_keyboard"].clone())
    else {
        return Vec::new();
    };
    rows.iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
        .filter_map(|b| {
            b["callback_data"]
                .as_str()
                .or(b["url"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// Reader settings: no joins (max 0 channels an account), so every
/// channel is read from its history every second.
fn env() -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = crate::reader_run::reader_env()
        .into_iter()
        .filter(|(k, _)| *k != "KURYER_READER_MAX_CHANNELS_PER_ACCOUNT")
        .collect();
    env.push(("KURYER_READER_MAX_CHANNELS_PER_ACCOUNT", "0".to_owned()));
    env
}

pub(super) async fn subscription(db: &TestDb, user: i64, channel: &str) -> (i64, bool) {
    let c = db.client().await;
    let r = c
        .query_one(
            "SELECT s.id, s.removed_at IS NOT NULL FROM subscriptions s
               JOIN users u ON u.id = s.user_id JOIN channels ch ON ch.id = s.channel_id
              WHERE u.telegram_id = $1 AND ch.title = $2",
            &[&user, &channel],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_renamed_channels_are_told_once_with_buttons_and_remove_works() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    let private = dc.create_channel(ChannelSpec {
        title: "Closing".to_owned(),
        username: Some("told_closing".to_owned()),
        protected: false,
    });
    let renamed = dc.create_channel(ChannelSpec {
        title: "Moving".to_owned(),
        username: Some("told_moving".to_owned()),
        protected: false,
    });
    let id = dc.create_account(AccountSpec {
        phone: "+998900004701".to_owned(),
        ..AccountSpec::default()
    });
    seed_session(&store, &dc, "teller", dc.issue_auth_key(Some(id))).await;
    store.set_session_user("teller", id, 0).await.unwrap();
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env());

    for (user, lang) in [(RU, "ru"), (EN, "en")] {
        bot_api.user_says(TOKEN, user, "/start", Some(lang));
        bot_api.user_says(TOKEN, user, "/add @told_closing @told_moving", Some(lang));
    }
    // Both channels read: a post of each reaches both users.
    let p1 = dc.publish_text(private, "closing post");
    let p2 = dc.publish_text(renamed, "moving post");
    let expected: Vec<(i64, i64, i32)> = [RU, EN]
        .iter()
        .flat_map(|u| {
            [
                (*u, private.bot_api_chat_id(), p1),
                (*u, renamed.bot_api_chat_id(), p2),
            ]
        })
        .collect();
    let delivered = wait_until(Duration::from_secs(90), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        bot_api.report(&expected),
        daemon.log_text()
    );

    dc.make_private(private);
    dc.set_username(renamed, "told_moved");
    let (ru_private, en_private, ru_renamed, en_renamed) = (
        "@told_closing стал закрытым",
        "@told_closing became private",
        "@told_moving теперь называется @told_moved",
        "@told_moving is now @told_moved",
    );
    let told = wait_until(Duration::from_secs(60), async || {
        notices(&bot_api, RU, ru_private).len() == 1
            && notices(&bot_api, EN, en_private).len() == 1
            && notices(&bot_api, RU, ru_renamed).len() == 1
            && notices(&bot_api, EN, en_renamed).len() == 1
    })
    .await;
    assert!(
        told,
        "{:?}\n{:?}\n{}",
        bot_api.received(RU),
        bot_api.received(EN),
        daemon.log_text()
    );
    // Seen again on every poll (each second): nothing more is sent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());

    // Restart: the problems are seen again, nothing is told again.
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env());
    tokio::time::sleep(Duration::from_secs(6)).await;
    for (user, private_text, renamed_text) in
        [(RU, ru_private, ru_renamed), (EN, en_private, en_renamed)]
    {
        let p = notices(&bot_api, user, private_text);
        let r = notices(&bot_api, user, renamed_text);
        assert_eq!((p.len(), r.len()), (1, 1), "{:?}", bot_api.received(user));
        let (private_sub, _) = subscription(&db, user, "Closing").await;
        let (renamed_sub, _) = subscription(&db, user, "Moving").await;
        assert_eq!(
            buttons(&p[0]),
            [format!("r:{private_sub}:0"), format!("s:{private_sub}")]
        );
        assert_eq!(
            buttons(&r[0]),
            [
                format!("r:{renamed_sub}:0"),
                format!("s:{renamed_sub}"),
                "https://t.me/told_moved".to_owned()
            ]
        );
    }

    // The Russian owner presses "Remove" under the private channel's notice.
    let notice = notices(&bot_api, RU, ru_private).remove(0);
    let (sub, _) = subscription(&db, RU, "Closing").await;
    bot_api.press(TOKEN, RU, RU, notice.message_id, &format!("r:{sub}:0"));
    let removed = wait_until(Duration::from_secs(30), async || {
        subscription(&db, RU, "Closing").await.1
    })
    .await;
    assert!(removed, "{}", daemon.log_text());
    assert!(!subscription(&db, EN, "Closing").await.1, "the other stays");
    assert!(!subscription(&db, RU, "Moving").await.1);
    // The renamed channel keeps delivering, under its new name on record.
    let p3 = dc.publish_text(renamed, "moved post");
    let expected: Vec<(i64, i64, i32)> = [RU, EN]
        .iter()
        .map(|u| (*u, renamed.bot_api_chat_id(), p3))
        .collect();
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(delivered, "{}", daemon.log_text());
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());

    let c = db.client().await;
    let name: Option<String> = c
        .query_one("SELECT username FROM channels WHERE title = 'Moving'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name.as_deref(), Some("told_moved"));
    let claims: i64 = c
        .query_one(
            "SELECT count(*) FROM problem_notices WHERE subject = 'subscription'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims, 4, "two problems × two subscribers, stored");
}

/// The store's side: one claim per subscription and problem; a live
/// channel clears its private/gone claims (told again next time); a
/// rename claim stays until the name moves on.
#[tokio::test]
async fn channel_notices_are_claimed_once_and_cleared_when_the_problem_ends() {
    use kuryer::store::{CHANNEL_GONE, CHANNEL_PRIVATE};
    use kuryer_actors::model::ChannelUsername;

    let db = TestDb::new().await;
    let store = db.migrated().await;
    let name = ChannelUsername::parse("@claim_src").unwrap();
    let a = store.add_subscription(848_001, &name).await.unwrap();
    let b = store.add_subscription(848_002, &name).await.unwrap();
    let channel: i64 = db
        .client()
        .await
        .query_one("SELECT id FROM channels WHERE username = 'claim_src'", &[])
        .await
        .unwrap()
        .get(0);
    let first = store
        .claim_channel_notices(channel, CHANNEL_PRIVATE)
        .await
        .unwrap();
    let ids: Vec<i64> = first.iter().map(|n| n.subscription_id).collect();
    assert_eq!(ids, [a.subscription.id, b.subscription.id]);
    assert!(
        store
            .claim_channel_notices(channel, CHANNEL_PRIVATE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .claim_channel_notices(channel, CHANNEL_GONE)
            .await
            .unwrap()
            .len(),
        2,
        "another problem is news"
    );
    assert_eq!(store.clear_channel_notices(channel).await.unwrap(), 4);
    assert_eq!(
        store
            .claim_channel_notices(channel, CHANNEL_PRIVATE)
            .await
            .unwrap()
            .len(),
        2,
        "it happened again"
    );
    // Renames: one claim per new name; moving on clears the older one.
    assert!(
        store
            .channel_renamed(channel, Some("Claim_New"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .channel_renamed(channel, Some("claim_new"))
            .await
            .unwrap()
    );
    let r1 = store
        .claim_channel_notices(channel, "channel-renamed:claim_new")
        .await
        .unwrap();
    assert_eq!(r1.len(), 2);
    assert!(
        store
            .channel_renamed(channel, Some("claim_src"))
            .await
            .unwrap()
    );
    assert!(
        store
            .channel_renamed(channel, Some("claim_new"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .claim_channel_notices(channel, "channel-renamed:claim_new")
            .await
            .unwrap()
            .len(),
        2,
        "renamed back and forth: news again"
    );
    // A removed subscription is not told.
    db.client()
        .await
        .execute(
            "UPDATE subscriptions SET removed_at = now(), is_active = false WHERE id = $1",
            &[&a.subscription.id],
        )
        .await
        .unwrap();
    let gone = store
        .claim_channel_notices(channel, "channel-renamed:x")
        .await
        .unwrap();
    assert_eq!(
        gone.iter().map(|n| n.subscription_id).collect::<Vec<_>>(),
        [b.subscription.id]
    );
}

/// A channel the reader joined stays readable when it becomes private: the
/// history's answer shows it without a public name, and its subscriber is
/// told once (links to posts stop working), across a restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_channel_losing_its_name_is_told_once() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    let channel = dc.create_channel(ChannelSpec {
        title: "Hiding".to_owned(),
        username: Some("told_hiding".to_owned()),
        protected: false,
    });
    let id = dc.create_account(AccountSpec {
        phone: "+998900004702".to_owned(),
        ..AccountSpec::default()
    });
    seed_session(&store, &dc, "member", dc.issue_auth_key(Some(id))).await;
    store.set_session_user("member", id, 0).await.unwrap();
    let mut env = crate::reader_run::reader_env();
    env.push(("KURYER_READER_VERIFY_INTERVAL_S", "1".to_owned()));
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    bot_api.user_says(TOKEN, EN, "/start", Some("en"));
    bot_api.user_says(TOKEN, EN, "/add @told_hiding", Some("en"));
    let p1 = dc.publish_text(channel, "before");
    let expected = [(EN, channel.bot_api_chat_id(), p1)];
    let delivered = wait_until(Duration::from_secs(90), async || {
        bot_api.report(&expected).delivered == 1
    })
    .await;
    assert!(delivered, "{}", daemon.log_text());
    let joined = wait_until(Duration::from_secs(30), async || {
        dc.stats(id).calls("channels.joinChannel") >= 1
    })
    .await;
    assert!(joined, "{}", daemon.log_text());

    dc.make_private(channel);
    let needle = "@told_hiding became private (it has no public name any more)";
    let told = wait_until(Duration::from_secs(30), async || {
        notices(&bot_api, EN, needle).len() == 1
    })
    .await;
    assert!(told, "{:?}\n{}", bot_api.received(EN), daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    // Still read (a member): a new post arrives; no second notice.
    let p2 = dc.publish_text(channel, "after");
    let expected = [(EN, channel.bot_api_chat_id(), p2)];
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == 1
    })
    .await;
    assert!(delivered, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    assert_eq!(notices(&bot_api, EN, needle).len(), 1);
}
