//! "Never lost, never twice", part two: each test here failed on the code
//! before its fix and names what broke (issue 10's items).

use std::sync::Arc;
use std::time::Duration;

use kuryer::config::RedisConfig;
use kuryer::dedup::RedisDedup;
use kuryer::secret::SecretUrl;
use kuryer_sim::fake_bot_api::FakeLimits;
use kuryer_sim::fixtures;

use crate::common::{PrivateRedis, free_port};
use crate::harness::{Opts, count, start, text, wait_for, world};

/// Item 1: a second database on the same Redis (or this one dropped and
/// created again while Redis kept its keys) starts its subscription and
/// message ids at 1 again. With keys `kuryer:fwd:{subscription}:{message}`
/// the second run found "already delivered" for every delivery, sent none
/// and recorded them all as `sent`.
#[actix_rt::test]
async fn two_databases_on_one_redis_with_identical_ids_both_deliver_everything() {
    let port = free_port();
    let _redis = PrivateRedis::start(port);
    // Both runs as an operator would set them: the same Redis, the same prefix.
    let redis_cfg = RedisConfig {
        url: SecretUrl::new(format!("redis://127.0.0.1:{port}/0")),
        key_prefix: "kuryer:".into(),
        ..RedisConfig::default()
    };
    let mut installations = Vec::new();
    for run in 0..2 {
        // The same population in a fresh database and a fresh fake: the same
        // subscription ids and the same message ids as the other run.
        let (db, store, pairs, fake) = world(3, 20, 2, FakeLimits::off()).await;
        let installation = store.installation_id().await.unwrap();
        let dedup = RedisDedup::new(&redis_cfg, &installation);
        installations.push(installation);
        let p = start(
            &store,
            &fake,
            Opts {
                dedup: Arc::new(dedup.clone()),
                ..Opts::default()
            },
        )
        .await;
        let mut posts = Vec::new();
        for ch in 1..=3 {
            // The same text in both runs; a different one on each channel (the
            // fake attributes a `sendMessage` to its post by its text).
            posts.push((
                fixtures::channel_chat(ch),
                text(&fake, ch, &format!("post of {ch}")),
            ));
            p.wake(ch);
        }
        let expected = fixtures::expected_list(&pairs, &posts);
        let want = expected.len() as u64;
        let arrived = wait_for(Duration::from_secs(20), || {
            fake.report(&expected).delivered == want
        })
        .await;
        p.shutdown(Duration::from_secs(10)).await;
        let r = fake.report(&expected);
        assert!(arrived, "run {run}: {r:?}");
        assert_eq!(
            (r.delivered, r.lost, r.duplicates),
            (want, 0, 0),
            "run {run}: {r:?}"
        );
        assert!(dedup.is_healthy(), "run {run}: Redis was not used");
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'"
            )
            .await as u64,
            want,
            "run {run}"
        );
        fake.stop();
    }
    assert_ne!(installations[0], installations[1]);
}
