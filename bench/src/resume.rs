//! The resume scenario: a database owing `channels × subscriptions × posts`
//! deliveries (recorded posts, no outcome: a long Bot API outage, then a
//! restart) and the pipeline started on it, the fake Bot API with its limits
//! off and the limiter's rates far above anything reachable, so the run
//! measures the resume itself: time to the first send, time until every
//! owed delivery has its outcome committed, and the peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuryer::config::Config;
use kuryer::dedup::RedisDedup;
use kuryer::pipeline::{Pipeline, PipelineConfig, PipelineParts, limiter_config};
use kuryer::secret::Secret;
use kuryer::store::{Open, Store};
use kuryer::telegram::{bot_id_of, build_bots};
use kuryer_actors::ports::SourceFactory;
use kuryer_sim::fake_bot_api::FakeLimits;
use kuryer_sim::fixtures::{self, nth_bot_token};
use kuryer_sim::process::{FakeProcess, FakeSpec};
use kuryer_sim::source::SimSource;
use serde::{Deserialize, Serialize};

use crate::util::{BenchDb, cpu_seconds, reset_peak_rss, settle_stats};

/// The size of a resume run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResumeSpec {
    /// Channels.
    pub(crate) channels: u32,
    /// Users (one private chat each).
    pub(crate) users: u32,
    /// Subscriptions of each user.
    pub(crate) subs: u32,
    /// Posts a channel recorded and owed to every subscriber.
    pub(crate) posts: u32,
}

/// What a resume run measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct ResumeResult {
    /// Deliveries owed at the start.
    pub(crate) owed: u64,
    /// `Pipeline::start` returned after this long (ms).
    pub(crate) start_ms: f64,
    /// From the start call to the first send handed to the Bot API client (ms).
    pub(crate) first_send_ms: f64,
    /// From the start call until every owed delivery's outcome was committed (s).
    pub(crate) total_s: f64,
    /// Owed deliveries a second over the whole run.
    pub(crate) per_s: f64,
    /// Outcomes committed (= owed when nothing was lost).
    pub(crate) rows_written: u64,
    /// Messages the fake received.
    pub(crate) received: u64,
    /// Peak resident memory of the run's process (MiB).
    pub(crate) peak_rss_mb: f64,
    /// CPU seconds of the run's process.
    pub(crate) cpu_s: f64,
}

/// Runs one resume measurement in a database of its own.
pub(crate) async fn run(spec: &ResumeSpec, cfg: &Config) -> anyhow::Result<ResumeResult> {
    let db = BenchDb::create(cfg, "resume").await?;
    let out = run_in(spec, cfg, &db).await;
    db.drop_db().await;
    out
}

/// Runs the measurement against the populated database and tears the world down.
async fn run_in(spec: &ResumeSpec, cfg: &Config, db: &BenchDb) -> anyhow::Result<ResumeResult> {
    let (owed, installation) = populate(spec, db).await?;
    let world = World::build(spec, cfg, db, &installation)?;
    let bots = build_bots(&world.tokens, &world.fake.bot_api, Duration::from_secs(15))?;

    settle_stats().await;
    reset_peak_rss();
    let cpu0 = cpu_seconds();
    let store = Store::new(&db.cfg)?;
    let t0 = Instant::now();
    let pipeline = Pipeline::start(PipelineParts::new(
        store.clone(),
        bots,
        world.factory,
        world.dedup,
        world.pcfg,
    ))
    .await?;
    let mut out = ResumeResult {
        owed,
        start_ms: t0.elapsed().as_secs_f64() * 1000.0,
        ..ResumeResult::default()
    };
    let first = watch_until_owed_written(&pipeline, owed, t0, &mut out).await?;
    out.first_send_ms = first.unwrap_or_default().as_secs_f64() * 1000.0;
    out.per_s = owed as f64 / out.total_s.max(1e-9);
    out.cpu_s = cpu_seconds() - cpu0;
    out.peak_rss_mb = kuryer_sim::peak_rss_mb();
    pipeline.shutdown(Duration::from_secs(30)).await;
    out.received = world.fake.stats().await?.messages_received;
    store.close();
    world.fake.quit().await;
    crate::pipeline_run::drop_redis_keys(cfg, &world.redis_prefix).await?;
    Ok(out)
}

/// Populates the database with the owed posts; returns the deliveries owed and the installation id.
async fn populate(spec: &ResumeSpec, db: &BenchDb) -> anyhow::Result<(u64, String)> {
    let store = Store::open(&db.cfg, Open::fresh()).await?.store;
    let c = store.conn("bench population").await?;
    fixtures::populate(&c, spec.channels, spec.users, spec.subs).await?;
    // Every channel's last `posts` posts recorded (mark included) and
    // nothing delivered: the state a long outage leaves. Detected after
    // the subscriptions were made, so every subscriber is owed them.
    c.batch_execute(&format!(
        "INSERT INTO posts (channel_id, message_id, message_ids, kind, detected_at,
                            source_chat_id, channel_username, text, entities, copyable,
                            published_at)
         SELECT c.id, g, ARRAY[g::bigint], 'text',
                now() + g * interval '1 millisecond',
                c.telegram_id, c.username,
                'Post ' || g || ' of ' || c.username || ': news, with a bold start.',
                '[{{\"type\":\"bold\",\"offset\":0,\"length\":4}}]'::jsonb, true, now()
           FROM channels c CROSS JOIN generate_series(1, {posts}) g;
         UPDATE channels SET last_message_id = {posts};
         ANALYZE;",
        posts = spec.posts
    ))
    .await
    .context("recording the owed posts")?;
    let subs: i64 = c
        .query_one("SELECT count(*) FROM subscriptions", &[])
        .await?
        .get(0);
    let installation = store.installation_id().await?;
    drop(c);
    store.close();
    Ok((subs as u64 * u64::from(spec.posts), installation))
}

/// What a resume run starts the pipeline with, and the fake it sends to.
struct World {
    /// The fake Bot API the pipeline sends to.
    fake: FakeProcess,
    /// The pollers' source.
    factory: SourceFactory,
    /// The pipeline's configuration, limiter rates out of reach.
    pcfg: PipelineConfig,
    /// The one bot's token.
    tokens: Vec<Secret>,
    /// The dedup store, keyed under the run's own prefix.
    dedup: Arc<RedisDedup>,
    /// The run's Redis key prefix, dropped at the end.
    redis_prefix: String,
}

impl World {
    /// Spawns the fakes and builds the pipeline's parts for a resume run.
    fn build(
        spec: &ResumeSpec,
        cfg: &Config,
        db: &BenchDb,
        installation: &str,
    ) -> anyhow::Result<Self> {
        let fake = crate::util::spawn_fake(&FakeSpec {
            limit_scale: 0.0,
            channels: spec.channels,
            users: spec.users,
            ..FakeSpec::default()
        })?;
        // The pollers' source: a local copy with no new posts.
        let mirror = fixtures::start_fake(FakeLimits::off(), spec.channels, 0)?;
        let factory: SourceFactory =
            Arc::new(move |ch| Box::new(SimSource::new(mirror.clone(), ch.chat_id)));
        let mut pcfg = PipelineConfig::from_config(cfg, 1.0);
        let mut limiter = limiter_config(&cfg.limits, 1, 1e6);
        limiter.max_in_flight = pcfg.limiter.max_in_flight;
        limiter.queue_capacity = pcfg.limiter.queue_capacity;
        limiter.max_db_backlog = pcfg.limiter.max_db_backlog;
        let tokens = vec![Secret::new(nth_bot_token(0))];
        limiter.bot_ids = tokens.iter().map(|t| bot_id_of(t.expose())).collect();
        pcfg.limiter = limiter;
        let mut redis = cfg.redis.clone();
        redis.key_prefix = format!("{}{}:", redis.key_prefix, db.name());
        redis.dedup_ttl_s = 600;
        let dedup = Arc::new(RedisDedup::new(&redis, installation));
        Ok(Self {
            fake,
            factory,
            pcfg,
            tokens,
            dedup,
            redis_prefix: redis.key_prefix,
        })
    }
}

/// Polls the pipeline until `owed` outcomes are committed, filling the total time and rows written; returns the first send's time.
async fn watch_until_owed_written(
    pipeline: &Pipeline,
    owed: u64,
    t0: Instant,
    out: &mut ResumeResult,
) -> anyhow::Result<Option<Duration>> {
    let mut first = None;
    let mut last_progress = (0u64, Instant::now());
    loop {
        let s = pipeline.stats().await?;
        if first.is_none() && s.dispatched > 0 {
            first = Some(t0.elapsed());
        }
        if s.rows_written >= owed {
            out.total_s = t0.elapsed().as_secs_f64();
            out.rows_written = s.rows_written;
            return Ok(first);
        }
        if s.rows_written > last_progress.0 {
            last_progress = (s.rows_written, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("resume stalled at {} of {owed} rows", s.rows_written);
        }
        // Fine-grained until the first send, then coarse.
        let tick = if first.is_none() { 1 } else { 20 };
        tokio::time::sleep(Duration::from_millis(tick)).await;
    }
}
