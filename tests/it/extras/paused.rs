//! The paused state, through the real `kuryer run`, the
//! fake Bot API and the fake data centre: a channel that cannot be read
//! pauses its subscriptions — stored, shown by `/list` and
//! `GET /subscriptions/{user}` — and each owner is told once, in their
//! language, with the buttons, however often the problem is seen and
//! across restarts; when its posts come again, each owner told is told
//! once that it resumed. A channel made private (read by polling), a
//! deleted channel the reader had joined, and a channel our bot
//! administers losing and regaining that bot.

use std::time::Duration;

use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, NewChannelMessage};
use kuryer_sim::mtproto::{AccountSpec, ChannelSpec, MtprotoConfig, MtprotoFake};
use serde_json::Value;

use super::told::{buttons, notices, subscription, wait_until};
use crate::common::{Daemon, TestDb, free_port};
use crate::reader::seed_session;

const TOKEN: &str = "4848:pausedOWNERSpausedOWNERS";
const API_TOKEN: &str = "black-box-api-token-0123";
const RU: i64 = 849_001;
const EN: i64 = 849_002;

/// Reader settings; `joins`: whether its account may join channels
/// (otherwise every channel is polled from its history). A channel that
/// failed is polled again after 2 s.
fn env(joins: bool) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = crate::reader_run::reader_env()
        .into_iter()
        .filter(|(k, _)| *k != "KURYER_READER_MAX_CHANNELS_PER_ACCOUNT")
        .collect();
    let max = if joins { "2" } else { "0" };
    env.push(("KURYER_READER_MAX_CHANNELS_PER_ACCOUNT", max.to_owned()));
    env.push(("KURYER_READER_VERIFY_INTERVAL_S", "1".to_owned()));
    env.push(("KURYER_DELIVERY_POLL_MAX_INTERVAL_MS", "2000".to_owned()));
    env
}

/// `GET /subscriptions/{user}` (null while the daemon does not answer).
async fn api_list(port: u16, user: i64) -> Value {
    let answer = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/subscriptions/{user}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await;
    match answer {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Sends `/list` and waits for an answer containing `needle`.
async fn list_shows(bot_api: &FakeTelegram, user: i64, lang: &str, needle: &str) -> bool {
    let before = notices(bot_api, user, needle).len();
    bot_api.user_says(TOKEN, user, "/list", Some(lang));
    wait_until(Duration::from_secs(20), async || {
        notices(bot_api, user, needle).len() > before
    })
    .await
}

/// The channel's stored pause.
async fn unreadable(db: &TestDb, title: &str) -> Option<String> {
    db.client()
        .await
        .query_one(
            "SELECT unreadable FROM channels WHERE title = $1",
            &[&title],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until both owners got `post` of the channel `chat`.
async fn delivered(bot_api: &FakeTelegram, chat: i64, post: i32) -> bool {
    let expected = [(RU, chat, post), (EN, chat, post)];
    wait_until(Duration::from_secs(90), async || {
        bot_api.report(&expected).delivered == 2
    })
    .await
}

/// Starts a data centre with one reader account and one channel.
async fn reader_world(
    store: &kuryer::store::Store,
    bot_api: &FakeTelegram,
    title: &str,
    username: &str,
    phone: &str,
) -> (MtprotoFake, kuryer_sim::mtproto::ChannelRef, i64) {
    let dc = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    let ch = dc.create_channel(ChannelSpec {
        title: title.to_owned(),
        username: Some(username.to_owned()),
        protected: false,
    });
    let id = dc.create_account(AccountSpec {
        phone: phone.to_owned(),
        ..AccountSpec::default()
    });
    seed_session(store, &dc, username, dc.issue_auth_key(Some(id))).await;
    store.set_session_user(username, id, 0).await.unwrap();
    (dc, ch, id)
}

fn subscribe(bot_api: &FakeTelegram, name: &str) {
    for (user, lang) in [(RU, "ru"), (EN, "en")] {
        bot_api.user_says(TOKEN, user, "/start", Some(lang));
        bot_api.user_says(TOKEN, user, &format!("/add {name}"), Some(lang));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_channel_pauses_its_subscriptions_and_resumes_them_once() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let (dc, ch, _) =
        reader_world(&store, &bot_api, "Pausing", "paused_src", "+998900004801").await;
    let env = env(false);
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    subscribe(&bot_api, "@paused_src");
    let p1 = dc.publish_text(ch, "before");
    assert!(
        delivered(&bot_api, ch.bot_api_chat_id(), p1).await,
        "{}",
        daemon.log_text()
    );

    dc.make_private(ch);
    let paused = [
        (
            RU,
            "ru",
            "🔒 @paused_src стал закрытым: kuryer больше не может его читать, поэтому ваша подписка на него приостановлена, пока канал снова не станет публичным. Удалите её или оставьте — она возобновится сама.",
        ),
        (
            EN,
            "en",
            "🔒 @paused_src became private: kuryer can no longer read it, so your subscription to it is paused until the channel is public again. Remove it, or keep it and it resumes by itself.",
        ),
    ];
    let told = wait_until(Duration::from_secs(60), async || {
        paused
            .iter()
            .all(|(u, _, t)| notices(&bot_api, *u, t).len() == 1)
    })
    .await;
    assert!(
        told,
        "{:?}\n{:?}\n{}",
        bot_api.received(RU),
        bot_api.received(EN),
        daemon.log_text()
    );
    // Stored, and shown paused and why: the API, /list in each language.
    assert_eq!(
        unreadable(&db, "Pausing").await.as_deref(),
        Some("channel-private")
    );
    let list = api_list(port, EN).await;
    assert_eq!(
        list[0]["channel_paused"]["why"], "channel-private",
        "{list}"
    );
    assert!(list[0]["channel_paused"]["since"].is_string(), "{list}");
    assert!(
        list_shows(
            &bot_api,
            EN,
            "en",
            "@paused_src — paused: the channel is private"
        )
        .await
    );
    assert!(list_shows(&bot_api, RU, "ru", "@paused_src — на паузе: канал закрыт").await);
    // Seen again on every poll, then after a restart: nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (user, _, text) in paused {
        let told = notices(&bot_api, user, text);
        assert_eq!(told.len(), 1, "{:?}", bot_api.received(user));
        let (sub, _) = subscription(&db, user, "Pausing").await;
        assert_eq!(
            buttons(&told[0]),
            [format!("r:{sub}:0"), format!("s:{sub}")]
        );
    }

    // Public again: the next read resumes it; each owner told once.
    dc.set_username(ch, "paused_src");
    let resumed = [
        (
            RU,
            "▶️ @paused_src снова можно читать: ваша подписка на него возобновилась сама.",
        ),
        (
            EN,
            "▶️ @paused_src can be read again: your subscription to it resumed by itself.",
        ),
    ];
    let told = wait_until(Duration::from_secs(60), async || {
        resumed
            .iter()
            .all(|(u, t)| notices(&bot_api, *u, t).len() == 1)
    })
    .await;
    assert!(told, "{:?}\n{}", bot_api.received(EN), daemon.log_text());
    let p2 = dc.publish_text(ch, "after");
    assert!(
        delivered(&bot_api, ch.bot_api_chat_id(), p2).await,
        "{}",
        daemon.log_text()
    );
    let list = api_list(port, RU).await;
    assert!(list[0].get("channel_paused").is_none(), "{list}");
    assert!(list_shows(&bot_api, EN, "en", "@paused_src — active").await);
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    for (user, text) in resumed {
        let told = notices(&bot_api, user, text);
        assert_eq!(told.len(), 1, "{:?}", bot_api.received(user));
        let (sub, _) = subscription(&db, user, "Pausing").await;
        assert_eq!(buttons(&told[0]), [format!("s:{sub}")]);
    }
    for (user, _, text) in paused {
        assert_eq!(notices(&bot_api, user, text).len(), 1);
    }
    assert_eq!(unreadable(&db, "Pausing").await, None);
    let claims: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM problem_notices", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims, 0, "the ended problem is news again next time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_channel_the_reader_had_joined_is_told_gone_once() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let (dc, ch, id) =
        reader_world(&store, &bot_api, "Vanishing", "gone_src", "+998900004802").await;
    let env = env(true);
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    subscribe(&bot_api, "@gone_src");
    let p1 = dc.publish_text(ch, "last words");
    assert!(
        delivered(&bot_api, ch.bot_api_chat_id(), p1).await,
        "{}",
        daemon.log_text()
    );
    let joined = wait_until(Duration::from_secs(30), async || {
        dc.stats(id).calls("channels.joinChannel") >= 1
    })
    .await;
    assert!(joined, "{}", daemon.log_text());

    dc.delete_channel(ch);
    let gone = [
        (
            RU,
            "⚠️ @gone_src удалён или больше недоступен, поэтому ваша подписка на него приостановлена. Удалите её или оставьте — она возобновится сама, если канал вернётся.",
        ),
        (
            EN,
            "⚠️ @gone_src was deleted or can no longer be reached, so your subscription to it is paused. Remove it, or keep it and it resumes by itself if the channel comes back.",
        ),
    ];
    let told = wait_until(Duration::from_secs(60), async || {
        gone.iter()
            .all(|(u, t)| notices(&bot_api, *u, t).len() == 1)
    })
    .await;
    assert!(
        told,
        "{:?}\n{:?}\n{}",
        bot_api.received(RU),
        bot_api.received(EN),
        daemon.log_text()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let list = api_list(port, RU).await;
    assert_eq!(list[0]["channel_paused"]["why"], "channel-gone", "{list}");
    assert!(
        list_shows(
            &bot_api,
            EN,
            "en",
            "@gone_src — paused: the channel was deleted or cannot be reached"
        )
        .await
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    for (user, text) in gone {
        let told = notices(&bot_api, user, text);
        assert_eq!(told.len(), 1, "{:?}", bot_api.received(user));
        let (sub, _) = subscription(&db, user, "Vanishing").await;
        assert_eq!(
            buttons(&told[0]),
            [format!("r:{sub}:0"), format!("s:{sub}")]
        );
    }
    // A member refused is no "became private".
    assert!(notices(&bot_api, EN, "became private").is_empty());
    assert!(notices(&bot_api, RU, "стал закрытым").is_empty());
    assert_eq!(
        unreadable(&db, "Vanishing").await.as_deref(),
        Some("channel-gone")
    );
}

const CHANNEL: i64 = -1_009_481;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_losing_our_bot_as_admin_pauses_and_resumes_once() {
    let db = TestDb::new().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    bot_api.create_channel(CHANNEL, "botadm_src", "Bot admin");
    bot_api.set_admin(CHANNEL, TOKEN, true);
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &[]);
    subscribe(&bot_api, "@botadm_src");
    let active = wait_until(Duration::from_secs(30), async || {
        let (ru, en) = (api_list(port, RU).await, api_list(port, EN).await);
        ru[0]["channel_status"] == "active" && en[0]["channel_status"] == "active"
    })
    .await;
    assert!(active, "{}", daemon.log_text());
    let p1 = bot_api.post(CHANNEL, NewChannelMessage::text("admin post"));
    assert!(
        delivered(&bot_api, CHANNEL, p1).await,
        "{}",
        daemon.log_text()
    );

    bot_api.set_admin(CHANNEL, TOKEN, false);
    let paused = [
        (
            RU,
            "⚠️ Мой бот больше не администратор @botadm_src, поэтому его посты до меня не доходят и ваша подписка на него приостановлена. Она возобновится сама, когда владелец канала снова сделает бота администратором; или удалите её.",
        ),
        (
            EN,
            "⚠️ My bot is no longer an admin of @botadm_src, so its posts no longer reach me and your subscription to it is paused. It resumes by itself once the channel's owner makes the bot an admin again; or remove it.",
        ),
    ];
    let told = wait_until(Duration::from_secs(30), async || {
        paused
            .iter()
            .all(|(u, t)| notices(&bot_api, *u, t).len() == 1)
    })
    .await;
    assert!(told, "{:?}\n{}", bot_api.received(EN), daemon.log_text());
    let list = api_list(port, EN).await;
    assert_eq!(list[0]["channel_paused"]["why"], "channel-bot-removed");
    assert!(
        list_shows(
            &bot_api,
            EN,
            "en",
            "@botadm_src — paused: my bot is no longer the channel's admin"
        )
        .await
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (user, text) in paused {
        let told = notices(&bot_api, user, text);
        assert_eq!(told.len(), 1, "{:?}", bot_api.received(user));
        let (sub, _) = subscription(&db, user, "Bot admin").await;
        assert_eq!(
            buttons(&told[0]),
            [format!("r:{sub}:0"), format!("s:{sub}")]
        );
    }

    // Admin again: resumed, each owner told once; posts come again.
    bot_api.set_admin(CHANNEL, TOKEN, true);
    let resumed = [
        (
            RU,
            "▶️ @botadm_src снова можно читать: ваша подписка на него возобновилась сама.",
        ),
        (
            EN,
            "▶️ @botadm_src can be read again: your subscription to it resumed by itself.",
        ),
    ];
    let told = wait_until(Duration::from_secs(30), async || {
        resumed
            .iter()
            .all(|(u, t)| notices(&bot_api, *u, t).len() == 1)
    })
    .await;
    assert!(told, "{:?}\n{}", bot_api.received(EN), daemon.log_text());
    let p2 = bot_api.post(CHANNEL, NewChannelMessage::text("admin again"));
    assert!(
        delivered(&bot_api, CHANNEL, p2).await,
        "{}",
        daemon.log_text()
    );
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(api_list(port, EN).await[0].get("channel_paused").is_none());
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    for (user, text) in resumed {
        let told = notices(&bot_api, user, text);
        assert_eq!(told.len(), 1, "{:?}", bot_api.received(user));
        let (sub, _) = subscription(&db, user, "Bot admin").await;
        assert_eq!(buttons(&told[0]), [format!("s:{sub}")]);
    }
    for (user, text) in paused {
        assert_eq!(notices(&bot_api, user, text).len(), 1);
    }
    assert_eq!(unreadable(&db, "Bot admin").await, None);
}
