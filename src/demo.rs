//! `kuryer demo`: the real pipeline against the simulated Telegram.
//!
//! It creates a throw-away database on the configured PostgreSQL server,
//! fills it with a generated population (users, channels, subscriptions),
//! starts the fake Bot API (enforcing Telegram's limits times
//! `--limit-scale`) and the same pipeline `kuryer run` starts, publishes
//! posts on the simulated channels, and counts — on the fake's side, from
//! what it actually received — deliveries, duplicates and losses.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryer_actors::ports::SourceFactory;
use serde::Serialize;

use kuryer_sim::fake_bot_api::FakeLimits;
use kuryer_sim::fixtures::{bot_token, channel_chat, expected_list, populate, publish, start_fake};
use kuryer_sim::peak_rss_mb;
use kuryer_sim::source::SimSource;
use kuryer_sim::throwaway_db::ThrowawayDb;

use crate::cli::DemoArgs;
use crate::config::{Config, DatabaseConfig};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineParts};
use crate::secret::{Secret, SecretUrl};
use crate::store::{Open, Store};
use crate::telegram::build_bots;

/// The demo's closing figures.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub channels: u32,
    pub users: u32,
    pub subscriptions: u64,
    pub posts: u64,
    pub deliveries_expected: u64,
    pub deliveries_sent: u64,
    pub duplicates: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub albums_split: u64,
    pub rate_limited_429: u64,
    pub elapsed_s: f64,
    pub deliveries_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub registry_load_ms: f64,
    pub rows_written: u64,
    pub peak_rss_mb: f64,
    pub limit_scale: f64,
}

/// Runs the demo; returns its summary (also printed).
pub async fn run(args: &DemoArgs, cfg: &Config) -> anyhow::Result<DemoSummary> {
    // The URL is not repeated (it may hold a password): the key is named,
    // and the reason is each cause's own text (tokio-postgres' top error
    // says only "error connecting to server" or "invalid configuration").
    let db = ThrowawayDb::create(cfg.database.url.expose(), "kuryer_demo")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "creating the demo's database (database.url): {}",
                causes(&e, cfg.database.url.expose())
            )
        })?;
    let mut db_cfg = cfg.database.clone();
    db_cfg.url = SecretUrl::new(db.url().to_owned());
    db_cfg.replica_urls.clear();
    let result = run_in(args, cfg, &db_cfg, db.name()).await;
    // Drop the throw-away database and the run's Redis keys whatever
    // happened (the keys would otherwise stay for their TTL).
    let prefix = format!("{}{}:", cfg.redis.key_prefix, db.name());
    db.drop_now().await;
    if let Err(e) = crate::dedup::remove_keys_under(&cfg.redis, &prefix).await {
        tracing::warn!(error = %e, "Could not remove the demo's Redis keys; they expire in 10 minutes.");
    }
    result
}

/// An error and its sources, each text once, with `secret` (the URL) cut
/// out wherever a cause repeats it.
fn causes(e: &(dyn std::error::Error + 'static), secret: &str) -> String {
    let mut out = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cause = c.source();
    }
    if secret.is_empty() {
        out
    } else {
        out.replace(secret, "***")
    }
}

/// What was published so far: (chat, first message id) per post.
type Published = Arc<std::sync::Mutex<Vec<(i64, i32)>>>;

/// One demo run's world: the simulated Telegram, the database, who is
/// subscribed to what, and what was published.
struct World {
    store: Store,
    fake: kuryer_sim::fake_bot_api::FakeTelegram,
    mtproto: Option<Arc<crate::demo_mtproto::MtprotoWorld>>,
    pairs: Vec<(i64, i64)>,
    published: Published,
}

impl World {
    /// The deliveries expected for what was published so far.
    async fn expected(&self) -> anyhow::Result<Vec<(i64, i64, i32)>> {
        let expected = expected_list(&self.pairs, &self.published.lock().expect("not poisoned"));
        Ok(match &self.mtproto {
            Some(w) => w.relayed(&self.store, expected).await?,
            None => expected,
        })
    }
}

async fn run_in(
    args: &DemoArgs,
    cfg: &Config,
    db_cfg: &DatabaseConfig,
    name: &str,
) -> anyhow::Result<DemoSummary> {
    let channels = args.channels.max(1);
    let users = args.users.max(1);
    let world = build_world(args, cfg, db_cfg, channels, users).await?;
    let subscriptions = world.pairs.len() as u64;
    let started = Instant::now();
    let pipeline = start_pipeline(args, cfg, &world, name).await?;
    let registry_load = pipeline.registry_load;
    let publisher = spawn_publisher(&world, &pipeline, channels, args.posts_per_channel);
    let total_expected = subscriptions * u64::from(args.posts_per_channel);
    let planned_posts = u64::from(args.posts_per_channel) * u64::from(channels);
    watch_progress(
        args,
        &world,
        &publisher,
        started,
        total_expected,
        planned_posts,
    )
    .await?;
    let elapsed = started.elapsed();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let shutdown = pipeline.shutdown(Duration::from_secs(30)).await;
    let expected = world.expected().await?;
    if let Some(w) = &world.mtproto {
        if !args.json {
            eprintln!(
                "reader accounts 3, channels polled past their join capacity {}",
                w.polled(&world.store).await
            );
        }
        w.stop().await;
    }
    let mut report = world.fake.report(&expected);
    if let Some(w) = &world.mtproto {
        report.out_of_order = w.out_of_order(&world.fake, &expected);
    }
    let stats = world.fake.stats();
    let rows_written = world.store.sent_deliveries().await?;
    world.fake.stop();
    world.store.close();
    if !shutdown.clean {
        tracing::warn!(left = shutdown.left_queued, "Demo shutdown was not clean.");
    }
    let posts = world.published.lock().expect("not poisoned").len() as u64;
    Ok(DemoSummary {
        channels,
        users,
        subscriptions,
        posts,
        deliveries_expected: report.expected,
        deliveries_sent: report.delivered,
        duplicates: report.duplicates,
        lost: report.lost,
        out_of_order: report.out_of_order,
        albums_split: report.albums_split,
        rate_limited_429: stats.rate_limited_429,
        elapsed_s: elapsed.as_secs_f64(),
        deliveries_per_s: report.delivered as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_p50_ms: report.latency_p50_ms,
        latency_p99_ms: report.latency_p99_ms,
        latency_max_ms: report.latency_max_ms,
        registry_load_ms: registry_load.as_secs_f64() * 1000.0,
        rows_written,
        peak_rss_mb: peak_rss_mb(),
        limit_scale: args.limit_scale,
    })
}

/// The database populated with `users` subscribed to `channels`, and the
/// simulated Telegram (with the data centre for `--reader mtproto`).
async fn build_world(
    args: &DemoArgs,
    cfg: &Config,
    db_cfg: &DatabaseConfig,
    channels: u32,
    users: u32,
) -> anyhow::Result<World> {
    let subs = args.subs_per_user.clamp(1, channels);
    let store = Store::open(db_cfg, Open::fresh()).await?.store;
    let pairs = populate(
        &*store.conn("demo population").await?,
        channels,
        users,
        subs,
    )
    .await?;

    // The simulated Telegram.
    let fake_limits = if args.limit_scale > 0.0 {
        FakeLimits::scaled(args.limit_scale)
    } else {
        FakeLimits::off()
    };
    let fake = start_fake(fake_limits, channels, users)?;
    let mtproto = match args.reader {
        crate::cli::DemoReader::Sim => None,
        crate::cli::DemoReader::Mtproto => {
            Some(crate::demo_mtproto::MtprotoWorld::start(&store, cfg, &fake, channels).await?)
        }
    };
    let pairs = match &mtproto {
        Some(w) => w.remap_pairs(&pairs),
        None => pairs,
    };
    Ok(World {
        store,
        fake,
        mtproto: mtproto.map(Arc::new),
        pairs,
        published: Published::default(),
    })
}

/// The pipeline, as `kuryer run` builds it, with the simulated source (or
/// the reader accounts against the simulated data centre).
async fn start_pipeline(
    args: &DemoArgs,
    cfg: &Config,
    world: &World,
    name: &str,
) -> anyhow::Result<Pipeline> {
    let mut pcfg = PipelineConfig::from_config(cfg, 1.0);
    let scale = if args.limit_scale > 0.0 {
        args.limit_scale
    } else {
        1e6
    };
    pcfg.limiter = PipelineConfig::from_config(cfg, scale).limiter;
    pcfg.limiter.bots = 1;
    let bots = build_bots(
        &[Secret::new(bot_token())],
        &world.fake.url(),
        Duration::from_secs(15),
    )?;
    let source_fake = world.fake.clone();
    let factory: SourceFactory = match &world.mtproto {
        Some(w) => w.factory(),
        None => Arc::new(move |ch| Box::new(SimSource::new(source_fake.clone(), ch.chat_id))),
    };
    // Dedup keys under a prefix of this run alone, expiring with the demo.
    let mut redis = cfg.redis.clone();
    redis.key_prefix = format!("{}{name}:", redis.key_prefix);
    redis.dedup_ttl_s = 600;
    let dedup = crate::dedup::RedisDedup::new(&redis, &world.store.installation_id().await?);
    let pipeline = Pipeline::start(PipelineParts::new(
        world.store.clone(),
        bots,
        factory,
        Arc::new(dedup),
        pcfg,
    ))
    .await?;
    if let Some(w) = &world.mtproto {
        w.connect(&pipeline);
    }
    Ok(pipeline)
}

/// The publisher: one round of posts on every channel per second, each
/// followed by its push notice.
fn spawn_publisher(
    world: &World,
    pipeline: &Pipeline,
    channels: u32,
    rounds: u32,
) -> actix_rt::task::JoinHandle<()> {
    let fake = world.fake.clone();
    let pipeline = pipeline.clone();
    let published = world.published.clone();
    let mtproto = world.mtproto.clone();
    actix_rt::spawn(async move {
        for round in 0..rounds {
            let round_start = Instant::now();
            for i in 1..=i64::from(channels) {
                let chat = mtproto.as_ref().map_or(channel_chat(i), |w| w.chat(i));
                let first = publish(&fake, chat, i, round);
                published.lock().expect("not poisoned").push((chat, first));
                // The reader's push notice (an MTProto update) for this channel.
                pipeline.wake(i);
            }
            let rest = Duration::from_secs(1).saturating_sub(round_start.elapsed());
            tokio::time::sleep(rest).await;
        }
    })
}

/// Progress once a second until everything arrived, or nothing moved for
/// 30 s after the publishing ended.
async fn watch_progress(
    args: &DemoArgs,
    world: &World,
    publisher: &actix_rt::task::JoinHandle<()>,
    started: Instant,
    total_expected: u64,
    planned_posts: u64,
) -> anyhow::Result<()> {
    let mut last_progress = (0u64, Instant::now());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let publishing = !publisher.is_finished();
        let report = world.fake.report(&world.expected().await?);
        let stats = world.fake.stats();
        let rate = report.delivered as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "posts {}/{}  deliveries {}/{}  {:.0}/s  429s {}  dup {}",
            world.published.lock().expect("not poisoned").len(),
            planned_posts,
            report.delivered,
            total_expected,
            rate,
            stats.rate_limited_429,
            report.duplicates,
        );
        if !args.json || tty {
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
        }
        if report.delivered > last_progress.0 {
            last_progress = (report.delivered, Instant::now());
        }
        if !publishing && report.delivered >= total_expected {
            return Ok(());
        }
        if !publishing && last_progress.1.elapsed() > Duration::from_secs(30) {
            tracing::warn!("No delivery for 30 s; ending the demo with what arrived.");
            return Ok(());
        }
    }
}

/// Prints the summary for people, or as one JSON line.
pub fn print(summary: &DemoSummary, as_json: bool) {
    if as_json {
        println!("{}", serde_json::to_string(summary).unwrap_or_default());
        return;
    }
    let s = summary;
    println!(
        "kuryer demo — {} channels, {} users, {} subscriptions, {} posts",
        s.channels, s.users, s.subscriptions, s.posts
    );
    println!(
        "  deliveries   {} of {} expected ({} lost, {} duplicates, {} out of order, {} albums split)",
        s.deliveries_sent,
        s.deliveries_expected,
        s.lost,
        s.duplicates,
        s.out_of_order,
        s.albums_split
    );
    println!(
        "  throughput   {:.0} deliveries/s over {:.1} s ({})",
        s.deliveries_per_s,
        s.elapsed_s,
        limits_text(s.limit_scale)
    );
    println!("               {}", throughput_bound(s));
    println!(
        "  latency      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (post published → accepted by the fake Bot API)",
        s.latency_p50_ms, s.latency_p99_ms, s.latency_max_ms
    );
    println!("               {}", latency_bound(s));
    println!("  429s         {}", s.rate_limited_429);
    println!(
        "  registry     loaded in {:.1} ms; {} delivery rows written",
        s.registry_load_ms, s.rows_written
    );
    println!(
        "  memory       peak RSS {:.1} MiB (daemon and fake together)",
        s.peak_rss_mb
    );
}

/// How the limits were set: `--limit-scale 0` is no limits at all, not
/// limits of zero.
pub fn limits_text(scale: f64) -> String {
    if scale > 0.0 {
        format!("Telegram's limits × {scale}")
    } else {
        "no limits".to_owned()
    }
}

/// Deliveries a second the one demo bot may make: Telegram's 30/s × the
/// scale; `None` without limits.
fn bot_cap(scale: f64) -> Option<f64> {
    (scale > 0.0).then_some(30.0 * scale)
}

/// What bounds the throughput figure: the publishing (one post per channel
/// a second) and, with limits, the bot's rate.
pub fn throughput_bound(s: &DemoSummary) -> String {
    let rounds = s.posts / u64::from(s.channels.max(1));
    let publishing = format!(
        "posts are published one per channel a second, so publishing alone takes {rounds} s"
    );
    match bot_cap(s.limit_scale) {
        Some(cap) => format!(
            "bounded by the bot's limit: 1 bot × 30/s × {} = {cap:.0} deliveries/s, so {} deliveries need ≥ {:.1} s; {publishing}",
            s.limit_scale,
            s.deliveries_expected,
            s.deliveries_expected as f64 / cap
        ),
        None => format!(
            "no limits: bounded by this machine (CPU, PostgreSQL) and the fake; {publishing}"
        ),
    }
}

/// What bounds the latency figures: with more deliveries than the bot's
/// rate clears while posts are published, later posts queue behind it.
pub fn latency_bound(s: &DemoSummary) -> String {
    let rounds = (s.posts / u64::from(s.channels.max(1))).max(1) as f64;
    match bot_cap(s.limit_scale) {
        Some(cap) if s.deliveries_expected as f64 / cap > rounds => format!(
            "mostly queueing: deliveries arrive at {:.0}/s while the bot may send {cap:.0}/s, so the last posts wait ≈ {:.0} s behind the limit (lower --posts-per-channel or raise --limit-scale)",
            s.deliveries_expected as f64 / rounds,
            s.deliveries_expected as f64 / cap - rounds
        ),
        Some(cap) => format!(
            "the bot's limit ({cap:.0}/s) keeps up with the publishing: the figures are the pipeline's own delay plus the per-chat spacing"
        ),
        None => "no limits: the figures are the pipeline's own delay under this load".to_owned(),
    }
}
