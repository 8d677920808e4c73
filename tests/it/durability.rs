//! "Never lost, never twice", part two: each test here failed on the code
//! before its fix and names what broke (issue 10's items).

use std::sync::Arc;
use std::time::Duration;

use kuryer::config::{HttpConfig, RedisConfig};
use kuryer::dedup::RedisDedup;
use kuryer::secret::{Secret, SecretUrl};
use kuryer_actors::model::ChannelUsername;
use kuryer_sim::fake_bot_api::{FakeLimits, Fault};
use kuryer_sim::fixtures;

use kuryer_actors::test_hooks::StopForTest;

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
    p.registry.send(StopForTest).await.unwrap();
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
            "registry" => p.registry.send(StopForTest).await.unwrap(),
            "limiter" => p.limiter.send(StopForTest).await.unwrap(),
            "sender" => p.sender.send(StopForTest).await.unwrap(),
            _ => p.writer.send(StopForTest).await.unwrap(),
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
