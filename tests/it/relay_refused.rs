//! The bot removed from the relay channel: Telegram checks `from_chat_id`
//! before the destination (Client.cpp `process_copy_message_query`), so
//! every copy from the relay answers "Forbidden: bot was kicked from the
//! channel chat" whatever the destination. That is the source's problem:
//! no destination is deactivated, the operator is told once, and the
//! deliveries go out when the bot is back. The real binary, against both
//! fakes joined into one world.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{BotStanding, ChatKind, FakeLimits, MediaKind, NewChannelMessage};
use kuryer_sim::mtproto::ChannelSpec;
use serde_json::json;

use crate::common::{Daemon, free_port};

const TOKEN: &str = "4646:relayGONEsecretGONEsecret";
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_removed_from_the_relay_deactivates_no_destination_and_resumes() {
    let (db, _store, bot_api, dc, id, relay) =
        crate::reader::relay_world(FakeLimits::scaled(20.0), "+998900004201", "relayer").await;
    bot_api.add_bot(TOKEN);
    bot_api.set_admin(relay.bot_api_chat_id(), TOKEN, true);
    let ch = dc.create_channel(ChannelSpec {
        title: "Photos".to_owned(),
        username: Some("photos_src".to_owned()),
        protected: false,
    });
    let users = [830_001_i64, 830_002, 830_003];
    for u in users {
        bot_api.create_chat(u, ChatKind::Private);
    }
    let mut env = crate::reader_run::reader_env();
    env.push((
        "KURYER_TELEGRAM_RELAY_CHAT_ID",
        relay.bot_api_chat_id().to_string(),
    ));
    env.push((
        "KURYER_READER_RELAY_ACCESS_HASH",
        dc.access_hash(relay, id).to_string(),
    ));
    let port = free_port();
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ready = wait_until(Duration::from_secs(60), async || {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    assert!(ready, "kuryer never became ready:\n{}", daemon.log_text());
    for u in users {
        let r = http
            .post(format!("{base}/add_channel"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": u, "channel_username": "photos_src"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let c = db.client().await;
    let active = wait_until(Duration::from_secs(30), async || {
        c.query_one(
            "SELECT count(*) FROM channels WHERE username = 'photos_src' AND status = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
            == 1
    })
    .await;
    assert!(active, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The bot is removed from the relay; the reader account still
    // forwards into it.
    let relay_chat = relay.bot_api_chat_id();
    bot_api.set_standing(relay_chat, TOKEN, Some(BotStanding::Kicked));
    dc.publish(ch, NewChannelMessage::media(MediaKind::Photo, Some("one")));
    dc.publish(ch, NewChannelMessage::media(MediaKind::Photo, Some("two")));
    let refused = wait_until(Duration::from_secs(40), async || {
        daemon.log_text().contains("source_refused")
    })
    .await;
    assert!(refused, "{}", daemon.log_text());
    // Several seconds of refusals: the deliveries wait, nothing deactivated.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let expected: Vec<(i64, i64, i32)> = users
        .iter()
        .flat_map(|&u| [(u, relay_chat, 1), (u, relay_chat, 2)])
        .collect();
    assert_eq!(bot_api.report(&expected).delivered, 0);
    let deactivated: i64 = c
        .query_one("SELECT count(*) FROM destinations WHERE NOT is_active", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deactivated, 0, "{}", daemon.log_text());
    // The bot is back: every delivery goes out, once.
    bot_api.set_standing(relay_chat, TOKEN, None);
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let report = bot_api.report(&expected);
    assert!(delivered, "{report:?}\n{}", daemon.log_text());
    assert_eq!((report.lost, report.duplicates), (0, 0), "{report:?}");
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert_eq!(
        log.matches("error_kind=\"source_refused\"").count()
            + log.matches("\"error_kind\":\"source_refused\"").count(),
        1,
        "the operator is told once:\n{log}"
    );
    assert!(log.contains("reads this source chat again"), "{log}");
    assert!(
        !log.contains("The bot can no longer post to this chat"),
        "no destination taken as lost:\n{log}"
    );
    assert!(!log.contains("relayGONE"), "bot token in the log");
}
