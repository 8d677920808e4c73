//! The three-machine scenario's world: the instances, the fakes, the
//! posts and what the fakes counted.

use std::time::{Duration, Instant};

use kuryer_sim::fixtures;
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, MtprotoConfig, MtprotoFake};

use super::{BOT_CHANNELS, INSTANCE_TTL_S, LATENCY, READER_CHANNELS, READER_TTL_S, USERS};
use crate::instances::{Instance, World, world};
use crate::reader::seed_session;
use crate::reader_run::reader_env;

/// One instance and where it runs.
pub(super) struct Node {
    pub(super) inst: Instance,
    pub(super) id: String,
}

pub(super) fn machine_env(id: &str, machine: &str, boot: &str) -> Vec<(&'static str, String)> {
    let mut env = reader_env();
    env.retain(|(k, _)| {
        !matches!(
            *k,
            "KURYER_READER_HISTORY_PER_SECOND"
                | "KURYER_READER_MAX_CHANNELS_PER_ACCOUNT"
                | "KURYER_READER_LEASE_TTL_S"
        )
    });
    env.extend([
        ("KURYER_INSTANCE_ID", id.to_owned()),
        ("KURYER_INSTANCE_MACHINE_ID", machine.to_owned()),
        ("KURYER_INSTANCE_BOOT_ID", boot.to_owned()),
        (
            "KURYER_INSTANCE_HOST_NAME",
            machine.replace("machine", "host"),
        ),
        ("KURYER_INSTANCE_LEASE_TTL_S", INSTANCE_TTL_S.to_string()),
        ("KURYER_READER_LEASE_TTL_S", READER_TTL_S.to_string()),
        // Below the fake's 3 getHistory a second an account.
        ("KURYER_READER_HISTORY_PER_SECOND", "2".to_owned()),
        ("KURYER_READER_MAX_CHANNELS_PER_ACCOUNT", "5".to_owned()),
    ]);
    env
}

/// Starts `client` (its Bot API requests counted under that name) as
/// instance `id` of `machine`, `boot`.
pub(super) async fn start(w: &World, client: &str, id: &str, machine: &str, boot: &str) -> Node {
    Node {
        inst: w
            .start_with(client, 1.0, &machine_env(id, machine, boot))
            .await,
        id: id.to_owned(),
    }
}

pub(super) struct Scenario {
    pub(super) w: World,
    /// One connection for the test's own queries, polled often: a new
    /// one a query would crowd PostgreSQL's `max_connections`.
    pub(super) db: tokio_postgres::Client,
    pub(super) dc: MtprotoFake,
    /// (name, fake account id).
    pub(super) accounts: Vec<(String, i64)>,
    pub(super) readers: Vec<ChannelRef>,
    /// Every (destination, channel) subscription.
    pub(super) pairs: Vec<(i64, i64)>,
    /// Every post published: (channel chat, first message id).
    pub(super) posts: Vec<(i64, i32)>,
    pub(super) round: u32,
}

impl Scenario {
    pub(super) fn expected(&self) -> Vec<(i64, i64, i32)> {
        fixtures::expected_list(&self.pairs, &self.posts)
    }

    /// One round: a post in every channel, bot-read and reader-read.
    pub(super) fn publish(&mut self) {
        let round = self.round;
        self.round += 1;
        self.w.publish(round..round + 1, &mut self.posts);
        for (k, ch) in self.readers.iter().enumerate() {
            let id = self
                .dc
                .publish_text(*ch, &format!("reader channel {k}, round {round}"));
            self.posts.push((ch.bot_api_chat_id(), id));
        }
    }

    pub(super) fn delivered(&self) -> u64 {
        self.w.fake.report(&self.expected()).delivered
    }

    pub(super) async fn wait_all(&self, limit: Duration) -> bool {
        let total = self.expected().len() as u64;
        let start = Instant::now();
        let mut told = Instant::now();
        while start.elapsed() < limit {
            if self.delivered() == total {
                return true;
            }
            if told.elapsed() >= Duration::from_secs(3) {
                told = Instant::now();
                let (reader, bot): (Vec<_>, Vec<_>) =
                    self.expected().into_iter().partition(|(_, ch, _)| {
                        self.readers.iter().any(|r| r.bot_api_chat_id() == *ch)
                    });
                let all = self.expected();
                let missing: Vec<&(i64, i64, i32)> = if total - self.delivered() <= 6 {
                    all.iter()
                        .filter(|e| self.w.fake.report(&[**e]).delivered == 0)
                        .collect()
                } else {
                    Vec::new()
                };
                eprintln!(
                    "  {:?}: bot-read {}/{}, reader-read {}/{}; missing {missing:?}",
                    start.elapsed(),
                    self.w.fake.report(&bot).delivered,
                    bot.len(),
                    self.w.fake.report(&reader).delivered,
                    reader.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Waits until the burst just published is under way (a tenth to a
    /// half of it delivered) and one of `candidates` has a send in flight;
    /// its index and sends in flight, or `None` within a minute.
    pub(super) async fn mid_burst(
        &self,
        before: u64,
        candidates: &[&Node],
    ) -> Option<(usize, u64)> {
        let burst = self.expected().len() as u64 - before;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let done = self.delivered() - before;
            if done * 10 >= burst && done * 2 < burst {
                for (k, n) in candidates.iter().enumerate() {
                    let f = self.w.fake.sends_in_flight_by(&n.inst.name);
                    if f > 0 {
                        return Some((k, f));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    pub(super) fn mt_calls(&self, account: i64) -> u64 {
        self.dc
            .stats(account)
            .methods
            .values()
            .map(|m| m.calls)
            .sum()
    }

    /// Live reader leases: (account name, holder, generation).
    pub(super) async fn reader_leases(&self) -> Vec<(String, Option<String>, i64)> {
        self.db
            .query(
                "SELECT name, CASE WHEN lease_expires_at > now() THEN lease_holder END,
                        lease_generation
                   FROM reader_accounts ORDER BY name",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// Channels leased per instance (`lease_owner` → count).
    pub(super) async fn shares(&self) -> Vec<(String, i64)> {
        self.db
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

    /// `id` is live by its heartbeat and holds a channel or the bot.
    pub(super) async fn holds_legitimately(&self, id: &str) -> bool {
        self.db
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM instances
                                 WHERE id = $1
                                   AND heartbeat_at > now() - make_interval(secs => lease_ttl_s))
                    AND (EXISTS (SELECT 1 FROM channels WHERE lease_owner = $1)
                         OR EXISTS (SELECT 1 FROM bot_leases WHERE owner = $1))",
                &[&id],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// Each instance's reads refused for want of a reader account.
pub(super) fn no_account(nodes: &[Node]) -> Vec<(String, usize)> {
    nodes
        .iter()
        .map(|n| {
            let log = n.inst.daemon.log_text();
            (
                n.id.clone(),
                log.matches("no reader account is available").count(),
            )
        })
        .collect()
}

/// With `MACHINES_SCENARIO_LOGS` set, every instance's log is copied into
/// that directory when the test ends, passed or failed (for a look at a
/// slow or failed run); dropped before the instances and their logs.
#[derive(Default)]
pub(super) struct KeepLogs(pub(super) std::sync::Mutex<Vec<(String, std::path::PathBuf)>>);

impl KeepLogs {
    pub(super) fn add(&self, n: &Node) {
        self.0
            .lock()
            .unwrap()
            .push((n.inst.name.clone(), n.inst.daemon.log.clone()));
    }
}

impl Drop for KeepLogs {
    fn drop(&mut self) {
        if let Ok(dir) = std::env::var("MACHINES_SCENARIO_LOGS") {
            let _ = std::fs::create_dir_all(&dir);
            for (name, log) in self.0.lock().unwrap().iter() {
                let _ = std::fs::copy(log, format!("{dir}/{name}.log"));
            }
        }
    }
}

/// The fake data centre, three accounts signed in, and the reader channels
/// with their subscribers (one reader channel a user).
pub(super) async fn scenario() -> Scenario {
    let w = world(BOT_CHANNELS, USERS, 2, 1.0).await;
    w.fake.set_latency(LATENCY);
    let dc = MtprotoFake::start(MtprotoConfig::telegram_like()).unwrap();
    dc.attach_bot_api(w.fake.clone());
    let store = w.db.store();
    let c = w.db.client().await;
    let accounts: Vec<(String, i64)> = (0..3)
        .map(|i| {
            let id = dc.create_account(AccountSpec {
                phone: format!("+9989000095{i:02}"),
                ..AccountSpec::default()
            });
            (format!("r{i}"), id)
        })
        .collect();
    let mut readers = Vec::new();
    for k in 0..READER_CHANNELS {
        let name = format!("machines_{k:02}");
        let ch = crate::reader::public_channel(&c, &dc, &name, accounts[0].1).await;
        c.execute(
            "INSERT INTO subscriptions (user_id, channel_id, destination_id)
             SELECT u.id, c.id, d.id
               FROM users u JOIN destinations d ON d.owner_user_id = u.id
               JOIN channels c ON c.telegram_id = $1
              WHERE u.id % $2 = $3",
            &[
                &ch.bot_api_chat_id(),
                &(READER_CHANNELS as i64),
                &(k as i64),
            ],
        )
        .await
        .unwrap();
        readers.push(ch);
    }
    for (name, id) in &accounts {
        seed_session(&store, &dc, name, dc.issue_auth_key(Some(*id))).await;
        store.set_session_user(name, *id, 0).await.unwrap();
        for ch in &readers {
            store
                .set_peer_hash(name, ch.id, dc.access_hash(*ch, *id))
                .await
                .unwrap();
        }
    }
    store.close();
    let pairs = c
        .query(
            "SELECT d.chat_id, c.telegram_id FROM subscriptions s
               JOIN destinations d ON d.id = s.destination_id
               JOIN channels c ON c.id = s.channel_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Scenario {
        w,
        db: c,
        dc,
        accounts,
        readers,
        pairs,
        posts: Vec::new(),
        round: 0,
    }
}
