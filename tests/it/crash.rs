//! Crash safety of the real binary: `kill -9` at random moments of a burst,
//! and a chaos run mixing every fault. Counts come from the fake Bot API.

use std::time::{Duration, Instant};

use crate::common::{Daemon, TestDb, free_port, wait_ready};
use kuryer::secret::Secret;
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, Fault};
use kuryer_sim::fixtures;

const MAX_IN_FLIGHT: usize = 16;

struct World {
    db: TestDb,
    fake: FakeTelegram,
    pairs: Vec<(i64, i64)>,
    channels: u32,
}

/// A population whose channels our bot administers, so the real daemon reads
/// them through `getUpdates` with nothing but a bot token.
async fn world(channels: u32, users: u32, subs: u32, scale: f64) -> World {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    store.close();
    db.client()
        .await
        .batch_execute("UPDATE channels SET bot_is_admin = true")
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::scaled(scale), channels, users).unwrap();
    let token = Secret::new(fixtures::bot_token());
    for i in 1..=i64::from(channels) {
        fake.set_admin(fixtures::channel_chat(i), token.expose(), true);
    }
    World {
        db,
        fake,
        pairs,
        channels,
    }
}

impl World {
    fn daemon(
        &self,
        port: u16,
        scale: f64,
        redis_prefix: &str,
        extra: &[(&str, String)],
    ) -> Daemon {
        let mut env = vec![
            ("KURYER_DELIVERY_MAX_IN_FLIGHT", MAX_IN_FLIGHT.to_string()),
            ("KURYER_REDIS_KEY_PREFIX", redis_prefix.to_owned()),
            ("KURYER_DELIVERY_SHUTDOWN_DEADLINE_MS", "20000".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        Daemon::start_with(
            &self.db.url,
            &self.fake,
            fixtures::bot_token(),
            port,
            scale,
            &env,
        )
    }

    fn publish(&self, rounds: std::ops::Range<u32>, posts: &mut Vec<(i64, i32)>) {
        for round in rounds {
            for i in 1..=i64::from(self.channels) {
                let chat = fixtures::channel_chat(i);
                posts.push((chat, fixtures::publish(&self.fake, chat, i, round)));
            }
        }
    }

    fn delivered(&self, posts: &[(i64, i32)]) -> (u64, u64) {
        let expected = fixtures::expected_list(&self.pairs, posts);
        (self.fake.report(&expected).delivered, expected.len() as u64)
    }

    async fn wait_all(&self, posts: &[(i64, i32)], limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let (got, want) = self.delivered(posts);
            if got == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Time until the fake receives anything new.
    async fn time_to_progress(&self, limit: Duration) -> Duration {
        let before = self.fake.stats().messages_received;
        let start = Instant::now();
        while start.elapsed() < limit && self.fake.stats().messages_received == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }
}

/// Every delivery the fake received has its `sent` row: what reached a chat
/// is on record, so nothing can be sent again from the database's view
/// (the kill and chaos runs check the database too).
async fn assert_every_receipt_is_recorded(w: &World, posts: &[(i64, i32)]) {
    let rows: std::collections::HashSet<(i64, i64, i64)> =
        w.db.client()
            .await
            .query(
                "SELECT f.destination_chat_id, c.telegram_id, f.source_message_id
               FROM forwarded_messages f JOIN channels c ON c.id = f.channel_id
              WHERE f.status = 'sent'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    let firsts: std::collections::HashSet<(i64, i32)> = posts.iter().copied().collect();
    let mut missing = Vec::new();
    let mut checked = 0;
    let dests: std::collections::BTreeSet<i64> = w.pairs.iter().map(|(d, _)| *d).collect();
    for dest in dests {
        for m in w.fake.received(dest) {
            if let Some((chat, id)) = m.source
                && firsts.contains(&(chat, id))
            {
                checked += 1;
                if !rows.contains(&(dest, chat, i64::from(id))) {
                    missing.push((dest, chat, id));
                }
            }
        }
    }
    assert!(checked > 0, "nothing was checked");
    assert!(
        missing.is_empty(),
        "{} of {checked} receipts have no sent row, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test]
async fn kill_9_during_a_burst_loses_nothing_and_duplicates_at_most_the_sends_in_flight() {
    let scale = 10.0;
    let w = world(3, 150, 2, scale).await;
    let prefix = format!("crash:{}:", rand::random::<u64>());
    let mut posts = Vec::new();
    w.publish(0..8, &mut posts);
    let kills = 3;
    for k in 0..kills {
        let port = free_port();
        let mut d = w.daemon(port, scale, &prefix, &[]);
        assert!(
            wait_ready(port, Duration::from_secs(30)).await,
            "{}",
            d.log_text()
        );
        // Kill at a random moment of the burst.
        let after = Duration::from_millis(300 + rand::random_range(0..1200));
        tokio::time::sleep(after).await;
        d.kill9();
        let (got, want) = w.delivered(&posts);
        eprintln!("kill {k} after {after:?}: {got}/{want} delivered");
        w.publish(8 + k..9 + k, &mut posts);
    }
    let port = free_port();
    let mut d = w.daemon(port, scale, &prefix, &[]);
    assert!(wait_ready(port, Duration::from_secs(30)).await);
    let all = w.wait_all(&posts, Duration::from_secs(120)).await;
    let code = d.terminate();
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    eprintln!("kill -9 x{kills}: {r:?}");
    assert!(all, "{r:?}\n{}", d.log_text());
    assert_eq!(code, Some(0));
    assert_eq!(r.lost, 0, "{r:?}");
    assert!(
        r.duplicates <= (kills as u64) * MAX_IN_FLIGHT as u64,
        "more duplicates than sends that can be in flight at the kills: {r:?}"
    );
    assert_eq!(r.out_of_order, 0, "{r:?}");
    assert_every_receipt_is_recorded(&w, &posts).await;
    w.fake.stop();
}

#[tokio::test]
async fn chaos_run_of_20000_deliveries_loses_nothing() {
    let scale = 40.0;
    // 10 channels x 1,000 users x 2 subscriptions, 10 posts a channel.
    let w = world(10, 1000, 2, scale).await;
    let redis_port = free_port();
    let mut redis = crate::common::PrivateRedis::start(redis_port);
    let prefix = format!("chaos:{}:", rand::random::<u64>());
    let redis_env = [(
        "KURYER_REDIS_URL",
        format!("redis://127.0.0.1:{redis_port}/0"),
    )];
    let started = Instant::now();
    let mut posts = Vec::new();
    w.publish(0..4, &mut posts);
    // Random 429s, 5xx and slow answers on 3% of the chats each.
    let chats: Vec<i64> = w.pairs.iter().map(|(d, _)| *d).collect();
    for (i, chat) in chats.iter().enumerate() {
        match i % 100 {
            0..=2 => w
                .fake
                .set_fault(*chat, Fault::TooManyRequests { retry_after: 1 }, Some(1)),
            3..=5 => w.fake.set_fault(*chat, Fault::ServerError, Some(1)),
            6..=8 => w
                .fake
                .set_fault(*chat, Fault::Slow(Duration::from_millis(300)), Some(2)),
            _ => {}
        }
    }
    let mut figures = Vec::new();
    let port = free_port();
    let mut d = w.daemon(port, scale, &prefix, &redis_env);
    assert!(
        wait_ready(port, Duration::from_secs(30)).await,
        "{}",
        d.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Kill 1.
    d.kill9();
    w.publish(4..6, &mut posts);
    let port = free_port();
    let mut d = w.daemon(port, scale, &prefix, &redis_env);
    figures.push((
        "kill -9 #1",
        w.time_to_progress(Duration::from_secs(30)).await,
    ));

    // PostgreSQL refuses connections and drops them for 3 s.
    let admin = crate::common::connect(&crate::common::admin_url()).await;
    let name = w.db.name.clone();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    w.publish(6..8, &mut posts);
    tokio::time::sleep(Duration::from_secs(3)).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    figures.push((
        "PostgreSQL outage (3 s)",
        w.time_to_progress(Duration::from_secs(30)).await,
    ));

    // Redis restarts (losing its keys: it keeps nothing on disk).
    redis.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart();
    figures.push((
        "Redis restart",
        w.time_to_progress(Duration::from_secs(30)).await,
    ));

    // Kill 2.
    tokio::time::sleep(Duration::from_millis(700)).await;
    d.kill9();
    w.publish(8..10, &mut posts);
    let port = free_port();
    let mut d = w.daemon(port, scale, &prefix, &redis_env);
    figures.push((
        "kill -9 #2",
        w.time_to_progress(Duration::from_secs(30)).await,
    ));

    let all = w.wait_all(&posts, Duration::from_secs(300)).await;
    let code = d.terminate();
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    let stats = w.fake.stats();
    let ambiguous: i64 = w
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM forwarded_messages WHERE error LIKE 'timed out%' OR status = 'ambiguous'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "CHAOS deliveries={} delivered={} lost={} duplicates={} out_of_order={} ambiguous_rows={} 429s={} faults={} elapsed_s={:.1}",
        r.expected,
        r.delivered,
        r.lost,
        r.duplicates,
        r.out_of_order,
        ambiguous,
        stats.rate_limited_429,
        stats.faults_injected,
        started.elapsed().as_secs_f64()
    );
    for (what, t) in &figures {
        eprintln!(
            "CHAOS recovery after {what}: {:.0} ms to the next delivery",
            t.as_secs_f64() * 1000.0
        );
    }
    assert!(all, "{r:?}\n{}", d.log_text());
    assert_eq!(r.expected, 20_000);
    assert_eq!(code, Some(0));
    assert_eq!(r.lost, 0, "{r:?}");
    assert!(r.duplicates <= 2 * MAX_IN_FLIGHT as u64, "{r:?}");
    assert_every_receipt_is_recorded(&w, &posts).await;
    w.fake.stop();
}
