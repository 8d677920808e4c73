//! Instances on several machines, simulated as processes on this host with
//! their own machine id, boot id and host name (`instance.machine_id`,
//! `instance.boot_id`, `instance.host_name`) and instance ids naming PIDs
//! that do not exist here (`pid_max` is far lower), as ids of another host
//! would: no live instance of another machine is ever declared dead; a dead
//! one of this machine and boot is, at once; two live processes under one
//! id are refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Daemon, free_port};
use crate::instances::{World, tails, world};
use kuryer_sim::fixtures;

/// Long enough to tell "judged by its process, at once" from "by its
/// heartbeat, a TTL later".
const TTL_S: u64 = 20;

fn machine<'a>(id: &str, machine: &str, boot: &str) -> Vec<(&'a str, String)> {
    vec![
        ("KURYER_INSTANCE_ID", id.to_owned()),
        ("KURYER_INSTANCE_MACHINE_ID", machine.to_owned()),
        ("KURYER_INSTANCE_BOOT_ID", boot.to_owned()),
        (
            "KURYER_INSTANCE_HOST_NAME",
            machine.replace("machine", "host"),
        ),
        ("KURYER_INSTANCE_LEASE_TTL_S", TTL_S.to_string()),
    ]
}

/// The instance row's `started_at` and `heartbeat_at` as text (`None`: no row).
async fn row(w: &World, id: &str) -> Option<(String, String)> {
    w.db.client()
        .await
        .query_opt(
            "SELECT started_at::text, heartbeat_at::text FROM instances WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// Channels leased to `id`.
async fn owned(w: &World, id: &str) -> i64 {
    w.shares()
        .await
        .into_iter()
        .find(|(o, _)| o == id)
        .map_or(0, |(_, n)| n)
}

#[tokio::test]
async fn an_instance_of_another_machine_is_judged_by_its_heartbeat_alone() {
    let scale = 20.0;
    let w = world(12, 24, 2, scale).await;
    let (a_id, b_id, c_id) = ("host-a:4194000", "host-b:4194001", "host-a:4194002");
    let mut a = w
        .start_with("a", scale, &machine(a_id, "machine-a", "boot-a"))
        .await;
    let a_row = row(&w, a_id).await.expect("a registered");
    let b = w
        .start_with("b", scale, &machine(b_id, "machine-b", "boot-b"))
        .await;
    let mut ids = [a_id, b_id];
    ids.sort_unstable();
    let split = w.wait_fair(&ids, Duration::from_secs(30)).await;
    assert!(split.is_some(), "no fair split: {:?}", w.shares().await);
    // Two heartbeats more: had `b` judged `a` by a PID of this host, `a`
    // would have lost its row and registered anew.
    tokio::time::sleep(Duration::from_secs(TTL_S * 2 / 3)).await;
    let a_now = row(&w, a_id).await.expect("a's row");
    assert_eq!(a_now.0, a_row.0, "a registered anew: it was declared dead");
    assert_ne!(a_now.1, "-infinity", "a was declared dead");
    assert!(
        !a.daemon.log_text().contains("heartbeat lapsed"),
        "a lost its leases while live:\n{}",
        tails(&[&a, &b])
    );
    assert!(!b.daemon.log_text().contains("whose process is gone"));
    let identity =
        w.db.client()
            .await
            .query_one(
                "SELECT host_name, machine_id, boot_id, pid FROM instances WHERE id = $1",
                &[&a_id],
            )
            .await
            .unwrap();
    assert_eq!(identity.get::<_, String>(0), "host-a");
    assert_eq!(identity.get::<_, String>(1), "machine-a");
    assert_eq!(identity.get::<_, String>(2), "boot-a");
    assert_eq!(identity.get::<_, i32>(3) as u32, a.daemon.child.id());

    // `a` dies; `c` starts on the same machine and boot: `a` is judged by
    // its process, gone, and its channels move at once, not a TTL later.
    a.daemon.kill9();
    let killed = Instant::now();
    let c = w
        .start_with("c", scale, &machine(c_id, "machine-a", "boot-a"))
        .await;
    let mut ids = [b_id, c_id];
    ids.sort_unstable();
    let moved = w.wait_fair(&ids, Duration::from_secs(TTL_S * 2)).await;
    let took = killed.elapsed();
    assert!(moved.is_some(), "{:?}", w.shares().await);
    assert!(
        took < Duration::from_secs(TTL_S / 2),
        "a's channels moved after {took:?}: judged by heartbeat, not by its process"
    );
    assert!(c.daemon.log_text().contains("whose process is gone"));
    let b_owned = owned(&w, b_id).await;

    // A second process under `b`'s id, from yet another machine: refused
    // at start, naming the other; `b` keeps its row and its channels.
    let env = w.env("d", &machine(b_id, "machine-d", "boot-d"));
    let mut d = Daemon::start_with(
        &w.db.url,
        &w.fake,
        fixtures::bot_token(),
        free_port(),
        scale,
        &env,
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(TTL_S * 3),
            "d did not refuse the id in use:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = d.log_text();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("is in use by another running kuryer") && log.contains("host-b"),
        "{log}"
    );
    assert_eq!(owned(&w, b_id).await, b_owned, "{:?}", w.shares().await);
    assert!(!b.daemon.log_text().contains("heartbeat lapsed"));
    drop(d);
    drop(b);
    drop(c);
    w.fake.stop();
}

/// Keys under `prefix` in the shared Redis.
async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_shared_limits_count_the_live_instances_of_the_instances_table() {
    let scale = 20.0;
    let w = world(4, 8, 2, scale).await;
    // Another instance, live by its heartbeat in the `instances` table (on
    // a machine this one knows nothing of), holding nothing.
    w.db.client()
        .await
        .batch_execute(
            "INSERT INTO instances (id, lease_ttl_s, version) VALUES ('elsewhere', 3600, 'x')",
        )
        .await
        .unwrap();
    let a = w
        .start_with("a", scale, &[("KURYER_LIMITS_SHARED", "auto".to_owned())])
        .await;
    let mut posts = Vec::new();
    w.publish(0..1, &mut posts);
    let start = Instant::now();
    while w.fake.sends_by("a") == 0 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.fake.sends_by("a") > 0, "{}", tails(&[&a]));
    let keys = redis_keys(&w.prefix).await;
    // Two live instances by the table: `auto` shares, through the script.
    assert!(
        keys.iter().any(|k| k.contains(":rl:")),
        "limits not shared with a second live instance: {keys:?}"
    );
    // No second liveness record in Redis.
    assert!(!keys.iter().any(|k| k.ends_with(":instances")), "{keys:?}");
    drop(a);
    w.fake.stop();
}

struct NoEvents;
impl kuryer::source_events::SourceEvents for NoEvents {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: kuryer_actors::model::ChannelRef) {}
}

fn mt_calls(dc: &kuryer_sim::mtproto::MtprotoFake, account: i64) -> u64 {
    dc.stats(account).methods.values().map(|m| m.calls).sum()
}

fn duplicated(dc: &kuryer_sim::mtproto::MtprotoFake, account: i64) -> u64 {
    dc.stats(account)
        .methods
        .values()
        .filter_map(|m| m.errors.get("AUTH_KEY_DUPLICATED"))
        .sum()
}

/// Two reader accounts held by one instance; a newcomer joins: the holder
/// gives one back (disconnected first), the newcomer connects it only one
/// lease TTL after, and the fake data centre sees no call of the account
/// from its two holders at once and no `AUTH_KEY_DUPLICATED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_accounts_move_towards_a_newcomer_never_held_twice() {
    use kuryer::reader::ReaderPool;
    use kuryer_sim::mtproto::AccountSpec;
    let (db, store, _bot_api, dc, first) = crate::reader::reader_world(
        kuryer_sim::fake_bot_api::FakeLimits::scaled(20.0),
        "+998900002201",
        "acc_a",
    )
    .await;
    let second = dc.create_account(AccountSpec {
        phone: "+998900002202".to_owned(),
        ..AccountSpec::default()
    });
    crate::reader::seed_session(&store, &dc, "acc_b", dc.issue_auth_key(Some(second))).await;
    store.set_session_user("acc_b", second, 0).await.unwrap();
    let id_of = |name: &str| if name == "acc_a" { first } else { second };
    let mut cfg = crate::reader::reader_config(&db);
    cfg.reader.lease_ttl_s = 3;
    let ttl = Duration::from_secs(3);
    let old = ReaderPool::start(store.clone(), &cfg, "old".to_owned(), Arc::new(NoEvents)).await;
    assert_eq!(old.live_accounts(), ["acc_a", "acc_b"]);
    let new = ReaderPool::start(store.clone(), &cfg, "new".to_owned(), Arc::new(NoEvents)).await;
    assert!(new.live_accounts().is_empty(), "both were leased");
    // Both accounts in use (the heartbeat asks updates.getState every second).
    let start = Instant::now();
    while (mt_calls(&dc, first) == 0 || mt_calls(&dc, second) == 0)
        && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(mt_calls(&dc, first) > 0 && mt_calls(&dc, second) > 0);

    // Two live instances, two accounts: a share of one each.
    new.adopt(1).await;
    assert!(new.live_accounts().is_empty(), "taken from a live holder");
    old.give_back_excess(1).await;
    let given = Instant::now();
    assert_eq!(old.live_accounts().len(), 1);
    let moved = ["acc_a", "acc_b"]
        .into_iter()
        .find(|a| !old.live_accounts().iter().any(|l| l == a))
        .unwrap();
    let moved_id = id_of(moved);
    // A call written just before the give-back may still reach the fake.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_release = mt_calls(&dc, moved_id);
    // The newcomer tries every 200 ms, as keeper rounds would.
    let before_take = loop {
        let before = mt_calls(&dc, moved_id);
        new.adopt(1).await;
        if !new.live_accounts().is_empty() {
            break before;
        }
        assert!(given.elapsed() < ttl * 4, "the newcomer never took it");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = given.elapsed();
    assert_eq!(new.live_accounts(), [moved]);
    assert!(
        took >= ttl - Duration::from_millis(300),
        "taken {took:?} after it was given back: the taker did not wait a TTL"
    );
    assert_eq!(
        before_take, at_release,
        "the account was used between its release and its take"
    );
    // The newcomer uses it; the old holder keeps its other one only.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        mt_calls(&dc, moved_id) > at_release,
        "the newcomer made no call"
    );
    old.give_back_excess(1).await;
    new.give_back_excess(1).await;
    assert_eq!(old.live_accounts().len() + new.live_accounts().len(), 2);
    for a in [first, second] {
        assert_eq!(
            dc.two_holders_calls(a),
            0,
            "account {a} used from two places"
        );
        assert_eq!(duplicated(&dc, a), 0, "account {a}: AUTH_KEY_DUPLICATED");
    }
    old.close().await;
    new.close().await;
}
