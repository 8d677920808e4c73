//! The shared-limit script against a real Redis in cluster mode (one node
//! owning every slot): Redis refuses a script that touches keys of two
//! slots, so this passes only if each call's keys are declared in `KEYS`
//! and share one hash tag (the bot's).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use kuryer::config::{RedisConfig, SharedMode};
use kuryer::secret::SecretUrl;
use kuryer::shared_limits::RedisSharedLimits;
use kuryer_actors::ports::{Admission, SendSlot, SlotDone};
use kuryer_actors::rate_limiter::SharedRates;

use crate::common::free_port;

/// A one-node Redis Cluster on its own port, in a directory of its own.
struct ClusterRedis {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl ClusterRedis {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--dir",
                dir.path().to_str().unwrap(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by .ci/services.sh)");
        let me = Self {
            port,
            child,
            _dir: dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut c = me.conn().await;
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query_async(&mut c)
            .await
            .unwrap();
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut c)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{info}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        me
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for ClusterRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn slot(bot_id: i64, chat_id: i64, ticket: u64) -> SendSlot {
    SendSlot {
        bot_id,
        chat_id,
        group_like: chat_id < 0,
        ticket,
        items: 1,
    }
}

#[tokio::test]
async fn the_shared_limit_script_runs_on_a_redis_cluster_one_slot_a_call() {
    let redis = ClusterRedis::start().await;
    let cfg = RedisConfig {
        url: SecretUrl::new(format!("redis://127.0.0.1:{}/0", redis.port)),
        key_prefix: "kuryer:".to_owned(),
        ..RedisConfig::default()
    };
    let rates = SharedRates {
        bot_interval: Duration::from_millis(100),
        bot_window_cap: 10,
        tolerance: Duration::from_millis(1000),
        chat_interval: Duration::from_millis(1000),
        group_interval: Duration::from_millis(3000),
    };
    let limits = RedisSharedLimits::new(
        &cfg,
        "installation",
        "A",
        SharedMode::On,
        rates,
        Duration::from_secs(10),
        Arc::new(AtomicUsize::new(2)),
    );
    // Two bots, private chats and a group, in one round.
    let t0 = 1_000_000.0;
    let want = [
        slot(42, 1, 1),
        slot(43, 1, 2),
        slot(42, 2, 3),
        slot(42, 1, 4),
        slot(43, -5, 5),
    ];
    let got = limits.admit_at(Some(t0), &want, &[]).await;
    let got = got.expect("the script runs on a cluster");
    assert_eq!(got[0], Admission::Admitted);
    assert_eq!(got[1], Admission::Admitted);
    assert_eq!(got[2], Admission::Admitted);
    assert!(matches!(got[3], Admission::ChatWait(_)), "{got:?}");
    assert_eq!(got[4], Admission::Admitted);
    // Completions and new candidates of both bots, in one round again.
    let done = [
        SlotDone {
            bot_id: 42,
            chat_id: 1,
            ticket: 1,
            ago: Duration::ZERO,
        },
        SlotDone {
            bot_id: 43,
            chat_id: -5,
            ticket: 5,
            ago: Duration::ZERO,
        },
    ];
    let got = limits
        .admit_at(Some(t0 + 1500.0), &[slot(42, 1, 6), slot(43, -5, 7)], &done)
        .await
        .expect("the script runs on a cluster");
    assert_eq!(got[0], Admission::ChatWait(Duration::from_millis(1000)));
    assert_eq!(got[1], Admission::ChatWait(Duration::from_millis(3000)));
    // Every key carries its bot's hash tag.
    let mut c = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(k.contains(":rl:{42}:") || k.contains(":rl:{43}:"), "{k}");
    }
    // Under Redis 7's script flags (a `#!lua` line), a script may touch one
    // slot only, declared or not: the server enforces it…
    let two_slots: redis::RedisResult<()> = redis::cmd("EVAL")
        .arg("#!lua\nredis.call('SET', KEYS[1], 1) redis.call('SET', 'other:' .. ARGV[1], 1)")
        .arg(1)
        .arg("a{42}")
        .arg("x")
        .query_async(&mut c)
        .await;
    assert!(two_slots.is_err(), "the server does not enforce one slot");
    // …and the script, so run, keeps to its bot's slot.
    let p = "kuryer:installation:rl:{42}:";
    let codes: Vec<i64> = redis::cmd("EVAL")
        .arg(format!("#!lua\n{}", kuryer::shared_limits::SCRIPT))
        .arg(4)
        .arg(format!("{p}tat"))
        .arg(format!("{p}win"))
        .arg(format!("{p}chat:1"))
        .arg(format!("{p}chat:9"))
        .arg(t0 + 5000.0)
        .arg(100)
        .arg(10)
        .arg(1000)
        .arg(1000)
        .arg(3000)
        .arg(10_000)
        .arg(50)
        .arg(1)
        .arg("A#6")
        .arg(0)
        .arg("0")
        .arg("A#8")
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("the script keeps to one slot");
    assert_eq!(codes, vec![0]);
}
