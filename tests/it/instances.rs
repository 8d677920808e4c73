//! Several `kuryer run` processes of the real binary over one PostgreSQL,
//! one Redis and the fake Telegram: fair shares of channels,
//! every post delivered once, `kill -9` taken over within the lease TTL, a
//! fourth instance taking its share, a paused instance sending nothing
//! after it wakes, one getUpdates consumer a bot. Counts come from the fake
//! (per chat, and per process through a base URL naming each one).

use std::time::{Duration, Instant};

use crate::common::{Daemon, TestDb, free_port, wait_ready};
use kuryer::secret::Secret;
use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram};
use kuryer_sim::fixtures;

/// Short leases, so a take-over takes seconds.
pub(crate) const TTL_S: u64 = 3;
pub(crate) const MAX_IN_FLIGHT: usize = 4;

pub(crate) struct World {
    pub(crate) db: TestDb,
    pub(crate) fake: FakeTelegram,
    pub(crate) pairs: Vec<(i64, i64)>,
    pub(crate) channels: u32,
    /// One dedup namespace for every instance: they share Redis.
    pub(crate) prefix: String,
}

/// Channels our bot administers (read through getUpdates, so one token
/// and one update loop serve every instance), `users` × `subs` subscriptions.
pub(crate) async fn world(channels: u32, users: u32, subs: u32, scale: f64) -> World {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store.maintain_partitions(2, 30).await.unwrap();
    let pairs = fixtures::populate(&db.client().await, channels, users, subs)
        .await
        .unwrap();
    store.close();
    db.client()
        .await
        .batch_execute("UPDATE channels SET bot_is_admin = true")
        .await
        .unwrap();
    let fake = fixtures::start_fake(FakeLimits::scaled(scale), channels, users).unwrap();
    let token = Secret::new(fixtures::bot_token());
    for i in 1..=i64::from(channels) {
        fake.set_admin(fixtures::channel_chat(i), token.expose(), true);
    }
    World {
        db,
        fake,
        pairs,
        channels,
        prefix: format!("inst:{}:", rand::random::<u64>()),
    }
}

pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) daemon: Daemon,
}

impl World {
    /// Starts instance `name` (its sends counted under that name).
    pub(crate) async fn start(&self, name: &str, scale: f64) -> Instance {
        self.start_with(name, scale, &[]).await
    }

    /// The environment of instance `name`, plus `extra`.
    pub(crate) fn env<'a>(
        &self,
        name: &str,
        extra: &[(&'a str, String)],
    ) -> Vec<(&'a str, String)> {
        let mut env: Vec<(&'a str, String)> = vec![
            ("KURYER_INSTANCE_ID", name.to_owned()),
            ("KURYER_INSTANCE_LEASE_TTL_S", TTL_S.to_string()),
            ("KURYER_TELEGRAM_BOT_API_URL", self.fake.client_url(name)),
            ("KURYER_REDIS_KEY_PREFIX", self.prefix.clone()),
            ("KURYER_DELIVERY_MAX_IN_FLIGHT", MAX_IN_FLIGHT.to_string()),
            ("KURYER_DELIVERY_POLL_MAX_INTERVAL_MS", "300".to_owned()),
            ("KURYER_DELIVERY_SWEEP_INTERVAL_S", "2".to_owned()),
            ("KURYER_DELIVERY_SHUTDOWN_DEADLINE_MS", "15000".to_owned()),
            ("KURYER_TELEGRAM_REQUEST_TIMEOUT_MS", "12000".to_owned()),
            (
                "KURYER_LOG_LEVEL",
                "info,kuryer=debug,tokio_postgres=info".to_owned(),
            ),
        ];
        for (k, v) in extra {
            env.retain(|(e, _)| e != k);
            env.push((k, v.clone()));
        }
        env
    }

    /// Starts instance `name` with `extra` environment, until ready.
    pub(crate) async fn start_with(
        &self,
        name: &str,
        scale: f64,
        extra: &[(&str, String)],
    ) -> Instance {
        let port = free_port();
        let env = self.env(name, extra);
        let daemon = Daemon::start_with(
            &self.db.url,
            &self.fake,
            fixtures::bot_token(),
            port,
            scale,
            &env,
        );
        assert!(
            wait_ready(port, Duration::from_secs(60)).await,
            "{name} not ready:\n{}",
            daemon.log_text()
        );
        Instance {
            name: name.to_owned(),
            port,
            daemon,
        }
    }

    pub(crate) fn publish(&self, rounds: std::ops::Range<u32>, posts: &mut Vec<(i64, i32)>) {
        for round in rounds {
            for i in 1..=i64::from(self.channels) {
                let chat = fixtures::channel_chat(i);
                posts.push((chat, fixtures::publish(&self.fake, chat, i, round)));
            }
        }
    }

    pub(crate) async fn wait_all(&self, posts: &[(i64, i32)], limit: Duration) -> bool {
        let expected = fixtures::expected_list(&self.pairs, posts);
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.fake.report(&expected).delivered == expected.len() as u64 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Channels leased per instance (`lease_owner` → count).
    pub(crate) async fn shares(&self) -> Vec<(String, i64)> {
        self.db
            .client()
            .await
            .query(
                "SELECT lease_owner, count(*) FROM channels
                  WHERE lease_owner IS NOT NULL GROUP BY 1 ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// Waits until every channel is leased, among exactly `owners`, with
    /// max/min ≤ 1.25; the shares, or `None` at `limit`.
    pub(crate) async fn wait_fair(
        &self,
        owners: &[&str],
        limit: Duration,
    ) -> Option<Vec<(String, i64)>> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let s = self.shares().await;
            let total: i64 = s.iter().map(|(_, n)| n).sum();
            let names: Vec<&str> = s.iter().map(|(o, _)| o.as_str()).collect();
            let max = s.iter().map(|(_, n)| *n).max().unwrap_or(0);
            let min = s.iter().map(|(_, n)| *n).min().unwrap_or(0);
            if total == i64::from(self.channels)
                && names == owners
                && min > 0
                && max as f64 / min as f64 <= 1.25
            {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub(crate) async fn bot_owner(&self) -> Option<String> {
        self.db
            .client()
            .await
            .query_opt("SELECT owner FROM bot_leases WHERE owner IS NOT NULL", &[])
            .await
            .unwrap()
            .map(|r| r.get(0))
    }
}

/// A counter of the instance's `/metrics` (0 when absent).
pub(crate) async fn metric(port: u16, name: &str) -> f64 {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The warnings and errors of each instance's log, for a failure message.
pub(crate) fn tails(instances: &[&Instance]) -> String {
    let mut out = String::new();
    for i in instances {
        let log = i.daemon.log_text();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                (l.contains("WARN") || l.contains("ERROR") || l.contains("channel"))
                    && !l.contains("poll_cycle")
            })
            .collect();
        out.push_str(&format!("--- {} ({} lines)\n", i.name, log.lines().count()));
        for l in &lines[lines.len().saturating_sub(25)..] {
            out.push_str(&l[..l.len().min(400)]);
            out.push('\n');
        }
    }
    out
}

pub(crate) fn signal(d: &Daemon, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &d.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[tokio::test]
async fn three_instances_share_fairly_deliver_once_survive_kill_9_and_a_fourth_takes_its_share() {
    let scale = 20.0;
    let w = world(30, 60, 2, scale).await;
    let mut a = w.start("a", scale).await;
    let mut b = w.start("b", scale).await;
    let mut c = w.start("c", scale).await;
    let shares = w.wait_fair(&["a", "b", "c"], Duration::from_secs(30)).await;
    assert!(shares.is_some(), "no fair split: {:?}", w.shares().await);
    eprintln!("three instances: {shares:?}");

    let mut posts = Vec::new();
    w.publish(0..2, &mut posts);
    assert!(
        w.wait_all(&posts, Duration::from_secs(60)).await,
        "{:?}\n{}",
        w.fake.report(&fixtures::expected_list(&w.pairs, &posts)),
        tails(&[&a, &b, &c])
    );
    for i in [&a, &b, &c] {
        assert!(w.fake.sends_by(&i.name) > 0, "{} sent nothing", i.name);
    }

    // kill -9 the instance that reads the bot's updates: its channels and
    // the getUpdates consumer move.
    let holder = w.bot_owner().await.expect("someone reads the updates");
    let (victim, survivors): (&mut Instance, [&str; 2]) = match holder.as_str() {
        "a" => (&mut a, ["b", "c"]),
        "b" => (&mut b, ["a", "c"]),
        _ => (&mut c, ["a", "b"]),
    };
    let killed_at = Instant::now();
    victim.daemon.kill9();
    w.publish(2..3, &mut posts);
    let moved = w
        .wait_fair(&survivors, Duration::from_secs(TTL_S * 5))
        .await;
    let took = killed_at.elapsed();
    assert!(
        moved.is_some(),
        "channels not taken over: {:?}",
        w.shares().await
    );
    eprintln!("kill -9 of {holder}: channels taken over after {took:?}: {moved:?}");
    assert!(
        took <= Duration::from_secs(TTL_S + 2),
        "take-over took {took:?}, TTL {TTL_S} s"
    );
    let new_holder = w.bot_owner().await;
    assert!(
        new_holder
            .as_deref()
            .is_some_and(|h| survivors.contains(&h)),
        "getUpdates not taken over: {new_holder:?}"
    );
    assert!(
        w.wait_all(&posts, Duration::from_secs(60)).await,
        "{:?}",
        w.fake.report(&fixtures::expected_list(&w.pairs, &posts))
    );

    // A fourth instance takes a share without anyone restarting.
    let mut d = w.start("d", scale).await;
    let mut owners = vec![survivors[0], survivors[1], "d"];
    owners.sort_unstable();
    let shares = w.wait_fair(&owners, Duration::from_secs(30)).await;
    assert!(
        shares.is_some(),
        "no fair split with d: {:?}",
        w.shares().await
    );
    eprintln!("after d joined: {shares:?}");
    w.publish(3..5, &mut posts);
    assert!(w.wait_all(&posts, Duration::from_secs(60)).await);
    assert!(w.fake.sends_by("d") > 0, "d sent nothing");

    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    eprintln!("report: {r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    // The killed instance's sends in flight at the kill (sent, key not yet
    // set) are the one way to a duplicate, as for one instance.
    assert!(r.duplicates <= MAX_IN_FLIGHT as u64, "{r:?}");
    assert_eq!(
        w.fake.stats().get_updates_conflicts_409,
        0,
        "two consumers polled getUpdates at once"
    );
    let mut rest: Vec<&mut Instance> = vec![&mut d];
    for i in [&mut a, &mut b, &mut c] {
        if i.name != holder {
            rest.push(i);
        }
    }
    for i in rest {
        assert_eq!(i.daemon.terminate(), Some(0), "{}", i.daemon.log_text());
    }
    // A graceful stop lets every lease go.
    assert!(w.shares().await.is_empty(), "{:?}", w.shares().await);
    w.fake.stop();
}

#[tokio::test]
async fn a_paused_instance_sends_nothing_after_it_wakes() {
    // 2 sends a second a chat: each chat's deliveries queue up, so the
    // paused instance holds queued work when it stops.
    let scale = 2.0;
    let w = world(8, 16, 4, scale).await;
    let a = w.start("a", scale).await;
    let b = w.start("b", scale).await;
    w.wait_fair(&["a", "b"], Duration::from_secs(30))
        .await
        .expect("fair split");

    let mut posts = Vec::new();
    w.publish(0..3, &mut posts);
    // Wait until `a` is sending, then stop it with its queue full.
    let start = Instant::now();
    while w.fake.sends_by("a") < 3 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&a.daemon, "-STOP");
    let stopped_at = Instant::now();
    // `b` takes `a`'s channels after the TTL and delivers what `a` owed.
    let moved = w.wait_fair(&["b"], Duration::from_secs(TTL_S * 5)).await;
    assert!(
        moved.is_some(),
        "b did not take over: {:?}",
        w.shares().await
    );
    eprintln!("b took a's channels after {:?}", stopped_at.elapsed());
    let all = w.wait_all(&posts, Duration::from_secs(90)).await;
    // Read while `a` is still stopped: everything it sent before the pause
    // (its requests in flight were answered meanwhile).
    let sent_before = w.fake.sends_by("a");
    signal(&a.daemon, "-CONT");
    assert!(
        all,
        "{:?}",
        w.fake.report(&fixtures::expected_list(&w.pairs, &posts))
    );
    // Long enough for `a` to wake, find its heartbeat lapsed, drop its
    // queue and rejoin.
    tokio::time::sleep(Duration::from_secs(TTL_S * 2)).await;
    let sent_after = w.fake.sends_by("a");
    let dropped = metric(a.port, "kuryer_lease_dropped_deliveries_total").await;
    let expected = fixtures::expected_list(&w.pairs, &posts);
    let r = w.fake.report(&expected);
    eprintln!(
        "a sent {sent_before} before the pause, {} after; dropped {dropped}; {r:?}",
        sent_after - sent_before
    );
    assert_eq!(
        sent_after, sent_before,
        "the paused instance sent after it woke"
    );
    assert!(
        dropped > 0.0,
        "a held no queued work at the pause: the test proves nothing"
    );
    assert_eq!(r.lost, 0, "{r:?}");
    // Sends `a` had in flight at the pause were answered while it slept and
    // not yet marked in Redis: `b` may send those again (the kill -9 bound).
    assert!(r.duplicates <= MAX_IN_FLIGHT as u64, "{r:?}");
    assert!(
        a.daemon.log_text().contains("heartbeat lapsed"),
        "a did not notice its lapsed heartbeat"
    );
    assert_eq!(w.fake.stats().get_updates_conflicts_409, 0);
    drop(a);
    drop(b);
    w.fake.stop();
}

/// A post of a channel one instance owns, arriving through the other
/// instance's `getUpdates`, is delivered at once: the inbox write wakes the
/// owner's poller through NOTIFY, not its next inbox read (20 s apart here).
#[tokio::test]
async fn a_post_read_by_the_other_instance_wakes_the_channels_owner() {
    const POLL_MS: u64 = 20_000;
    let w = world(4, 4, 2, 1.0).await;
    let slow_polls = [
        ("KURYER_DELIVERY_POLL_MAX_INTERVAL_MS", POLL_MS.to_string()),
        ("KURYER_DELIVERY_POLL_MIN_INTERVAL_MS", POLL_MS.to_string()),
    ];
    let a = w.start_with("a", 1.0, &slow_polls).await;
    let b = w.start_with("b", 1.0, &slow_polls).await;
    w.wait_fair(&["a", "b"], Duration::from_secs(30))
        .await
        .expect("two fair shares");
    let holder = w.bot_owner().await.expect("someone reads the updates");
    // A channel the holder does not own.
    let row =
        w.db.client()
            .await
            .query_one(
                "SELECT telegram_id FROM channels WHERE lease_owner <> $1 ORDER BY id LIMIT 1",
                &[&holder],
            )
            .await
            .unwrap();
    let chat: i64 = row.get(0);
    let i = (1..=i64::from(w.channels))
        .find(|&i| fixtures::channel_chat(i) == chat)
        .unwrap();
    // Two posts, the second published as soon as the first arrived: the
    // owner's poller has just read the inbox then, so without a wake the
    // second waits a whole poll interval.
    let mut posts = Vec::new();
    for round in 0..2 {
        posts.push((chat, fixtures::publish(&w.fake, chat, i, round)));
        let published = Instant::now();
        let delivered = w.wait_all(&posts, Duration::from_secs(45)).await;
        let took = published.elapsed();
        eprintln!(
            "post {round} of a channel owned away from the getUpdates holder: delivered after {took:?}"
        );
        assert!(delivered, "{}", tails(&[&a, &b]));
        assert!(
            took < Duration::from_secs(3),
            "post {round} delivered after {took:?}: the owner waited for its poll ({POLL_MS} ms)"
        );
    }
}
