//! Short history pages and channels that stop pushing, against the fake
//! data centre over TCP: a page shorter than asked is no sign of the end
//! (deleted messages count against the limit), and a channel that posts
//! and goes silent is read long before the 600 s re-read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryer::reader::ReaderPool;
use kuryer_actors::model::ChannelRef;
use kuryer_actors::ports::ChannelSource;
use kuryer_sim::fake_bot_api::FakeLimits;
use kuryer_sim::mtproto::{ChannelSpec, MtprotoFake};

use crate::common::TestDb;
use crate::reader::reader_config;

pub(crate) struct Quiet;
impl kuryer::source_events::SourceEvents for Quiet {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: ChannelRef) {}
}

/// A public channel in the database, assigned to `session` (joined or not),
/// read from message 0 on.
pub(crate) async fn channel(
    db: &TestDb,
    store: &kuryer::store::Store,
    dc: &MtprotoFake,
    account: i64,
    session: &str,
    name: &str,
    joined: bool,
) -> (ChannelRef, kuryer_sim::mtproto::ChannelRef) {
    let ch = dc.create_channel(ChannelSpec {
        title: name.to_owned(),
        username: Some(name.to_owned()),
        protected: false,
    });
    if joined {
        dc.add_member(ch, account);
    }
    let id: i64 = db
        .client()
        .await
        .query_one(
            "INSERT INTO channels (telegram_id, username, access_hash, status, start_message_id)
             VALUES ($1, $2, $3, 'active', 0) RETURNING id",
            &[&ch.bot_api_chat_id(), &name, &dc.access_hash(ch, account)],
        )
        .await
        .unwrap()
        .get(0);
    store.assign_channel(id, session).await.unwrap();
    store.set_channel_joined(id, session, joined).await.unwrap();
    let r = ChannelRef {
        channel_id: id,
        chat_id: ch.bot_api_chat_id(),
        username: Some(name.to_owned()),
        bot_is_admin: false,
    };
    (r, ch)
}

/// Reads as the poller does (again at once after posts) until `want` ids
/// came or `limit` passed; answers the ids in the order read.
pub(crate) async fn read_until(
    source: &mut kuryer::reader::source::MtprotoSource,
    hwm: &mut i32,
    want: usize,
    limit: Duration,
) -> Vec<i32> {
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < want && started.elapsed() < limit {
        let page = source.fetch(*hwm, 100).await.unwrap();
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        for m in page {
            assert!(
                m.id > *hwm,
                "read in order, never twice: {} after {hwm}",
                m.id
            );
            *hwm = m.id;
            got.push(m.id);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_over_a_channel_with_deleted_gaps_delivers_every_post_in_order() {
    let (db, store, _bot_api, dc, account) =
        crate::reader::reader_world(FakeLimits::off(), "+998900003501", "pages").await;
    let (r, ch) = channel(&db, &store, &dc, account, "pages", "gappy", false).await;
    // 250 posts; every third deleted, and a run of 40 in the middle:
    // each 100-id page holds far fewer than 100 messages.
    for i in 1..=250 {
        assert_eq!(dc.publish_text(ch, &format!("post {i}")), i);
    }
    let gone: Vec<i32> = (1..=250)
        .filter(|i| i % 3 == 0 || (120..160).contains(i))
        .collect();
    dc.delete(ch, &gone);
    dc.set_short_pages(ch, true);
    let expected: Vec<i32> = (1..=250).filter(|i| !gone.contains(i)).collect();

    let mut cfg = reader_config(&db);
    cfg.reader.history_per_second = 50.0;
    // The channel is polled, not joined: without the fix a short page
    // counts as caught up and the rest waits for this.
    cfg.reader.poll_interval_s = 600;
    let pool = ReaderPool::start(store.clone(), &cfg, "pages".to_owned(), Arc::new(Quiet)).await;
    let mut source = pool.source(&r);
    let mut hwm = 0;
    let got = read_until(
        &mut source,
        &mut hwm,
        expected.len(),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(got, expected, "every post that exists, in order");
    // Caught up: the last answer was empty, and nothing more comes.
    assert!(source.fetch(hwm, 100).await.unwrap().is_empty());
    let calls = dc.stats(account).calls("messages.getHistory");
    assert!(
        (3..=6).contains(&calls),
        "three short pages and the empty answer: {calls} getHistory calls"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_active_channel_is_read_long_before_the_re_read_and_nothing_is_lost() {
    let (db, store, _bot_api, dc, account) =
        crate::reader::reader_world(FakeLimits::off(), "+998900003502", "quiet").await;
    let (r, ch) = channel(&db, &store, &dc, account, "quiet", "hushed", true).await;
    let mut cfg = reader_config(&db);
    cfg.reader.history_per_second = 50.0;
    cfg.reader.quiet_check_min_s = 1;
    assert_eq!(cfg.reader.verify_interval_s, 600);
    let pool = ReaderPool::start(store.clone(), &cfg, "quiet".to_owned(), Arc::new(Quiet)).await;
    let mut source = pool.source(&r);
    let mut hwm = 0;
    assert!(source.fetch(hwm, 100).await.unwrap().is_empty());
    // Posts every 300 ms, pushed: the reader learns the channel's pace.
    let mut published = Vec::new();
    for i in 0..6 {
        published.push(dc.publish_text(ch, &format!("pushed {i}")));
        let got = read_until(&mut source, &mut hwm, 1, Duration::from_secs(5)).await;
        assert_eq!(got, [*published.last().unwrap()], "pushed post {i}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let history_before = dc.stats(account).calls("messages.getHistory");
    // Telegram stops pushing the channel; it goes on posting.
    dc.silence_channel(ch, true);
    let started = Instant::now();
    let mut silent = Vec::new();
    for i in 0..5 {
        silent.push(dc.publish_text(ch, &format!("silent {i}")));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = read_until(&mut source, &mut hwm, silent.len(), Duration::from_secs(20)).await;
    assert_eq!(got, silent, "every post of the silent channel, in order");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "seen within seconds, not after the 600 s re-read: {took:?}"
    );
    let history = dc.stats(account).calls("messages.getHistory") - history_before;
    assert!(
        (1..=8).contains(&history),
        "a few history reads, not one per poll: {history}"
    );
    pool.close().await;
}
