//! Paid broadcast holds Telegram's limits: `allow_paid_broadcast` rides
//! only on `sendMessage` and `copyMessage`, so albums (`copyMessages`) and
//! forwards (`forwardMessage(s)`) stay at the free 30 a second, each album
//! item counted, while the flagged calls go at up to 1,000 a second. At
//! the fake's real limits (`FakeLimits::telegram()`, which applies the
//! same rule): every delivery once, no 429.

use std::time::{Duration, Instant};

use kuryer_actors::sender_pool::SenderConfig;
use kuryer_sim::fake_bot_api::{FakeLimits, MediaKind, NewChannelMessage};
use kuryer_sim::fixtures;

use crate::harness::{Opts, start, text, wait_for, world};

#[actix_rt::test]
async fn paid_broadcast_with_albums_and_forwards_draws_no_429() {
    let users = 60;
    let (db, store, pairs, fake) = world(1, users, 1, FakeLimits::telegram()).await;
    // Half the subscriptions forward.
    db.client()
        .await
        .execute(
            "UPDATE subscriptions SET mode = 'forward' WHERE id % 2 = 0",
            &[],
        )
        .await
        .unwrap();
    let opts = Opts {
        scale: 1.0,
        sender: SenderConfig {
            allow_paid_broadcast: true,
            ..SenderConfig::default()
        },
        ..Opts::default()
    };
    let p = start(&store, &fake, opts).await;
    let started = Instant::now();
    let first = text(&fake, 1, "a text post");
    let chat = fixtures::channel_chat(1);
    let album = fake.post(
        chat,
        NewChannelMessage::media(MediaKind::Photo, Some("an album")).in_album("a"),
    );
    for _ in 0..2 {
        fake.post(
            chat,
            NewChannelMessage::media(MediaKind::Photo, None).in_album("a"),
        );
    }
    p.wake(1);
    let expected: Vec<(i64, i64, i32)> = pairs
        .iter()
        .flat_map(|(d, c)| [(*d, *c, first), (*d, *c, album)])
        .collect();
    let ok = wait_for(Duration::from_secs(60), || {
        fake.report(&expected).delivered == expected.len() as u64
    })
    .await;
    let took = started.elapsed();
    let report = fake.report(&expected);
    let stats = fake.stats();
    p.shutdown(Duration::from_secs(10)).await;
    assert!(ok, "{report:?}");
    assert_eq!(
        (report.lost, report.duplicates, report.albums_split),
        (0, 0, 0)
    );
    assert_eq!(stats.rate_limited_429, 0, "{stats:?}");
    // 30 copies of the text with the flag; 30 forwards of it and 60 albums
    // of 3 without: 210 messages at the free rate take about 7 s.
    let per_method = &stats.per_method;
    assert_eq!(per_method.get("copyMessages"), Some(&30), "{stats:?}");
    assert_eq!(per_method.get("forwardMessages"), Some(&30), "{stats:?}");
    assert_eq!(per_method.get("forwardMessage"), Some(&30), "{stats:?}");
    let paid = fake
        .received(pairs[0].0)
        .iter()
        .chain(fake.received(pairs[1].0).iter())
        .filter(|m| m.allow_paid_broadcast)
        .count();
    assert_eq!(paid, 1, "only the copied text carries the flag");
    println!(
        "paid broadcast: {} messages ({} requests) in {:.1} s, {:.0} messages/s, 0 × 429",
        stats.messages_received,
        expected.len(),
        took.as_secs_f64(),
        stats.messages_received as f64 / took.as_secs_f64()
    );
}
