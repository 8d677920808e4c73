//! Channels nobody subscribes to any more, and keys Telegram burns, with
//! `kuryer run` (the real binary) against the fake data centre:
//!
//! - an unsubscribed channel's poller stops at once (its lease goes), and
//!   after `reader.orphan_grace_s` its reader account leaves it — the fake
//!   counts it a member no more — and its row says so; subscribing again
//!   joins it again within the day's join budget;
//! - the keeper's share counts subscribed channels only: an instance
//!   holding channels nobody subscribes to lets them go and never gives up
//!   subscribed ones for them;
//! - a key used on two connections at once is burned by the fake: the
//!   account is marked lost (`kuryer accounts`), told at ERROR with its
//!   name and in a metric, never reconnected with that key, and its
//!   channels are read by the other account.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram};
use kuryer_sim::mtproto::{AccountSpec, ChannelRef, ChannelSpec, MtprotoConfig, MtprotoFake};
use serde_json::{Value, json};

use crate::common::{Daemon, TestDb, free_port, wait_ready};
use crate::reader::{SESSION_KEY, seed_session};
use crate::reader_run::reader_env;

const TOKEN: &str = "4343:orphanSECRETorphanSECRET";
const API_TOKEN: &str = "black-box-api-token-0123";

async fn wait_until<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The fake Bot API and data centre, `accounts` reader accounts stored as
/// kuryer login leaves them, `channels` public channels and `users`.
struct World {
    db: TestDb,
    bot_api: FakeTelegram,
    dc: MtprotoFake,
    accounts: Vec<(String, i64, [u8; 256])>,
    channels: Vec<(String, ChannelRef)>,
    users: Vec<i64>,
}

async fn world(tag: &str, accounts: usize, channels: usize, users: usize) -> World {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let bot_api = FakeTelegram::start(FakeLimits::scaled(20.0)).unwrap();
    bot_api.add_bot(TOKEN);
    let dc = MtprotoFake::start(MtprotoConfig::telegram_like()).unwrap();
    dc.attach_bot_api(bot_api.clone());
    let mut accs = Vec::new();
    for i in 0..accounts {
        let name = format!("{tag}{i}");
        let id = dc.create_account(AccountSpec {
            phone: format!("+99890000{}{i}", 7000 + tag.len() * 10),
            ..AccountSpec::default()
        });
        let key = dc.issue_auth_key(Some(id));
        seed_session(&store, &dc, &name, key).await;
        store.set_session_user(&name, id, 0).await.unwrap();
        accs.push((name, id, key));
    }
    let chans = (0..channels)
        .map(|i| {
            let name = format!("{tag}_news_{i}");
            let c = dc.create_channel(ChannelSpec {
                title: name.clone(),
                username: Some(name.clone()),
                protected: false,
            });
            (name, c)
        })
        .collect();
    let users: Vec<i64> = (1..=users as i64).map(|i| 830_000 + i).collect();
    for u in &users {
        bot_api.create_chat(*u, ChatKind::Private);
    }
    store.close();
    World {
        db,
        bot_api,
        dc,
        accounts: accs,
        channels: chans,
        users,
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn add(&self, user: i64, name: &str) {
        let r = self
            .http
            .post(format!("{}/add_channel", self.base))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user_id": user, "channel_username": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}: {}", r.text().await.unwrap());
    }

    /// (subscription id, channel username) of `user`.
    async fn subscriptions(&self, user: i64) -> Vec<(i64, String, String)> {
        let list: Value = self
            .http
            .get(format!("{}/subscriptions/{user}", self.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_i64().unwrap_or(0),
                    s["channel_username"].as_str().unwrap_or("").to_owned(),
                    s["channel_status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    async fn remove(&self, user: i64, subscription: i64) {
        let r = self
            .http
            .delete(format!("{}/subscriptions/{user}/{subscription}", self.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_channel_stops_being_read_and_is_left_after_the_grace_and_joined_again_on_subscribing()
 {
    let w = world("orph", 1, 2, 2).await;
    let (keep, gone) = (w.channels[0].clone(), w.channels[1].clone());
    let account = w.accounts[0].1;
    let mut env = reader_env();
    env.extend([
        ("KURYER_READER_ORPHAN_GRACE_S", "2".to_owned()),
        ("KURYER_INSTANCE_LEASE_TTL_S", "3".to_owned()),
    ]);
    let port = free_port();
    let daemon = Daemon::start_with(&w.db.url, &w.bot_api, TOKEN, port, 20.0, &env);
    assert!(
        wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        daemon.log_text()
    );
    let api = Api::new(port);
    for u in &w.users {
        for (name, _) in &w.channels {
            api.add(*u, name).await;
        }
    }
    // Both joined (the account has room for two).
    let joined = wait_until(Duration::from_secs(30), async || {
        w.dc.is_member(keep.1, account) && w.dc.is_member(gone.1, account)
    })
    .await;
    assert!(joined, "{}", daemon.log_text());
    let mut expected = Vec::new();
    for (name, c) in &w.channels {
        let id = w.dc.publish_text(*c, &format!("{name} first"));
        for u in &w.users {
            expected.push((*u, c.bot_api_chat_id(), id));
        }
    }
    let delivered = wait_until(Duration::from_secs(30), async || {
        w.bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(delivered, "{:?}", w.bot_api.report(&expected));

    // Everyone unsubscribes from `drop`.
    let c = w.db.client().await;
    let gone_id: i64 = c
        .query_one("SELECT id FROM channels WHERE username = $1", &[&gone.0])
        .await
        .unwrap()
        .get(0);
    let removed_at: chrono::DateTime<chrono::Utc> =
        c.query_one("SELECT now()", &[]).await.unwrap().get(0);
    for u in &w.users {
        for (id, name, _) in api.subscriptions(*u).await {
            if name == gone.0 {
                api.remove(*u, id).await;
            }
        }
    }
    // Its poller stops: its lease is let go, and no instance takes it.
    let released = wait_until(Duration::from_secs(10), async || {
        c.query_one(
            "SELECT lease_owner IS NULL FROM channels WHERE id = $1",
            &[&gone_id],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    })
    .await;
    assert!(released, "the unsubscribed channel is still leased");
    assert_eq!(api.metric("kuryer_owned_channels").await, 1.0);
    // After the grace, the account has left it (and only it).
    let left = wait_until(Duration::from_secs(15), async || {
        !w.dc.is_member(gone.1, account)
    })
    .await;
    assert!(left, "never left:\n{}", daemon.log_text());
    assert!(w.dc.is_member(keep.1, account), "left a wanted channel");
    let after: f64 = c
        .query_one(
            "SELECT extract(epoch FROM left_at - $2)::float8
               FROM reader_assignments WHERE channel_id = $1",
            &[&gone_id, &removed_at],
        )
        .await
        .unwrap()
        .get(0);
    assert!(after >= 2.0, "left {after} s after the last unsubscription");
    let (joined_flag, left_at): (bool, bool) = {
        let r = c
            .query_one(
                "SELECT joined, left_at IS NOT NULL FROM reader_assignments WHERE channel_id = $1",
                &[&gone_id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((joined_flag, left_at), (false, true), "the row says left");
    assert_eq!(api.metric("kuryer_reader_channels_left_total").await, 1.0);
    // A post there now reaches nobody, and nobody is sent anything.
    w.dc.publish_text(gone.1, "to nobody");

    // Subscribing again: read again and joined again (one join more).
    let joins_before = w.dc.stats(account).calls("channels.joinChannel");
    api.add(w.users[0], &gone.0).await;
    let rejoined = wait_until(Duration::from_secs(20), async || {
        w.dc.is_member(gone.1, account)
    })
    .await;
    assert!(rejoined, "not joined again:\n{}", daemon.log_text());
    let id = w.dc.publish_text(gone.1, "back");
    let again = [(w.users[0], gone.1.bot_api_chat_id(), id)];
    let delivered = wait_until(Duration::from_secs(20), async || {
        w.bot_api.report(&again).delivered == 1
    })
    .await;
    assert!(delivered, "{:?}", w.bot_api.report(&again));
    let stats = w.dc.stats(account);
    assert_eq!(stats.calls("channels.joinChannel"), joins_before + 1);
    assert_eq!(stats.calls("channels.leaveChannel"), 1);
    let joins_today: i32 = c
        .query_one("SELECT joins FROM reader_budgets", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(joins_today, 3, "the join again is counted in the budget");
    for (m, st) in &stats.methods {
        assert_eq!(st.calls_during_flood_wait, 0, "{m}");
    }
    let report = w.bot_api.report(&expected);
    assert_eq!((report.lost, report.duplicates), (0, 0), "{report:?}");
    drop_daemon(daemon);
}

fn drop_daemon(mut d: Daemon) {
    assert_eq!(d.terminate(), Some(0), "{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instances_share_counts_subscribed_channels_only() {
    use crate::instances::{TTL_S, world as instances_world};
    // Ten channels our bot administers, each with subscribers; instance a
    // takes them all.
    let w = instances_world(10, 4, 2, 20.0).await;
    let c = w.db.client().await;
    let a = w.start("a", 20.0).await;
    let owned = async |who: &str| -> Vec<i64> {
        c.query(
            "SELECT id FROM channels WHERE lease_owner = $1 ORDER BY id",
            &[&who],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), async || owned("a").await.len()
            == 10)
        .await,
        "{}",
        a.daemon.log_text()
    );
    // The four lowest: nobody subscribes any more, and the bot is no
    // admin there (nothing keeps them leasable).
    let ids: Vec<i64> = owned("a").await;
    let unwanted = ids[..4].to_vec();
    let wanted = ids[4..].to_vec();
    c.execute(
        "UPDATE subscriptions SET is_active = false, removed_at = now() WHERE channel_id = ANY($1)",
        &[&unwanted],
    )
    .await
    .unwrap();
    // The bot is no admin there any more either (told through getUpdates,
    // after the admin updates of the start, which would set it again).
    let token = kuryer::secret::Secret::new(kuryer_sim::fixtures::bot_token());
    for r in c
        .query(
            "SELECT telegram_id FROM channels WHERE id = ANY($1)",
            &[&unwanted],
        )
        .await
        .unwrap()
    {
        w.fake.set_admin(r.get(0), token.expose(), false);
    }
    c.execute(
        "UPDATE channels SET bot_is_admin = false WHERE id = ANY($1)",
        &[&unwanted],
    )
    .await
    .unwrap();
    // a lets them go, and keeps the six subscribed.
    let let_go = wait_until(Duration::from_secs(4 * TTL_S), async || {
        owned("a").await == wanted
    })
    .await;
    let state: Vec<(i64, bool, String)> = c
        .query(
            "SELECT id, bot_is_admin, status FROM channels WHERE id = ANY($1) ORDER BY id",
            &[&unwanted],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        let_go,
        "a holds {:?}; unwanted {state:?}\n{}",
        owned("a").await,
        a.daemon.log_text()
    );
    // A second instance: the share is ceil(6 / 2) = 3 each, all subscribed.
    let b = w.start("b", 20.0).await;
    let shared = wait_until(Duration::from_secs(6 * TTL_S), async || {
        owned("a").await.len() == 3 && owned("b").await.len() == 3
    })
    .await;
    let (ha, hb) = (owned("a").await, owned("b").await);
    assert!(shared, "a holds {ha:?}, b holds {hb:?}");
    let mut all: Vec<i64> = ha.iter().chain(&hb).copied().collect();
    all.sort_unstable();
    assert_eq!(all, wanted, "only subscribed channels are held");
    let free: i64 = c
        .query_one(
            "SELECT count(*) FROM channels WHERE id = ANY($1) AND lease_owner IS NULL",
            &[&unwanted],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(free, 4);
    // Posts on the subscribed channels still reach everyone.
    let mut posts = Vec::new();
    for i in 5..=10i64 {
        let chat = kuryer_sim::fixtures::channel_chat(i);
        posts.push((chat, kuryer_sim::fixtures::publish(&w.fake, chat, i, 1)));
    }
    let expected: Vec<_> = kuryer_sim::fixtures::expected_list(&w.pairs, &posts);
    let delivered = wait_until(Duration::from_secs(30), async || {
        w.fake.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(delivered, "{:?}", w.fake.report(&expected));
    for mut i in [a, b] {
        assert_eq!(i.daemon.terminate(), Some(0), "{}", i.daemon.log_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_twice_is_burned_and_its_account_marked_for_a_new_login_never_reconnected() {
    use kuryer::reader::client::AccountClient;
    use kuryer::reader::session::PgSession;

    let w = world("burn", 2, 2, 2).await;
    let mut env = reader_env();
    env.push(("KURYER_INSTANCE_LEASE_TTL_S", "3".to_owned()));
    let port = free_port();
    let daemon = Daemon::start_with(&w.db.url, &w.bot_api, TOKEN, port, 20.0, &env);
    assert!(
        wait_ready(port, Duration::from_secs(60)).await,
        "{}",
        daemon.log_text()
    );
    let api = Api::new(port);
    for u in &w.users {
        for (name, _) in &w.channels {
            api.add(*u, name).await;
        }
    }
    let mut expected = Vec::new();
    let publish = |round: u32, expected: &mut Vec<(i64, i64, i32)>| {
        for (name, c) in &w.channels {
            let id = w.dc.publish_text(*c, &format!("{name} round {round}"));
            for u in &w.users {
                expected.push((*u, c.bot_api_chat_id(), id));
            }
        }
    };
    publish(1, &mut expected);
    let delivered = wait_until(Duration::from_secs(40), async || {
        w.bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        w.bot_api.report(&expected),
        daemon.log_text()
    );
    let c = w.db.client().await;
    // Which account reads something: that one's key is used elsewhere.
    let victim: String = c
        .query_one(
            "SELECT account FROM reader_assignments ORDER BY channel_id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (_, victim_id, victim_key) = w
        .accounts
        .iter()
        .find(|(n, _, _)| *n == victim)
        .cloned()
        .unwrap();
    // Another host opens the same stored session while kuryer runs: a
    // second connection with the same key.
    let store = w.db.store();
    let session = PgSession::load(store.clone(), crate::reader::cipher(), &victim)
        .await
        .unwrap();
    let elsewhere = AccountClient::connect(session, 1, 1000, 10.0).account;
    let answer = elsewhere
        .call(
            "updates.getState",
            &grammers_client::tl::functions::updates::GetState {},
        )
        .await;
    assert!(answer.is_err(), "the second connection was served");
    elsewhere.disconnect();
    assert!(
        w.dc.key_burned(&victim_key),
        "the fake did not burn the key"
    );

    // kuryer's own connection is refused from then on: the account is
    // marked lost, for a new login.
    let marked = wait_until(Duration::from_secs(15), async || {
        store
            .reader_accounts()
            .await
            .unwrap()
            .iter()
            .any(|r| r.name == victim && r.status == "lost")
    })
    .await;
    assert!(marked, "{}", daemon.log_text());
    let row = store
        .reader_accounts()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == victim)
        .unwrap();
    assert_eq!(row.lost_reason.as_deref(), Some("AUTH_KEY_DUPLICATED"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kuryer"))
        .args(["accounts", "--config", "/dev/null"])
        .env("KURYER_DATABASE_URL", &w.db.url)
        .env("KURYER_READER_SESSION_KEY", SESSION_KEY)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with(&victim))
        .unwrap_or_else(|| panic!("{table}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        line.contains("lost") && line.contains("AUTH_KEY_DUPLICATED"),
        "{table}"
    );
    let log = daemon.log_text();
    assert!(
        log.lines().any(|l| l.contains("\"ERROR\"")
            && l.contains(&format!("\"account\":\"{victim}\""))
            && l.contains("burned")),
        "no ERROR naming the account:\n{log}"
    );
    assert_eq!(api.metric("kuryer_reader_keys_burned_total").await, 1.0);

    // Its channels are read by the other account: posts still arrive.
    publish(2, &mut expected);
    let delivered = wait_until(Duration::from_secs(40), async || {
        w.bot_api.report(&expected).delivered == expected.len() as u64
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        w.bot_api.report(&expected),
        daemon.log_text()
    );
    // No reconnecting with the burned key in a loop: nothing more is
    // asked on it, over several lease periods.
    let calls = |id: i64| -> u64 { w.dc.stats(id).methods.values().map(|m| m.calls).sum() };
    let before = calls(victim_id);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(calls(victim_id), before, "calls with the burned key go on");
    let report = w.bot_api.report(&expected);
    assert_eq!((report.lost, report.duplicates), (0, 0), "{report:?}");
    drop_daemon(daemon);
}
