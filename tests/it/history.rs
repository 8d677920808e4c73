//! History on subscribe read from Telegram: a channel's
//! posts from before kuryer read it, fetched through a reader account when
//! a backfill asks for more than is recorded. The reader's read on its own
//! (exact posts recorded as history, nothing twice, flood waits, a private
//! channel), and the real binary end to end against both fakes.

use std::sync::Arc;
use std::time::Duration;

use kuryer::store::NewPost;
use kuryer_actors::model::{ChannelRef, ChannelUsername};
use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, MediaKind, NewChannelMessage};
use kuryer_sim::mtproto::{ChannelSpec, FloodLimit, MtprotoFake};

use crate::common::{Daemon, free_port};
use crate::mirror::{Api, wait_until};
use crate::reader::reader_config;

const TOKEN: &str = "4848:historySECREThistory";

struct NoEvents;
impl kuryer::source_events::SourceEvents for NoEvents {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: ChannelRef) {}
}

/// Publishes the past of a channel: texts 1–5, a photo (6), an album of
/// three (7–9), texts 10–12 — ten posts.
fn publish_past(dc: &MtprotoFake, ch: kuryer_sim::mtproto::ChannelRef, prefix: &str) {
    for i in 1..=5 {
        dc.publish_text(ch, &format!("{prefix} {i}"));
    }
    let photo = format!("{prefix} photo");
    dc.publish(
        ch,
        NewChannelMessage::media(MediaKind::Photo, Some(photo.as_str())),
    );
    for i in 0..3 {
        let caption = format!("{prefix} album");
        let caption = (i == 0).then_some(caption.as_str());
        dc.publish(
            ch,
            NewChannelMessage::media(MediaKind::Photo, caption).in_album("past"),
        );
    }
    for i in 10..=12 {
        dc.publish_text(ch, &format!("{prefix} {i}"));
    }
}

/// `(message_ids, relay_message_ids, history)` of the channel's posts.
async fn posts_of(
    c: &tokio_postgres::Client,
    channel_id: i64,
) -> Vec<(Vec<i64>, Option<Vec<i64>>, bool)> {
    c.query(
        "SELECT message_ids, relay_message_ids, history FROM posts
          WHERE channel_id = $1 ORDER BY message_id",
        &[&channel_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_records_the_newest_posts_as_history_once_and_says_when_it_cannot() {
    let (db, store, _bot_api, dc, account, relay) =
        crate::reader::relay_world(FakeLimits::off(), "+998900004801", "historian").await;
    let ch = dc.create_channel(ChannelSpec {
        title: "Past news".to_owned(),
        username: Some("past_news".to_owned()),
        protected: false,
    });
    publish_past(&dc, ch, "past");
    let closed = dc.create_channel(ChannelSpec {
        title: "Closed".to_owned(),
        username: Some("closed_news".to_owned()),
        protected: false,
    });
    dc.publish_text(closed, "closed 1");
    let c = db.client().await;
    let mut channels = Vec::new();
    for (name, chan) in [("past_news", ch), ("closed_news", closed)] {
        // As after its first read: reading started at its newest post.
        let id: i64 = c
            .query_one(
                "INSERT INTO channels (telegram_id, username, access_hash, status,
                                       start_message_id, last_message_id)
                 VALUES ($1, $2, $3, 'active', $4, $4) RETURNING id",
                &[
                    &chan.bot_api_chat_id(),
                    &name,
                    &dc.access_hash(chan, account),
                    &i64::from(dc.channel_pts(chan) - 1),
                ],
            )
            .await
            .unwrap()
            .get(0);
        channels.push(ChannelRef {
            channel_id: id,
            chat_id: chan.bot_api_chat_id(),
            username: Some(name.to_owned()),
            bot_is_admin: false,
        });
    }
    let mark_of = async |id: i64| -> i64 {
        c.query_one("SELECT last_message_id FROM channels WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(mark_of(channels[0].channel_id).await, 12);
    // A subscriber from before: history posts are owed to nobody.
    store
        .add_subscription(901_001, &ChannelUsername::parse("past_news").unwrap())
        .await
        .unwrap();
    let mut cfg = reader_config(&db);
    cfg.telegram.relay_chat_id = Some(relay.bot_api_chat_id());
    cfg.reader.relay_access_hash = Some(dc.access_hash(relay, account));
    cfg.reader.history_per_second = 50.0;
    let pool = kuryer::reader::ReaderPool::start(
        store.clone(),
        &cfg,
        "history".into(),
        Arc::new(NoEvents),
    )
    .await;

    // The newest five posts up to 12: 6, the album 7–9, 10, 11, 12; media
    // relayed in one forward, the album as one post.
    let past = &channels[0];
    let read = pool.backfill_history(past, 12, 5).await.unwrap();
    assert_eq!(read, 5);
    let relay_chat = relay.bot_api_chat_id();
    assert_eq!(
        posts_of(&c, past.channel_id).await,
        [
            (vec![6], Some(vec![1]), true),
            (vec![7, 8, 9], Some(vec![2, 3, 4]), true),
            (vec![10], None, true),
            (vec![11], None, true),
            (vec![12], None, true),
        ]
    );
    let sources: Vec<Option<i64>> = c
        .query(
            "SELECT source_chat_id FROM posts WHERE channel_id = $1 ORDER BY message_id",
            &[&past.channel_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        sources,
        [
            Some(relay_chat),
            Some(relay_chat),
            Some(past.chat_id),
            Some(past.chat_id),
            Some(past.chat_id)
        ]
    );
    assert_eq!(dc.stats(account).calls("messages.forwardMessages"), 1);
    assert_eq!(mark_of(past.channel_id).await, 12, "the mark does not move");
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(
        store
            .channels_with_pending(since, false)
            .await
            .unwrap()
            .is_empty(),
        "history posts are owed to no subscriber"
    );

    // Eight: only the three older ones are new; nothing relayed again.
    assert_eq!(pool.backfill_history(past, 12, 8).await.unwrap(), 3);
    let ids: Vec<Vec<i64>> = posts_of(&c, past.channel_id)
        .await
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(
        ids,
        [
            vec![3],
            vec![4],
            vec![5],
            vec![6],
            vec![7, 8, 9],
            vec![10],
            vec![11],
            vec![12]
        ]
    );
    assert_eq!(dc.stats(account).calls("messages.forwardMessages"), 1);
    assert_eq!(pool.backfill_history(past, 12, 8).await.unwrap(), 0);

    // A new post recorded as new is owed (the marker is what kept the
    // history posts out).
    store
        .record_post(&NewPost {
            channel_id: past.channel_id,
            message_ids: vec![13],
            kind: "text".to_owned(),
            detected_at: chrono::Utc::now(),
            source_chat_id: Some(past.chat_id),
            text: Some("new".to_owned()),
            copyable: true,
            ..NewPost::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.channels_with_pending(since, false).await.unwrap(),
        [past.channel_id]
    );

    // A channel that became private: refused for good.
    dc.make_private(closed);
    let e = pool.backfill_history(&channels[1], 1, 5).await.unwrap_err();
    assert!(
        matches!(&e, kuryer::reader::HistoryError::Unreadable(r) if r.contains("CHANNEL_PRIVATE")),
        "{e:?}"
    );

    // One getHistory a minute: the first read goes through (the two
    // oldest posts are new), the next is told to wait, and until the time
    // Telegram said the call is not made again.
    dc.set_flood_limit(
        "messages.getHistory",
        Some(FloodLimit {
            max_calls: 1,
            per: Duration::from_secs(60),
        }),
    );
    assert_eq!(pool.backfill_history(past, 12, 10).await.unwrap(), 2);
    let e = pool.backfill_history(past, 12, 10).await.unwrap_err();
    let kuryer::reader::HistoryError::Later { retry_after, .. } = e else {
        panic!("{e:?}");
    };
    assert!(retry_after > Duration::from_secs(30), "{retry_after:?}");
    let calls = dc.stats(account).calls("messages.getHistory");
    dc.set_flood_limit("messages.getHistory", None);
    let e = pool.backfill_history(past, 12, 10).await.unwrap_err();
    assert!(
        matches!(e, kuryer::reader::HistoryError::Later { .. }),
        "{e:?}"
    );
    assert_eq!(dc.stats(account).calls("messages.getHistory"), calls);
    pool.close().await;
}

/// A received message as `(method, text, source)`.
fn seen(
    m: &kuryer_sim::fake_bot_api::ReceivedMessage,
) -> (&'static str, Option<String>, Option<(i64, i32)>) {
    (
        m.method,
        m.text.clone(),
        m.source.filter(|_| m.method != "sendMessage"),
    )
}

/// The real binary: a channel with fourteen posts from before it was
/// added. A subscriber's backfill of 10 gets exactly the last 10, oldest
/// first (the album in one `copyMessages`), across a stop in the middle
/// and a flood wait on the history read; the subscriber without a backfill
/// gets none of them; a repeated backfill sends nothing; a new post
/// reaches both once; a later subscriber's backfill reuses what was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_a_channel_added_just_now_sends_its_last_posts_from_telegram_once() {
    let (db, _store, bot_api, dc, account, relay) =
        crate::reader::relay_world(FakeLimits::scaled(20.0), "+998900004802", "alpha").await;
    bot_api.add_bot(TOKEN);
    bot_api.set_admin(relay.bot_api_chat_id(), TOKEN, true);
    let ch = dc.create_channel(ChannelSpec {
        title: "Long story".to_owned(),
        username: Some("long_story".to_owned()),
        protected: false,
    });
    // Fourteen posts (16 messages): 1–12 as `publish_past`, then 13–16.
    publish_past(&dc, ch, "old");
    for i in 13..=16 {
        dc.publish_text(ch, &format!("old {i}"));
    }
    // Published an hour ago: well before the subscriptions (a first read
    // counts as new what came up to a minute before them).
    dc.backdate(ch, Duration::from_secs(3600));
    // One getHistory per account every 3 s: the backfill's read, right
    // after the channel's first read, gets a flood wait and waits it out.
    dc.set_flood_limit(
        "messages.getHistory",
        Some(FloodLimit {
            max_calls: 1,
            per: Duration::from_secs(3),
        }),
    );
    let (a, b, late) = (830_001_i64, 830_002_i64, 830_003_i64);
    for u in [a, b, late] {
        bot_api.create_chat(u, ChatKind::Private);
    }
    let mut env = crate::reader_run::reader_env();
    env.push((
        "KURYER_TELEGRAM_RELAY_CHAT_ID",
        relay.bot_api_chat_id().to_string(),
    ));
    env.push((
        "KURYER_READER_RELAY_ACCESS_HASH",
        dc.access_hash(relay, account).to_string(),
    ));
    // A forced stop (queued sends dropped, resumed at the next start).
    env.push(("KURYER_DELIVERY_SHUTDOWN_DEADLINE_MS", "100".to_owned()));
    let port = free_port();
    // One message a second a chat: the backfill is under way at the stop.
    let mut daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 1.0, &env);
    let api = Api::new(port);
    api.ready(&daemon).await;
    api.add(b, "@long_story", None).await;
    let added = api.add(a, "@long_story", Some(10)).await;
    assert!(added["id"].as_i64().is_some(), "{added}");

    let three = wait_until(Duration::from_secs(60), async || {
        bot_api.received(a).len() >= 3
    })
    .await;
    assert!(three, "{}", daemon.log_text());
    daemon.terminate();
    let first_log = daemon.log_text();
    let c = db.client().await;
    let unfinished: i64 = c
        .query_one(
            "SELECT count(*) FROM backfills WHERE done_at IS NULL AND history_read_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unfinished, 1, "read, and not all sent at the stop");
    assert!(
        first_log.contains("Cannot read the channel's history for a backfill now")
            && first_log.contains("flood wait on messages.getHistory"),
        "{first_log}"
    );
    let daemon2 = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 1.0, &env);
    let mut daemon = daemon2;
    api.ready(&daemon).await;
    // Ten posts, twelve messages (the album's three).
    let all = wait_until(Duration::from_secs(60), async || {
        bot_api.received(a).len() >= 12
    })
    .await;
    assert!(all, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;

    let relay_chat = relay.bot_api_chat_id();
    let text = |s: &str| ("sendMessage", Some(s.to_owned()), None);
    let mut want = vec![
        text("old 5"),
        (
            "copyMessage",
            Some("old photo".to_owned()),
            Some((relay_chat, 1)),
        ),
        text("old 10"),
        text("old 11"),
        text("old 12"),
    ];
    want.splice(
        2..2,
        [
            (
                "copyMessages",
                Some("old album".to_owned()),
                Some((relay_chat, 2)),
            ),
            ("copyMessages", None, Some((relay_chat, 3))),
            ("copyMessages", None, Some((relay_chat, 4))),
        ],
    );
    want.extend((13..=16).map(|i| text(&format!("old {i}"))));
    let got: Vec<_> = bot_api.received(a).iter().map(seen).collect();
    assert_eq!(got, want, "the last ten posts, oldest first, each once");
    let album: Vec<u64> = bot_api
        .received(a)
        .iter()
        .filter(|m| m.method == "copyMessages")
        .map(|m| m.request_id)
        .collect();
    assert!(
        album.len() == 3 && album.iter().all(|r| *r == album[0]),
        "one call"
    );
    assert!(bot_api.received(b).is_empty(), "{:?}", bot_api.received(b));

    // Asked again: nothing more. A new post: both get it, once.
    api.add(a, "@long_story", Some(10)).await;
    let new = dc.publish_text(ch, "new 17");
    assert_eq!(new, 17);
    let both = wait_until(Duration::from_secs(30), async || {
        bot_api.received(a).len() == 13 && bot_api.received(b).len() == 1
    })
    .await;
    assert!(
        both,
        "a: {:?}\nb: {:?}\n{}",
        bot_api.received(a).iter().map(seen).collect::<Vec<_>>(),
        bot_api.received(b).iter().map(seen).collect::<Vec<_>>(),
        daemon.log_text()
    );
    // A later subscriber's backfill of 3: what is recorded is enough.
    api.add(late, "@long_story", Some(3)).await;
    let late_ok = wait_until(Duration::from_secs(30), async || {
        bot_api.received(late).len() >= 3
    })
    .await;
    assert!(late_ok, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log_text());
    let second_log = daemon.log_text();

    let got: Vec<_> = bot_api.received(a).iter().map(seen).collect();
    assert_eq!(got.len(), 13, "{got:?}");
    assert_eq!(got[12], text("new 17"));
    let got: Vec<_> = bot_api.received(b).iter().map(seen).collect();
    assert_eq!(got, [text("new 17")]);
    let got: Vec<_> = bot_api.received(late).iter().map(seen).collect();
    assert_eq!(got, [text("old 15"), text("old 16"), text("new 17")]);

    // The history was read and relayed once, for the first backfill only.
    assert_eq!(dc.stats(account).calls("messages.forwardMessages"), 1);
    assert!(!second_log.contains("Read the channel's history for a backfill."));
    let reads: Vec<bool> = c
        .query(
            "SELECT history_read_at IS NOT NULL FROM backfills ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reads, [true, false, false]);
    let left: i64 = c
        .query_one("SELECT count(*) FROM backfills WHERE done_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // Where reading started, and the mark moved only by the new post.
    let (start, mark, history): (Option<i64>, i64, i64) = {
        let r = c
            .query_one(
                "SELECT c.start_message_id, c.last_message_id,
                        (SELECT count(*) FROM posts p WHERE p.channel_id = c.id AND p.history)
                   FROM channels c WHERE c.username = 'long_story'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((start, mark, history), (Some(16), 17, 10));
    // Outcome rows: history posts only for those whose backfill sent them,
    // marked so; the subscriber without a backfill has the new post alone.
    let rows: Vec<(i64, i64, bool)> = c
        .query(
            "SELECT u.telegram_id, f.source_message_id, f.backfill
               FROM forwarded_messages f
               JOIN subscriptions s ON s.id = f.subscription_id
               JOIN users u ON u.id = s.user_id
              ORDER BY u.telegram_id, f.source_message_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut want_rows: Vec<(i64, i64, bool)> = [5, 6, 7, 10, 11, 12, 13, 14, 15, 16]
        .iter()
        .map(|&m| (a, m, true))
        .collect();
    want_rows.push((a, 17, false));
    want_rows.push((b, 17, false));
    want_rows.extend([(late, 15, true), (late, 16, true), (late, 17, true)]);
    assert_eq!(rows, want_rows);
    bot_api.stop();
    dc.stop();
}
