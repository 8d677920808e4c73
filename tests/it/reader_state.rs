//! The update state saved while reading: grammers keeps it in its message
//! box and writes it into the session only when asked
//! (`sync_update_state`). A restart then catches up from where the last
//! run was, not from the state of its first start.

use std::sync::Arc;
use std::time::Duration;

use kuryer::reader::ReaderPool;
use kuryer_actors::model::ChannelRef;
use kuryer_actors::ports::ChannelSource;
use kuryer_sim::fake_bot_api::FakeLimits;
use kuryer_sim::mtproto::ChannelSpec;

use crate::reader::reader_config;

struct Quiet;
impl kuryer::source_events::SourceEvents for Quiet {
    fn wake(&self, _: i64) {}
    fn resolved(&self, _: ChannelRef) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_catches_up_from_the_state_the_last_run_saved() {
    let (db, store, _bot_api, dc, account) =
        crate::reader::reader_world(FakeLimits::off(), "+998900003401", "stateful").await;
    let c = db.client().await;
    let mut refs = Vec::new();
    for i in 0..3 {
        let name = format!("stateful_{i}");
        let ch = dc.create_channel(ChannelSpec {
            title: name.clone(),
            username: Some(name.clone()),
            protected: false,
        });
        dc.add_member(ch, account);
        let id: i64 = c
            .query_one(
                "INSERT INTO channels (telegram_id, username, access_hash, status, start_message_id)
                 VALUES ($1, $2, $3, 'active', 0) RETURNING id",
                &[&ch.bot_api_chat_id(), &name, &dc.access_hash(ch, account)],
            )
            .await
            .unwrap()
            .get(0);
        store.assign_channel(id, "stateful").await.unwrap();
        store
            .set_channel_joined(id, "stateful", true)
            .await
            .unwrap();
        refs.push((
            ChannelRef {
                channel_id: id,
                chat_id: ch.bot_api_chat_id(),
                username: Some(name),
                bot_is_admin: false,
            },
            ch,
        ));
    }
    let mut cfg = reader_config(&db);
    cfg.reader.history_per_second = 50.0;
    let start = || ReaderPool::start(store.clone(), &cfg, "state".to_owned(), Arc::new(Quiet));
    let pool = start().await;
    let mut sources: Vec<_> = refs.iter().map(|(r, _)| pool.source(r)).collect();
    for s in &mut sources {
        assert!(s.fetch(0, 100).await.unwrap().is_empty());
    }
    // Posts in a later second than the state the stream started from.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (i, (_, ch)) in refs.iter().enumerate() {
        dc.publish_text(*ch, &format!("post {i}"));
    }
    for s in &mut sources {
        let mut got = Vec::new();
        for _ in 0..100 {
            got = s.fetch(0, 100).await.unwrap();
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(got.len(), 1);
    }
    // The state is synced a moment after the last update.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pool.close().await;
    drop(sources);
    let before = dc.stats(account);
    let pool = start().await;
    for _ in 0..100 {
        if dc.stats(account).calls("updates.getDifference") > before.calls("updates.getDifference")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = dc.stats(account);
    assert!(
        after.calls("updates.getDifference") > before.calls("updates.getDifference"),
        "the restart catches up: {after:?}"
    );
    assert_eq!(
        after.difference_channels - before.difference_channels,
        0,
        "nothing to catch up from the saved state (from the first start's state, every channel posted to since is named)"
    );
    pool.close().await;
}
