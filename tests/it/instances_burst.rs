//! `kill -9` of an instance in the middle of a burst, with sends in flight,
//! at Telegram's own limits and one bot shared by three instances: the
//! kill is checked to have landed mid-burst (the fake counts the victim's
//! sends whose answers were still on their way), and then every post
//! arrives, duplicates stay within the documented bound, and nothing
//! draws a 409 or a 429.

use std::time::{Duration, Instant};

use kuryer_sim::fixtures;

use crate::instances::{Instance, MAX_IN_FLIGHT, tails, world};

/// Telegram answers in tens of milliseconds; at 0 ms nothing would ever be
/// in flight at the kill.
const LATENCY: Duration = Duration::from_millis(40);

#[tokio::test]
async fn kill_9_mid_burst_with_sends_in_flight_loses_nothing_at_telegrams_limits() {
    // Telegram's limits: 30 messages a second for the bot, 1 a chat.
    let scale = 1.0;
    let w = world(30, 90, 2, scale).await;
    w.fake.set_latency(LATENCY);
    let mut instances: Vec<Instance> = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(w.start(name, scale).await);
    }
    w.wait_fair(&["a", "b", "c"], Duration::from_secs(30))
        .await
        .expect("three fair shares");

    let mut posts = Vec::new();
    w.publish(0..2, &mut posts);
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let total = expected.len() as u64;
    // The victim: the first instance seen with sends in flight while the
    // burst is under way (some delivered, most not).
    let start = Instant::now();
    let mut victim = None;
    while victim.is_none() && start.elapsed() < Duration::from_secs(60) {
        let delivered = w.fake.report(&expected).delivered;
        if delivered * 10 >= total && delivered * 2 < total {
            victim = instances
                .iter()
                .position(|i| w.fake.sends_in_flight_by(&i.name) > 0);
        }
        if victim.is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let v = victim.expect("no instance had a send in flight mid-burst");
    let in_flight = w.fake.sends_in_flight_by(&instances[v].name);
    let delivered_before = w.fake.report(&expected).delivered;
    let name = instances[v].name.clone();
    instances[v].daemon.kill9();
    let killed_at = Instant::now();
    eprintln!(
        "killed {name} with {in_flight} send(s) in flight, {delivered_before} of {total} delivered"
    );
    assert!(
        in_flight > 0 && delivered_before < total,
        "the kill landed after the burst"
    );

    let all = w.wait_all(&posts, Duration::from_secs(120)).await;
    let took = killed_at.elapsed();
    let alive: Vec<&Instance> = instances.iter().filter(|i| i.name != name).collect();
    let r = w.fake.report(&expected);
    let stats = w.fake.stats();
    eprintln!(
        "after the kill: every post delivered in {took:?}; {r:?}; 429s {}, 409s {}",
        stats.rate_limited_429, stats.get_updates_conflicts_409
    );
    assert!(all, "{r:?}\n{}", tails(&alive));
    assert_eq!(r.lost, 0, "{r:?}");
    // The killed instance's sends in flight (made, never confirmed) are the
    // one way to a duplicate: at most its in-flight cap.
    assert!(r.duplicates <= MAX_IN_FLIGHT as u64, "{r:?}");
    assert_eq!(
        stats.get_updates_conflicts_409, 0,
        "two getUpdates consumers"
    );
    assert_eq!(stats.rate_limited_429, 0, "the shared limits were broken");
    w.fake.stop();
}
