//! The in-process pipeline harness the fault and durability tests share: a
//! pipeline as `kuryer run` builds it on a test database and the fake Bot
//! API, a generated world, and small waiting and counting helpers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryer::config::{LimitsConfig, RedisConfig};
use kuryer::dedup::RedisDedup;
use kuryer::pipeline::{Pipeline, PipelineConfig, PipelineParts, PipelineStats, limiter_config};
use kuryer::secret::{Secret, SecretUrl};
use kuryer::store::Store;
use kuryer::telegram::{bot_id_of, build_bots};
use kuryer_actors::channel_poller::PollerConfig;
use kuryer_actors::db_writer::DbWriterConfig;
use kuryer_actors::ports::{Dedup, NoDedup, SourceFactory};
use kuryer_actors::sender_pool::SenderConfig;
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, NewChannelMessage};
use kuryer_sim::fixtures;
use kuryer_sim::source::SimSource;

use crate::common::TestDb;

pub(crate) struct Opts {
    pub(crate) scale: f64,
    pub(crate) sender: SenderConfig,
    pub(crate) bot_timeout: Duration,
    pub(crate) dedup: Arc<dyn Dedup>,
    pub(crate) factory: Option<SourceFactory>,
    /// Bot tokens, in lane order (default: the fixtures' one bot).
    pub(crate) bots: Vec<String>,
    /// The limiter's queue capacity (default: the limiter's).
    pub(crate) queue_capacity: Option<usize>,
    /// How often the sweep runs.
    pub(crate) sweep_interval: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            scale: 1000.0,
            sender: SenderConfig::default(),
            bot_timeout: Duration::from_secs(10),
            dedup: Arc::new(NoDedup),
            factory: None,
            bots: vec![fixtures::bot_token().to_owned()],
            queue_capacity: None,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

pub(crate) async fn start(store: &Store, fake: &FakeTelegram, opts: Opts) -> Pipeline {
    // RUST_LOG=kuryer=debug shows the pipeline's log when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tokens: Vec<Secret> = opts.bots.iter().map(Secret::new).collect();
    let bots = build_bots(&tokens, &fake.url(), opts.bot_timeout).unwrap();
    let limits = LimitsConfig {
        allow_paid_broadcast: opts.sender.allow_paid_broadcast,
        ..LimitsConfig::default()
    };
    let mut limiter = limiter_config(&limits, tokens.len(), opts.scale);
    limiter.bot_ids = tokens.iter().map(|t| bot_id_of(t.expose())).collect();
    if let Some(c) = opts.queue_capacity {
        limiter.queue_capacity = c;
    }
    let factory = opts.factory.unwrap_or_else(|| {
        let fake = fake.clone();
        Arc::new(move |ch| Box::new(SimSource::new(fake.clone(), ch.chat_id)))
    });
    let cfg = PipelineConfig {
        limiter,
        poller: PollerConfig {
            min_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(300),
            ..PollerConfig::default()
        },
        writer: DbWriterConfig::default(),
        sender: opts.sender,
        load_chunk: 1000,
        resume_window: Duration::from_secs(3600),
        sweep_interval: opts.sweep_interval,
    };
    Pipeline::start(PipelineParts::new(
        store.clone(),
        bots,
        factory,
        opts.dedup,
        cfg,
    ))
    .await
    .unwrap()
}

/// A database with `users` users subscribed to `channels` channels
/// (`subs` each) and a fake Telegram knowing them all.
pub(crate) async fn world(
    channels: u32,
    users: u32,
    subs: u32,
    limits: FakeLimits,
) -> (TestDb, Store, Vec<(i64, i64)>, FakeTelegram) {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    let fake = fixtures::start_fake(limits, channels, users).unwrap();
    (db, store, pairs, fake)
}

pub(crate) fn text(fake: &FakeTelegram, channel: i64, body: &str) -> i32 {
    fake.post(
        fixtures::channel_chat(channel),
        NewChannelMessage::text(body),
    )
}

pub(crate) async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub(crate) async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

pub(crate) async fn stats(p: &Pipeline) -> PipelineStats {
    p.stats().await.unwrap()
}

/// A Redis of the test's own on a free port, and the dedup layer over it
/// (for an installation named `i`).
pub(crate) fn private_dedup(prefix: &str) -> (crate::common::PrivateRedis, RedisDedup, u16) {
    let port = crate::common::free_port();
    let redis = crate::common::PrivateRedis::start(port);
    let dedup = RedisDedup::new(
        &RedisConfig {
            url: SecretUrl::new(format!("redis://127.0.0.1:{port}/0")),
            key_prefix: prefix.into(),
            ..RedisConfig::default()
        },
        "i",
    );
    (redis, dedup, port)
}

/// The id of the (one) subscription delivering to `chat`.
pub(crate) async fn subscription_to(db: &TestDb, chat: i64) -> i64 {
    count(
        db,
        &format!(
            "SELECT s.id FROM subscriptions s JOIN destinations d ON d.id = s.destination_id WHERE d.chat_id = {chat}"
        ),
    )
    .await
}
