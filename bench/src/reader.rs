//! The reader scenario: the real pipeline reading channels with the MTProto
//! reader (grammers, `src/reader/`) from the fake data centre over TCP, at
//! the fake's Telegram-like limits (`MtprotoConfig::telegram_like`: look-ups
//! and joins escalating by the day and the hour, per-account access hashes)
//! with `messages.getHistory` held to the publicly reported ~10 calls per
//! 30 s an account, and kuryer's own daily budgets (`reader.resolves_per_day`,
//! `reader.joins_*`) as configured, not raised; the set-up is the demo's
//! (`kuryer::demo_mtproto`).
//!
//! - **steady state**: posts published at a steady rate on random channels;
//!   publish → post row committed (a `pg_notify` from a trigger on `posts`,
//!   delivered at commit, heard on a thread of its own), CPU of kuryer's
//!   thread per post, peak RSS, calls per account per minute by method as
//!   the fake counted them, flood waits (0 expected).
//! - **catch-up**: the pipeline and pool stopped, posts published on the
//!   catch-up channels while down (more than two history pages each),
//!   started again: time until every one is recorded, whether each
//!   channel's posts were recorded in order, the calls the restart made.
//! - **projection**: what the daily budgets allow when the channels are not
//!   joined yet — look-ups and joins per account per day, and the days
//!   until every channel is read and joined (computed from the budgets;
//!   the fake's day-long limits cannot be waited out in a bench).
//!
//! Accounts start already joined (`ReaderWorld::preassign`: members in the
//! fake, assignments in the database, each account's own access hashes):
//! with the daily budgets, joining would take weeks (the projection).
//! Channels past the
//! pre-joined ones are assigned to the last accounts, not joined: they are
//! polled with getHistory while that account's joiner joins them at its
//! pace. Each channel has one subscriber (channels are polled only while
//! someone subscribes), so each post is also sent once, to a fake Bot API in
//! a process of its own, limits off: sending is part of the CPU figure, not
//! of the latency (measured at the post's commit, before any send).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuryer::config::Config;
use kuryer::dedup::RedisDedup;
use kuryer::demo_mtproto::{ReaderWorld, Wake};
use kuryer::pipeline::{Pipeline, PipelineConfig, PipelineParts};
use kuryer::reader::ReaderPool;
use kuryer::secret::Secret;
use kuryer::store::{Open, Store};
use kuryer::telegram::build_bots;
use kuryer_actors::ports::SourceFactory;
use kuryer_sim::fixtures;
use kuryer_sim::mtproto::{FloodLimit, MtprotoConfig};
use kuryer_sim::process::{FakeProcess, FakeSpec};
use serde::{Deserialize, Serialize};

use crate::mtproto_fake::thread_cpu_seconds;
use crate::reader_observer::{Heard, TRIGGER, observe, wait_recorded};
use crate::reader_result::{CallRate, Latency, Projection, ReaderResult};
use crate::util::{BenchDb, cpu_seconds, reset_peak_rss};

/// The restart with posts waiting (`Bench::catch_up`).
mod catch_up;
#[cfg(test)]
mod tests;

/// The size of one reader run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReaderSpec {
    /// Label in the report.
    pub(crate) label: String,
    /// Channels.
    pub(crate) channels: u32,
    /// Reader accounts.
    pub(crate) accounts: u32,
    /// Channels joined before the start (filled account by account, at
    /// most `max_per_account` each, balanced); the rest are assigned to
    /// the remaining accounts, not joined (polled).
    pub(crate) joined: u32,
    /// `reader.max_channels_per_account`.
    pub(crate) max_per_account: u32,
    /// `reader.history_per_second`.
    pub(crate) history_per_second: f64,
    /// `reader.poll_interval_s`.
    pub(crate) poll_interval_s: u64,
    /// `delivery.poll_max_interval_ms` (a quiet poller's longest sleep;
    /// polled channels wait for it too). `None`: the configured one.
    pub(crate) poll_max_interval_ms: Option<u64>,
    /// Posts published in the steady state.
    pub(crate) posts: u32,
    /// Their rate (posts a second, over all channels).
    pub(crate) rate: f64,
    /// Catch-up: channels posted to while the pipeline is down (0: none).
    pub(crate) catch_up_channels: u32,
    /// Catch-up: posts on each.
    pub(crate) catch_up_posts: u32,
    /// Catch-up: the fake's getHistory limit lowered to this many calls an
    /// account a second, below the reader's own pace, so that its flood
    /// waits happen and are seen obeyed (the tiny run; `None`: unchanged).
    pub(crate) catch_up_history_limit: Option<u32>,
    /// The fake's `messages.getHistory` limit: this many calls an account
    /// in any window of `history_limit_per_s` seconds.
    pub(crate) history_limit_calls: u32,
    /// Its window (s).
    pub(crate) history_limit_per_s: u64,
}

/// Runs one reader measurement in a database of its own.
pub(crate) async fn run(spec: &ReaderSpec, cfg: &Config) -> anyhow::Result<ReaderResult> {
    let db = BenchDb::create(cfg, "reader").await?;
    let out = run_in(spec, cfg, &db).await;
    db.drop_db().await;
    out
}

/// The fake's limits: Telegram-like, with getHistory at the spec's limit.
/// "About 10 calls per 30 s" of `messages.getHistory` an account is the
/// public report the faithful fake follows (no Telegram document gives
/// the figure); the tiny run scales the window down to keep CI fast.
fn dc_config(spec: &ReaderSpec) -> MtprotoConfig {
    faithful_dc(spec.history_limit_calls, spec.history_limit_per_s)
}

/// `MtprotoConfig::telegram_like` with `messages.getHistory` at `calls` an
/// account in any `per_s` seconds.
pub(crate) fn faithful_dc(calls: u32, per_s: u64) -> MtprotoConfig {
    let mut c = MtprotoConfig::telegram_like();
    c.flood_limits.insert(
        "messages.getHistory".to_owned(),
        FloodLimit {
            max_calls: calls,
            per: Duration::from_secs(per_s),
        },
    );
    c
}

/// getHistory pages the fake answered, by channel id, over all accounts.
fn pages_by_channel(world: &ReaderWorld) -> std::collections::HashMap<i64, u64> {
    let mut out = std::collections::HashMap::new();
    for &a in &world.accounts {
        for (ch, n) in world.dc.stats(a).history_pages {
            *out.entry(ch).or_default() += n;
        }
    }
    out
}

/// The fake's calls and flood waits per account and method.
type Snapshot = Vec<BTreeMap<String, (u64, u64, u64)>>;

/// The fake's calls, flood waits and calls during a flood wait, per account and method, now.
fn snapshot(world: &ReaderWorld) -> Snapshot {
    world
        .accounts
        .iter()
        .map(|&a| {
            world
                .dc
                .stats(a)
                .methods
                .into_iter()
                .map(|(m, s)| {
                    let floods = s
                        .errors
                        .iter()
                        .filter(|(e, _)| e.starts_with("FLOOD_WAIT"))
                        .map(|(_, n)| *n)
                        .sum();
                    (m, (s.calls, floods, s.calls_during_flood_wait))
                })
                .collect()
        })
        .collect()
}

/// Per method: (calls per account between the snapshots, flood waits, early calls).
fn delta(a: &Snapshot, b: &Snapshot) -> BTreeMap<String, (Vec<u64>, u64, u64)> {
    let mut out: BTreeMap<String, (Vec<u64>, u64, u64)> = BTreeMap::new();
    let n = b.len();
    for (i, acc) in b.iter().enumerate() {
        for (m, &(calls, floods, early)) in acc {
            let (c0, f0, e0) = a[i].get(m).copied().unwrap_or_default();
            let e = out.entry(m.clone()).or_insert_with(|| (vec![0; n], 0, 0));
            e.0[i] = calls - c0;
            e.1 += floods - f0;
            e.2 += early - e0;
        }
    }
    out
}

/// CPU seconds of kuryer (the process without the fake's, the publisher's and the observer's threads) and of the fake.
fn kuryer_cpu() -> (f64, f64) {
    let fake = thread_cpu_seconds("fake-mtproto") + thread_cpu_seconds("fake-publisher");
    let other = thread_cpu_seconds("bench-observer");
    (cpu_seconds() - fake - other, fake)
}

/// The process's resident memory now (MiB).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The pool and the pipeline over it, started as `kuryer run` starts them.
struct Running {
    pool: ReaderPool,
    pipeline: Pipeline,
}

/// Starts the reader pool and the pipeline over it, events queued until the pipeline exists.
async fn start(
    store: &Store,
    rcfg: &Config,
    fake_url: &str,
    dedup: &Arc<RedisDedup>,
) -> anyhow::Result<Running> {
    // Events wait in the queue until the pipeline exists, as in `kuryer run`.
    let (events, inbox) = kuryer::source_events::queue();
    let pool = ReaderPool::start(store.clone(), rcfg, "kuryer-bench".to_owned(), events).await;
    let factory: SourceFactory = {
        let pool = pool.clone();
        Arc::new(move |ch| Box::new(pool.source(ch)))
    };
    let bots = build_bots(
        &[Secret::new(fixtures::nth_bot_token(0))],
        fake_url,
        Duration::from_secs(15),
    )?;
    // The sending side unlimited (limits off, as the fake's): the one
    // delivery a post never queues behind a per-chat limit.
    let mut pcfg = PipelineConfig::from_config(rcfg, 1.0);
    pcfg.limiter = PipelineConfig::from_config(rcfg, 1e6).limiter;
    pcfg.limiter.bots = 1;
    let dedup: Arc<dyn kuryer_actors::ports::Dedup> = dedup.clone();
    let pipeline = Pipeline::start(PipelineParts::new(
        store.clone(),
        bots,
        factory,
        dedup,
        pcfg,
    ))
    .await?;
    actix_rt::spawn(inbox.deliver(Arc::new(Wake(pipeline.clone()))));
    Ok(Running { pool, pipeline })
}

impl Running {
    /// Shuts the pipeline down, then closes the pool.
    async fn stop(self) {
        self.pipeline.shutdown(Duration::from_secs(30)).await;
        self.pool.close().await;
    }
}

/// Which channel rows are joined at the start, by which account.
fn plan(spec: &ReaderSpec) -> Vec<(i64, usize, bool)> {
    let accounts = spec.accounts.max(1) as usize;
    let max = spec.max_per_account.max(1) as usize;
    let joined = (spec.joined.min(spec.channels)) as usize;
    // With nothing left to poll the joined channels spread over every
    // account, as the pool assigns them (least loaded first); otherwise
    // accounts are filled to capacity and the rest poll.
    let filled = if joined == spec.channels as usize {
        accounts.min(joined.max(1))
    } else {
        joined.div_ceil(max).clamp(1, accounts)
    };
    let share = joined.div_ceil(filled).min(max);
    let rest = accounts - filled;
    (0..spec.channels as usize)
        .map(|i| {
            let ch = i as i64 + 1;
            if i < joined {
                (ch, (i / share).min(filled - 1), true)
            } else if rest > 0 {
                (ch, filled + (i - joined) % rest, false)
            } else {
                (ch, (i - joined) % accounts, false)
            }
        })
        .collect()
}

/// A reader run's world: the database, the fakes, the observer and the
/// configuration the pool and the pipeline start with.
struct Bench<'a> {
    /// The run's size.
    spec: &'a ReaderSpec,
    /// The run's database.
    store: Store,
    /// The fake Bot API, in a process of its own.
    bot_api: FakeProcess,
    /// The fake data centre, its channels and accounts.
    world: Arc<ReaderWorld>,
    /// Channel rows polled at the start (assigned, not joined).
    polled_rows: HashSet<i64>,
    /// The configuration `kuryer run` would read, sized by the spec.
    rcfg: Config,
    /// Post commits as the observer heard them.
    heard: Arc<Mutex<Heard>>,
    /// Stops the observer thread.
    stop_observer: std::sync::mpsc::Sender<()>,
    /// The dedup store, keyed under the run's own prefix.
    dedup: Arc<RedisDedup>,
    /// The run's Redis key prefix, dropped at the end.
    redis_prefix: String,
}

/// Sets up, measures the first reads, the steady state and the catch-up, and tears down.
async fn run_in(spec: &ReaderSpec, cfg: &Config, db: &BenchDb) -> anyhow::Result<ReaderResult> {
    let (bench, mut out) = Bench::set_up(spec, cfg, db).await?;
    out.projection = Projection::of(spec.channels, spec.accounts, &bench.rcfg.reader);
    out.history_limit = (spec.history_limit_calls, spec.history_limit_per_s);
    let whole0 = snapshot(&bench.world);

    // Start; every channel's first read is a getHistory from its mark.
    reset_peak_rss();
    let t0 = Instant::now();
    let running = bench.start().await?;
    bench.wait_first_reads(t0).await?;
    out.first_reads_s = t0.elapsed().as_secs_f64();
    // Let the last answers be recorded and the pollers settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    bench.steady_state(&mut out).await?;

    // Catch-up: down, posts published, up again.
    let running = if spec.catch_up_channels > 0 {
        running.stop().await;
        bench.catch_up(&mut out).await?
    } else {
        running
    };
    out.peak_rss_mb = kuryer_sim::peak_rss_mb();

    running.stop().await;
    record_whole_run(&mut out, &delta(&whole0, &snapshot(&bench.world)));
    bench.tear_down(cfg).await?;
    Ok(out)
}

impl<'a> Bench<'a> {
    /// Populates the database, starts the fakes and the observer, and fills the result's set-up figures.
    async fn set_up(
        spec: &'a ReaderSpec,
        cfg: &Config,
        db: &BenchDb,
    ) -> anyhow::Result<(Self, ReaderResult)> {
        let setup = Instant::now();
        let store = Store::open(&db.cfg, Open::fresh()).await?.store;
        {
            let c = store.conn("bench reader population").await?;
            // One subscriber a channel (31·u mod n covers every channel).
            fixtures::populate(&c, spec.channels, spec.channels, 1).await?;
            c.batch_execute(TRIGGER)
                .await
                .context("the commit trigger")?;
        }
        // The Bot API face, for the one delivery a post, in a process of its own.
        let bot_api = crate::util::spawn_fake(&FakeSpec {
            limit_scale: 0.0,
            channels: spec.channels,
            users: spec.channels,
            no_mtproto: true,
            ..FakeSpec::default()
        })?;
        let world = Arc::new(
            ReaderWorld::create(&store, None, dc_config(spec), spec.channels, spec.accounts)
                .await?,
        );
        let assignments = plan(spec);
        world.preassign(&store, &assignments).await?;
        let polled_rows: HashSet<i64> = assignments.iter().filter(|a| !a.2).map(|a| a.0).collect();
        let rcfg = reader_config(&world, cfg, spec);
        let heard = Arc::new(Mutex::new(Heard::default()));
        let stop_observer = observe(db.cfg.url.expose().to_owned(), Arc::clone(&heard))?;
        let mut redis = cfg.redis.clone();
        redis.key_prefix = format!("{}{}:", redis.key_prefix, db.name());
        redis.dedup_ttl_s = 600;
        let dedup = Arc::new(RedisDedup::new(&redis, &store.installation_id().await?));
        let out = ReaderResult {
            label: spec.label.clone(),
            channels: spec.channels,
            accounts: spec.accounts,
            joined: spec.channels - polled_rows.len() as u32,
            polled: polled_rows.len() as u32,
            history_per_second: spec.history_per_second,
            poll_interval_s: spec.poll_interval_s,
            setup_s: setup.elapsed().as_secs_f64(),
            rss_before_mb: rss_mb(),
            ..ReaderResult::default()
        };
        let bench = Self {
            spec,
            store,
            bot_api,
            world,
            polled_rows,
            rcfg,
            heard,
            stop_observer,
            dedup,
            redis_prefix: redis.key_prefix,
        };
        Ok((bench, out))
    }

    /// Channels the busiest account reads: its first reads take that many
    /// of its getHistory turns.
    fn busiest(&self) -> f64 {
        let mut per = std::collections::HashMap::new();
        for (_, account, _) in plan(self.spec) {
            *per.entry(account).or_insert(0u32) += 1;
        }
        f64::from(per.values().copied().max().unwrap_or(0))
    }

    /// Starts the pool and the pipeline on the run's world.
    async fn start(&self) -> anyhow::Result<Running> {
        start(&self.store, &self.rcfg, &self.bot_api.bot_api, &self.dedup).await
    }

    /// Waits until every channel had its first getHistory, or fails past twice the accounts' pace plus a minute.
    async fn wait_first_reads(&self, t0: Instant) -> anyhow::Result<()> {
        let spec = self.spec;
        let first_reads_limit =
            Duration::from_secs_f64(self.busiest() / spec.history_per_second * 2.0 + 60.0);
        loop {
            // Channels with at least one page read (verification reads of
            // channels read early do not count for the others).
            let pages = pages_by_channel(&self.world);
            let reads = self
                .world
                .channels
                .iter()
                .filter(|c| pages.get(&c.id).is_some_and(|&n| n > 0))
                .count() as u64;
            if reads >= u64::from(spec.channels) {
                return Ok(());
            }
            anyhow::ensure!(
                t0.elapsed() < first_reads_limit,
                "first reads: {reads} of {} channels after {:.0} s",
                spec.channels,
                t0.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes the steady posts, waits for their commits and fills the window, latency, CPU and call figures.
    async fn steady_state(&self, out: &mut ReaderResult) -> anyhow::Result<()> {
        let s0 = snapshot(&self.world);
        let (cpu0, fake0) = kuryer_cpu();
        let w0 = Instant::now();
        let published = self.publish_steady().await?;
        let keys: Vec<(i64, i32)> = published.iter().map(|p| p.0).collect();
        // Polled channels are read every poll_interval_s (and their poller's
        // interval): wait for them, or until nothing moved for that long twice.
        // A polled channel's turn also waits for its account's getHistory
        // pace over all its polled channels (at most all on one account).
        let round = self.polled_rows.len() as f64 / self.spec.history_per_second;
        let patience = Duration::from_secs(self.spec.poll_interval_s * 2 + 40)
            + Duration::from_millis(self.rcfg.delivery.poll_max_interval_ms)
            + Duration::from_secs_f64(round);
        wait_recorded(&self.heard, &keys, patience).await;
        let s1 = snapshot(&self.world);
        let (cpu1, fake1) = kuryer_cpu();
        let last_commit = {
            let h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().filter_map(|k| h.at.get(k)).max().copied()
        };
        out.window_s = last_commit
            .map_or_else(|| w0.elapsed(), |t| t.duration_since(w0))
            .as_secs_f64();
        let minutes = (w0.elapsed().as_secs_f64() / 60.0).max(1e-9);
        self.record_latencies(out, &published);
        out.cpu_us_per_post = (cpu1 - cpu0) * 1e6 / (out.posts.max(1) as f64);
        out.fake_cpu_s = fake1 - fake0;
        record_calls(out, &delta(&s0, &s1), minutes);
        Ok(())
    }

    /// Publishes the steady posts at the spec's rate on a thread of its own; returns each post and when it was published.
    async fn publish_steady(&self) -> anyhow::Result<Vec<((i64, i32), Instant)>> {
        let world = Arc::clone(&self.world);
        let spec = self.spec;
        let (posts, rate, channels) = (spec.posts, spec.rate.max(0.1), spec.channels);
        let publisher = std::thread::Builder::new()
            .name("fake-publisher".to_owned())
            .spawn(move || {
                let start = Instant::now();
                let mut published = Vec::with_capacity(posts as usize);
                for k in 0..u64::from(posts) {
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    // Spread over the channels, not in order.
                    let row = (k * 7919 % u64::from(channels)) as i64 + 1;
                    let ch = world.channels[(row - 1) as usize];
                    let at = Instant::now();
                    let id = world.dc.publish_text(ch, &format!("Bench post {k}"));
                    published.push(((row, id), at));
                }
                published
            })?;
        while !publisher.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        publisher
            .join()
            .map_err(|_| anyhow::anyhow!("the publisher panicked"))
    }

    /// Fills the steady counts and the joined and polled latencies from the commits heard.
    fn record_latencies(&self, out: &mut ReaderResult, published: &[((i64, i32), Instant)]) {
        let h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let (mut joined, mut polled) = (Vec::new(), Vec::new());
        for (k, at) in published {
            if let Some(t) = h.at.get(k) {
                let ms = t.duration_since(*at).as_secs_f64() * 1000.0;
                if self.polled_rows.contains(&k.0) {
                    polled.push(ms);
                } else {
                    joined.push(ms);
                }
            }
        }
        out.posts = published.len() as u64;
        out.recorded = (joined.len() + polled.len()) as u64;
        out.lost = out.posts - out.recorded;
        out.duplicates = h.twice;
        out.latency_joined = Latency::of(joined);
        out.latency_polled = Latency::of(polled);
    }

    /// Stops the observer and the fakes, closes the store and drops the run's Redis keys.
    async fn tear_down(self, cfg: &Config) -> anyhow::Result<()> {
        let _ = self.stop_observer.send(());
        self.world.dc.stop();
        self.bot_api.quit().await;
        self.store.close();
        crate::pipeline_run::drop_redis_keys(cfg, &self.redis_prefix).await
    }
}

/// The reader's configuration: the world's, with the spec's account capacity, pace and poll intervals.
fn reader_config(world: &ReaderWorld, cfg: &Config, spec: &ReaderSpec) -> Config {
    let mut rcfg = world.reader_config(cfg);
    // kuryer's own daily budgets, as configured (the demo's world raises
    // them: its data centre has no day-long limits, this bench's has).
    rcfg.reader.resolves_per_day = cfg.reader.resolves_per_day;
    rcfg.reader.joins_first_day = cfg.reader.joins_first_day;
    rcfg.reader.joins_per_day = cfg.reader.joins_per_day;
    rcfg.reader.join_ramp_days = cfg.reader.join_ramp_days;
    rcfg.reader.max_channels_per_account = spec.max_per_account;
    rcfg.reader.history_per_second = spec.history_per_second;
    rcfg.reader.poll_interval_s = spec.poll_interval_s;
    if let Some(ms) = spec.poll_max_interval_ms {
        rcfg.delivery.poll_max_interval_ms = ms;
    }
    rcfg
}

/// Fills the whole run's flood waits, calls during a wait and the busiest
/// account's look-ups and joins from the call deltas of the whole run.
fn record_whole_run(out: &mut ReaderResult, d: &BTreeMap<String, (Vec<u64>, u64, u64)>) {
    let busiest = |m: &str| {
        d.get(m)
            .map_or(0, |v| v.0.iter().copied().max().unwrap_or(0))
    };
    out.run_resolves_max = busiest("contacts.resolveUsername");
    out.run_joins_max = busiest("channels.joinChannel");
    out.run_flood_waits = d.values().map(|v| v.1).sum();
    out.run_calls_during_flood_wait = d.values().map(|v| v.2).sum();
}

/// Fills the calls per account per minute by method and the flood-wait counts from the window's call deltas.
fn record_calls(out: &mut ReaderResult, d: &BTreeMap<String, (Vec<u64>, u64, u64)>, minutes: f64) {
    for (m, (per_account, floods, early)) in d {
        let n = per_account.len().max(1) as f64;
        out.calls.insert(
            m.clone(),
            CallRate {
                mean_per_min: per_account.iter().sum::<u64>() as f64 / n / minutes,
                max_per_min: per_account.iter().copied().max().unwrap_or(0) as f64 / minutes,
                flood_waits: *floods,
            },
        );
        out.flood_waits += floods;
        out.calls_during_flood_wait += early;
    }
}
