//! A channel that waits says why: `channel_status_reason` in the API's
//! subscription answers, a WARN when `kuryer run` starts and a warning line
//! in `check-config --connect` while channels wait for a reader account
//! that does not exist, and the bot's `/add` and `/list` in the
//! subscriber's language. (A public channel our bot does not run, added
//! with no reader account, used to answer "pending" and log nothing.)

use std::time::{Duration, Instant};

use kuryer_actors::model::ChannelUsername;
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, ReceivedMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port, wait_ready};
use crate::http::{Api, TOKEN, json_of};

const BOT: &str = "4747:waitsSECRETwaitsSECRETwaits";

/// Every answer that shows the subscription: `POST /add_channel`, the
/// list, and a pause's answer.
async fn reasons(api: &Api, user: i64, channel: &str) -> [Value; 3] {
    let body = json!({"user_id": user, "channel_username": channel});
    let (status, added) = json_of(api.post("/add_channel").json(&body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let (_, list) = json_of(
        api.get(&format!("/subscriptions/{user}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = added["id"].as_i64().unwrap();
    let (status, paused) = json_of(
        api.post(&format!("/subscriptions/{user}/{id}/pause"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    [
        added["channel_status_reason"].clone(),
        list[0]["channel_status_reason"].clone(),
        paused["channel_status_reason"].clone(),
    ]
}

#[actix_rt::test]
async fn api_answers_say_why_a_channel_waits() {
    let api = Api::start(Some(TOKEN)).await;
    let c = api.db.client().await;
    let user = 612_001;
    let all = |r: &str| [json!(r), json!(r), json!(r)];

    // No reader account at all: nothing will look the name up.
    assert_eq!(
        reasons(&api, user, "nobody_reads").await,
        all("no_reader_account")
    );
    // An account signed in: the look-up is queued.
    c.execute(
        "INSERT INTO reader_accounts (name, status) VALUES ('main', 'active')",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(reasons(&api, user, "nobody_reads").await, all("resolving"));
    // Its look-ups for today spent.
    c.execute(
        "INSERT INTO reader_budgets (account, day, resolves, resolve_limit, join_limit)
         VALUES ('main', (now() AT TIME ZONE 'UTC')::date, 30, 30, 20)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        reasons(&api, user, "nobody_reads").await,
        all("budget_exhausted_today")
    );
    // Budget left, but a flood wait on the look-up method.
    c.batch_execute(
        "UPDATE reader_budgets SET resolves = 3;
         UPDATE reader_accounts
            SET flood_wait_until = now() + interval '1 hour',
                flood_wait_method = 'contacts.resolveUsername'",
    )
    .await
    .unwrap();
    assert_eq!(reasons(&api, user, "nobody_reads").await, all("flood_wait"));
    // Resolved and read by the account: nothing to explain.
    c.batch_execute(
        "UPDATE channels SET status = 'active', telegram_id = -1001612001
          WHERE username = 'nobody_reads'",
    )
    .await
    .unwrap();
    assert_eq!(reasons(&api, user, "nobody_reads").await, all_null());
    // The account logged out: an active channel our bot does not run
    // waits for a reader again.
    c.batch_execute("UPDATE reader_accounts SET status = 'logged_out'")
        .await
        .unwrap();
    assert_eq!(
        reasons(&api, user, "nobody_reads").await,
        all("no_reader_account")
    );
    // Our bot's own channel needs no reader.
    c.batch_execute("UPDATE channels SET bot_is_admin = true")
        .await
        .unwrap();
    assert_eq!(reasons(&api, user, "nobody_reads").await, all_null());
    // A name nobody has.
    c.batch_execute(
        "UPDATE channels SET status = 'invalid', bot_is_admin = false, telegram_id = NULL",
    )
    .await
    .unwrap();
    assert_eq!(
        reasons(&api, user, "nobody_reads").await,
        all("username_not_found")
    );
    api.stop().await;
}

fn all_null() -> [Value; 3] {
    [Value::Null, Value::Null, Value::Null]
}

/// The bot's plain messages to `user` (no copied posts).
fn texts(bot_api: &FakeTelegram, user: i64) -> Vec<String> {
    bot_api
        .received(user)
        .into_iter()
        .filter(|m: &ReceivedMessage| m.method == "sendMessage" && m.source.is_none())
        .filter_map(|m| m.text)
        .collect()
}

async fn replied(bot_api: &FakeTelegram, user: i64, n: usize) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if texts(bot_api, user).len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// With no reader account: `check-config --connect` warns of the waiting
/// channel, `kuryer run` logs a WARN at start naming it, and the bot tells
/// the subscriber why in their language (`/add` and `/list`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_reader_account_check_config_the_start_log_and_the_bot_say_why() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store
        .add_subscription(612_100, &ChannelUsername::parse("public_news").unwrap())
        .await
        .unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuryer"))
        .args(["check-config", "--config", "/dev/null", "--connect"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KURYER_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("! reader accounts: "))
        .unwrap_or_else(|| panic!("no warning line:\n{stdout}"));
    assert!(
        line.contains("1 subscribed channel(s)")
            && line.contains("@public_news")
            && line.contains("kuryer login"),
        "{line}"
    );

    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(BOT);
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, BOT, port, 20.0, &[]);
    assert!(
        wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    let warn: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Channels wait for a reader account"))
        })
        .collect();
    assert_eq!(warn.len(), 1, "{log}");
    assert_eq!(warn[0]["level"], "WARN", "{}", warn[0]);
    assert_eq!(warn[0]["channels"], 1, "{}", warn[0]);
    assert_eq!(warn[0]["examples"], "@public_news", "{}", warn[0]);

    // The bot, in each language: `/add` of a public channel it does not
    // run (getChat finds it; no reader account exists to read it).
    bot_api.create_channel(-1_001_612_100, "public_news", "Public news");
    let cases = [
        (
            612_201,
            "en",
            "this service has no reader account",
            "waiting: nobody can read it yet",
        ),
        (
            612_202,
            "ru",
            "у сервиса нет аккаунта-читателя",
            "ждёт: читать его пока некому",
        ),
        (
            612_203,
            "uz",
            "xizmatda esa o'quvchi akkaunt yo'q",
            "kutmoqda: hozircha uni o'qiy oladigan yo'q",
        ),
    ];
    for (user, lang, add_text, list_text) in cases {
        bot_api.user_says(BOT, user, "/start", Some(lang));
        assert!(replied(&bot_api, user, 1).await, "{}", daemon.log_text());
        bot_api.user_says(BOT, user, "/add @public_news", Some(lang));
        assert!(replied(&bot_api, user, 2).await, "{}", daemon.log_text());
        let add = texts(&bot_api, user)[1].clone();
        assert!(add.contains(add_text), "{lang}: {add}");
        bot_api.user_says(BOT, user, "/list", Some(lang));
        assert!(replied(&bot_api, user, 3).await, "{}", daemon.log_text());
        let list = texts(&bot_api, user)[2].clone();
        assert!(list.contains(list_text), "{lang}: {list}");
    }
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
}
