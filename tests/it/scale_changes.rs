//! Changes reach every instance: two pipelines on one database, a
//! subscription added, paused, resumed and removed through one of them
//! reaches the other's registry within a second (LISTEN/NOTIFY), and a
//! dropped listener session re-syncs the registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::TestDb;
use kuryer::config::LimitsConfig;
use kuryer::pipeline::{Pipeline, PipelineConfig, PipelineParts, limiter_config};
use kuryer::secret::Secret;
use kuryer::store::{Store, SubState};
use kuryer::telegram::build_bots;
use kuryer_actors::channel_poller::PollerConfig;
use kuryer_actors::db_writer::DbWriterConfig;
use kuryer_actors::model::ChannelUsername;
use kuryer_actors::ports::SourceFactory;
use kuryer_actors::subscriber_registry::GetRegistryStats;
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use kuryer_sim::fixtures;
use kuryer_sim::source::SimSource;

fn config() -> PipelineConfig {
    PipelineConfig {
        limiter: limiter_config(&LimitsConfig::default(), 1, 10.0),
        poller: PollerConfig {
            min_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(500),
            ..PollerConfig::default()
        },
        writer: DbWriterConfig::default(),
        sender: Default::default(),
        load_chunk: 100,
        resume_window: Duration::from_secs(3600),
        sweep_interval: Duration::from_secs(60),
    }
}

async fn start(store: &Store, fake: &FakeTelegram) -> Pipeline {
    let bots = build_bots(
        &[Secret::new(fixtures::bot_token())],
        &fake.url(),
        Duration::from_secs(10),
    )
    .unwrap();
    let f = fake.clone();
    let factory: SourceFactory =
        Arc::new(move |ch| Box::new(SimSource::new(f.clone(), ch.chat_id)));
    Pipeline::start(PipelineParts::new(
        store.clone(),
        bots,
        factory,
        Arc::new(kuryer_actors::ports::NoDedup),
        config(),
    ))
    .await
    .unwrap()
}

async fn registry_size(p: &Pipeline) -> usize {
    p.registry()
        .send(GetRegistryStats)
        .await
        .unwrap()
        .subscriptions
}

/// Polls `p`'s registry until it holds `want` subscriptions; the time it took.
async fn wait_size(p: &Pipeline, want: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let n = registry_size(p).await;
        if n == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the other instance's registry holds {n} subscriptions, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `db` has a listener session (application_name kuryer-listen).
async fn listener_pids(db: &TestDb) -> Vec<i32> {
    db.client()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity
              WHERE application_name = 'kuryer-listen' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn wait_listener(db: &TestDb) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = listener_pids(db).await.first() {
            return *pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no listener session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_change_through_one_instance_reaches_the_others_registry_within_a_second() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    fixtures::populate(&db.client().await, 3, 4, 1)
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::off(), 3, 4).unwrap();
    let a = start(&store, &fake).await;
    let b = start(&store, &fake).await;
    // Only B listens: whatever reaches B came through PostgreSQL.
    let feed = kuryer::subscription_events::spawn(store.clone(), b.clone());
    wait_listener(&db).await;
    assert_eq!(registry_size(&b).await, 4);

    // Added through A (what POST /add_channel and /add do).
    let added = store
        .add_subscription(777_001, &ChannelUsername::parse("demo_channel_2").unwrap())
        .await
        .unwrap();
    a.sync_subscription(&store, added.subscription.id)
        .await
        .unwrap();
    let took = wait_size(&b, 5, Duration::from_secs(1)).await;
    eprintln!("add reached the other registry in {took:?}");

    // Paused, resumed, removed through A.
    let id = added.subscription.id;
    store
        .set_subscription_state(None, id, SubState::Paused)
        .await
        .unwrap();
    a.sync_subscription(&store, id).await.unwrap();
    wait_size(&b, 4, Duration::from_secs(1)).await;
    store
        .set_subscription_state(None, id, SubState::Active)
        .await
        .unwrap();
    wait_size(&b, 5, Duration::from_secs(1)).await;
    store
        .set_subscription_state(None, id, SubState::Removed)
        .await
        .unwrap();
    wait_size(&b, 4, Duration::from_secs(1)).await;

    // A rolled-back change sends nothing.
    let c = db.client().await;
    c.batch_execute("BEGIN; UPDATE subscriptions SET is_active = false; ROLLBACK;")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(registry_size(&b).await, 4);

    // A deactivated destination takes its subscriptions out (one
    // notification for the destination).
    c.execute(
        "UPDATE destinations SET is_active = false
          WHERE chat_id = (SELECT min(chat_id) FROM destinations WHERE kind = 'private')",
        &[],
    )
    .await
    .unwrap();
    wait_size(&b, 3, Duration::from_secs(1)).await;

    // The listener's session is ended; a change made while no session
    // listens is found by the re-sync after the reconnect.
    let pid = wait_listener(&db).await;
    c.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    c.execute(
        "UPDATE subscriptions SET is_active = false
          WHERE id = (SELECT min(s.id) FROM subscriptions s JOIN destinations d ON d.id = s.destination_id
                       WHERE s.is_active AND d.is_active)",
        &[],
    )
    .await
    .unwrap();
    // Committed while no session listened (the old one is gone or going,
    // the new one not yet there: reconnecting waits 200 ms first).
    assert!(
        listener_pids(&db).await.iter().all(|p| *p == pid),
        "a new listener was already there; the re-sync would not be tested"
    );
    wait_size(&b, 2, Duration::from_secs(5)).await;
    let new_pid = wait_listener(&db).await;
    assert_ne!(new_pid, pid, "a new listener session");
    // And the new session carries changes again.
    let again = store
        .add_subscription(777_002, &ChannelUsername::parse("demo_channel_3").unwrap())
        .await
        .unwrap();
    assert!(again.created);
    wait_size(&b, 3, Duration::from_secs(1)).await;

    feed.abort();
    a.shutdown(Duration::from_secs(10)).await;
    b.shutdown(Duration::from_secs(10)).await;
    fake.stop();
}

/// The settings a registry entry carries (text transforms, quiet hours, a
/// digest, a destination's forum topic) are announced too, and columns no registry
/// reads are not.
#[tokio::test]
async fn a_change_of_transforms_quiet_hours_or_topic_is_announced() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store
        .add_subscription(
            7,
            &kuryer_actors::model::ChannelUsername::parse("notify_me").unwrap(),
        )
        .await
        .unwrap();
    // The installation's own channel: another installation on the same
    // database (NOTIFY channels are the database's) hears nothing of it.
    let installation = store.installation_id().await.unwrap();
    let mine = kuryer::subscription_events::channel(&installation);
    assert!(mine.len() < 64 && mine.starts_with("kuryer_"), "{mine}");
    let mut l = store.listen(&mine).await.unwrap();
    let mut shared = store.listen("kuryer_subscriptions").await.unwrap();
    let c = db.client().await;
    let next = async |l: &mut kuryer::store::listen::Listener| {
        tokio::time::timeout(Duration::from_secs(2), l.rx.recv())
            .await
            .ok()
            .flatten()
            .map(|r| r.unwrap())
    };
    c.batch_execute("UPDATE subscriptions SET protected_told_at = now()")
        .await
        .unwrap();
    c.batch_execute(r#"UPDATE subscriptions SET transform = '{"header": "h"}'"#)
        .await
        .unwrap();
    let first = next(&mut l).await;
    assert!(
        first.as_deref().is_some_and(|p| p.starts_with("s:")),
        "{first:?}"
    );
    c.batch_execute(r#"UPDATE subscriptions SET quiet = '{"from": "23:00"}'"#)
        .await
        .unwrap();
    assert!(next(&mut l).await.is_some_and(|p| p.starts_with("s:")));
    c.batch_execute(r#"UPDATE subscriptions SET digest = '{"every": "hourly"}'"#)
        .await
        .unwrap();
    assert!(next(&mut l).await.is_some_and(|p| p.starts_with("s:")));
    c.batch_execute("UPDATE destinations SET message_thread_id = 5")
        .await
        .unwrap();
    assert!(next(&mut l).await.is_some_and(|p| p.starts_with("d:")));
    assert_eq!(next(&mut l).await, None, "nothing else was announced");
    assert_eq!(
        next(&mut shared).await,
        None,
        "announced on a channel every installation hears"
    );
}
