//! Each user's bot command budget across instances: two budgets of one
//! installation on the real Redis are one budget; without Redis each
//! instance still holds a user to one instance's budget.

use std::time::{Duration, Instant};

use kuryer::command_budget::{CommandBudget, SKIP_AFTER_FAILURE, Verdict};
use kuryer::config::RedisConfig;
use kuryer::secret::SecretUrl;

use crate::common::{PrivateRedis, free_port};

/// 30 a minute: bursts of 10, one more every 2 s.
const PER_MINUTE: u32 = 30;
const BURST: usize = 10;

/// A Redis configuration of its own key prefix on the shared server.
fn shared_redis() -> RedisConfig {
    RedisConfig {
        url: SecretUrl::new("redis://127.0.0.1:6379/0"),
        key_prefix: format!("kuryer-budget-{}-{}:", std::process::id(), free_port()),
        ..RedisConfig::default()
    }
}

/// `n` commands of `user`, alternating between the instances, as fast as they go.
async fn alternate(instances: &[&CommandBudget], user: i64, n: usize) -> Vec<Verdict> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(instances[i % instances.len()].check(user).await);
    }
    out
}

fn count(v: &[Verdict], which: Verdict) -> usize {
    v.iter().filter(|x| **x == which).count()
}

#[tokio::test]
async fn two_instances_share_one_budget() {
    let cfg = shared_redis();
    let a = CommandBudget::new(PER_MINUTE, Some((&cfg, "installation")));
    let b = CommandBudget::new(PER_MINUTE, Some((&cfg, "installation")));
    let start = Instant::now();
    let verdicts = alternate(&[&a, &b], 7, 4 * BURST).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "too slow to tell: a token came back meanwhile"
    );
    // One budget between the two: a budget each would allow 2 × BURST.
    assert_eq!(count(&verdicts, Verdict::Allow), BURST, "{verdicts:?}");
    assert_eq!(&verdicts[..BURST], &[Verdict::Allow; BURST]);
    // Told once, whichever instance got the command; then silence.
    assert_eq!(count(&verdicts, Verdict::Warn), 1, "{verdicts:?}");
    assert_eq!(verdicts[BURST], Verdict::Warn);
    // A name `/add` would ask about: nothing left on either.
    assert!(!a.take(7).await);
    assert!(!b.take(7).await);
    // Another user, and another installation on the same Redis, are untouched.
    assert_eq!(a.check(8).await, Verdict::Allow);
    let other = CommandBudget::new(PER_MINUTE, Some((&cfg, "another")));
    assert_eq!(other.check(7).await, Verdict::Allow);
    // One token every 2 s, for the pair.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = alternate(&[&b, &a], 7, 3).await;
    assert_eq!(
        later,
        [Verdict::Allow, Verdict::Warn, Verdict::Drop],
        "one token back for both instances together"
    );
    // The key is under the installation and expires.
    let mut c = redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{}installation:cmd:7", cfg.key_prefix);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 25_000, "{key}: PTTL {ttl}");
}

#[tokio::test]
async fn without_redis_each_instance_holds_a_user_to_one_instance_budget() {
    // Nothing listens there: Redis is down for these instances.
    let cfg = RedisConfig {
        url: SecretUrl::new(format!("redis://127.0.0.1:{}/0", free_port())),
        ..shared_redis()
    };
    let a = CommandBudget::new(PER_MINUTE, Some((&cfg, "installation")));
    let b = CommandBudget::new(PER_MINUTE, Some((&cfg, "installation")));
    let start = Instant::now();
    let on_a = alternate(&[&a], 7, 3 * BURST).await;
    let on_b = alternate(&[&b], 7, 3 * BURST).await;
    // Each never past a single instance's budget (the most a user can get
    // while the instances cannot share).
    for v in [&on_a, &on_b] {
        assert_eq!(count(v, Verdict::Allow), BURST, "{v:?}");
        assert_eq!(count(v, Verdict::Warn), 1, "{v:?}");
    }
    // Redis is skipped after a failure, not waited for on every command.
    assert!(
        start.elapsed() < SKIP_AFTER_FAILURE * 3,
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn when_redis_dies_midway_an_instance_gives_no_more_than_its_own_budget() {
    let mut redis = PrivateRedis::start(free_port());
    let cfg = RedisConfig {
        url: SecretUrl::new(format!("redis://127.0.0.1:{}/0", redis.port())),
        ..shared_redis()
    };
    let a = CommandBudget::new(PER_MINUTE, Some((&cfg, "installation")));
    let b = CommandBudget::new(PER_MINUTE, Some((&cfg, "installation")));
    // Half the budget spent on `a`, through Redis.
    let first = alternate(&[&a], 7, BURST / 2).await;
    assert_eq!(count(&first, Verdict::Allow), BURST / 2);
    // Redis goes away: `a` falls back on its memory, which saw those
    // commands too, so the user gets the other half there and no more.
    redis.stop();
    let on_a = alternate(&[&a], 7, 2 * BURST).await;
    assert_eq!(count(&on_a, Verdict::Allow), BURST - BURST / 2, "{on_a:?}");
    // `b`, which saw none of them, holds the user to one budget of its own.
    let on_b = alternate(&[&b], 7, 2 * BURST).await;
    assert_eq!(count(&on_b, Verdict::Allow), BURST, "{on_b:?}");
}
