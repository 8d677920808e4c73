//! `kuryer run`, the real binary, reading channels it does not administer
//! through reader accounts on the fake data centre (over TCP), channels
//! added through `POST /add_channel`: resolved once, read (joined and, past
//! the accounts' capacity, polled), delivered; posts published while it is
//! down delivered once after a restart.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram};
use kuryer_sim::mtproto::{
    AccountSpec, ChannelRef, ChannelSpec, FloodLimit, MtprotoConfig, MtprotoFake,
};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port};
use crate::reader::{SESSION_KEY, seed_session};

const TOKEN: &str = "4343:readerSECRETreaderSECRET";
const API_TOKEN: &str = "black-box-api-token-0123";

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

pub(crate) fn reader_env() -> Vec<(&'static str, String)> {
    vec![
        ("KURYER_TELEGRAM_API_ID", "1".to_owned()),
        (
            "KURYER_TELEGRAM_API_HASH",
            "0123456789abcdef0123456789abcdef".to_owned(),
        ),
        ("KURYER_READER_SESSION_KEY", SESSION_KEY.to_owned()),
        ("KURYER_READER_RESOLVE_INTERVAL_MS", "100".to_owned()),
        ("KURYER_READER_JOIN_INTERVAL_MS", "100".to_owned()),
        ("KURYER_READER_POLL_INTERVAL_S", "1".to_owned()),
        ("KURYER_READER_HISTORY_PER_SECOND", "20".to_owned()),
        ("KURYER_READER_MAX_CHANNELS_PER_ACCOUNT", "2".to_owned()),
        ("KURYER_READER_LEASE_TTL_S", "3".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_reads_channels_added_through_the_api_with_reader_accounts() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    // Telegram-like flood limits, and getHistory held to one call a second
    // an account: the reader's own pace (20 a second here) runs into it
    // whenever an account reads two channels in a row, so flood waits do
    // happen, and the test sees them obeyed. A wait is at most a second,
    // which a restarted account's first read (a second after it connects)
    // never runs into.
    let mut flood = MtprotoConfig::telegram_like();
    flood.flood_limits.insert(
        "messages.getHistory".to_owned(),
        FloodLimit {
            max_calls: 1,
            per: Duration::from_secs(1),
        },
    );
    let dc = MtprotoFake::start(flood).unwrap();
    dc.attach_bot_api(bot_api.clone());

    // Two reader accounts, as `kuryer login` leaves them.
    let mut account_ids = Vec::new();
    for (i, name) in ["alpha", "beta"].iter().enumerate() {
        let id = dc.create_account(AccountSpec {
            phone: format!("+99890000300{i}"),
            ..AccountSpec::default()
        });
        let key = dc.issue_auth_key(Some(id));
        seed_session(&store, &dc, name, key).await;
        store.set_session_user(name, id, 0).await.unwrap();
        account_ids.push(id);
    }
    // Six public channels (more than 2 accounts × 2 joins: two are polled),
    // a user, a group, and a name nobody has.
    let channels: Vec<(String, ChannelRef)> = (0..6)
        .map(|i| {
            let name = format!("public_news_{i}");
            let c = dc.create_channel(ChannelSpec {
                title: format!("News {i}"),
                username: Some(name.clone()),
                protected: false,
            });
            (name, c)
        })
        .collect();
    dc.create_account(AccountSpec {
        phone: "+998900003099".to_owned(),
        username: Some("some_person".to_owned()),
        ..AccountSpec::default()
    });
    let users: Vec<i64> = (1..=5).map(|i| 810_000 + i).collect();
    for u in &users {
        bot_api.create_chat(*u, ChatKind::Private);
    }

    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &reader_env());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = wait_until(Duration::from_secs(60), async || {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(ready, "kuryer never became ready:\n{}", daemon.log_text());

    let add = async |user: i64, name: &str| {
        let r = http
            .post(format!("{base}/add_channel"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": user, "channel_username": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
    };
    for u in &users {
        for (name, _) in &channels {
            add(*u, &format!("https://t.me/{name}")).await;
        }
    }
    add(users[0], "@some_person").await;
    add(users[0], "no_such_channel").await;
    let statuses = async || -> Vec<(String, String)> {
        let list: Value = http
            .get(format!("{base}/subscriptions/{}", users[0]))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["channel_username"].as_str().unwrap_or("").to_owned(),
                    s["channel_status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let settled = wait_until(Duration::from_secs(30), async || {
        statuses().await.iter().all(|(_, s)| s != "pending")
    })
    .await;
    let got = statuses().await;
    assert!(settled, "{got:?}\n{}", daemon.log_text());
    for (name, status) in &got {
        let want = match name.as_str() {
            "some_person" => "not_a_channel",
            "no_such_channel" => "invalid",
            _ => "active",
        };
        assert_eq!(status, want, "{name}: {got:?}");
    }

    // Posts: text on every channel.
    let mut expected = Vec::new();
    let publish_round = |round: u32, expected: &mut Vec<(i64, i64, i32)>| {
        for (name, c) in &channels {
            for k in 0..3 {
                let id = dc.publish_text(*c, &format!("{name} round {round} post {k}"));
                for u in &users {
                    expected.push((*u, c.bot_api_chat_id(), id));
                }
            }
        }
    };
    publish_round(1, &mut expected);
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let report = bot_api.report(&expected);
    assert!(delivered, "{report:?}\n{}", daemon.log_text());

    // Down: posts published meanwhile are read from the history at the
    // next start, from each channel's high-water mark.
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    publish_round(2, &mut expected);
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &reader_env());
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let report = bot_api.report(&expected);
    assert!(delivered, "{report:?}\n{}", daemon.log_text());
    publish_round(3, &mut expected);
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let report = bot_api.report(&expected);
    assert!(delivered, "{report:?}\n{}", daemon.log_text());
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let report = bot_api.report(&expected);
    assert_eq!(
        (report.lost, report.duplicates, report.out_of_order),
        (0, 0, 0),
        "{report:?}"
    );

    // Each name was resolved once over both runs; each account joined at
    // most two; flood waits came, and no call came during one.
    let mut resolves = 0;
    let mut joins = 0;
    let mut flood_waits = 0;
    for id in &account_ids {
        let s = dc.stats(*id);
        resolves += s.calls("contacts.resolveUsername");
        joins += s.calls("channels.joinChannel");
        assert!(s.calls("channels.joinChannel") <= 2, "{s:?}");
        for (m, st) in &s.methods {
            assert_eq!(st.calls_during_flood_wait, 0, "{m}");
            flood_waits += st
                .errors
                .iter()
                .filter(|(e, _)| e.starts_with("FLOOD_WAIT"))
                .map(|(_, n)| n)
                .sum::<u64>();
        }
    }
    assert!(
        flood_waits > 0,
        "no flood wait happened, so none was tested: {:?}",
        account_ids
            .iter()
            .map(|id| dc.stats(*id))
            .collect::<Vec<_>>()
    );
    assert_eq!(resolves, 8, "six channels, a person and a missing name");
    assert_eq!(joins, 4);
    let c = db.client().await;
    let polled: i64 = c
        .query_one(
            "SELECT count(*) FROM reader_assignments WHERE NOT joined",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(polled, 2, "channels past the accounts' capacity are polled");
    let log = daemon.log_text();
    assert!(!log.contains(SESSION_KEY), "session key in the log");
    assert!(!log.contains("readerSECRET"), "bot token in the log");
    bot_api.stop();
}
