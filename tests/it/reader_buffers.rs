//! A joined channel's pushed posts against the fake data centre over TCP:
//! they wait for the poller in a buffer that never holds more than
//! `reader.max_buffered_per_channel` (past it the buffer is dropped and the
//! history read instead), and a channel whose poller stopped buffers
//! nothing; every post still reaches the poller, in order, once it reads.

use std::sync::Arc;
use std::time::Duration;

use kuryer::reader::ReaderPool;
use kuryer_actors::ports::ChannelSource;
use kuryer_sim::fake_bot_api::FakeLimits;

use crate::reader::reader_config;
use crate::reader_pages::{Quiet, channel, read_until};

const CAP: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_wait_in_a_bounded_buffer_dropped_with_the_poller_and_every_post_arrives() {
    let (db, store, _bot_api, dc, account) =
        crate::reader::reader_world(FakeLimits::off(), "+998900003601", "buffers").await;
    let (r, ch) = channel(&db, &store, &dc, account, "buffers", "pushy", true).await;
    let mut cfg = reader_config(&db);
    cfg.reader.history_per_second = 50.0;
    cfg.reader.max_buffered_per_channel = CAP;
    let pool = ReaderPool::start(store.clone(), &cfg, "buffers".to_owned(), Arc::new(Quiet)).await;
    let mut source = pool.source(&r);
    let mut hwm = 0;
    assert!(source.fetch(hwm, 100).await.unwrap().is_empty());
    // One pushed post read from the buffer: pushes come.
    let first = dc.publish_text(ch, "pushed 0");
    let got = read_until(&mut source, &mut hwm, 1, Duration::from_secs(5)).await;
    assert_eq!(got, [first]);

    // The poller runs but does not read: 40 pushes, the buffer stays
    // within its cap.
    let mut published = Vec::new();
    let mut most = 0;
    for i in 1..=40 {
        published.push(dc.publish_text(ch, &format!("pushed {i}")));
        tokio::time::sleep(Duration::from_millis(20)).await;
        most = most.max(pool.buffered_posts(r.channel_id));
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        most = most.max(pool.buffered_posts(r.channel_id));
    }
    assert!(most >= 1, "the pushes reached the buffer");
    assert!(most <= CAP, "{most} posts buffered, over the cap of {CAP}");
    let got = read_until(
        &mut source,
        &mut hwm,
        published.len(),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        got, published,
        "every post, in order, after the buffer was dropped"
    );

    // The poller stops: nothing is buffered for it any more.
    drop(source);
    let mut later = Vec::new();
    for i in 0..30 {
        later.push(dc.publish_text(ch, &format!("unread {i}")));
    }
    let mut held = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        held = held.max(pool.buffered_posts(r.channel_id));
    }
    assert_eq!(held, 0, "a channel with no poller buffers nothing");
    // A poller again: it reads them all, from the history.
    let mut source = pool.source(&r);
    let got = read_until(&mut source, &mut hwm, later.len(), Duration::from_secs(15)).await;
    assert_eq!(got, later, "every post published while no poller ran");
    pool.close().await;
}
