//! The actor pipeline end to end: real PostgreSQL, the fake Bot API over
//! HTTP (teloxide's real client code), the simulated channel source.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::TestDb;
use futures_util::future::LocalBoxFuture;
use kuryer::config::LimitsConfig;
use kuryer::pipeline::{Pipeline, PipelineConfig, PipelineParts, limiter_config};
use kuryer::secret::Secret;
use kuryer::store::Store;
use kuryer::telegram::build_bots;
use kuryer_actors::channel_poller::PollerConfig;
use kuryer_actors::channel_supervisor::{GetPoller, GetSupervisorStats};
use kuryer_actors::db_writer::DbWriterConfig;
use kuryer_actors::model::SourceMessage;
use kuryer_actors::ports::{ChannelSource, SourceError, SourceFactory};
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, Fault, NewChannelMessage};
use kuryer_sim::fixtures;
use kuryer_sim::source::SimSource;

fn pipeline_config(scale: f64) -> PipelineConfig {
    PipelineConfig {
        limiter: limiter_config(&LimitsConfig::default(), 1, scale),
        poller: PollerConfig {
            min_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(500),
            ..PollerConfig::default()
        },
        writer: DbWriterConfig::default(),
        sender: Default::default(),
        load_chunk: 1000,
        resume_window: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(60),
    }
}

fn sim_factory(fake: &FakeTelegram) -> SourceFactory {
    let fake = fake.clone();
    Arc::new(move |ch| Box::new(SimSource::new(fake.clone(), ch.chat_id)))
}

async fn start(store: &Store, fake: &FakeTelegram, factory: SourceFactory, scale: f64) -> Pipeline {
    let bots = build_bots(
        &[Secret::new(fixtures::bot_token())],
        &fake.url(),
        Duration::from_secs(10),
    )
    .unwrap();
    Pipeline::start(PipelineParts::new(
        store.clone(),
        bots,
        factory,
        Arc::new(kuryer_actors::ports::NoDedup),
        pipeline_config(scale),
    ))
    .await
    .unwrap()
}

/// Publishes `rounds` posts on every channel (every fifth an album) and wakes
/// the pollers. Returns the (channel chat, first id) of each post.
fn publish_rounds(
    fake: &FakeTelegram,
    pipeline: &Pipeline,
    channels: u32,
    rounds: std::ops::Range<u32>,
) -> Vec<(i64, i32)> {
    let mut posts = Vec::new();
    for round in rounds {
        for i in 1..=i64::from(channels) {
            let chat = fixtures::channel_chat(i);
            posts.push((chat, fixtures::publish(fake, chat, i, round)));
            pipeline.wake(i);
        }
    }
    posts
}

/// Waits until the fake has every expected delivery, or `limit` passes.
async fn wait_delivered(fake: &FakeTelegram, expected: &[(i64, i64, i32)], limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if fake.report(expected).delivered >= expected.len() as u64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sent_rows(db: &TestDb) -> HashSet<(i64, i64, i32)> {
    db.client()
        .await
        .query(
            "SELECT f.destination_chat_id, c.telegram_id, f.source_message_id::int
               FROM forwarded_messages f JOIN channels c ON c.id = f.channel_id
              WHERE f.status = 'sent'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[actix_rt::test]
async fn fifty_channels_thousand_users_every_post_arrives_exactly_once_within_the_limits() {
    let (channels, users, subs, rounds) = (50, 1000, 5, 10);
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    assert_eq!(pairs.len(), 5000);
    // Telegram's limits × 100, enforced by the fake with 429s.
    let scale = 100.0;
    let fake = fixtures::start_fake(FakeLimits::scaled(scale), channels, users).unwrap();
    let pipeline = start(&store, &fake, sim_factory(&fake), scale).await;
    let posts = publish_rounds(&fake, &pipeline, channels, 0..rounds);
    let expected = fixtures::expected_list(&pairs, &posts);
    assert_eq!(expected.len(), 50_000);
    wait_delivered(&fake, &expected, Duration::from_secs(240)).await;
    let report = pipeline.shutdown(Duration::from_secs(30)).await;
    assert!(report.clean, "{report:?}");

    let r = fake.report(&expected);
    assert_eq!(r.delivered, 50_000, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.duplicates, 0, "{r:?}");
    assert_eq!(r.unexpected, 0, "{r:?}");
    assert_eq!(r.out_of_order, 0, "per-channel order broken: {r:?}");
    assert_eq!(r.albums_split, 0, "album parts not together: {r:?}");
    // The daemon's own limiter kept it within the limits the fake enforces.
    assert_eq!(fake.stats().rate_limited_429, 0);
    // What the database says was sent is exactly what the fake received.
    let rows = sent_rows(&db).await;
    let want: HashSet<(i64, i64, i32)> = expected.into_iter().collect();
    assert_eq!(rows.len(), want.len());
    assert!(
        rows == want,
        "forwarded_messages differs from what the fake received"
    );
    fake.stop();
}

#[actix_rt::test]
async fn a_429_is_obeyed_for_exactly_that_chat() {
    let (channels, users) = (1, 6);
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, 1)
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::off(), channels, users).unwrap();
    let slow_chat = pairs[0].0;
    fake.set_fault(
        slow_chat,
        Fault::TooManyRequests { retry_after: 2 },
        Some(1),
    );
    let pipeline = start(&store, &fake, sim_factory(&fake), 1000.0).await;
    let t0 = Instant::now();
    let posts = publish_rounds(&fake, &pipeline, channels, 0..1);
    let expected = fixtures::expected_list(&pairs, &posts);
    wait_delivered(&fake, &expected, Duration::from_secs(20)).await;
    let r = fake.report(&expected);
    assert_eq!((r.delivered, r.duplicates), (6, 0), "{r:?}");
    assert_eq!(
        fake.stats().rate_limited_429,
        1,
        "the paused chat was hit again"
    );
    for (chat, _) in &pairs {
        let got = fake.received(*chat);
        assert_eq!(got.len(), 1);
        let after = got[0].received_at.duration_since(t0);
        if *chat == slow_chat {
            assert!(
                after >= Duration::from_secs(2),
                "retried after {after:?}, before retry_after"
            );
        } else {
            assert!(
                after < Duration::from_secs(2),
                "chat {chat} waited {after:?} for another chat's 429"
            );
        }
    }
    pipeline.shutdown(Duration::from_secs(10)).await;
    fake.stop();
}

#[actix_rt::test]
async fn graceful_restart_in_the_middle_loses_and_repeats_nothing() {
    let (channels, users, subs) = (10, 200, 3);
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    // Limits low enough that the first pipeline is still busy when it stops.
    let scale = 10.0;
    let fake = fixtures::start_fake(FakeLimits::scaled(scale), channels, users).unwrap();
    let first = start(&store, &fake, sim_factory(&fake), scale).await;
    let mut posts = publish_rounds(&fake, &first, channels, 0..3);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mid = fake.report(&fixtures::expected_list(&pairs, &posts));
    assert!(
        mid.delivered > 0 && mid.delivered < mid.expected,
        "stop must come mid-run: {mid:?}"
    );
    let report = first.shutdown(Duration::from_secs(60)).await;
    assert!(report.clean, "{report:?}");
    // Posts published while the daemon is down are read from the mark on restart.
    posts.extend(publish_rounds(&fake, &first, channels, 3..5));
    let second = start(&store, &fake, sim_factory(&fake), scale).await;
    let expected = fixtures::expected_list(&pairs, &posts);
    wait_delivered(&fake, &expected, Duration::from_secs(120)).await;
    second.shutdown(Duration::from_secs(30)).await;
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(r.delivered, expected.len() as u64);
    assert_eq!(sent_rows(&db).await.len(), expected.len());
    fake.stop();
}

#[actix_rt::test]
async fn a_forced_shutdown_records_every_send_it_made_and_the_restart_repeats_none() {
    let (channels, users, subs) = (10, 200, 3);
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::off(), channels, users).unwrap();
    // Every send is accepted at once but answered 400 ms later, so sends are
    // in flight whenever the deadline strikes.
    let chats: HashSet<i64> = pairs.iter().map(|(chat, _)| *chat).collect();
    for chat in &chats {
        fake.set_fault(*chat, Fault::Slow(Duration::from_millis(400)), None);
    }
    let first = start(&store, &fake, sim_factory(&fake), 1000.0).await;
    let mut posts = publish_rounds(&fake, &first, channels, 0..3);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let report = first.shutdown(Duration::from_millis(100)).await;
    assert!(
        !report.clean,
        "the deadline must force this stop: {report:?}"
    );
    // Nothing more goes out from the stopped pipeline.
    let at_stop = fake.report(&fixtures::expected_list(&pairs, &posts));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = fake.report(&fixtures::expected_list(&pairs, &posts));
    assert_eq!(at_stop.delivered, later.delivered, "sent after the stop");
    assert!(
        later.delivered > 0 && later.delivered < later.expected,
        "stop must come mid-run: {later:?}"
    );
    // Every send the fake accepted has its outcome recorded.
    assert_eq!(sent_rows(&db).await.len() as u64, later.delivered);

    for chat in &chats {
        fake.clear_fault(*chat);
    }
    posts.extend(publish_rounds(&fake, &first, channels, 3..4));
    let second = start(&store, &fake, sim_factory(&fake), 1000.0).await;
    let expected = fixtures::expected_list(&pairs, &posts);
    wait_delivered(&fake, &expected, Duration::from_secs(60)).await;
    assert!(second.shutdown(Duration::from_secs(30)).await.clean);
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    assert_eq!(r.delivered, expected.len() as u64);
    assert_eq!(sent_rows(&db).await.len(), expected.len());
    fake.stop();
}

/// Wraps the simulated source and panics on every third post it would
/// return; each post panics once, so the retry after the restart gets it.
struct PanickySource {
    inner: SimSource,
    returned: Arc<AtomicU64>,
    panicked: Arc<Mutex<HashSet<u64>>>,
}

impl ChannelSource for PanickySource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        let returned = self.returned.clone();
        let panicked = self.panicked.clone();
        let inner = self.inner.fetch(after, limit);
        Box::pin(async move {
            let messages = inner.await?;
            if !messages.is_empty() {
                let n = returned.load(Ordering::SeqCst) + 1;
                if n.is_multiple_of(3) && panicked.lock().unwrap().insert(n) {
                    panic!("simulated source failure on post {n}");
                }
                returned.fetch_add(1, Ordering::SeqCst);
            }
            Ok(messages)
        })
    }
}

#[actix_rt::test]
async fn a_panicking_channel_recovers_and_no_other_channel_notices() {
    let (channels, users, subs, rounds) = (6, 60, 6, 6);
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::off(), channels, users).unwrap();
    let bad_chat = fixtures::channel_chat(1);
    let returned = Arc::new(AtomicU64::new(0));
    let panicked = Arc::new(Mutex::new(HashSet::new()));
    let factory: SourceFactory = {
        let (fake, returned, panicked) = (fake.clone(), returned.clone(), panicked.clone());
        Arc::new(move |ch| {
            let inner = SimSource::new(fake.clone(), ch.chat_id);
            if ch.chat_id == bad_chat {
                Box::new(PanickySource {
                    inner,
                    returned: returned.clone(),
                    panicked: panicked.clone(),
                })
            } else {
                Box::new(inner)
            }
        })
    };
    let pipeline = start(&store, &fake, factory, 1000.0).await;
    let mut posts = Vec::new();
    for round in 0..rounds {
        posts.extend(publish_rounds(&fake, &pipeline, channels, round..round + 1));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // And a panic in the poller actor itself, not its source: the
    // supervisor must notice the dead actor and start a new one.
    let poller = pipeline
        .supervisor()
        .send(GetPoller(2))
        .await
        .unwrap()
        .unwrap();
    poller.do_send(kuryer_actors::channel_poller::PanicForTest);
    tokio::time::sleep(Duration::from_millis(500)).await;
    posts.extend(publish_rounds(
        &fake,
        &pipeline,
        channels,
        rounds..rounds + 2,
    ));

    let expected = fixtures::expected_list(&pairs, &posts);
    wait_delivered(&fake, &expected, Duration::from_secs(60)).await;
    let stats = pipeline
        .supervisor()
        .send(GetSupervisorStats)
        .await
        .unwrap();
    pipeline.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0), "{r:?}");
    assert!(
        !panicked.lock().unwrap().is_empty(),
        "the source never panicked"
    );
    assert!(
        stats.restarts >= 1,
        "the dead poller was not restarted: {stats:?}"
    );
    assert_eq!(stats.running, channels as usize);
    fake.stop();
}

#[actix_rt::test]
async fn protected_and_odd_posts_do_not_stop_the_channel() {
    let (channels, users) = (2, 5);
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, 2)
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::off(), channels, users).unwrap();
    let pipeline = start(&store, &fake, sim_factory(&fake), 1000.0).await;
    let chat = fixtures::channel_chat(1);
    // A protected photo cannot be copied: the subscribers get a link to it
    // instead, and nothing is retried forever.
    let protected = fake.post(
        chat,
        NewChannelMessage {
            text: Some("protected".into()),
            entities: vec![],
            media: Some(kuryer_sim::fake_bot_api::MediaKind::Photo),
            media_group_id: None,
            protected: true,
        },
    );
    // Right-to-left and zero-width characters in a text post.
    let odd = fake.post(
        chat,
        NewChannelMessage {
            text: Some("\u{200f}שלום\u{200b} world \u{202e}".into()),
            entities: vec![],
            media: None,
            media_group_id: None,
            protected: false,
        },
    );
    pipeline.wake(1);
    let posts = publish_rounds(&fake, &pipeline, channels, 0..2);
    let mut expected = fixtures::expected_list(&pairs, &posts);
    for (dest, ch) in &pairs {
        if *ch == chat {
            expected.push((*dest, chat, odd));
        }
    }
    wait_delivered(&fake, &expected, Duration::from_secs(30)).await;
    pipeline.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    let link = format!("https://t.me/demo_channel_1/{protected}");
    let subscribers: Vec<i64> = pairs
        .iter()
        .filter(|(_, c)| *c == chat)
        .map(|(d, _)| *d)
        .collect();
    for dest in &subscribers {
        let got = fake.received(*dest);
        let links = got
            .iter()
            .filter(|m| m.text.as_deref().is_some_and(|t| t.contains(&link)))
            .count();
        assert_eq!(
            links, 1,
            "chat {dest} should get one link to the protected post"
        );
    }
    let by_link: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM forwarded_messages
              WHERE status = 'sent' AND error LIKE 'sent as a link%' AND source_message_id = $1",
            &[&i64::from(protected)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        by_link as usize,
        subscribers.len(),
        "each fallback is one row saying so"
    );
    fake.stop();
}
