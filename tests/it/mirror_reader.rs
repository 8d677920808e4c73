//! Edits and deletions through the reader accounts (the MTProto face): deletions,
//! which only MTProto members are told of, deleted in `deleteMessages`
//! calls of up to 100 ids; a refused deletion recorded, not retried; an
//! MTProto edit mirrored; `deletions = ignore` left alone.

use std::time::Duration;

use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits};
use kuryer_sim::mtproto::ChannelSpec;
use serde_json::json;

use crate::common::{Daemon, admin_url, connect, free_port};
use crate::mirror::{Api, calls_on, wait_until};
use crate::reader_run::reader_env;

const TOKEN: &str = "4747:mirrorReaderSECRETmirror";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_from_the_reader_are_mirrored_in_calls_of_100_and_refusals_are_recorded() {
    let (db, _store, bot_api, dc, _account) =
        crate::reader::reader_world(FakeLimits::scaled(20.0), "+998900004601", "alpha").await;
    bot_api.add_bot(TOKEN);
    let channel = dc.create_channel(ChannelSpec {
        title: "Deleting news".to_owned(),
        username: Some("deleting_news".to_owned()),
        protected: false,
    });
    let users = [763_001_i64, 763_002];
    for u in users {
        bot_api.create_chat(u, ChatKind::Private);
    }
    let port = free_port();
    let daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &reader_env());
    let api = Api::new(port);
    api.ready(&daemon).await;
    let mut subs = Vec::new();
    for u in users {
        let added = api.add(u, "@deleting_news", None).await;
        subs.push(added["id"].as_i64().unwrap());
    }
    let (status, body) = api
        .patch(users[1], subs[1], json!({"deletions": "ignore"}))
        .await;
    assert_eq!((status, body["deletions"].as_str()), (200, Some("ignore")));
    let active = wait_until(Duration::from_secs(30), async || {
        api.subs(users[0]).await[0]["channel_status"] == "active"
    })
    .await;
    assert!(active, "{}", daemon.log_text());
    // A first post read proves the account joined (pushes reach members only).
    let first = dc.publish_text(channel, "warm-up post");
    let read = wait_until(Duration::from_secs(30), async || {
        users.iter().all(|u| !bot_api.received(*u).is_empty())
    })
    .await;
    assert!(read, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let ids: Vec<i32> = (0..150)
        .map(|i| dc.publish_text(channel, &format!("post number {i}")))
        .collect();
    let delivered = wait_until(Duration::from_secs(90), async || {
        users.iter().all(|u| bot_api.received(*u).len() == 151)
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        users.map(|u| bot_api.received(u).len()),
        daemon.log_text()
    );
    let copies: Vec<i32> = bot_api.received(users[0])[1..]
        .iter()
        .map(|m| m.message_id)
        .collect();

    assert_eq!(dc.delete(channel, &ids), 150);
    let gone = wait_until(Duration::from_secs(30), async || {
        copies.iter().all(|c| bot_api.is_deleted(users[0], *c))
    })
    .await;
    assert!(gone, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = calls_on(&bot_api, users[0], &copies);
    let sizes: Vec<(&str, usize, bool)> = calls
        .iter()
        .map(|c| (c.method, c.message_ids.len(), c.error.is_none()))
        .collect();
    assert_eq!(
        sizes,
        vec![("deleteMessages", 100, true), ("deleteMessages", 50, true)]
    );
    let mut all: Vec<i32> = calls.iter().flat_map(|c| c.message_ids.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, copies);
    // `deletions = ignore`: kept.
    let kept = bot_api.received(users[1]);
    assert!(
        kept.iter()
            .all(|m| !bot_api.is_deleted(users[1], m.message_id))
    );
    assert!(bot_api.mirror_calls().iter().all(|c| c.chat_id != users[1]));

    // A copy Telegram will not delete (a bot's message older than 48 h in
    // a private chat): one call, the refusal recorded, never retried.
    let warm = bot_api.received(users[0])[0].message_id;
    bot_api.age_messages(users[0], &[warm]);
    assert_eq!(dc.delete(channel, &[first]), 1);
    let refused = wait_until(Duration::from_secs(30), async || {
        db.client()
            .await
            .query_one(
                "SELECT count(*) FROM post_event_applied WHERE status = 'refused'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
    assert!(refused, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = calls_on(&bot_api, users[0], &[warm]);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].error.as_deref(),
        Some("Bad Request: message can't be deleted")
    );
    let error: String = db
        .client()
        .await
        .query_one(
            "SELECT error FROM post_event_applied WHERE status = 'refused'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(error.contains("can't be deleted"), "{error}");

    // An MTProto edit: both copies edited (users[1] mirrors edits).
    let last = dc.publish_text(channel, "to be edited");
    let both = wait_until(Duration::from_secs(30), async || {
        users.iter().all(|u| bot_api.received(*u).len() == 152)
    })
    .await;
    assert!(both, "{}", daemon.log_text());
    assert!(dc.edit(channel, last, "edited by MTProto"));
    let edited = wait_until(Duration::from_secs(30), async || {
        users.iter().all(|u| {
            bot_api
                .received(*u)
                .last()
                .and_then(|m| m.text.clone())
                .as_deref()
                == Some("edited by MTProto")
        })
    })
    .await;
    assert!(edited, "{}", daemon.log_text());
    for u in users {
        let copy = bot_api.received(u).last().unwrap().message_id;
        let c = calls_on(&bot_api, u, &[copy]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].method, "editMessageText");
    }
    drop(daemon);
    bot_api.stop();
    dc.stop();
}

/// An edit pushed to the reader while PostgreSQL is away (longer than the
/// three tries a second apart that used to drop it) is stored once the
/// database is back, and mirrored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_pushed_while_the_database_is_away_is_mirrored_once_it_is_back() {
    let (db, _store, bot_api, dc, _account) =
        crate::reader::reader_world(FakeLimits::scaled(20.0), "+998900004602", "alpha").await;
    bot_api.add_bot(TOKEN);
    let channel = dc.create_channel(ChannelSpec {
        title: "Outage news".to_owned(),
        username: Some("outage_news".to_owned()),
        protected: false,
    });
    let user = 763_101_i64;
    bot_api.create_chat(user, ChatKind::Private);
    // The account's lease outlives the outage.
    let mut env = reader_env();
    env.retain(|(k, _)| *k != "KURYER_READER_LEASE_TTL_S");
    env.push(("KURYER_READER_LEASE_TTL_S", "60".to_owned()));
    let port = free_port();
    let daemon = Daemon::start_with(&db.url, &bot_api, TOKEN, port, 20.0, &env);
    let api = Api::new(port);
    api.ready(&daemon).await;
    api.add(user, "@outage_news", None).await;
    let active = wait_until(Duration::from_secs(30), async || {
        api.subs(user).await[0]["channel_status"] == "active"
    })
    .await;
    assert!(active, "{}", daemon.log_text());
    // A first post read proves the account joined (pushes reach members only).
    dc.publish_text(channel, "warm-up post");
    let post = dc.publish_text(channel, "to be edited");
    let read = wait_until(Duration::from_secs(30), async || {
        bot_api.received(user).len() == 2
    })
    .await;
    assert!(read, "{}", daemon.log_text());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let admin = connect(&admin_url()).await;
    let name = db.name.clone();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    assert!(dc.edit(channel, post, "edited while the database was away"));
    tokio::time::sleep(Duration::from_secs(8)).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let edited = wait_until(Duration::from_secs(60), async || {
        bot_api
            .received(user)
            .last()
            .and_then(|m| m.text.clone())
            .as_deref()
            == Some("edited while the database was away")
    })
    .await;
    assert!(edited, "{}", daemon.log_text());
    assert!(
        daemon
            .log_text()
            .contains("A source change is stored after the database came back."),
        "{}",
        daemon.log_text()
    );
    drop(daemon);
    bot_api.stop();
    dc.stop();
}
