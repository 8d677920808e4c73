//! Instances on several machines, simulated as processes on this host with
//! their own machine id, boot id and host name (`instance.machine_id`,
//! `instance.boot_id`, `instance.host_name`) and instance ids naming PIDs
//! that do not exist here (`pid_max` is far lower), as ids of another host
//! would: no live instance of another machine is ever declared dead; a dead
//! one of this machine and boot is, at once; two live processes under one
//! id are refused.

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
