//! Access hashes per account against the faithful fake: every account has
//! its own hash of a channel and another's is refused (`CHANNEL_INVALID`).
//! Channels resolved by three accounts in turn, read by whichever the pool
//! gives them to, moved as accounts are lost: none is paused, every post
//! is read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuryer::reader::ReaderPool;
use kuryer_actors::model::ChannelRef;
use kuryer_actors::ports::{ChannelSource, SourceError};
use kuryer_sim::mtproto::{AccountSpec, ChannelSpec, MtprotoConfig, MtprotoFake};

use crate::common::TestDb;
use crate::reader::{reader_config, seed_session};

/// Records the problems told, and the channels resolved.
#[derive(Default)]
struct Told {
    problems: Mutex<Vec<(i64, &'static str)>>,
}

impl kuryer::source_events::SourceEvents for Told {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: ChannelRef) {}
    fn channel_problem(&self, channel_id: i64, _: &str, problem: &'static str) {
        self.problems.lock().unwrap().push((channel_id, problem));
    }
}

/// Reads `source` from `after` until it yields something (or 20 s pass).
async fn read_next(source: &mut kuryer::reader::MtprotoSource, after: i32) -> Vec<String> {
    let mut last = None;
    for _ in 0..200 {
        match source.fetch(after, 100).await {
            Ok(m) if !m.is_empty() => {
                return m.into_iter().filter_map(|m| m.text).collect();
            }
            Ok(_) => {}
            Err(e @ SourceError::Gone(_)) => panic!("a channel taken for gone: {e:?}"),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing read from {after}: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_moved_between_accounts_are_read_with_each_accounts_own_hash() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let fake = MtprotoFake::start(MtprotoConfig::default()).unwrap();
    let mut accounts = Vec::new();
    for (i, name) in ["h0", "h1", "h2"].iter().enumerate() {
        let id = fake.create_account(AccountSpec {
            phone: format!("+99890000330{i}"),
            ..AccountSpec::default()
        });
        let key = fake.issue_auth_key(Some(id));
        seed_session(&store, &fake, name, key).await;
        store.set_session_user(name, id, 0).await.unwrap();
        accounts.push((id, key));
    }
    let c = db.client().await;
    let mut chans = Vec::new();
    for i in 0..9 {
        let name = format!("hashed_{i}");
        let ch = fake.create_channel(ChannelSpec {
            title: format!("Hashed {i}"),
            username: Some(name.clone()),
            protected: false,
        });
        fake.publish_text(ch, &format!("{i}: one"));
        chans.push((name, ch));
    }
    let mut cfg = reader_config(&db);
    cfg.reader.lease_ttl_s = 3;
    cfg.reader.resolve_interval_ms = 50;
    cfg.reader.join_interval_ms = 50;
    cfg.reader.history_per_second = 50.0;
    cfg.reader.poll_interval_s = 1;
    let told = Arc::new(Told::default());
    let pool = ReaderPool::start(store.clone(), &cfg, "hashes".to_owned(), told.clone()).await;
    // The names are added once all three accounts are live, so that the
    // first look-ups go to each in turn whatever the time each took to
    // connect (the bound on resolves below counts on it).
    for _ in 0..200 {
        if pool.live_accounts().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.live_accounts().len(), 3, "every account connected");
    for (name, _) in &chans {
        // Added by name, and subscribed to: the pool's resolve queue looks
        // it up.
        let id: i64 = c
            .query_one(
                "INSERT INTO channels (username, status) VALUES ($1, 'pending') RETURNING id",
                &[name],
            )
            .await
            .unwrap()
            .get(0);
        crate::reader_budgets::subscribe(&c, id, false).await;
    }
    // Every name resolved (by the accounts in turn); read from the first post.
    for _ in 0..200 {
        let pending: i64 = c
            .query_one(
                "SELECT count(*) FROM channels WHERE status = 'pending'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.execute("UPDATE channels SET start_message_id = 0", &[])
        .await
        .unwrap();
    // One stored hash is wrong: refused (CHANNEL_INVALID), resolved
    // again, read — never taken for a deleted channel.
    c.execute(
        "UPDATE reader_peer_hashes SET access_hash = access_hash + 1 WHERE peer_id = $1",
        &[&chans[4].1.id],
    )
    .await
    .unwrap();
    let rows = c
        .query(
            "SELECT id, telegram_id, username FROM channels ORDER BY username",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 9, "every name resolved");
    let mut sources: Vec<_> = rows
        .iter()
        .map(|r| {
            pool.source(&ChannelRef {
                channel_id: r.get(0),
                chat_id: r.get(1),
                username: r.get(2),
                bot_is_admin: false,
            })
        })
        .collect();
    for (i, s) in sources.iter_mut().enumerate() {
        assert_eq!(read_next(s, 0).await, [format!("{i}: one")]);
    }
    // Accounts h0, then h1, are lost: their channels move to the others,
    // which hold no hash of them yet.
    for (round, lose) in [(2, 0), (3, 1)] {
        assert!(fake.revoke_session(&accounts[lose].1));
        // Seen on its next call (at the latest the heartbeat's getState).
        let name = format!("h{lose}");
        for _ in 0..100 {
            if !pool.live_accounts().contains(&name) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!pool.live_accounts().contains(&name), "{name} lost");
        for (i, (_, ch)) in chans.iter().enumerate() {
            fake.publish_text(*ch, &format!("{i}: {round}"));
        }
        for (i, s) in sources.iter_mut().enumerate() {
            let after = round - 1;
            assert_eq!(read_next(s, after).await, [format!("{i}: {round}")]);
        }
    }
    assert_eq!(pool.live_accounts(), ["h2"]);
    assert_eq!(
        *told.problems.lock().unwrap(),
        [],
        "no channel told gone or private"
    );
    let paused: i64 = c
        .query_one(
            "SELECT count(*) FROM channels WHERE unreadable IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(paused, 0, "no channel paused");
    // Each name resolved once, then at most once more by each account it
    // moved to (what a move costs), and once more for the wrong hash.
    let mut resolves = BTreeMap::new();
    for (i, (id, _)) in accounts.iter().enumerate() {
        let stats = fake.stats(*id);
        resolves.insert(i, stats.calls("contacts.resolveUsername"));
        assert!(
            stats.calls("contacts.resolveUsername") <= 9 + 1,
            "account {i}: {stats:?}"
        );
    }
    let refused: u64 = accounts
        .iter()
        .map(|(id, _)| {
            fake.stats(*id)
                .errors("messages.getHistory", "CHANNEL_INVALID")
        })
        .sum();
    assert_eq!(refused, 1, "only the wrong hash was refused");
    let total: u64 = resolves.values().sum();
    assert!(total <= 9 + 9 + 1, "resolves per account {resolves:?}");
    pool.close().await;
}
