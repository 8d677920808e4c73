//! An album pushed one part at a time, with reads between the parts: the
//! MTProto source holds it until no part came for its grace, then yields it
//! whole, forwarded into the relay once, in one call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kuryer_actors::ports::ChannelSource;
use kuryer_sim::fake_bot_api::{FakeLimits, MediaKind, NewChannelMessage};
use kuryer_sim::mtproto::ChannelSpec;

use crate::reader::reader_config;

/// Counts wakes (a push, or the end of an album's grace).
#[derive(Default)]
struct Wakes(AtomicUsize);

impl kuryer::source_events::SourceEvents for Wakes {
    fn wake(&self, _: i64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn resolved(&self, _: kuryer_actors::model::ChannelRef) {}
}

async fn wakes_above(w: &Wakes, n: usize) -> usize {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let now = w.0.load(Ordering::SeqCst);
        if now > n {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no wake after {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_album_pushed_part_by_part_with_reads_between_is_one_post_forwarded_once() {
    let (db, store, bot_api, dc, id, relay) =
        crate::reader::relay_world(FakeLimits::off(), "+998900004201", "albums").await;
    let ch = dc.create_channel(ChannelSpec {
        title: "Albums".to_owned(),
        username: Some("album_source".to_owned()),
        protected: false,
    });
    // Joined already: its posts are pushed.
    dc.add_member(ch, id);
    let c = db.client().await;
    let channel_id: i64 = c
        .query_one(
            "INSERT INTO channels (telegram_id, username, access_hash, status)
             VALUES ($1, 'album_source', $2, 'active') RETURNING id",
            &[&ch.bot_api_chat_id(), &dc.access_hash(ch, id)],
        )
        .await
        .unwrap()
        .get(0);
    store.assign_channel(channel_id, "albums").await.unwrap();
    store
        .set_channel_joined(channel_id, "albums", true)
        .await
        .unwrap();
    let channel = kuryer_actors::model::ChannelRef {
        channel_id,
        chat_id: ch.bot_api_chat_id(),
        username: Some("album_source".to_owned()),
        bot_is_admin: false,
    };
    let mut cfg = reader_config(&db);
    cfg.telegram.relay_chat_id = Some(relay.bot_api_chat_id());
    cfg.reader.relay_access_hash = Some(dc.access_hash(relay, id));
    cfg.reader.history_per_second = 50.0;
    let wakes = Arc::new(Wakes::default());
    let pool =
        kuryer::reader::ReaderPool::start(store.clone(), &cfg, "album-test".into(), wakes.clone())
            .await;
    let mut source = pool.source(&channel);
    // The first read goes to the history (empty): pushes count from here.
    assert!(source.fetch(0, 100).await.unwrap().is_empty());

    // Three parts, 300 ms apart (under the 700 ms grace), each read as
    // soon as it is pushed: nothing is yielded, nothing forwarded.
    let mut seen = wakes.0.load(Ordering::SeqCst);
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let caption = (i == 0).then_some("three photos");
        dc.publish(
            ch,
            NewChannelMessage::media(MediaKind::Photo, caption).in_album("g-push"),
        );
        seen = wakes_above(&wakes, seen).await;
        let read = source.fetch(0, 100).await.unwrap();
        assert!(
            read.is_empty(),
            "part {i} yielded within the grace: {read:?}"
        );
    }
    assert_eq!(dc.stats(id).calls("messages.forwardMessages"), 0);

    // The grace ends: the source wakes its poller (earlier parts' timers
    // wake it before that, and such reads still hold the album), and the
    // read yields the album whole, forwarded in one call.
    let last_part = Instant::now();
    loop {
        seen = wakes_above(&wakes, seen).await;
        if last_part.elapsed() >= kuryer::reader::source::ALBUM_GRACE {
            break;
        }
        let read = source.fetch(0, 100).await.unwrap();
        assert!(read.is_empty(), "yielded within the grace: {read:?}");
    }
    let album = source.fetch(0, 100).await.unwrap();
    let ids: Vec<i32> = album.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3], "{album:?}");
    let group = album[0].media_group_id.clone();
    assert!(group.is_some());
    assert!(album.iter().all(|m| m.media_group_id == group));
    let relay_ids: Vec<Option<i32>> = album
        .iter()
        .map(|m| m.relay.map(|r| r.message_id))
        .collect();
    assert_eq!(relay_ids, [Some(1), Some(2), Some(3)]);
    assert_eq!(dc.stats(id).calls("messages.forwardMessages"), 1);
    // One post: the poller's grouping of these messages.
    let posts = kuryer_actors::model::Post::group(&channel, album.clone(), chrono::Utc::now());
    assert_eq!(posts.len(), 1, "the album split: {posts:?}");

    // The next post comes after it, alone.
    dc.publish_text(ch, "after the album");
    // (A wake now may be an album timer's, not the push's: read until it is there.)
    let start = Instant::now();
    let next = loop {
        let read = source.fetch(3, 100).await.unwrap();
        if !read.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(next.iter().map(|m| m.id).collect::<Vec<_>>(), [4]);
    // pts starts at 1: three events, three copies.
    assert_eq!(dc.channel_pts(relay), 4, "three copies in the relay");
    assert_eq!(
        bot_api
            .channel_messages_after(relay.bot_api_chat_id(), 0, 100)
            .len(),
        3
    );
    pool.close().await;
}
