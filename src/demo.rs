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
use serde_json::json;

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::pipeline::{Pipeline, PipelineConfig, build_bots};
use crate::secret::{Secret, SecretUrl};
use crate::sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, MediaKind, NewChannelMessage};
use crate::sim::source::SimSource;
use crate::store::{Store, migrate};

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

const BOT_TOKEN: &str = "1000001:DEMOdemoDEMOdemoDEMOdemoDEMOdemo";
const FIRST_USER: i64 = 100_000;
const CHANNEL_BASE: i64 = -1_001_000_000_000;

/// The database URL with its database name replaced.
pub fn with_dbname(url: &str, name: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if url.contains("://") => {
            u.set_path(name);
            u.to_string()
        }
        _ => format!("{url} dbname={name}"),
    }
}

/// Peak resident set size of this process, MiB (VmHWM).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the demo; returns its summary (also printed).
pub async fn run(args: &DemoArgs, cfg: &Config) -> anyhow::Result<DemoSummary> {
    let name = format!(
        "kuryer_demo_{}_{}",
        std::process::id(),
        rand::random::<u16>()
    );
    let mut db_cfg = cfg.database.clone();
    db_cfg.url = SecretUrl::new(with_dbname(cfg.database.url.expose(), &name));
    db_cfg.replica_urls.clear();
    migrate::create_database_if_missing(&db_cfg).await?;
    let result = run_in(args, cfg, &db_cfg, &name).await;
    // Drop the throw-away database whatever happened.
    let admin = SecretUrl::new(with_dbname(cfg.database.url.expose(), "postgres"));
    if let Ok((client, conn)) = tokio_postgres::connect(admin.expose(), tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
    result
}

async fn run_in(
    args: &DemoArgs,
    cfg: &Config,
    db_cfg: &crate::config::DatabaseConfig,
    name: &str,
) -> anyhow::Result<DemoSummary> {
    let channels = args.channels.max(1);
    let users = args.users.max(1);
    let subs = args.subs_per_user.clamp(1, channels);
    let posts_per_channel = args.posts_per_channel;
    let store = Store::new(db_cfg)?;
    migrate::apply(&store, migrate::MIGRATIONS).await?;
    store.maintain_partitions(2, 30).await?;

    let pairs = populate(&store, channels, users, subs).await?;
    let subscriptions = pairs.len() as u64;

    // The simulated Telegram.
    let fake_limits = if args.limit_scale > 0.0 {
        FakeLimits::scaled(args.limit_scale)
    } else {
        FakeLimits::off()
    };
    let fake = start_fake(fake_limits, channels, users)?;

    // The pipeline, as `kuryer run` builds it, with the simulated source.
    let mut pcfg = PipelineConfig::from_config(cfg, 1.0);
    let scale = if args.limit_scale > 0.0 {
        args.limit_scale
    } else {
        1e6
    };
    pcfg.limiter = PipelineConfig::from_config(cfg, scale).limiter;
    pcfg.limiter.bots = 1;
    let bots = build_bots(
        &[Secret::new(BOT_TOKEN)],
        &fake.url(),
        Duration::from_secs(15),
    )?;
    let source_fake = fake.clone();
    let factory: SourceFactory =
        Arc::new(move |ch| Box::new(SimSource::new(source_fake.clone(), ch.chat_id)));
    let started = Instant::now();
    // Dedup keys under a prefix of this run alone, expiring with the demo.
    let mut redis = cfg.redis.clone();
    redis.key_prefix = format!("{}{name}:", redis.key_prefix);
    redis.dedup_ttl_s = 600;
    let dedup = crate::dedup::RedisDedup::new(&redis);
    let pipeline = Pipeline::start(store.clone(), bots, factory, Arc::new(dedup), pcfg).await?;
    let registry_load = pipeline.registry_load;

    // The publisher: one round of posts on every channel per second.
    let expected_posts = Arc::new(std::sync::Mutex::new(Vec::<(i64, i32)>::new()));
    let publisher = {
        let fake = fake.clone();
        let pipeline = pipeline.clone();
        let expected_posts = expected_posts.clone();
        actix_rt::spawn(async move {
            for round in 0..posts_per_channel {
                let round_start = Instant::now();
                for i in 1..=i64::from(channels) {
                    let chat = CHANNEL_BASE - i;
                    let first = publish(&fake, chat, i, round);
                    expected_posts
                        .lock()
                        .expect("not poisoned")
                        .push((chat, first));
                    // The reader's push notice (an MTProto update) for this channel.
                    pipeline.wake(i);
                }
                let rest = Duration::from_secs(1).saturating_sub(round_start.elapsed());
                tokio::time::sleep(rest).await;
            }
        })
    };

    // Progress until everything arrived, or nothing moved for 30 s.
    let mut last_progress = (0u64, Instant::now());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let publishing = !publisher.is_finished();
        let expected = expected_list(&pairs, &expected_posts.lock().expect("not poisoned"));
        let report = fake.report(&expected);
        let stats = fake.stats();
        let total_expected = subscriptions * u64::from(posts_per_channel);
        let rate = report.delivered as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let line = format!(
            "posts {}/{}  deliveries {}/{}  {:.0}/s  429s {}  dup {}",
            expected_posts.lock().expect("not poisoned").len(),
            u64::from(posts_per_channel) * u64::from(channels),
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
            break;
        }
        if !publishing && last_progress.1.elapsed() > Duration::from_secs(30) {
            tracing::warn!("No delivery for 30 s; ending the demo with what arrived.");
            break;
        }
    }
    let elapsed = started.elapsed();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let shutdown = pipeline.shutdown(Duration::from_secs(30)).await;
    let expected = expected_list(&pairs, &expected_posts.lock().expect("not poisoned"));
    let report = fake.report(&expected);
    let stats = fake.stats();
    let rows_written = store.sent_deliveries().await?;
    fake.stop();
    store.close();
    if !shutdown.clean {
        tracing::warn!(left = shutdown.left_queued, "Demo shutdown was not clean.");
    }
    let posts = expected_posts.lock().expect("not poisoned").len() as u64;
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

/// Fills an empty, migrated database: `users` users, `channels` resolved
/// channels, each user's private chat subscribed to `subs` distinct
/// channels. Returns every (destination chat, source channel chat) pair.
pub async fn populate(
    store: &Store,
    channels: u32,
    users: u32,
    subs: u32,
) -> Result<Vec<(i64, i64)>, crate::store::StoreError> {
    let subs = subs.clamp(1, channels.max(1));
    let c = store.conn("demo population").await?;
    let op = |source| crate::store::StoreError::Query {
        op: "demo population",
        source,
    };
    c.batch_execute(&format!(
        "INSERT INTO users (telegram_id) SELECT {FIRST_USER} + g FROM generate_series(1, {users}) g;
         INSERT INTO channels (telegram_id, username, title, status)
              SELECT {CHANNEL_BASE} - g, 'demo_channel_' || g, 'Demo channel ' || g, 'active'
                FROM generate_series(1, {channels}) g;
         INSERT INTO destinations (chat_id, kind, owner_user_id)
              SELECT telegram_id, 'private', id FROM users;
         INSERT INTO subscriptions (user_id, channel_id, destination_id)
              SELECT u.id, c.id, d.id
                FROM users u
                JOIN destinations d ON d.owner_user_id = u.id
                CROSS JOIN generate_series(0, {subs} - 1) k
                JOIN channels c ON c.telegram_id = {CHANNEL_BASE} - (((u.id * 31 + k) % {channels}) + 1);
         ANALYZE;"
    ))
    .await
    .map_err(op)?;
    Ok(c.query(
        "SELECT d.chat_id, c.telegram_id FROM subscriptions s
           JOIN destinations d ON d.id = s.destination_id
           JOIN channels c ON c.id = s.channel_id",
        &[],
    )
    .await
    .map_err(op)?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// A fake Telegram knowing the demo's bot, channels and users' chats.
pub fn start_fake(limits: FakeLimits, channels: u32, users: u32) -> std::io::Result<FakeTelegram> {
    let fake = FakeTelegram::start(limits)?;
    fake.add_bot(BOT_TOKEN);
    for i in 1..=i64::from(channels) {
        fake.create_channel(
            channel_chat(i),
            &format!("demo_channel_{i}"),
            &format!("Demo channel {i}"),
        );
    }
    for u in 1..=i64::from(users) {
        fake.create_chat(FIRST_USER + u, ChatKind::Private);
    }
    Ok(fake)
}

/// The demo bot's token (the fake knows it).
pub fn bot_token() -> Secret {
    Secret::new(BOT_TOKEN)
}

/// Telegram chat id of demo channel `i` (1-based); its `channels.id` is `i`.
pub fn channel_chat(i: i64) -> i64 {
    CHANNEL_BASE - i
}

/// Every (destination, channel, post) that must arrive, given the
/// subscription pairs and the posts published so far.
pub fn expected_list(pairs: &[(i64, i64)], posts: &[(i64, i32)]) -> Vec<(i64, i64, i32)> {
    let mut by_channel: std::collections::HashMap<i64, Vec<i32>> = Default::default();
    for (chat, first) in posts {
        by_channel.entry(*chat).or_default().push(*first);
    }
    let mut out = Vec::with_capacity(pairs.len() * 4);
    for (dest, channel) in pairs {
        if let Some(ids) = by_channel.get(channel) {
            for id in ids {
                out.push((*dest, *channel, *id));
            }
        }
    }
    out
}

/// Publishes post `round` on channel `i`: mostly text with entities, some
/// photos with captions, and every fifth an album of three photos.
/// Returns the post's first message id.
pub fn publish(fake: &FakeTelegram, chat: i64, i: i64, round: u32) -> i32 {
    let text = format!("Demo post {round} of channel {i}: news, with a bold start.");
    let bold = json!({"type": "bold", "offset": 0, "length": 4});
    match round % 5 {
        4 => {
            let group = Some(format!("{}{:04}", i, round));
            let mut first = 0;
            for part in 0..3 {
                let id = fake.post(
                    chat,
                    NewChannelMessage {
                        text: (part == 0).then(|| text.clone()),
                        entities: if part == 0 {
                            vec![bold.clone()]
                        } else {
                            vec![]
                        },
                        media: Some(MediaKind::Photo),
                        media_group_id: group.clone(),
                        protected: false,
                    },
                );
                if part == 0 {
                    first = id;
                }
            }
            first
        }
        2 => fake.post(
            chat,
            NewChannelMessage {
                text: Some(text),
                entities: vec![bold],
                media: Some(MediaKind::Photo),
                media_group_id: None,
                protected: false,
            },
        ),
        _ => fake.post(
            chat,
            NewChannelMessage {
                text: Some(text),
                entities: vec![bold],
                media: None,
                media_group_id: None,
                protected: false,
            },
        ),
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
        "  throughput   {:.0} deliveries/s over {:.1} s (limits × {})",
        s.deliveries_per_s, s.elapsed_s, s.limit_scale
    );
    println!(
        "  latency      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (post published → accepted by the fake Bot API)",
        s.latency_p50_ms, s.latency_p99_ms, s.latency_max_ms
    );
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
