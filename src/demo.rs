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
    // The error of a failed connection may hold the URL: name only the key.
    let db = ThrowawayDb::create(cfg.database.url.expose(), "kuryer_demo")
        .await
        .map_err(|e| anyhow::anyhow!("creating the demo's database (database.url): {e}"))?;
    let mut db_cfg = cfg.database.clone();
    db_cfg.url = SecretUrl::new(db.url().to_owned());
    db_cfg.replica_urls.clear();
    let result = run_in(args, cfg, &db_cfg, db.name()).await;
    // Drop the throw-away database whatever happened.
    db.drop_now().await;
    result
}

async fn run_in(
    args: &DemoArgs,
    cfg: &Config,
    db_cfg: &DatabaseConfig,
    name: &str,
) -> anyhow::Result<DemoSummary> {
    let channels = args.channels.max(1);
    let users = args.users.max(1);
    let subs = args.subs_per_user.clamp(1, channels);
    let posts_per_channel = args.posts_per_channel;
    let store = Store::open(db_cfg, Open::fresh()).await?.store;

    let pairs = populate(
        &*store.conn("demo population").await?,
        channels,
        users,
        subs,
    )
    .await?;
    let subscriptions = pairs.len() as u64;

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
    let mtproto = mtproto.map(Arc::new);

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
        &[Secret::new(bot_token())],
        &fake.url(),
        Duration::from_secs(15),
    )?;
    let source_fake = fake.clone();
    let factory: SourceFactory = match &mtproto {
        Some(w) => w.factory(),
        None => Arc::new(move |ch| Box::new(SimSource::new(source_fake.clone(), ch.chat_id))),
    };
    let started = Instant::now();
    // Dedup keys under a prefix of this run alone, expiring with the demo.
    let mut redis = cfg.redis.clone();
    redis.key_prefix = format!("{}{name}:", redis.key_prefix);
    redis.dedup_ttl_s = 600;
    let dedup = crate::dedup::RedisDedup::new(&redis, &store.installation_id().await?);
    let pipeline = Pipeline::start(PipelineParts::new(
        store.clone(),
        bots,
        factory,
        Arc::new(dedup),
        pcfg,
    ))
    .await?;
    let registry_load = pipeline.registry_load;
    if let Some(w) = &mtproto {
        w.connect(&pipeline);
    }

    // The publisher: one round of posts on every channel per second.
    let expected_posts = Arc::new(std::sync::Mutex::new(Vec::<(i64, i32)>::new()));
    let publisher = {
        let fake = fake.clone();
        let pipeline = pipeline.clone();
        let expected_posts = expected_posts.clone();
        let mtproto = mtproto.clone();
        actix_rt::spawn(async move {
            for round in 0..posts_per_channel {
                let round_start = Instant::now();
                for i in 1..=i64::from(channels) {
                    let chat = mtproto.as_ref().map_or(channel_chat(i), |w| w.chat(i));
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
        let expected = match &mtproto {
            Some(w) => w.relayed(&store, expected).await?,
            None => expected,
        };
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
    let expected = match &mtproto {
        Some(w) => w.relayed(&store, expected).await?,
        None => expected,
    };
    if let Some(w) = &mtproto {
        if !args.json {
            eprintln!(
                "reader accounts 3, channels polled past their join capacity {}",
                w.polled(&store).await
            );
        }
        w.stop().await;
    }
    let mut report = fake.report(&expected);
    if let Some(w) = &mtproto {
        report.out_of_order = w.out_of_order(&fake, &expected);
    }
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
