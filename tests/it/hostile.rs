//! One hostile user hurts no one: their CPU-heavy settings neither stall
//! the daemon's one actor thread (what answers the watchdog) nor another
//! user's deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::NewChannelMessage;

use crate::bot::{TOKEN, World, wait_until};

/// How late the actor thread runs a 10 ms timer, at most, while it runs;
/// the daemon under test shares this thread (`World` runs it in the
/// test's actix system, as `kuryer run` does in its one).
struct LagProbe {
    max_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl LagProbe {
    fn start() -> Self {
        let (max_ms, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (m, s) = (max_ms.clone(), stop.clone());
        actix_rt::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                let late = t.elapsed().saturating_sub(Duration::from_millis(10));
                m.fetch_max(late.as_millis() as u64, Ordering::Relaxed);
            }
        });
        Self { max_ms, stop }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.max_ms.load(Ordering::Relaxed)
    }
}

/// Twenty regex rules whose search costs the most the limits allow (no
/// literal to skip to, a lazy DFA cache too small for them): applying them
/// to a 4,096-character post takes ~300 ms in a debug build (~15 ms
/// release), and each compiles in ~1 ms.
fn heavy_rule(i: usize) -> String {
    format!("re:(?:[a-z]{{1,30}} ?){{1,8}}[{i}0-9] => $1")
}

#[actix_rt::test]
async fn a_hostile_transform_stalls_neither_the_actor_thread_nor_another_users_delivery() {
    const HOSTILE_CH: i64 = -100_724_001;
    const CALM_CH: i64 = -100_724_002;
    const HOSTILE: i64 = 824_001;
    const CALM: i64 = 824_002;
    let w = World::start(
        &[TOKEN],
        &[(HOSTILE_CH, "hostile_feed"), (CALM_CH, "calm_feed")],
        |c| c.limits.bot_commands_per_minute = 10_000,
    )
    .await;
    w.say(TOKEN, HOSTILE, "/start", "en").await;
    w.say(TOKEN, HOSTILE, "/add @hostile_feed", "en").await;
    for i in 0..20 {
        let t = w
            .say(
                TOKEN,
                HOSTILE,
                &format!("/replace @hostile_feed {}", heavy_rule(i)),
                "en",
            )
            .await;
        assert!(t.contains("saved"), "{t}");
    }
    w.say(TOKEN, CALM, "/start", "en").await;
    w.say(TOKEN, CALM, "/add @calm_feed", "en").await;
    // The calm user's path works before the test starts.
    w.fake.post(CALM_CH, NewChannelMessage::text("warm-up"));
    assert!(
        wait_until(Duration::from_secs(20), || w.fake.received(CALM).len() > 2).await,
        "{}",
        w.log()
    );

    let probe = LagProbe::start();
    let text = "abcdefghijklmnopqrstuvwxyzabc ".repeat(140)[..4_096].to_owned();
    let hostile_posts = 8;
    for _ in 0..hostile_posts {
        w.fake
            .post(HOSTILE_CH, NewChannelMessage::text(text.clone()));
    }
    let before = w.fake.received(CALM).len();
    let sent = Instant::now();
    w.fake.post(CALM_CH, NewChannelMessage::text("calm news"));
    let calm = wait_until(Duration::from_secs(30), || {
        w.fake.received(CALM).len() > before
    })
    .await;
    let calm_latency = sent.elapsed();
    let hostile_done = wait_until(Duration::from_secs(60), || {
        w.fake
            .received(HOSTILE)
            .iter()
            .filter(|m| m.text.as_ref().is_some_and(|t| t.len() > 1_000))
            .count()
            >= hostile_posts
    })
    .await;
    let lag = probe.finish();
    assert!(calm && hostile_done, "posts missing:\n{}", w.log());
    eprintln!("actor-thread lag at most {lag} ms; calm delivery {calm_latency:?}");
    // Each hostile delivery's transforms took ~300 ms of the one thread
    // when applied inline.
    assert!(lag < 200, "the actor thread stalled {lag} ms");
    assert!(
        calm_latency < Duration::from_millis(1_500),
        "the calm user's post took {calm_latency:?}"
    );
}
