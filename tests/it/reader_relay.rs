//! Media of channels the bot is not in, through the relay channel: the
//! reader account forwards them (an album in one call, with `random_id`s),
//! the bot copies from the relay. Against both fakes joined into one world.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, MediaKind, NewChannelMessage};
use kuryer_sim::mtproto::ChannelSpec;
use serde_json::json;

use crate::common::{Daemon, free_port};
use crate::reader::reader_config;

const TOKEN: &str = "4545:relaySECRETrelaySECRET";
const API_TOKEN: &str = "black-box-api-token-0123";

struct NoEvents;
impl kuryer::source_events::SourceEvents for NoEvents {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: kuryer_actors::model::ChannelRef) {}
}

/// A read repeated from the same mark (a crash after the forward, before
/// the post was recorded) forwards nothing twice: the same relay ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_read_forwards_nothing_twice_and_albums_go_in_one_call() {
    use kuryer_actors::ports::ChannelSource;

    let (db, store, bot_api, dc, id, relay) =
        crate::reader::relay_world(FakeLimits::off(), "+998900004001", "relayer").await;
    let ch = dc.create_channel(ChannelSpec {
        title: "Media".to_owned(),
        username: Some("media_source".to_owned()),
        protected: false,
    });
    dc.publish_text(ch, "text first");
    dc.publish(
        ch,
        NewChannelMessage::media(MediaKind::Photo, Some("a photo")),
    );
    for i in 0..3 {
        let caption = (i == 0).then_some("an album");
        dc.publish(
            ch,
            NewChannelMessage::media(MediaKind::Photo, caption).in_album("g1"),
        );
    }
    let c = db.client().await;
    let row = c
        .query_one(
            // Read from its first post (`start_message_id` 0), as a
            // channel whose first read found it empty.
            "INSERT INTO channels (telegram_id, username, access_hash, status, start_message_id)
             VALUES ($1, 'media_source', $2, 'active', 0) RETURNING id",
            &[&ch.bot_api_chat_id(), &dc.access_hash(ch, id)],
        )
        .await
        .unwrap();
    let channel = kuryer_actors::model::ChannelRef {
        channel_id: row.get(0),
        chat_id: ch.bot_api_chat_id(),
        username: Some("media_source".to_owned()),
        bot_is_admin: false,
    };
    let mut cfg = reader_config(&db);
    cfg.telegram.relay_chat_id = Some(relay.bot_api_chat_id());
    cfg.reader.relay_access_hash = Some(dc.access_hash(relay, id));
    cfg.reader.history_per_second = 50.0;
    // Two processes in turn read from the same mark, as after a crash
    // between the forward and the post's record.
    let mut reads = Vec::new();
    for run in 0..2 {
        let pool = kuryer::reader::ReaderPool::start(
            store.clone(),
            &cfg,
            format!("run-{run}"),
            Arc::new(NoEvents),
        )
        .await;
        reads.push(pool.source(&channel).fetch(0, 100).await.unwrap());
        pool.close().await;
    }
    let (first, again) = (&reads[0], &reads[1]);

    assert_eq!(first, again, "the same relay copies both times");
    let relay_ids: Vec<Option<i32>> = first
        .iter()
        .map(|m| m.relay.map(|r| r.message_id))
        .collect();
    assert_eq!(relay_ids, [None, Some(1), Some(2), Some(3), Some(4)]);
    assert!(
        first
            .iter()
            .filter_map(|m| m.relay)
            .all(|r| r.chat_id == relay.bot_api_chat_id())
    );
    assert_eq!(first[1].media, Some(kuryer_actors::model::MediaKind::Photo));
    // Four forwarded messages in the relay on both faces; two forward
    // calls (one a read), each carrying the album whole.
    assert_eq!(dc.channel_pts(relay), 5, "four messages in the relay");
    let mirrored = bot_api.channel_messages_after(relay.bot_api_chat_id(), 0, 100);
    assert_eq!(mirrored.len(), 4, "{mirrored:?}");
    assert_eq!(dc.stats(id).calls("messages.forwardMessages"), 2);
}

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

/// The real binary: a photo and an album from a channel the bot is not in
/// reach both subscribers once, copied from the relay (`copyMessage`,
/// `copyMessages`), also across a restart that reads them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_of_a_channel_the_bot_is_not_in_reach_subscribers_from_the_relay() {
    let (db, _store, bot_api, dc, id, relay) =
        crate::reader::relay_world(FakeLimits::scaled(20.0), "+998900004101", "relayer").await;
    bot_api.add_bot(TOKEN);
    bot_api.set_admin(relay.bot_api_chat_id(), TOKEN, true);
    let ch = dc.create_channel(ChannelSpec {
        title: "Pictures".to_owned(),
        username: Some("pictures_src".to_owned()),
        protected: false,
    });
    let guarded = dc.create_channel(ChannelSpec {
        title: "Guarded".to_owned(),
        username: Some("guarded_src".to_owned()),
        protected: true,
    });
    let users = [820_001_i64, 820_002];
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
        for name in ["pictures_src", "guarded_src"] {
            let r = http
                .post(format!("{base}/add_channel"))
                .bearer_auth(API_TOKEN)
                .json(&json!({"user_id": u, "channel_username": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let c = db.client().await;
    c.execute(
        "UPDATE users SET language = 'ru' WHERE telegram_id = $1",
        &[&users[1]],
    )
    .await
    .unwrap();
    let active = wait_until(Duration::from_secs(30), async || {
        c.query_one(
            "SELECT count(*) FROM channels WHERE username IN ('pictures_src', 'guarded_src')
                AND status = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
            == 2
    })
    .await;
    assert!(active, "{}", daemon.log_text());
    // The channel's first read sets the mark; then the media.
    tokio::time::sleep(Duration::from_secs(2)).await;
    dc.publish(
        ch,
        NewChannelMessage::media(MediaKind::Photo, Some("one photo")),
    );
    for i in 0..3 {
        let caption = (i == 0).then_some("three photos");
        dc.publish(
            ch,
            NewChannelMessage::media(MediaKind::Photo, caption).in_album("a1"),
        );
    }
    // A protected channel: recognised, not forwarded, each subscriber told
    // once (in their language), however many posts.
    dc.publish(
        guarded,
        NewChannelMessage::media(MediaKind::Photo, Some("secret")),
    );
    dc.publish_text(guarded, "also secret");
    let relay_chat = relay.bot_api_chat_id();
    let expected: Vec<(i64, i64, i32)> = users
        .iter()
        .flat_map(|&u| [(u, relay_chat, 1), (u, relay_chat, 2)])
        .collect();
    let delivered = wait_until(Duration::from_secs(60), async || {
        bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let report = bot_api.report(&expected);
    assert!(delivered, "{report:?}\n{}", daemon.log_text());
    // A restart reads from the mark: nothing forwarded or sent again.
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    dc.publish_text(guarded, "more secret");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let report = bot_api.report(&expected);
    assert_eq!(
        (
            report.lost,
            report.duplicates,
            report.albums_split,
            report.album_parts_missing
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    for u in users {
        let received = bot_api.received(u);
        let got: Vec<(&str, Option<(i64, i32)>)> = received
            .iter()
            .filter(|m| m.source.is_some_and(|s| s.0 == relay_chat))
            .map(|m| (m.method, m.source))
            .collect();
        let notices: Vec<&str> = received
            .iter()
            .filter_map(|m| m.text.as_deref())
            .filter(|t| t.contains("@guarded_src"))
            .filter(|t| !t.contains("https://t.me/"))
            .collect();
        let want = if u == users[1] {
            "защищает свои материалы"
        } else {
            "protects its content"
        };
        assert!(
            notices.len() == 1 && notices[0].contains(want),
            "user {u}: {notices:?}"
        );
        // With the buttons of every channel notice: remove, settings.
        let keyboard = received
            .iter()
            .find(|m| m.text.as_deref().is_some_and(|t| t.contains(want)))
            .and_then(|m| m.reply_markup.clone())
            .map(|k| k["inline_keyboard"][0].clone());
        let data: Vec<&str> = keyboard
            .as_ref()
            .and_then(|row| row.as_array())
            .map(|row| {
                row.iter()
                    .filter_map(|b| b["callback_data"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            data.len() == 2
                && data[0].starts_with("r:")
                && data[0].ends_with(":0")
                && data[1].starts_with("s:"),
            "user {u}: {keyboard:?}"
        );
        assert_eq!(
            got,
            [
                ("copyMessage", Some((relay_chat, 1))),
                ("copyMessages", Some((relay_chat, 2))),
                ("copyMessages", Some((relay_chat, 3))),
                ("copyMessages", Some((relay_chat, 4))),
            ],
            "user {u}"
        );
    }
    let relay_ids: Vec<Vec<i64>> = c
        .query(
            "SELECT relay_message_ids FROM posts p JOIN channels ch ON ch.id = p.channel_id
              WHERE ch.username = 'pictures_src' ORDER BY p.message_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(relay_ids, [vec![1], vec![2, 3, 4]]);
    assert_eq!(dc.channel_pts(relay), 5, "four messages in the relay, once");
    let told: i64 = c
        .query_one(
            "SELECT count(*) FROM problem_notices p JOIN subscriptions s ON s.id = p.subject_id
              WHERE p.subject = 'subscription' AND p.problem = 'channel-protected'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(told, 2, "the claim is stored");
    let log = daemon.log_text();
    assert!(!log.contains("relaySECRET"), "bot token in the log");
}

/// `kuryer demo --reader mtproto --json`, the real binary: every channel
/// read by grammers from the fake data centre (a third polled), media and
/// albums through the relay; every delivery once.
#[test]
fn the_demo_reads_every_channel_over_mtproto() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuryer"))
        .args([
            "demo",
            "--reader",
            "mtproto",
            "--json",
            "--channels",
            "9",
            "--users",
            "30",
            "--subs-per-user",
            "2",
            "--posts-per-channel",
            "5",
        ])
        .env(
            "KURYER_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(summary["posts"], 45, "{summary}");
    assert_eq!(summary["deliveries_expected"], 300, "{summary}");
    assert_eq!(summary["deliveries_sent"], 300, "{summary}");
    for k in ["duplicates", "lost", "out_of_order", "albums_split"] {
        assert_eq!(summary[k], 0, "{k}: {summary}");
    }
}
