//! The `abuse` scenario: ordinary users of a public bot with and without one
//! hostile user, in one invocation, against a real `kuryer run` process and
//! the fake Telegram with Telegram's limits and a per-call latency.
//!
//! The ordinary users (1,000 full size) are subscribed to channels whose
//! posts they receive and send ordinary commands (`/help`, `/list`); the
//! hostile user does everything of [`crate::abuse_hostile`] at once. Each of
//! the two runs has a fresh database and a fresh kuryer process with the
//! same ordinary load; reported for the ordinary users: post published →
//! delivered p50/p99, command → reply p50/p99 (and replies in order), and
//! for the process its CPU time, peak RSS, the longest gap between its
//! systemd watchdog pings and its `/healthz` answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kuryer::config::Config;
use kuryer_sim::fake_bot_api::NewChannelMessage;
use kuryer_sim::fixtures;
use serde::Serialize;

use crate::abuse_hostile::{self, HostileCounts, HostileSize};
use crate::abuse_world::{ProcessReading, World, WorldSize};
use crate::load::Percentiles;
use crate::reply_order::{self, Sent};

/// The target: the ordinary users' p99s with the hostile user within this
/// factor of those without.
const TARGET_RATIO: f64 = 1.5;

/// The abuse scenario's own options: how much of the hostile user's
/// attack to leave out, to see which part bounds the ordinary users.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct AbuseArgs {
    /// abuse: groups the hostile user has linked, each subscribed to every
    /// one of their channels (default 45; `--tiny` 5).
    #[arg(long)]
    pub(crate) abuse_groups: Option<u32>,
    /// abuse: how late the hostile user's groups answer each send, ms
    /// (default 2,000; 0: not slow).
    #[arg(long)]
    pub(crate) abuse_slow_ms: Option<u64>,
}

/// The size of the scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AbuseSpec {
    pub(crate) users: u32,
    pub(crate) channels: u32,
    pub(crate) subs: u32,
    /// Posts a second over the ordinary channels (round-robin).
    pub(crate) posts_per_s: f64,
    /// Ordinary commands a second (round-robin over the users).
    pub(crate) commands_per_s: f64,
    pub(crate) seconds: f64,
    /// The fake's latency of every answer but getUpdates' (ms).
    pub(crate) latency_ms: u64,
    /// How long to wait for the last deliveries and replies after the load.
    pub(crate) drain_s: f64,
    pub(crate) hostile: HostileSize,
}

/// The scenario's size, full or `--tiny`.
pub(crate) fn spec(tiny: bool, seconds: Option<f64>, args: &AbuseArgs) -> AbuseSpec {
    let mut spec = default_spec(tiny, seconds);
    if let Some(g) = args.abuse_groups {
        spec.hostile.groups = g;
    }
    if let Some(ms) = args.abuse_slow_ms {
        spec.hostile.slow_ms = ms;
    }
    spec
}

fn default_spec(tiny: bool, seconds: Option<f64>) -> AbuseSpec {
    if tiny {
        AbuseSpec {
            users: 50,
            channels: 10,
            subs: 2,
            posts_per_s: 1.0,
            commands_per_s: 2.0,
            seconds: seconds.unwrap_or(6.0),
            latency_ms: 30,
            drain_s: 30.0,
            hostile: HostileSize {
                channels: 4,
                groups: 5,
                slow_ms: 2_000,
            },
        }
    } else {
        AbuseSpec {
            users: 1_000,
            channels: 100,
            subs: 2,
            // 20 subscribers a channel: 10 deliveries a second, and 4
            // replies, a half of the bot's 30 messages a second.
            posts_per_s: 0.5,
            commands_per_s: 4.0,
            seconds: seconds.unwrap_or(60.0),
            latency_ms: 30,
            drain_s: 120.0,
            hostile: HostileSize {
                channels: 4,
                groups: 45,
                slow_ms: 2_000,
            },
        }
    }
}

/// One run: what the ordinary users saw and what the process did.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct AbuseRun {
    pub(crate) hostile: bool,
    pub(crate) posts: u64,
    pub(crate) deliveries_expected: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    /// Post published at the fake → delivered to an ordinary user (ms).
    pub(crate) delivery: Percentiles,
    pub(crate) commands: u64,
    pub(crate) replies_lost: u64,
    pub(crate) replies_out_of_order: u64,
    /// Command sent → reply recorded by the fake (ms).
    pub(crate) reply: Percentiles,
    pub(crate) process: ProcessReading,
    /// 429s the fake answered (to anyone) during the run.
    pub(crate) rate_limited_429: u64,
    /// The bot's messages the fake accepted during the run, to anyone.
    pub(crate) bot_messages: u64,
    /// What the hostile user did (the run with them).
    pub(crate) hostile_did: Option<HostileCounts>,
}

/// The scenario's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AbuseResult {
    pub(crate) spec: AbuseSpec,
    pub(crate) without: AbuseRun,
    pub(crate) with: AbuseRun,
    /// With ÷ without, of the ordinary users' p99s.
    pub(crate) delivery_p99_ratio: f64,
    pub(crate) reply_p99_ratio: f64,
    /// Both ratios within 1.5, nothing lost, the watchdog never late.
    pub(crate) target_met: bool,
}

/// Runs the scenario: without, then with the hostile user.
pub(crate) async fn run(
    cfg: &Config,
    tiny: bool,
    seconds: Option<f64>,
    args: &AbuseArgs,
) -> anyhow::Result<AbuseResult> {
    let spec = spec(tiny, seconds, args);
    eprintln!(
        "[bench] abuse: {} users × {} subscriptions over {} channels, {} posts/s, {} commands/s, {} s, Telegram's limits, fake latency {} ms; the hostile user: {} channels, {} groups answering after {} ms",
        spec.users,
        spec.subs,
        spec.channels,
        spec.posts_per_s,
        spec.commands_per_s,
        spec.seconds,
        spec.latency_ms,
        spec.hostile.channels,
        spec.hostile.groups,
        spec.hostile.slow_ms
    );
    let without = one_run(cfg, &spec, false)
        .await
        .context("the run without the hostile user")?;
    print_run(&without);
    let with = one_run(cfg, &spec, true)
        .await
        .context("the run with the hostile user")?;
    print_run(&with);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let delivery_p99_ratio = ratio(with.delivery.p99, without.delivery.p99);
    let reply_p99_ratio = ratio(with.reply.p99, without.reply.p99);
    let watchdog_ok = |r: &AbuseRun| {
        r.process.alive && r.process.watchdog_max_gap_ms <= r.process.watchdog_bound_ms
    };
    let target_met = delivery_p99_ratio <= TARGET_RATIO
        && reply_p99_ratio <= TARGET_RATIO
        && with.lost == 0
        && with.replies_lost == 0
        && watchdog_ok(&with)
        && watchdog_ok(&without);
    eprintln!(
        "[bench] abuse: with ÷ without the hostile user: delivery p99 ×{delivery_p99_ratio:.2}, reply p99 ×{reply_p99_ratio:.2} (target ≤ ×{TARGET_RATIO}); target {}",
        if target_met { "met" } else { "MISSED" }
    );
    Ok(AbuseResult {
        spec,
        without,
        with,
        delivery_p99_ratio,
        reply_p99_ratio,
        target_met,
    })
}

fn print_run(r: &AbuseRun) {
    let who = if r.hostile { "with" } else { "without" };
    eprintln!(
        "[bench] abuse {who} the hostile user: {} of {} deliveries ({} lost), p50/p99 {:.0}/{:.0} ms (max {:.0}); {} commands, {} unanswered, {} out of order, reply p50/p99 {:.0}/{:.0} ms (max {:.0})",
        r.delivered,
        r.deliveries_expected,
        r.lost,
        r.delivery.p50,
        r.delivery.p99,
        r.delivery.max,
        r.commands,
        r.replies_lost,
        r.replies_out_of_order,
        r.reply.p50,
        r.reply.p99,
        r.reply.max
    );
    let p = &r.process;
    eprintln!(
        "[bench] abuse {who} the hostile user: the fake accepted {} messages of the bot and answered {} × 429; kuryer CPU {:.1} s, peak RSS {:.0} MiB, watchdog pings {} (longest gap {:.0} ms, bound {:.0}), /healthz {} answered, {} failed, slowest {:.0} ms, alive {}",
        r.bot_messages,
        r.rate_limited_429,
        p.cpu_s,
        p.peak_rss_mib,
        p.watchdog_pings,
        p.watchdog_max_gap_ms,
        p.watchdog_bound_ms,
        p.healthz_answers,
        p.healthz_failures,
        p.healthz_max_ms,
        p.alive
    );
    if let Some(h) = &r.hostile_did {
        eprintln!(
            "[bench] abuse: the hostile user held {} subscriptions and sent {} commands, {} /link guesses, {} posts of 4,096 characters, added the bot to {} channels; {} messages reached their chats",
            h.subscriptions, h.commands, h.link_guesses, h.posts, h.channels_added, h.received
        );
    }
}

/// The ordinary load: posts and commands, as sent.
struct Offered {
    /// (channel, message id, published).
    posts: Vec<(i64, i32, Instant)>,
    commands: Vec<Sent>,
}

/// Posts on the ordinary channels and commands from the ordinary users,
/// each at its rate, for `seconds`, from the calling thread.
fn offer(w: &World, spec: &AbuseSpec) -> Offered {
    let start = Instant::now();
    let post_every = Duration::from_secs_f64(1.0 / spec.posts_per_s);
    let command_every = Duration::from_secs_f64(1.0 / spec.commands_per_s);
    let (mut next_post, mut next_command) = (start, start);
    let (mut posts, mut commands) = (Vec::new(), Vec::new());
    let (mut p, mut c) = (0u64, 0u64);
    let end = start + Duration::from_secs_f64(spec.seconds);
    loop {
        let due = next_post.min(next_command);
        if due >= end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if next_post <= next_command {
            let i = 1 + (p % u64::from(spec.channels)) as i64;
            let chat = fixtures::channel_chat(i);
            let text = format!("Post {p} of channel {i}: ordinary news.");
            let id = w.fake.post(chat, NewChannelMessage::text(text));
            posts.push((chat, id, Instant::now()));
            p += 1;
            next_post += post_every;
        } else {
            let u = (c % u64::from(spec.users)) as u32;
            let round = c / u64::from(spec.users);
            let text = if round.is_multiple_of(2) {
                "/help"
            } else {
                "/list"
            };
            let chat = World::user_chat(u);
            commands.push((chat, text.to_owned(), Instant::now()));
            w.fake
                .user_says(fixtures::bot_token(), chat, text, Some("en"));
            c += 1;
            next_command += command_every;
        }
    }
    Offered { posts, commands }
}

/// Post → delivery latencies (µs) of every expected delivery, and how many
/// are missing.
fn deliveries(w: &World, posts: &[(i64, i32, Instant)]) -> (u64, Vec<u64>, u64) {
    let mut arrived: HashMap<i64, HashMap<(i64, i32), Instant>> = HashMap::new();
    let mut expected = 0u64;
    let mut lat = Vec::new();
    let mut lost = 0u64;
    for (chat, id, at) in posts {
        for dest in w.subscribers.get(chat).map_or(&[][..], Vec::as_slice) {
            expected += 1;
            let got = arrived.entry(*dest).or_insert_with(|| {
                w.fake
                    .received(*dest)
                    .into_iter()
                    .filter_map(|m| m.source.map(|s| (s, m.received_at)))
                    .collect()
            });
            match got.get(&(*chat, *id)) {
                Some(t) => lat.push(t.saturating_duration_since(*at).as_micros() as u64),
                None => lost += 1,
            }
        }
    }
    (expected, lat, lost)
}

/// Deliveries the fake has of `posts` so far (for the drain).
fn delivered_count(w: &World, posts: &[(i64, i32, Instant)]) -> u64 {
    let (_, lat, _) = deliveries(w, posts);
    lat.len() as u64
}

async fn one_run(cfg: &Config, spec: &AbuseSpec, hostile: bool) -> anyhow::Result<AbuseRun> {
    let size = WorldSize {
        channels: spec.channels,
        users: spec.users,
        subs: spec.subs,
        real_limits: true,
        latency: Duration::from_millis(spec.latency_ms),
    };
    let w = std::sync::Arc::new(World::new(cfg, size).await?);
    let out = async {
        let subscriptions = if hostile {
            abuse_hostile::prepare(&w, spec.hostile).await?
        } else {
            0
        };
        let mut kuryer = w.start_kuryer().await?;
        eprintln!(
            "[bench] abuse {} the hostile user: kuryer run is up (log {})",
            if hostile { "with" } else { "without" },
            kuryer.log_path().display()
        );
        let watch = kuryer.watch();
        let attacker = hostile.then(|| {
            let (w, h, s) = (w.clone(), spec.hostile, spec.seconds);
            std::thread::spawn(move || abuse_hostile::attack(&w, h, s))
        });
        let offered = {
            let (w, spec) = (w.clone(), spec.clone());
            crate::load::on_thread(move || offer(&w, &spec)).await?
        };
        let mut hostile_did = match attacker {
            Some(t) => Some(
                t.join()
                    .map_err(|_| anyhow::anyhow!("the hostile thread panicked"))?,
            ),
            None => None,
        };
        // The last deliveries and replies.
        let drained = Instant::now();
        let expected: u64 = offered
            .posts
            .iter()
            .map(|(c, _, _)| w.subscribers.get(c).map_or(0, Vec::len) as u64)
            .sum();
        while drained.elapsed() < Duration::from_secs_f64(spec.drain_s) {
            let replies: usize = {
                let mut chats: Vec<i64> = offered.commands.iter().map(|c| c.0).collect();
                chats.sort_unstable();
                chats.dedup();
                chats
                    .iter()
                    .map(|c| reply_order::replies_in(&w.fake, *c).len())
                    .sum()
            };
            if delivered_count(&w, &offered.posts) >= expected && replies >= offered.commands.len()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let process = kuryer.reading(watch);
        let stats = w.fake.stats();
        let (deliveries_expected, lat, lost) = deliveries(&w, &offered.posts);
        let replies = reply_order::check(&w.fake, &offered.commands);
        if let Some(h) = hostile_did.as_mut() {
            h.subscriptions = subscriptions;
            h.received = abuse_hostile::received(&w, spec.hostile);
        }
        drop(kuryer);
        Ok::<_, anyhow::Error>(AbuseRun {
            hostile,
            posts: offered.posts.len() as u64,
            deliveries_expected,
            delivered: lat.len() as u64,
            lost,
            delivery: Percentiles::of(lat),
            commands: offered.commands.len() as u64,
            replies_lost: replies.lost,
            replies_out_of_order: replies.out_of_order,
            reply: Percentiles::of(replies.latencies_us),
            process,
            rate_limited_429: stats.rate_limited_429,
            bot_messages: stats.messages_received,
            hostile_did,
        })
    }
    .await;
    match std::sync::Arc::try_unwrap(w) {
        Ok(w) => w.finish().await,
        Err(_) => tracing::warn!("the abuse world is still shared; its database stays"),
    }
    out
}
