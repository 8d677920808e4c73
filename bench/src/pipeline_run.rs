//! One run of the real pipeline against the fake Telegram process: the
//! seed-scale, growth and ceiling scenarios.
//!
//! Layout of a run: this process holds the pipeline exactly as `kuryer run`
//! builds it (PostgreSQL store, Redis dedup, teloxide senders) and a local
//! copy of the channels, read by the simulated reader ([`SimSource`]); the
//! `kuryer fake-telegram` child process is the Bot API the senders talk to
//! over HTTP, and it counts what it received. Every post is published in the
//! child first (its publication time starts the latency clock) and then in
//! the local copy, so the pipeline can only see a post that the Bot API
//! already knows. Both processes share the machine's cores.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use kuryer_actors::ports::{Dedup, SourceFactory};

use crate::http_source::HttpHistorySource;
pub(crate) use crate::pipeline_spec::{CeilingResult, PipelineResult, PipelineSpec, Reading};
use crate::util::{BenchDb, cpu_seconds, reset_peak_rss, settle_stats};
use kuryer::config::Config;
use kuryer::dedup::RedisDedup;
use kuryer::pipeline::{Pipeline, PipelineConfig, PipelineParts, limiter_config};
use kuryer::secret::Secret;
use kuryer::store::{Open, Store};
use kuryer::telegram::{bot_id_of, build_bots};
use kuryer_sim::fake_bot_api::FakeLimits;
use kuryer_sim::fixtures;
use kuryer_sim::fixtures::{GROUP_BASE, nth_bot_token};
use kuryer_sim::process::{FakeProcess, FakeSpec};
use kuryer_sim::source::SimSource;

/// A dedup layer that times every call of the real one.
struct TimedDedup {
    inner: RedisDedup,
    timing: Arc<Timing>,
}

/// Counts and times of the dedup's calls.
#[derive(Default)]
struct Timing {
    ops: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Timing {
    /// Adds one call that took `d`.
    fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

impl Dedup for TimedDedup {
    fn seen(&self, subscription_id: i64, message_id: i32) -> BoxFuture<'static, Option<i64>> {
        let fut = self.inner.seen(subscription_id, message_id);
        let timing = self.timing.clone();
        Box::pin(async move {
            let t = Instant::now();
            let r = fut.await;
            timing.record(t.elapsed());
            r
        })
    }

    fn seen_many(&self, keys: Vec<(i64, i32)>) -> BoxFuture<'static, Option<Vec<Option<i64>>>> {
        let fut = self.inner.seen_many(keys);
        let timing = self.timing.clone();
        Box::pin(async move {
            let t = Instant::now();
            let r = fut.await;
            timing.record(t.elapsed());
            r
        })
    }

    fn mark(
        &self,
        subscription_id: i64,
        message_id: i32,
        sent_message_id: i64,
    ) -> BoxFuture<'static, ()> {
        let fut = self
            .inner
            .mark(subscription_id, message_id, sent_message_id);
        let timing = self.timing.clone();
        Box::pin(async move {
            let t = Instant::now();
            fut.await;
            timing.record(t.elapsed());
        })
    }
}

/// Runs one pipeline measurement in a throw-away database.
pub(crate) async fn run(spec: &PipelineSpec, cfg: &Config) -> anyhow::Result<PipelineResult> {
    let db = BenchDb::create(cfg, "p").await?;
    let result = run_in(spec, cfg, &db).await;
    let prefix = format!("{}{}:", cfg.redis.key_prefix, db.name());
    db.drop_db().await;
    if let Err(e) = drop_redis_keys(cfg, &prefix).await {
        tracing::warn!(error = %e, "Could not remove the run's Redis keys (they expire in 10 minutes).");
    }
    result
}

/// Removes a run's dedup keys, so each run starts with the same Redis (and
/// the machine's Redis does not keep 260,000 keys a run).
pub(crate) async fn drop_redis_keys(cfg: &Config, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(cfg.redis.url.expose())?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{prefix}*");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut c)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<u64>(&mut c)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Subscribes `groups` group chats to `per_group` channels each; returns
/// their (group chat, channel chat) pairs.
async fn add_groups(
    store: &Store,
    groups: u32,
    per_group: u32,
    channels: u32,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let base = fixtures::channel_chat(0);
    let c = store.conn("bench groups").await?;
    c.batch_execute(&format!(
        "INSERT INTO destinations (chat_id, kind, owner_user_id)
              SELECT {GROUP_BASE} - g, 'group', (SELECT min(id) FROM users)
                FROM generate_series(1, {groups}) g;
         INSERT INTO subscriptions (user_id, channel_id, destination_id)
              SELECT d.owner_user_id, c.id, d.id
                FROM destinations d
                CROSS JOIN generate_series(0, {per_group} - 1) k
                JOIN channels c ON c.telegram_id = {base} - (((d.id * 7 + k) % {channels}) + 1)
               WHERE d.kind = 'group';
         ANALYZE;"
    ))
    .await?;
    Ok(c.query(
        "SELECT d.chat_id, c.telegram_id FROM subscriptions s
           JOIN destinations d ON d.id = s.destination_id
           JOIN channels c ON c.id = s.channel_id
          WHERE d.kind = 'group'",
        &[],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// Spreads the destinations over `bots` bots, as in production where each
/// destination is pinned to the bot that can post there
/// (`destinations.bot_id`); the limiter sends through that bot's lane.
async fn pin_destinations(store: &Store, bots: usize) -> anyhow::Result<()> {
    let ids: Vec<i64> = (0..bots).map(|k| bot_id_of(&nth_bot_token(k))).collect();
    let c = store.conn("bench bots").await?;
    c.execute(
        "UPDATE destinations SET bot_id = ($1::bigint[])[(abs(chat_id) % $2) + 1]",
        &[&ids, &(bots as i64)],
    )
    .await?;
    Ok(())
}

/// The running pipeline, its fake Telegram and what was published.
struct Harness {
    fake: FakeProcess,
    mirror: kuryer_sim::fake_bot_api::FakeTelegram,
    pipeline: Pipeline,
    /// Subscribers per channel chat.
    subs_of: HashMap<i64, u64>,
    /// Every post published: (channel chat, first id).
    published: Vec<(i64, i32)>,
    /// Deliveries those posts make.
    expected: u64,
}

impl Harness {
    /// Publishes posts (channel `i`, round) in the fake, then in the local
    /// copy, and wakes their pollers (the reader's push notice). Returns the
    /// posts and the moment they became visible to the pipeline.
    async fn publish(
        &mut self,
        posts: &[(i64, u32)],
    ) -> anyhow::Result<(Vec<(i64, i32)>, Instant)> {
        let ids = self.fake.publish(posts).await?;
        let visible = Instant::now();
        for (&(i, round), &(chat, id)) in posts.iter().zip(&ids) {
            let local = fixtures::publish(&self.mirror, chat, i, round);
            anyhow::ensure!(
                local == id,
                "the local channel copy diverged from the fake: {local} ≠ {id}"
            );
            self.expected += self.subs_of.get(&chat).copied().unwrap_or(0);
        }
        let mut woken = std::collections::HashSet::new();
        for &(i, _) in posts {
            if woken.insert(i) {
                // demo channel i has channels.id = i.
                self.pipeline.wake(i);
            }
        }
        self.published.extend_from_slice(&ids);
        Ok((ids, visible))
    }

    /// Waits until every delivery of what was published is persisted
    /// (written by the DbWriter, which happens after the Bot API accepted
    /// it), or nothing moved for `stall`.
    async fn wait_persisted(&self, stall: Duration) -> anyhow::Result<bool> {
        let mut last = (0u64, Instant::now());
        loop {
            let s = self.pipeline.stats().await?;
            let done = s.rows_written + s.rows_dropped;
            if done >= self.expected {
                return Ok(true);
            }
            if done > last.0 {
                last = (done, Instant::now());
            } else if last.1.elapsed() > stall {
                tracing::warn!(
                    persisted = done,
                    expected = self.expected,
                    "No progress; ending this phase with what arrived."
                );
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// What a pipeline run starts the pipeline with, but its store and bots,
/// and the fakes it runs against.
struct Setup {
    /// The fake Telegram process: the Bot API the senders talk to.
    fake: FakeProcess,
    /// The local copy of the channels the simulated reader reads.
    mirror: kuryer_sim::fake_bot_api::FakeTelegram,
    /// Subscribers per channel chat.
    subs_of: HashMap<i64, u64>,
    /// Subscriptions populated (users' and groups').
    subscriptions: u64,
    /// The pipeline's configuration, the limiter at the spec's scale.
    pcfg: PipelineConfig,
    /// The bots' tokens.
    tokens: Vec<Secret>,
    /// The pollers' source.
    factory: SourceFactory,
    /// The Redis dedup, timed.
    dedup: Arc<TimedDedup>,
    /// The dedup's timings.
    timing: Arc<Timing>,
}

/// Sets up, runs the cycle, the burst and the paced posts, and tears down.
async fn run_in(spec: &PipelineSpec, cfg: &Config, db: &BenchDb) -> anyhow::Result<PipelineResult> {
    let channels = spec.channels.max(1);
    let users = spec.users.max(1);
    let bots = spec.bots.max(1);
    let setup = set_up(spec, cfg, db, channels, users, bots).await?;
    let senders = build_bots(&setup.tokens, &setup.fake.bot_api, Duration::from_secs(15))?;

    settle_stats().await;
    let pg0 = db.stats().await?;
    reset_peak_rss();
    let cpu0 = cpu_seconds();
    let store = Store::new(&db.cfg)?;
    let pipeline = Pipeline::start(PipelineParts::new(
        store.clone(),
        senders,
        setup.factory,
        setup.dedup,
        setup.pcfg,
    ))
    .await?;
    let mut out = PipelineResult {
        label: spec.label.clone(),
        reading: spec.reading,
        channels,
        users,
        subscriptions: setup.subscriptions,
        bots,
        limit_scale: spec.limit_scale,
        registry_load_ms: pipeline.registry_load.as_secs_f64() * 1000.0,
        paced_posts: spec.paced_posts,
        ..PipelineResult::default()
    };
    let mut h = Harness {
        fake: setup.fake,
        mirror: setup.mirror,
        pipeline,
        subs_of: setup.subs_of,
        published: Vec::new(),
        expected: 0,
    };
    let first_round = h.cycle(spec, channels, &mut out).await?;
    let cpu_end = h.burst(spec, channels, first_round, &mut out).await?;
    h.paced(spec, channels, &mut out).await?;
    let cpu = cpu_end.unwrap_or_else(cpu_seconds) - cpu0;
    out.peak_rss_mb = kuryer_sim::peak_rss_mb();

    h.shut_down(spec, cpu, &mut out).await?;
    out.rows_persisted = store.sent_deliveries().await?;
    store.close();
    settle_stats().await;
    let (n, avg) = db.stats().await?.since(&pg0);
    out.db_transactions = n;
    out.db_avg_ms = avg;
    setup.timing.fill(&mut out);
    h.fake.quit().await;
    Ok(out)
}

/// Populates the database, starts the fakes and builds the pipeline's parts but its store and bots.
async fn set_up(
    spec: &PipelineSpec,
    cfg: &Config,
    db: &BenchDb,
    channels: u32,
    users: u32,
    bots: usize,
) -> anyhow::Result<Setup> {
    let (pairs, installation) = populate(spec, db, channels, users, bots).await?;
    let mut subs_of: HashMap<i64, u64> = HashMap::new();
    for (_, chat) in &pairs {
        *subs_of.entry(*chat).or_default() += 1;
    }
    let fake = crate::util::spawn_fake(&FakeSpec {
        limit_scale: spec.limit_scale,
        channels,
        users,
        groups: spec.groups,
        bots,
        ..FakeSpec::default()
    })?;
    fake.set_pairs(&pairs).await?;
    // The local copy of the channels, for the simulated reader: no limits,
    // no users; its HTTP side is never used.
    let mirror = fixtures::start_fake(FakeLimits::off(), channels, 0)?;
    let (pcfg, tokens) = pipeline_config(spec, cfg, bots);
    let factory = source_factory(spec.reading, &mirror, &fake)?;
    let mut redis = cfg.redis.clone();
    redis.key_prefix = format!("{}{}:", redis.key_prefix, db.name());
    redis.dedup_ttl_s = 600;
    let timing = Arc::new(Timing::default());
    let dedup = Arc::new(TimedDedup {
        inner: RedisDedup::new(&redis, &installation),
        timing: timing.clone(),
    });
    Ok(Setup {
        fake,
        mirror,
        subs_of,
        subscriptions: pairs.len() as u64,
        pcfg,
        tokens,
        factory,
        dedup,
        timing,
    })
}

/// Populates users, groups and bot pins through a pool of its own; returns the (destination, channel) pairs and the installation id.
async fn populate(
    spec: &PipelineSpec,
    db: &BenchDb,
    channels: u32,
    users: u32,
    bots: usize,
) -> anyhow::Result<(Vec<(i64, i64)>, String)> {
    // The population, through its own pool: its sessions end (and report
    // their statistics) before the measurement starts.
    let store = Store::open(&db.cfg, Open::fresh()).await?.store;
    let mut pairs = fixtures::populate(
        &*store.conn("bench population").await?,
        channels,
        users,
        spec.subs,
    )
    .await?;
    if spec.groups > 0 {
        let per_group = spec.group_subs.clamp(1, channels);
        pairs.extend(add_groups(&store, spec.groups, per_group, channels).await?);
    }
    if bots > 1 {
        pin_destinations(&store, bots).await?;
    }
    if spec.mixed {
        crate::ceiling_mix::forward_some(&store).await?;
    }
    let installation = store.installation_id().await?;
    store.close();
    Ok((pairs, installation))
}

/// The pipeline's configuration with the limiter at the spec's scale (far out of reach when unlimited), and the bots' tokens.
fn pipeline_config(
    spec: &PipelineSpec,
    cfg: &Config,
    bots: usize,
) -> (PipelineConfig, Vec<Secret>) {
    let mut cfg = cfg.clone();
    cfg.limits.allow_paid_broadcast = spec.paid;
    let cfg = &cfg;
    let mut pcfg = PipelineConfig::from_config(cfg, 1.0);
    let scale = if spec.limit_scale > 0.0 {
        spec.limit_scale
    } else {
        // "No limits": the limiter's rates far above anything reachable.
        1e6
    };
    let mut limiter = limiter_config(&cfg.limits, bots, scale);
    limiter.max_in_flight = pcfg.limiter.max_in_flight;
    limiter.queue_capacity = pcfg.limiter.queue_capacity;
    limiter.max_db_backlog = pcfg.limiter.max_db_backlog;
    let tokens: Vec<_> = (0..bots).map(|k| Secret::new(nth_bot_token(k))).collect();
    limiter.bot_ids = tokens.iter().map(|t| bot_id_of(t.expose())).collect();
    pcfg.limiter = limiter;
    (pcfg, tokens)
}

/// The pollers' source: the in-process copy, or the fake's history route over HTTP.
fn source_factory(
    reading: Reading,
    mirror: &kuryer_sim::fake_bot_api::FakeTelegram,
    fake: &FakeProcess,
) -> anyhow::Result<SourceFactory> {
    Ok(match reading {
        Reading::Memory => {
            let source = mirror.clone();
            Arc::new(move |ch| Box::new(SimSource::new(source.clone(), ch.chat_id)))
        }
        Reading::Http => {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?;
            let control = fake.control_url().to_owned();
            Arc::new(move |ch| Box::new(HttpHistorySource::new(http.clone(), &control, ch.chat_id)))
        }
    })
}

/// One post on every channel, all in `round`.
fn all_channels(channels: u32, round: u32) -> Vec<(i64, u32)> {
    (1..=i64::from(channels)).map(|i| (i, round)).collect()
}

/// How long the run waits for a phase's deliveries with nothing moving.
const STALL: Duration = Duration::from_secs(30);

impl Harness {
    /// The seed's cycle, unless a ceiling run: one new post on every channel;
    /// how long until every one of them is recorded (post row and mark, one
    /// transaction) and handed to the registry. Returns the rounds it published.
    async fn cycle(
        &mut self,
        spec: &PipelineSpec,
        channels: u32,
        out: &mut PipelineResult,
    ) -> anyhow::Result<u32> {
        if !(spec.cycle && spec.ceiling_s <= 0.0) {
            return Ok(0);
        }
        let before = self.pipeline.stats().await?.posts_published;
        let (_, t0) = self.publish(&all_channels(channels, 0)).await?;
        loop {
            if self.pipeline.stats().await?.posts_published >= before + u64::from(channels) {
                out.cycle_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "the cycle did not complete in 120 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.wait_persisted(STALL).await?;
        Ok(1)
    }

    /// The burst: every remaining round at once, measured to its last
    /// delivery, or the ceiling when a ceiling run. Returns the CPU reading
    /// at the ceiling's end.
    async fn burst(
        &mut self,
        spec: &PipelineSpec,
        channels: u32,
        first_round: u32,
        out: &mut PipelineResult,
    ) -> anyhow::Result<Option<f64>> {
        if spec.posts <= first_round {
            return Ok(None);
        }
        let posts: Vec<(i64, u32)> = (first_round..spec.posts)
            .flat_map(|round| all_channels(channels, round))
            .collect();
        let before = self.expected;
        let (ids, t1) = self.publish(&posts).await?;
        out.burst_deliveries = self.expected - before;
        if spec.ceiling_s > 0.0 {
            out.ceiling = Some(ceiling(spec, self, t1).await?);
            return Ok(Some(cpu_seconds()));
        }
        self.wait_persisted(STALL).await?;
        out.burst_s = t1.elapsed().as_secs_f64();
        out.deliveries_per_s = out.burst_deliveries as f64 / out.burst_s.max(1e-9);
        let r = self.fake.report(Some(&ids), 0.0).await?;
        out.burst_p50_ms = r.latency_p50_ms;
        out.burst_p99_ms = r.latency_p99_ms;
        Ok(None)
    }

    /// Latency without a backlog, unless a ceiling run: posts one at a time on spread channels.
    async fn paced(
        &mut self,
        spec: &PipelineSpec,
        channels: u32,
        out: &mut PipelineResult,
    ) -> anyhow::Result<()> {
        if !(spec.paced_posts > 0 && spec.ceiling_s <= 0.0) {
            return Ok(());
        }
        let mut ids = Vec::new();
        let mut offered = 0u64;
        let t = Instant::now();
        for k in 0..spec.paced_posts {
            let i = (i64::from(k) * 7919) % i64::from(channels) + 1;
            let before = self.expected;
            let (id, _) = self.publish(&[(i, 1000 + k)]).await?;
            offered += self.expected - before;
            ids.extend(id);
            tokio::time::sleep(Duration::from_millis(spec.paced_interval_ms)).await;
        }
        out.paced_offered_per_s = offered as f64 / t.elapsed().as_secs_f64().max(1e-9);
        self.wait_persisted(STALL).await?;
        let r = self.fake.report(Some(&ids), 0.0).await?;
        out.paced_p50_ms = Some(r.latency_p50_ms);
        out.paced_p99_ms = Some(r.latency_p99_ms);
        out.paced_max_ms = Some(r.latency_max_ms);
        Ok(())
    }

    /// Shuts the pipeline down and fills the fake's counts and the CPU figures.
    async fn shut_down(
        &self,
        spec: &PipelineSpec,
        cpu: f64,
        out: &mut PipelineResult,
    ) -> anyhow::Result<()> {
        let deadline = if spec.ceiling_s > 0.0 {
            // What is still queued would take minutes at 30/s: not measured.
            Duration::from_secs(1)
        } else {
            Duration::from_secs(30)
        };
        let shutdown = self.pipeline.shutdown(deadline).await;
        if !shutdown.clean && spec.ceiling_s <= 0.0 {
            tracing::warn!(left = shutdown.left_queued, "Shutdown was not clean.");
        }
        let r = self.fake.report(None, 0.0).await?;
        out.deliveries_expected = r.expected;
        out.delivered = r.delivered;
        out.lost = r.lost;
        out.duplicates = r.duplicates;
        out.out_of_order = r.out_of_order;
        out.albums_split = r.albums_split;
        out.unexpected = r.unexpected;
        out.rate_limited_429 = r.stats.rate_limited_429;
        out.cpu_s = cpu;
        out.cpu_us_per_delivery = cpu * 1e6 / (r.delivered.max(1) as f64);
        Ok(())
    }
}

impl Timing {
    /// Fills the result's Redis figures: operations, their average and their longest.
    fn fill(&self, out: &mut PipelineResult) {
        let ops = self.ops.load(Ordering::Relaxed);
        out.redis_ops = ops;
        out.redis_avg_ms = if ops > 0 {
            self.total_ns.load(Ordering::Relaxed) as f64 / ops as f64 / 1e6
        } else {
            0.0
        };
        out.redis_max_ms = self.max_ns.load(Ordering::Relaxed) as f64 / 1e6;
    }
}

/// Sends at Telegram's limits for `ceiling_s` after a ramp-up, then reads
/// the bots' sustained rates and the limits audit from the fake.
async fn ceiling(
    spec: &PipelineSpec,
    h: &Harness,
    published: Instant,
) -> anyhow::Result<CeilingResult> {
    const RAMP_UP_S: f64 = 2.0;
    // The first delivery starts the clock.
    loop {
        if h.fake.stats().await?.messages_received > 0 {
            break;
        }
        anyhow::ensure!(
            published.elapsed() < Duration::from_secs(60),
            "nothing delivered within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(RAMP_UP_S + spec.ceiling_s)).await;
    let r = h.fake.report(None, RAMP_UP_S).await?;
    let a = &r.audit;
    let per_bot: Vec<f64> = a.bots.iter().map(|b| b.steady_rate_per_s).collect();
    let achieved: f64 = per_bot.iter().sum();
    let allowed = a.allowed_per_bot_per_s * spec.bots.max(1) as f64;
    // Album items counted one by one; with paid broadcast all of a bot's
    // messages may reach the paid limit, the unflagged ones only the free.
    let items_per_s: f64 = a.bots.iter().map(|b| b.steady_items_per_s).sum();
    let free_items_per_s: f64 = a.bots.iter().map(|b| b.steady_free_items_per_s).sum();
    let allowed_items = if spec.paid {
        a.allowed_paid_per_bot_per_s * spec.bots.max(1) as f64
    } else {
        allowed
    };
    let seconds = a
        .bots
        .iter()
        .map(|b| (b.span_s - RAMP_UP_S).max(0.0))
        .fold(0.0, f64::max);
    Ok(CeilingResult {
        seconds,
        allowed_per_s: allowed,
        achieved_per_s: achieved,
        fraction: if allowed > 0.0 {
            achieved / allowed
        } else {
            0.0
        },
        rate_limited_429: r.stats.rate_limited_429,
        max_bot_in_1s: a.max_bot_requests_in_1s,
        max_private_in_1s: a.max_private_chat_requests_in_1s,
        max_group_in_60s: a.max_group_requests_in_60s,
        allowed_bot_in_1s: a.allowed_per_bot_per_s,
        allowed_private_in_1s: a.allowed_per_chat_per_s,
        allowed_group_in_60s: a.allowed_per_group_per_min,
        per_bot_per_s: per_bot,
        items_per_s,
        free_items_per_s,
        free_fraction: if allowed > 0.0 {
            free_items_per_s / allowed
        } else {
            0.0
        },
        items_fraction: if allowed_items > 0.0 {
            items_per_s / allowed_items
        } else {
            0.0
        },
        max_bot_free_items_in_1s: a.max_bot_free_items_in_1s,
        paid: spec.paid,
    })
}
