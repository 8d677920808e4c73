//! Faults on purpose: each Telegram error class, outages of the Bot API,
//! PostgreSQL and Redis, resumption after a crash, and odd input. Every test
//! asserts exact counts of what the fake Bot API received.

mod outages;
mod refusals;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{
    Opts, count, private_dedup, start, stats, subscription_to, text, wait_for, world,
};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use kuryer::store::NewPost;
use kuryer_actors::model::{MediaKind, SourceMessage};
use kuryer_actors::ports::{ChannelSource, Dedup, SourceError, SourceFactory};
use kuryer_actors::sender_pool::SenderConfig;
use kuryer_sim::fake_bot_api::{ChatKind, FakeLimits, Fault, NewChannelMessage};
use kuryer_sim::fixtures;
use kuryer_sim::source::SimSource;

#[actix_rt::test]
async fn blocked_user_is_deactivated_and_a_lost_group_is_reported_to_its_owner() {
    let (db, store, pairs, fake) = world(1, 4, 1, FakeLimits::off()).await;
    // User 1 also has a group subscribed; the bot was kicked from it.
    let group = -5_001i64;
    db.client()
        .await
        .batch_execute(&format!(
            "INSERT INTO destinations (chat_id, kind, owner_user_id)
                  SELECT {group}, 'group', id FROM users WHERE telegram_id = 100001;
             INSERT INTO subscriptions (user_id, channel_id, destination_id)
                  SELECT u.id, 1, d.id FROM users u, destinations d
                   WHERE u.telegram_id = 100001 AND d.chat_id = {group};"
        ))
        .await
        .unwrap();
    fake.create_chat(group, ChatKind::Group);
    let blocked = pairs[1].0;
    fake.set_fault(blocked, Fault::Forbidden, None);
    fake.set_fault(
        group,
        Fault::BadRequest("Forbidden: bot was kicked from the group chat".into()),
        None,
    );
    let p = start(&store, &fake, Opts::default()).await;
    let posts: Vec<i32> = (0..3)
        .map(|i| text(&fake, 1, &format!("post {i}")))
        .collect();
    p.wake(1);
    let others: Vec<(i64, i64, i32)> = pairs
        .iter()
        .filter(|(d, _)| *d != blocked)
        .flat_map(|(d, c)| posts.iter().map(move |p| (*d, *c, *p)))
        .collect();
    let ok = wait_for(Duration::from_secs(20), || {
        fake.report(&others).delivered == others.len() as u64
    })
    .await;
    assert!(ok, "the other subscribers did not get every post");
    let told = wait_for(Duration::from_secs(10), || {
        fake.received(100_001).iter().any(|m| {
            m.text
                .as_deref()
                .is_some_and(|t| t.contains("I was removed from") && t.contains("-5001"))
        })
    })
    .await;
    assert!(told, "the group's owner was not told");
    p.shutdown(Duration::from_secs(10)).await;
    assert!(fake.received(blocked).is_empty());
    assert!(fake.received(group).is_empty());
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM destinations WHERE chat_id IN ({blocked}, {group}) AND NOT is_active")).await,
        2
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM users WHERE telegram_id = {blocked} AND is_blocked")
        )
        .await,
        1
    );
    // The lost destinations' subscriptions left the registry; the others stay.
    assert_eq!(stats(&p).await.subscriptions, 3);
    // The blocked user's own chat is not "told" (that chat is the one lost).
    fake.stop();
}

#[actix_rt::test]
async fn a_group_that_became_a_supergroup_is_moved_and_gets_every_post() {
    let (db, store, _pairs, fake) = world(1, 1, 1, FakeLimits::off()).await;
    let (old, new) = (-600i64, -100_600i64);
    db.client()
        .await
        .batch_execute(&format!(
            "INSERT INTO destinations (chat_id, kind, owner_user_id) SELECT {old}, 'group', id FROM users;
             INSERT INTO subscriptions (user_id, channel_id, destination_id)
                  SELECT u.id, 1, d.id FROM users u, destinations d WHERE d.chat_id = {old};"
        ))
        .await
        .unwrap();
    fake.create_chat(old, ChatKind::Group);
    fake.create_chat(new, ChatKind::Supergroup);
    fake.set_fault(old, Fault::MigrateTo(new), None);
    // Telegram's limits at twice their rate: a group takes a post every
    // 1.5 s, long enough to post again while the second post waits.
    let opts = Opts {
        scale: 2.0,
        ..Opts::default()
    };
    let p = start(&store, &fake, opts).await;
    let mut posts: Vec<i32> = (0..2)
        .map(|i| text(&fake, 1, &format!("migrating {i}")))
        .collect();
    p.wake(1);
    // The first post found the group moved and was resent to the
    // supergroup; the second waits for the group's spacing.
    assert!(
        wait_for(Duration::from_secs(20), || fake.received(new).len() == 1).await,
        "{:?}",
        fake.received(new)
    );
    let moved = format!("SELECT count(*) FROM destinations WHERE chat_id = {new}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&db, &moved).await != 1 {
        assert!(Instant::now() < deadline, "the destination never moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Posts made now fan out to the supergroup's id, a chat the limiter
    // has no history of: they must still wait behind the second post (they
    // once overtook it, arriving in the order 1, 3, 2).
    posts.extend((2..4).map(|i| text(&fake, 1, &format!("migrating {i}"))));
    p.wake(1);
    assert!(
        wait_for(Duration::from_secs(40), || fake.received(new).len()
            == posts.len())
        .await
    );
    p.shutdown(Duration::from_secs(10)).await;
    assert!(fake.received(old).is_empty());
    let got: Vec<i32> = fake
        .received(new)
        .iter()
        .filter_map(|m| m.source.map(|s| s.1))
        .collect();
    assert_eq!(got, posts, "every post once, in order, in the new chat");
    // And the group's spacing held across the move (1.5 s here, 1.52 s
    // with the limiter's safety margin).
    let at: Vec<Instant> = fake.received(new).iter().map(|m| m.received_at).collect();
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(1450),
            "{:?}",
            w[1] - w[0]
        );
    }
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM destinations WHERE chat_id = {new} AND kind = 'supergroup'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM forwarded_messages WHERE destination_chat_id = {new} AND status = 'sent'")).await,
        4
    );
    fake.stop();
}

#[actix_rt::test]
async fn server_errors_are_retried_and_a_destination_failing_in_a_row_is_paused() {
    let (db, store, pairs, fake) = world(1, 3, 1, FakeLimits::off()).await;
    let (flaky, broken) = (pairs[0].0, pairs[1].0);
    fake.set_fault(flaky, Fault::ServerError, Some(1));
    fake.set_fault(broken, Fault::ServerError, None);
    let opts = Opts {
        sender: SenderConfig {
            max_failures: 2,
            ..SenderConfig::default()
        },
        // teloxide waits 10 s after a 5xx before it reads the answer; a
        // shorter client timeout would turn every 5xx into an unknown outcome.
        bot_timeout: Duration::from_secs(15),
        ..Opts::default()
    };
    let p = start(&store, &fake, opts).await;
    let post = text(&fake, 1, "through the storm");
    p.wake(1);
    // teloxide itself waits 10 s after any 5xx before returning it.
    assert!(wait_for(Duration::from_secs(40), || fake.received(flaky).len() == 1).await);
    let start_wait = Instant::now();
    loop {
        let n = count(&db, &format!("SELECT count(*) FROM destinations WHERE chat_id = {broken} AND NOT is_active AND deactivated_reason IS NOT NULL")).await;
        if n == 1 || start_wait.elapsed() > Duration::from_secs(40) {
            assert_eq!(n, 1, "the failing destination was not paused");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.shutdown(Duration::from_secs(15)).await;
    assert_eq!(fake.received(pairs[2].0).len(), 1);
    assert!(fake.received(broken).is_empty());
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM forwarded_messages WHERE destination_chat_id = {broken} AND status = 'failed' AND source_message_id = {post}")).await,
        1
    );
    fake.stop();
}

#[actix_rt::test]
async fn an_ambiguous_send_is_retried_and_counted_or_skipped_by_policy() {
    for retry in [true, false] {
        let (db, store, pairs, fake) = world(1, 2, 1, FakeLimits::off()).await;
        let slow = pairs[0].0;
        // The fake takes the message at once but answers after the client gave up.
        fake.set_fault(slow, Fault::Slow(Duration::from_millis(1500)), Some(1));
        let opts = Opts {
            bot_timeout: Duration::from_millis(700),
            sender: SenderConfig {
                retry_ambiguous: retry,
                ..SenderConfig::default()
            },
            ..Opts::default()
        };
        let p = start(&store, &fake, opts).await;
        let post = text(&fake, 1, "maybe sent");
        p.wake(1);
        let want = if retry { 2 } else { 1 };
        assert!(
            wait_for(Duration::from_secs(20), || fake.received(slow).len()
                == want)
            .await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        p.shutdown(Duration::from_secs(10)).await;
        let expected = [
            (slow, fixtures::channel_chat(1), post),
            (pairs[1].0, fixtures::channel_chat(1), post),
        ];
        let r = fake.report(&expected);
        assert_eq!(r.lost, 0);
        // The only way a duplicate may happen, and exactly as many as ambiguous sends.
        assert_eq!(r.duplicates, u64::from(retry), "retry={retry}: {r:?}");
        let status: String = db
            .client()
            .await
            .query_one(
                &format!(
                    "SELECT status FROM forwarded_messages WHERE destination_chat_id = {slow}"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, if retry { "sent" } else { "ambiguous" });
        fake.stop();
    }
}
