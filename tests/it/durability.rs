//! "Never lost, never twice", part two: each test here failed on the code
//! before its fix and names what broke.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kuryer::config::{DatabaseConfig, HttpConfig, RedisConfig};
use kuryer::dedup::RedisDedup;
use kuryer::secret::{Secret, SecretUrl};
use kuryer::store::{NewPost, Store};
use kuryer::telegram::bot_id_of;
use kuryer_actors::model::ChannelUsername;
use kuryer_sim::fake_bot_api::{FakeLimits, Fault};
use kuryer_sim::fixtures;

use kuryer_actors::test_hooks::StopForTest;

use crate::common::{PrivateRedis, free_port};
use crate::harness::{Opts, count, start, stats, text, wait_for, world};

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

/// Item 8: `POST /add_channel` told the pipeline outside its timeout and
/// only logged a failure, so the caller got 200 while the registry
/// missed the subscriber until a restart. Now 200 means stored *and* live:
/// a post right after the answer reaches the new subscriber, and a pipeline
/// that cannot take it makes the answer a 503 to retry.
#[actix_rt::test]
async fn add_channel_answers_200_only_when_the_subscription_is_live() {
    let (db, store, pairs, fake) = world(1, 3, 1, FakeLimits::off()).await;
    let p = start(&store, &fake, Opts::default()).await;
    let http_cfg = HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_token: Some(Secret::new("durability-api-token-0001")),
        workers: 1,
        ..HttpConfig::default()
    };
    let api = kuryer::http::bind_with(&http_cfg, store.clone(), Some(p.clone()), None).unwrap();
    let base = format!("http://{}", api.addr);
    let handle = api.server.handle();
    actix_rt::spawn(api.server);
    let client = reqwest::Client::new();
    let add = async |user: i64| {
        client
            .post(format!("{base}/add_channel"))
            .bearer_auth("durability-api-token-0001")
            .json(&serde_json::json!({"user_id": user, "channel_username": "demo_channel_1"}))
            .send()
            .await
            .unwrap()
            .status()
    };
    // Live: the very next post reaches the new subscriber, no restart.
    fake.create_chat(900_001, kuryer_sim::fake_bot_api::ChatKind::Private);
    assert_eq!(add(900_001).await, 200);
    let post = text(&fake, 1, "right after the answer");
    p.wake(1);
    let mut expected = fixtures::expected_list(&pairs, &[(fixtures::channel_chat(1), post)]);
    expected.push((900_001, fixtures::channel_chat(1), post));
    let want = expected.len() as u64;
    assert!(
        wait_for(Duration::from_secs(20), || fake.report(&expected).delivered
            == want)
        .await,
        "{:?}",
        fake.report(&expected)
    );
    // A pipeline that cannot take it (its registry stopped): stored, but
    // 503, never 200.
    p.registry().send(StopForTest).await.unwrap();
    assert_eq!(add(900_002).await, 503);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM subscriptions s JOIN users u ON u.id = s.user_id WHERE u.telegram_id = 900002"
        )
        .await,
        1
    );
    handle.stop(false).await;
    fake.stop();
}

/// Item 10: when the registry, limiter, sender pool or writer died, posts
/// vanished with a log line and `/readyz` stayed 200. Now `/readyz` names the
/// stopped actor with a 503, and the daemon's watch (`first_death`) sees it
/// — `kuryer run` then stops and exits non-zero for systemd to restart it.
#[actix_rt::test]
async fn a_stopped_shared_actor_makes_readyz_fail_and_is_seen() {
    for victim in ["registry", "limiter", "sender", "writer"] {
        let (_db, store, _pairs, fake) = world(1, 2, 1, FakeLimits::off()).await;
        let p = start(&store, &fake, Opts::default()).await;
        let api = kuryer::http::bind_with(
            &HttpConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                workers: 1,
                ..HttpConfig::default()
            },
            store.clone(),
            Some(p.clone()),
            None,
        )
        .unwrap();
        let url = format!("http://{}/readyz", api.addr);
        let handle = api.server.handle();
        actix_rt::spawn(api.server);
        let ready = reqwest::get(&url).await.unwrap();
        assert_eq!(ready.status(), 200, "{victim}");
        match victim {
            "registry" => p.registry().send(StopForTest).await.unwrap(),
            "limiter" => p.limiter().send(StopForTest).await.unwrap(),
            "sender" => p.sender().send(StopForTest).await.unwrap(),
            _ => p.writer().send(StopForTest).await.unwrap(),
        }
        let seen = tokio::time::timeout(Duration::from_secs(5), p.first_death())
            .await
            .expect("the death was not seen");
        assert_eq!(seen, victim);
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 503, "{victim}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["actors"][victim], "stopped", "{body}");
        assert_eq!(body["status"], "not_ready");
        handle.stop(false).await;
        fake.stop();
    }
}

/// Item 9: a destination was deactivated once per process only — a
/// "handled" set was never cleared while `add_subscription` reactivates the
/// destination, so a user who blocked the bot, came back and blocked it
/// again kept an active destination that failed every delivery.
#[actix_rt::test]
async fn a_destination_lost_twice_is_deactivated_twice() {
    let (db, store, pairs, fake) = world(1, 2, 1, FakeLimits::off()).await;
    let user = pairs[0].0;
    let p = start(&store, &fake, Opts::default()).await;
    let active = async || {
        count(
            &db,
            &format!("SELECT count(*) FROM destinations WHERE chat_id = {user} AND is_active"),
        )
        .await
    };
    for round in 0..2 {
        fake.set_fault(user, Fault::Forbidden, None);
        text(&fake, 1, &format!("blocked, round {round}"));
        p.wake(1);
        let mut off = false;
        for _ in 0..100 {
            if active().await == 0 {
                off = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(off, "round {round}: the destination stayed active");
        // The user comes back and subscribes again.
        fake.clear_fault(user);
        let name = ChannelUsername::parse("demo_channel_1").unwrap();
        let added = store.add_subscription(user, &name).await.unwrap();
        p.subscription_added(&store, added.subscription.id)
            .await
            .unwrap();
        assert_eq!(active().await, 1, "round {round}: not reactivated");
    }
    // Back for good: a post reaches them.
    let post = text(&fake, 1, "welcome back");
    p.wake(1);
    assert!(
        wait_for(Duration::from_secs(20), || fake
            .received(user)
            .iter()
            .any(|m| m.source.map(|s| s.1) == Some(post)))
        .await
    );
    p.shutdown(Duration::from_secs(10)).await;
    fake.stop();
}

/// Item 9: reconnecting to Redis held the connection mutex for up to a
/// second, so every send waited behind it whenever Redis was away. Against
/// a Redis that accepts connections and never answers, one caller tries to
/// connect and the others go on at once (with the database's dedup).
#[actix_rt::test]
async fn a_hanging_redis_connect_makes_no_other_caller_wait() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, answers nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let dedup = RedisDedup::new(
        &RedisConfig {
            url: SecretUrl::new(format!("redis://127.0.0.1:{port}/0")),
            ..RedisConfig::default()
        },
        "i",
    );
    let first = {
        let d = dedup.clone();
        actix_rt::spawn(async move {
            let t = std::time::Instant::now();
            let _ = kuryer_actors::ports::Dedup::seen(&d, 1, 1).await;
            t.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut others = Vec::new();
    for i in 0..20 {
        let d = dedup.clone();
        others.push(actix_rt::spawn(async move {
            let t = std::time::Instant::now();
            let seen = kuryer_actors::ports::Dedup::seen(&d, 2, i).await;
            (t.elapsed(), seen)
        }));
    }
    for o in others {
        let (waited, seen) = o.await.unwrap();
        assert_eq!(seen, None);
        assert!(
            waited < Duration::from_millis(300),
            "a caller waited {waited:?} behind the reconnect"
        );
    }
    let first = first.await.unwrap();
    assert!(
        first >= Duration::from_millis(200),
        "the connect did not hang ({first:?})"
    );
    assert!(!dedup.is_healthy());
}
/// Publishes a text post on channel `ch` in the fake and records it in the
/// database as a poller would (post row and high-water mark, one
/// transaction), without anything fanning it out: a post recorded whose
/// deliveries nothing is sending. Returns (channel chat, message id).
async fn recorded_not_sent(
    store: &Store,
    fake: &kuryer_sim::fake_bot_api::FakeTelegram,
    ch: i64,
    body: &str,
) -> (i64, i32) {
    let id = text(fake, ch, body);
    record(store, ch, id, body).await;
    (fixtures::channel_chat(ch), id)
}

async fn record(store: &Store, ch: i64, id: i32, body: &str) {
    store
        .record_post(&NewPost {
            channel_id: ch,
            message_ids: vec![i64::from(id)],
            kind: "text".into(),
            detected_at: Utc::now(),
            source_chat_id: Some(fixtures::channel_chat(ch)),
            channel_username: Some(format!("demo_channel_{ch}")),
            text: Some(body.to_owned()),
            copyable: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Item 4, "fatal": the start-up resume read every owed delivery in one
/// statement and `Pipeline::start` returned its error, so a resume that
/// hit the statement timeout stopped the daemon — and the next start hit
/// it again. Here a session holds `posts` locked for 2.5 s with a 500 ms
/// statement timeout: before, `start` failed ("canceling statement due to
/// statement timeout"); now it starts, the resume retries, and every owed
/// delivery arrives.
#[actix_rt::test]
async fn a_resume_that_cannot_read_the_database_does_not_stop_the_start() {
    let (db, store, pairs, fake) = world(2, 10, 1, FakeLimits::off()).await;
    let mut posts = Vec::new();
    for i in 0..3 {
        posts.push(recorded_not_sent(&store, &fake, 1, &format!("owed {i}")).await);
    }
    let impatient = Store::new(&DatabaseConfig {
        statement_timeout_ms: 500,
        ..db.config()
    })
    .unwrap();
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let unlock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        locker.batch_execute("ROLLBACK").await.unwrap();
        locker
    });
    let p = start(&impatient, &fake, Opts::default()).await;
    let expected = fixtures::expected_list(&pairs, &posts);
    let want = expected.len() as u64;
    assert!(want > 0);
    let arrived = wait_for(Duration::from_secs(20), || {
        fake.report(&expected).delivered == want
    })
    .await;
    let _locker = unlock.await.unwrap();
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert!(arrived, "{r:?}");
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    fake.stop();
}

/// Item 4, "unbounded": the resume queued every owed delivery before
/// `Pipeline::start` returned, waiting on the limiter's capacity, so a
/// backlog larger than `queue_capacity` held the start (and every
/// channel's poller) until most of it was sent. Channel 1 owes 1,000
/// deliveries (50 posts × 20 chats at 5 a second a chat: ~10 s) to a
/// queue of 100; before, `start` took ~9 s and channel 2's new post waited
/// for it. Now `start` returns at once, channel 2 (owing nothing) delivers
/// while channel 1's backlog is still going, and channel 1's own new post
/// reaches each chat after all its resumed ones.
#[actix_rt::test]
async fn a_large_backlog_neither_holds_the_start_nor_channels_that_owe_nothing() {
    let (_db, store, pairs, fake) = world(2, 40, 1, FakeLimits::off()).await;
    let mut backlog = Vec::new();
    for i in 0..50 {
        backlog.push(recorded_not_sent(&store, &fake, 1, &format!("backlog {i}")).await);
    }
    let owed = fixtures::expected_list(&pairs, &backlog);
    assert!(owed.len() >= 800, "{} owed", owed.len());
    let t0 = Instant::now();
    let p = start(
        &store,
        &fake,
        Opts {
            scale: 5.0,
            queue_capacity: Some(100),
            ..Opts::default()
        },
    )
    .await;
    let start_took = t0.elapsed();
    assert!(
        start_took < Duration::from_secs(2),
        "start took {start_took:?}"
    );
    let fresh = vec![(fixtures::channel_chat(2), text(&fake, 2, "fresh on 2"))];
    let fresh_expected = fixtures::expected_list(&pairs, &fresh);
    let newer = vec![(fixtures::channel_chat(1), text(&fake, 1, "newer on 1"))];
    p.wake(1);
    p.wake(2);
    let fresh_arrived = wait_for(Duration::from_secs(5), || {
        fake.report(&fresh_expected).delivered == fresh_expected.len() as u64
    })
    .await;
    let backlog_then = fake.report(&owed).delivered;
    let mut all = owed.clone();
    all.extend(fixtures::expected_list(&pairs, &newer));
    all.extend(fresh_expected.iter().copied());
    let done = wait_for(Duration::from_secs(60), || {
        fake.report(&all).delivered == all.len() as u64
    })
    .await;
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&all);
    assert!(fresh_arrived, "channel 2 waited for channel 1's backlog");
    assert!(
        backlog_then < owed.len() as u64,
        "the backlog was done before channel 2's post: nothing shown"
    );
    assert!(done, "{r:?}");
    // Per chat, channel 1's posts in message order: the newer post after
    // every resumed one.
    assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0), "{r:?}");
    fake.stop();
}

/// Item 5: a post whose recording committed but whose answer the poller
/// never got (its retries ran out; the mark had moved, so the channel is
/// not read there again) was delivered only by a restart's resume. Here
/// the post is in the database before the poller reads it, so the poller
/// finds it "already recorded" on its first try and publishes nothing —
/// the state a lost acknowledgement leaves. Before: never delivered. Now
/// the sweep delivers it within a few intervals, and sends nothing twice,
/// not even deliveries that wait in the limiter's queue for seconds while
/// sweeps run.
#[actix_rt::test]
async fn a_post_recorded_whose_answer_was_lost_is_delivered_without_a_restart() {
    let (db, store, pairs, fake) = world(1, 10, 1, FakeLimits::off()).await;
    let p = start(
        &store,
        &fake,
        Opts {
            // 1 a second per chat: the posts below wait queued for seconds.
            scale: 1.0,
            sweep_interval: Duration::from_secs(1),
            ..Opts::default()
        },
    )
    .await;
    // The fake gives channel 1's first message id 1: recorded first, as if
    // by the poller's lost commit, then published.
    record(&store, 1, 1, "lost answer").await;
    let mut posts = vec![(fixtures::channel_chat(1), text(&fake, 1, "lost answer"))];
    assert_eq!(posts[0].1, 1);
    p.wake(1);
    // Posts delivered the ordinary way, queued behind it for seconds.
    for i in 0..4 {
        posts.push((
            fixtures::channel_chat(1),
            text(&fake, 1, &format!("ordinary {i}")),
        ));
    }
    p.wake(1);
    let expected = fixtures::expected_list(&pairs, &posts);
    let want = expected.len() as u64;
    let arrived = wait_for(Duration::from_secs(30), || {
        fake.report(&expected).delivered == want
    })
    .await;
    // Sweeps keep running over everything now delivered and recorded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert!(arrived, "{r:?}");
    assert_eq!((r.delivered, r.lost, r.duplicates), (want, 0, 0), "{r:?}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'"
        )
        .await as u64,
        want
    );
    fake.stop();
}

/// Item 6: a 401 (token revoked) was classed "Bot API unreachable" and
/// retried forever; the revoked bot's deliveries stayed queued, filled
/// `queue_capacity`, and `Enqueue` then held every poller — the other
/// bot's chats got the first post and nothing after. Now the first 401
/// halts that bot's lane: its deliveries leave the queue with no outcome
/// (the database keeps owing them for a start with a new token), the
/// operator sees the bot id in the stats, and the other bot delivers
/// everything.
#[actix_rt::test]
async fn a_revoked_bot_token_halts_its_bot_and_never_blocks_the_others() {
    let (db, store, pairs, fake) = world(1, 20, 1, FakeLimits::off()).await;
    let revoked = fixtures::nth_bot_token(1);
    fake.add_bot(&revoked);
    fake.revoke_bot(&revoked);
    // Odd chats are pinned to the bot whose token is revoked.
    db.client()
        .await
        .batch_execute(&format!(
            "UPDATE destinations SET bot_id = {} WHERE chat_id % 2 = 1",
            bot_id_of(&revoked)
        ))
        .await
        .unwrap();
    let p = start(
        &store,
        &fake,
        Opts {
            bots: vec![fixtures::bot_token().to_owned(), revoked.clone()],
            queue_capacity: Some(10),
            ..Opts::default()
        },
    )
    .await;
    let mut posts = Vec::new();
    for i in 0..5 {
        posts.push((
            fixtures::channel_chat(1),
            text(&fake, 1, &format!("post {i}")),
        ));
    }
    p.wake(1);
    let (live, halted): (Vec<_>, Vec<_>) = fixtures::expected_list(&pairs, &posts)
        .into_iter()
        .partition(|(chat, _, _)| chat % 2 == 0);
    assert!(!live.is_empty() && !halted.is_empty());
    let arrived = wait_for(Duration::from_secs(20), || {
        fake.report(&live).delivered == live.len() as u64
    })
    .await;
    let s = stats(&p).await;
    let halted_ids = p.halted_bot_ids();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&live);
    assert!(arrived, "the other bot's chats were held up: {r:?}");
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    assert_eq!(fake.report(&halted).delivered, 0);
    assert_eq!(s.halted_bots, 1);
    assert_eq!(halted_ids, vec![bot_id_of(&revoked)]);
    assert!(report.clean, "{report:?}");
    // Not retried: a few 401s (the sends already out), not a stream of them.
    let refused = fake.stats().unauthorized_401;
    assert!((1..=10).contains(&refused), "{refused} requests refused");
    // Still owed: no outcome recorded for the halted bot's deliveries.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE destination_chat_id % 2 = 1"
        )
        .await,
        0
    );
    fake.stop();
}
