//! Three `kuryer run` instances on three simulated machines (own machine
//! id, boot id and host name; instance ids naming PIDs that do not exist
//! here), one bot token against the fake Bot API at Telegram's own limits
//! (30 messages a second for the bot, 1 a second a chat), three reader
//! accounts on the fake data centre, channels read both ways: through the
//! bot's getUpdates (channels it administers) and through the reader
//! accounts over MTProto (channels it does not). Posts flow in bursts
//! through:
//!
//! 1. `kill -9` of one instance mid-burst, with sends in flight (checked),
//!    and its restart on the same machine and boot (the dead one is judged
//!    by its process: gone, its leases free at once);
//! 2. `SIGSTOP` of another for 1.5 reader lease TTLs: it wakes when its
//!    reader leases have run out but before anyone may take them (a taker
//!    waits one TTL after the expiry), and its instance heartbeat has
//!    lapsed. From `SIGCONT` until it holds something again legitimately,
//!    the fakes count its calls: Bot API requests through its own base URL
//!    (`FakeTelegram::requests_by`), MTProto calls on the accounts it held
//!    (nobody else may use them before their next take, so every call on
//!    them is its own);
//! 3. `kill -9` of a third mid-burst, restarted as a new boot of its
//!    machine (judged by its heartbeat, a TTL later).
//!
//! Then: every post delivered, duplicates within the documented bound
//! (`max_in_flight` per kill or pause, ARCHITECTURE.md "Duplicates"), no
//! 409, no 429, no `AUTH_KEY_DUPLICATED`, no call of an account by two
//! holders at once.

use std::time::{Duration, Instant};

use crate::instances::{MAX_IN_FLIGHT, signal, tails};

mod world;

use world::*;

/// Reader lease TTL (the smallest `reader.lease_ttl_s` allows).
const READER_TTL_S: u64 = 4;
/// Instance lease TTL: heartbeats every third of it.
const INSTANCE_TTL_S: u64 = 4;
/// The pause: past the reader leases' expiry (the last renewal was sent at
/// most a third of a TTL before it: the lease ran out at most 1 TTL after
/// the pause began) and before anyone may take them (at least 2/3 + 1 TTL
/// after it began); past the instance heartbeat's lapse too.
const PAUSE: Duration = Duration::from_millis(READER_TTL_S * 1500);
/// Telegram answers in tens of milliseconds; at 0 ms nothing would ever be
/// in flight at a kill.
const LATENCY: Duration = Duration::from_millis(40);
const BOT_CHANNELS: u32 = 24;
const READER_CHANNELS: usize = 9;
const USERS: u32 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_machines_two_kills_one_sigstop_one_bot_three_accounts() {
    let started = Instant::now();
    let mut s = scenario().await;
    let mut gone: Vec<Node> = Vec::new();
    let mut nodes = vec![
        start(&s.w, "a", "host-a:4194001", "machine-a", "boot-a").await,
        start(&s.w, "b", "host-b:4194002", "machine-b", "boot-b").await,
        start(&s.w, "c", "host-c:4194003", "machine-c", "boot-c").await,
    ];
    let logs = KeepLogs::default();
    for n in &nodes {
        logs.add(n);
    }
    let ids = |nodes: &[Node]| {
        let mut v: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        v.sort_unstable();
        v
    };
    let all_channels = i64::from(BOT_CHANNELS) + READER_CHANNELS as i64;
    let fair = async |s: &Scenario, nodes: &[Node], limit: Duration| {
        let want = ids(nodes);
        let start = Instant::now();
        while start.elapsed() < limit {
            let shares = s.shares().await;
            let owners: Vec<String> = shares.iter().map(|(o, _)| o.clone()).collect();
            let total: i64 = shares.iter().map(|(_, n)| n).sum();
            let accounts = s.reader_leases().await;
            let one_each = want.iter().all(|i| {
                accounts
                    .iter()
                    .filter(|(_, h, _)| h.as_deref() == Some(i.as_str()))
                    .count()
                    == 1
            });
            if owners == want && total == all_channels && one_each {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    // After a kill: every post delivered (logged with the time since the
    // kill) and the channels and accounts spread evenly again.
    let recovered = async |s: &Scenario,
                           nodes: &[Node],
                           label: &str,
                           killed: Instant,
                           spread: Duration| {
        assert!(
            s.wait_all(Duration::from_secs(60)).await,
            "{:?}\n{}",
            s.w.fake.report(&s.expected()),
            tails(&nodes.iter().map(|n| &n.inst).collect::<Vec<_>>())
        );
        eprintln!(
            "{label}: every post delivered {:?} after; 'no reader account' retries: {:?}; 409s so far: {}",
            killed.elapsed(),
            no_account(nodes),
            s.w.fake.stats().get_updates_conflicts_409
        );
        assert!(
            fair(s, nodes, spread).await,
            "no even spread after {label}: {:?} {:?}",
            s.shares().await,
            s.reader_leases().await
        );
    };
    assert!(
        fair(&s, &nodes, Duration::from_secs(60)).await,
        "no even spread: {:?} {:?}",
        s.shares().await,
        s.reader_leases().await
    );
    eprintln!(
        "spread after {:?}: {:?}",
        started.elapsed(),
        s.reader_leases().await
    );
    s.publish();
    assert!(
        s.wait_all(Duration::from_secs(60)).await,
        "{:?}\n{}",
        s.w.fake.report(&s.expected()),
        tails(&nodes.iter().map(|n| &n.inst).collect::<Vec<_>>())
    );
    for n in &nodes {
        assert!(s.w.fake.sends_by(&n.inst.name) > 0, "{} sent nothing", n.id);
    }

    // 1. kill -9 mid-burst, with sends in flight; restarted on its machine
    //    and boot: the dead process is judged gone at once.
    let before = s.delivered();
    s.publish();
    s.publish();
    let (v, in_flight_1) = {
        let c: Vec<&Node> = nodes.iter().collect();
        s.mid_burst(before, &c)
            .await
            .expect("no instance had a send in flight mid-burst")
    };
    let total = s.expected().len() as u64;
    let delivered_1 = s.delivered();
    let owner_1 = s.w.bot_owner().await;
    let mut dead = nodes.remove(v);
    dead.inst.daemon.kill9();
    let killed_1 = Instant::now();
    eprintln!(
        "kill 1: {} (getUpdates holder: {owner_1:?}) with {in_flight_1} send(s) in flight, \
         {delivered_1} of {total} delivered",
        dead.id
    );
    assert!(delivered_1 < total, "the kill landed after the burst");
    let machine = dead
        .id
        .split(':')
        .next()
        .unwrap()
        .replace("host", "machine");
    let boot = machine.replace("machine", "boot");
    let new_id = format!("{}:4194101", dead.id.split(':').next().unwrap());
    nodes.push(
        start(
            &s.w,
            &format!("{}2", dead.inst.name),
            &new_id,
            &machine,
            &boot,
        )
        .await,
    );
    logs.add(nodes.last().unwrap());
    gone.push(dead);
    recovered(&s, &nodes, "kill 1", killed_1, Duration::from_secs(30)).await;

    // 2. SIGSTOP past the reader lease TTL, mid-burst; it is the getUpdates
    //    holder when that one holds an account (every one does here).
    let bot_owner = s.w.bot_owner().await;
    let p = nodes
        .iter()
        .position(|n| Some(&n.id) == bot_owner.as_ref())
        .unwrap_or(0);
    s.publish();
    s.publish();
    // Paused with work of its own under way: sends made in this burst.
    let sent_before = s.w.fake.sends_by(&nodes[p].inst.name);
    let start_wait = Instant::now();
    while s.w.fake.sends_by(&nodes[p].inst.name) < sent_before + 3
        && start_wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let held: Vec<(String, i64)> = s
        .reader_leases()
        .await
        .into_iter()
        .filter(|(_, h, _)| h.as_deref() == Some(nodes[p].id.as_str()))
        .map(|(n, _, g)| (n, g))
        .collect();
    let p_name = nodes[p].inst.name.clone();
    let p_in_flight = s.w.fake.sends_in_flight_by(&p_name);
    signal(&nodes[p].inst.daemon, "-STOP");
    let stopped = Instant::now();
    assert!(!held.is_empty(), "{} held no reader account", nodes[p].id);
    eprintln!(
        "pause: {} (getUpdates holder: {}) with {p_in_flight} send(s) in flight, accounts {held:?}",
        nodes[p].id,
        bot_owner.as_deref() == Some(nodes[p].id.as_str())
    );
    tokio::time::sleep(PAUSE.saturating_sub(stopped.elapsed())).await;
    // Still stopped: what it and anyone made so far.
    let account_id = |name: &str| s.accounts.iter().find(|(n, _)| n == name).unwrap().1;
    let mut watch: Vec<(String, i64, u64)> = held
        .iter()
        .map(|(n, g)| (n.clone(), *g, s.mt_calls(account_id(n))))
        .collect();
    let retaken_in_pause: Vec<(String, i64, u64)> = {
        let now = s.reader_leases().await;
        let (gone, kept): (Vec<_>, Vec<_>) = watch
            .into_iter()
            .partition(|(n, g, _)| now.iter().any(|(m, _, h)| m == n && h != g));
        watch = kept;
        gone
    };
    assert!(
        retaken_in_pause.is_empty(),
        "taken during the pause, before one TTL after expiry: {retaken_in_pause:?}"
    );
    let requests_before = s.w.fake.requests_by(&p_name);
    signal(&nodes[p].inst.daemon, "-CONT");
    let woke = Instant::now();
    // Until it holds something again (or its accounts are taken), count
    // what it calls: nothing.
    let mut bot_calls_unheld = 0;
    let mut bot_window = None;
    let mut mt_calls_unheld = 0;
    let mut mt_windows = Vec::new();
    while woke.elapsed() < Duration::from_secs(READER_TTL_S * 4)
        && (bot_window.is_none() || !watch.is_empty())
    {
        if bot_window.is_none() {
            let r = s.w.fake.requests_by(&p_name);
            if s.holds_legitimately(&nodes[p].id).await {
                bot_window = Some(woke.elapsed());
            } else {
                bot_calls_unheld = r - requests_before;
            }
        }
        let calls: Vec<u64> = watch
            .iter()
            .map(|(n, _, _)| s.mt_calls(account_id(n)))
            .collect();
        let now = s.reader_leases().await;
        let mut k = 0;
        // An account taken again leaves the watch (its calls are the
        // taker's from then on); one called before that leaves it too,
        // its calls counted once.
        watch.retain(|(n, g, c0)| {
            let c = calls[k];
            k += 1;
            if now.iter().any(|(m, _, h)| m == n && h != g) {
                mt_windows.push((n.clone(), woke.elapsed()));
                false
            } else {
                mt_calls_unheld += c - c0;
                *c0 == c
            }
        });
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eprintln!(
        "after SIGCONT: Bot API requests before it held anything again: {bot_calls_unheld} \
         (held again after {bot_window:?}); MTProto calls on its accounts before their next \
         take: {mt_calls_unheld} (taken after {mt_windows:?})"
    );
    assert_eq!(
        bot_calls_unheld,
        0,
        "the paused instance called the Bot API after it woke\n{}",
        tails(&[&nodes[p].inst])
    );
    assert_eq!(
        mt_calls_unheld,
        0,
        "the paused instance called on a reader account after it woke\n{}",
        tails(&[&nodes[p].inst])
    );
    assert!(
        !mt_windows.is_empty(),
        "its accounts were not taken again: nothing was watched to the end"
    );
    assert!(
        nodes[p].inst.daemon.log_text().contains("heartbeat lapsed"),
        "the paused instance did not notice its lapsed heartbeat"
    );
    assert!(
        s.wait_all(Duration::from_secs(60)).await,
        "{:?}\n{}",
        s.w.fake.report(&s.expected()),
        tails(&nodes.iter().map(|n| &n.inst).collect::<Vec<_>>())
    );
    assert!(
        fair(&s, &nodes, Duration::from_secs(30)).await,
        "no even spread after the pause: {:?} {:?}",
        s.shares().await,
        s.reader_leases().await
    );

    // 3. kill -9 of another mid-burst; it comes back as a new boot of its
    //    machine, so it is judged by its heartbeat, a TTL later.
    let before = s.delivered();
    s.publish();
    s.publish();
    let others: Vec<&Node> = nodes.iter().filter(|n| n.inst.name != p_name).collect();
    let (k, in_flight_2) = s
        .mid_burst(before, &others)
        .await
        .expect("no instance had a send in flight mid-burst (second kill)");
    let victim = others[k].id.clone();
    let total = s.expected().len() as u64;
    let delivered_2 = s.delivered();
    let v = nodes.iter().position(|n| n.id == victim).unwrap();
    let owner_2 = s.w.bot_owner().await;
    let mut dead = nodes.remove(v);
    dead.inst.daemon.kill9();
    let killed_2 = Instant::now();
    eprintln!(
        "kill 2: {} (getUpdates holder: {owner_2:?}) with {in_flight_2} send(s) in flight, \
         {delivered_2} of {total} delivered",
        dead.id
    );
    assert!(
        delivered_2 < total,
        "the second kill landed after the burst"
    );
    let host = dead.id.split(':').next().unwrap().to_owned();
    let machine = host.replace("host", "machine");
    nodes.push(
        start(
            &s.w,
            &format!("{}3", &dead.inst.name[..1]),
            &format!("{host}:4194201"),
            &machine,
            &format!("{}-rebooted", machine.replace("machine", "boot")),
        )
        .await,
    );
    logs.add(nodes.last().unwrap());
    recovered(&s, &nodes, "kill 2", killed_2, Duration::from_secs(40)).await;
    s.publish();
    assert!(
        s.wait_all(Duration::from_secs(60)).await,
        "{:?}\n{}",
        s.w.fake.report(&s.expected()),
        tails(&nodes.iter().map(|n| &n.inst).collect::<Vec<_>>())
    );

    let expected = s.expected();
    let r = s.w.fake.report(&expected);
    let stats = s.w.fake.stats();
    let mut duplicated = 0;
    let mut two_holders = 0;
    for (name, id) in &s.accounts {
        two_holders += s.dc.two_holders_calls(*id);
        for m in s.dc.stats(*id).methods.values() {
            duplicated += m.errors.get("AUTH_KEY_DUPLICATED").copied().unwrap_or(0);
        }
        eprintln!("account {name}: {} calls", s.mt_calls(*id));
    }
    eprintln!(
        "SCENARIO posts={} deliveries={} {r:?} 409s={} 429s={} auth_key_duplicated={duplicated} \
         two_holder_calls={two_holders} in_flight_at_kills={in_flight_1},{in_flight_2} \
         elapsed_s={:.1}",
        s.posts.len(),
        expected.len(),
        stats.get_updates_conflicts_409,
        stats.rate_limited_429,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.delivered, expected.len() as u64, "{r:?}");
    // Two kills and one pause, each at most `max_in_flight` sends made
    // and not yet marked (ARCHITECTURE.md, "Duplicates").
    assert!(r.duplicates <= 3 * MAX_IN_FLIGHT as u64, "{r:?}");
    assert_eq!(
        stats.get_updates_conflicts_409, 0,
        "two getUpdates consumers"
    );
    assert_eq!(stats.rate_limited_429, 0, "the shared limits were broken");
    assert_eq!(duplicated, 0, "AUTH_KEY_DUPLICATED");
    assert_eq!(two_holders, 0, "an account called by two holders at once");
    gone.push(dead);
    s.w.fake.stop();
}
