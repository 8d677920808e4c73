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

fn get_chats(w: &World) -> u64 {
    w.fake
        .stats()
        .per_method
        .get("getChat")
        .copied()
        .unwrap_or(0)
}

/// `/add` with 20 made-up names costs 20 commands, not one: at 30 a minute
/// (bursts of 10) Telegram is asked about 10 of them, and the next command
/// is over the limit. A name found to be no one is not asked about again.
#[actix_rt::test]
async fn each_name_add_asks_about_costs_a_command_and_missing_names_are_remembered() {
    let w = World::start(&[TOKEN], &[], |c| c.limits.bot_commands_per_minute = 30).await;
    let u = 824_101;
    w.say(TOKEN, u, "/start", "en").await;
    let before = get_chats(&w);
    let names: Vec<String> = (0..20).map(|i| format!("@made_up_name_{i}")).collect();
    let t = w
        .say(TOKEN, u, &format!("/add {}", names.join(" ")), "en")
        .await;
    let asked = get_chats(&w) - before;
    // /start took one token, /add one: nine left for the other names.
    assert!(asked <= 10, "{asked} getChat calls:\n{t}");
    assert!(t.contains("were not checked"), "{t}");
    assert!(t.contains("no such channel"), "{t}");
    let t = w.say(TOKEN, u, "/list", "en").await;
    assert!(t.contains("Too many commands"), "{t}");

    // Another user adds a name already found missing: no call.
    let v = 824_102;
    w.say(TOKEN, v, "/start", "en").await;
    let before = get_chats(&w);
    let t = w.say(TOKEN, v, "/add @made_up_name_0", "en").await;
    assert!(t.contains("no such channel"), "{t}");
    assert_eq!(get_chats(&w), before, "asked again: {t}");
}

/// `/cmd@other_bot` in a group is another bot's: ours says nothing. Named
/// for ours (`@fake5151_bot`, the fake's name for it), it answers.
#[actix_rt::test]
async fn a_command_naming_another_bot_is_not_answered() {
    use kuryer_sim::fake_bot_api::ChatKind;
    let w = World::start(&[TOKEN], &[], |_| {}).await;
    let u = 824_201;
    let group = -900_824;
    w.say(TOKEN, u, "/start", "en").await;
    let before = w.replies(group).len();
    w.fake
        .add_bot_to_chat(TOKEN, group, ChatKind::Supergroup, u, false);
    w.next_reply(group, before).await; // the hint to send /link
    let before = w.replies(group).len();
    w.fake.user_says_in(TOKEN, group, u, "/link@other_bot");
    w.fake.user_says_in(TOKEN, group, u, "/add@fake5151_bot @x");
    let t = w.next_reply(group, before).await.text.unwrap_or_default();
    assert!(t.contains("/link"), "{t}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.replies(group).len(),
        before + 1,
        "answered another bot's command"
    );
}

/// A 429 on one user's reply is not waited out where updates are handled:
/// the next user's command is answered at once, and the first reply still
/// arrives once Telegram allows it.
#[actix_rt::test]
async fn a_rate_limited_reply_holds_no_one_else() {
    use kuryer_sim::fake_bot_api::Fault;
    let w = World::start(&[TOKEN], &[], |_| {}).await;
    let (a, b) = (824_301, 824_302);
    w.say(TOKEN, a, "/start", "en").await;
    w.say(TOKEN, b, "/start", "en").await;
    w.fake
        .set_fault(a, Fault::TooManyRequests { retry_after: 3 }, Some(1));
    let before_a = w.replies(a).len();
    w.fake.user_says(TOKEN, a, "/help", Some("en"));
    // The update loop reaches b's command only after a's is handled.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    w.say(TOKEN, b, "/help", "en").await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(2_000),
        "b waited {waited:?} behind a's 429"
    );
    w.next_reply(a, before_a).await;
}

/// Updates of different chats are handled at once: a command waiting on a
/// slow `getChat` holds up no one else's in the same batch. (A first slow
/// command keeps the loop busy while the two others arrive, so they come
/// in one `getUpdates` answer.)
#[actix_rt::test]
async fn a_slow_command_does_not_hold_another_chats_command_in_the_same_batch() {
    use kuryer_sim::fake_bot_api::Fault;
    const SLOW_A: i64 = -100_724_501;
    const SLOW_B: i64 = -100_724_502;
    let w = World::start(
        &[TOKEN],
        &[(SLOW_A, "slow_first"), (SLOW_B, "slow_second")],
        |_| {},
    )
    .await;
    let (c, a, b) = (824_501, 824_502, 824_503);
    for u in [c, a, b] {
        w.say(TOKEN, u, "/start", "en").await;
    }
    w.fake
        .set_fault(SLOW_A, Fault::Slow(Duration::from_millis(1_000)), None);
    w.fake
        .set_fault(SLOW_B, Fault::Slow(Duration::from_millis(3_000)), None);
    let (before_a, before_b) = (w.replies(a).len(), w.replies(b).len());
    w.fake.user_says(TOKEN, c, "/add @slow_first", Some("en"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.fake.user_says(TOKEN, a, "/add @slow_second", Some("en"));
    w.fake.user_says(TOKEN, b, "/help", Some("en"));
    w.next_reply(b, before_b).await;
    assert_eq!(
        w.replies(a).len(),
        before_a,
        "b's /help waited for a's slow /add"
    );
    w.next_reply(a, before_a).await;
}

/// Nor its later ones: the loop fetches the next `getUpdates` answer while
/// a slow command is still at work, so another user's commands sent after
/// it are answered at once, while the slow user's own next command waits
/// its turn behind it (a chat's updates in order).
#[actix_rt::test]
async fn a_slow_command_does_not_hold_another_chats_later_commands() {
    use kuryer_sim::fake_bot_api::Fault;
    const SLOW: i64 = -100_724_601;
    let w = World::start(&[TOKEN], &[(SLOW, "slow_later")], |_| {}).await;
    let (a, b) = (824_601, 824_602);
    for u in [a, b] {
        w.say(TOKEN, u, "/start", "en").await;
    }
    w.fake
        .set_fault(SLOW, Fault::Slow(Duration::from_millis(4_000)), None);
    let before_a = w.replies(a).len();
    let slow_started = Instant::now();
    w.fake.user_says(TOKEN, a, "/add @slow_later", Some("en"));
    // a's /add is at work: its getUpdates answer is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.fake.user_says(TOKEN, a, "/help", Some("en"));
    let mut help = String::new();
    for round in 0..3 {
        let started = Instant::now();
        help = w.say(TOKEN, b, "/help", "en").await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(1_000),
            "round {round}: b's /help waited {waited:?} behind a's slow /add"
        );
    }
    assert!(
        slow_started.elapsed() < Duration::from_millis(4_000),
        "the test was too slow to tell"
    );
    assert_eq!(
        w.replies(a).len(),
        before_a,
        "a's /help went before its /add"
    );
    let first = w.next_reply(a, before_a).await.text.unwrap_or_default();
    assert_ne!(first, help, "a's /help answered before its /add");
    let second = w.next_reply(a, before_a + 1).await.text.unwrap_or_default();
    assert_eq!(second, help);
}

/// Replies go through the rate limiter: a command answered while posts are
/// delivered to the same private chats draws no 429 at Telegram's own
/// limits (1 message a second a private chat), where a reply sent beside
/// the limiter met the delivery just sent there; each reply still comes,
/// in order, within its chat's spacing.
#[actix_rt::test]
async fn replies_and_deliveries_to_the_same_chats_draw_no_429() {
    const CHANNEL: i64 = -100_724_601;
    const ROUNDS: usize = 3;
    let w = World::start_limited(&[TOKEN], &[(CHANNEL, "busy_replies")], |_| {}).await;
    let users: Vec<i64> = (0..4).map(|i| 824_601 + i).collect();
    for &u in &users {
        w.say(TOKEN, u, "/start", "en").await;
        let t = w.say(TOKEN, u, "/add @busy_replies", "en").await;
        assert!(t.contains("subscribed"), "{t}");
    }
    // What reached a user: their copies of the posts, and the bot's replies.
    let copies = |u: i64| {
        w.fake
            .received(u)
            .into_iter()
            .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with("busy ")))
            .count()
    };
    let replies = |u: i64| {
        w.replies(u)
            .into_iter()
            .filter(|m| !m.text.as_deref().is_some_and(|t| t.starts_with("busy ")))
            .count()
    };
    let before = w.fake.stats().rate_limited_429;
    for round in 0..ROUNDS {
        let asked: Vec<usize> = users.iter().map(|u| replies(*u)).collect();
        w.fake
            .post(CHANNEL, NewChannelMessage::text(format!("busy {round}")));
        // The post is on its way to every chat: each user asks for help.
        let delivered = wait_until(Duration::from_secs(5), || {
            users.iter().any(|u| copies(*u) > round)
        })
        .await;
        assert!(delivered, "post {round} never delivered");
        let started = Instant::now();
        for &u in &users {
            w.fake.user_says(TOKEN, u, "/help", Some("en"));
        }
        let answered = wait_until(Duration::from_secs(10), || {
            users.iter().zip(&asked).all(|(u, n)| replies(*u) > *n)
        })
        .await;
        assert!(answered, "round {round}: not every /help was answered");
        // A second of the chat's spacing after the copy, and a round trip.
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "round {round}: replies took {:?}",
            started.elapsed()
        );
    }
    let all = wait_until(Duration::from_secs(10), || {
        users.iter().all(|u| copies(*u) == ROUNDS)
    })
    .await;
    assert!(all, "not every post reached every user");
    assert_eq!(
        w.fake.stats().rate_limited_429 - before,
        0,
        "the fake answered 429"
    );
}
