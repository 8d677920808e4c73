//! A reader account's lease when PostgreSQL stops answering its holder:
//! the account is disconnected at the local deadline, before the lease
//! runs out in the database, and makes no call after it (counted by the
//! fake data centre).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kuryer::reader::ReaderPool;

use crate::reader::{reader_config, reader_world};

struct NoEvents;
impl kuryer::source_events::SourceEvents for NoEvents {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: kuryer_actors::model::ChannelRef) {}
}

fn calls(dc: &kuryer_sim::mtproto::MtprotoFake, account: i64) -> u64 {
    dc.stats(account).methods.values().map(|m| m.calls).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_whose_lease_cannot_be_renewed_is_disconnected_before_it_runs_out() {
    let (db, store, _bot_api, dc, account) = reader_world(
        kuryer_sim::fake_bot_api::FakeLimits::scaled(20.0),
        "+998900002101",
        "cut_off",
    )
    .await;
    let mut cfg = reader_config(&db);
    cfg.reader.lease_ttl_s = 3;
    let pool = ReaderPool::start(store.clone(), &cfg, "p1".to_owned(), Arc::new(NoEvents)).await;
    assert_eq!(pool.live_accounts(), ["cut_off"]);
    // The heartbeat renews and asks Telegram (updates.getState) every second.
    let start = Instant::now();
    while calls(&dc, account) == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls(&dc, account) > 0, "the account made no call");

    // PostgreSQL stops answering the holder's renewals: a transaction holds
    // the accounts table locked.
    let mut locker = db.client().await;
    let expires: chrono::DateTime<chrono::Utc> = locker
        .query_one(
            "SELECT lease_expires_at FROM reader_accounts WHERE name = 'cut_off'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE reader_accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let locked = Instant::now();
    let mut dropped_at = None;
    while locked.elapsed() < Duration::from_secs(8) {
        if pool.live_accounts().is_empty() {
            dropped_at = Some(chrono::Utc::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped_at = dropped_at.expect("the account is still used with its lease unrenewed");
    assert!(
        dropped_at < expires,
        "stopped at {dropped_at}, after the lease ran out at {expires}"
    );
    let after = calls(&dc, account);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(calls(&dc, account), after, "calls after the deadline");
    tx.rollback().await.unwrap();
    // Another process takes it only one TTL after it ran out.
    let ttl = Duration::from_secs(3);
    let now: chrono::DateTime<chrono::Utc> = db
        .client()
        .await
        .query_one("SELECT now()", &[])
        .await
        .unwrap()
        .get(0);
    let ran_out = (now - expires).to_std().unwrap_or_default();
    if ran_out < ttl - Duration::from_millis(300) {
        assert_eq!(store.take_lease("cut_off", "p2", ttl).await.unwrap(), None);
    }
    pool.close().await;
}
