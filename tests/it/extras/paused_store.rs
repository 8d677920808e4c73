//! The store's side of pausing: a pause is stored once
//! and its notices claimed once; lifting it returns exactly the owners
//! told, once, however many problems each was told of; and migration 0014
//! moves the protected-channel notices told under 0007 onto
//! `problem_notices`, so nobody is told again after the upgrade.

use kuryer::store::migrate::{self, MIGRATIONS};
use kuryer::store::{CHANNEL_BOT_REMOVED, CHANNEL_GONE, CHANNEL_PRIVATE, CHANNEL_PROTECTED};
use kuryer_actors::model::ChannelUsername;

use crate::common::TestDb;

async fn channel_id(db: &TestDb, username: &str) -> i64 {
    db.client()
        .await
        .query_one("SELECT id FROM channels WHERE username = $1", &[&username])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_pause_is_claimed_once_and_lifted_once_for_those_told() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    let name = ChannelUsername::parse("@pause_src").unwrap();
    let a = store.add_subscription(851_001, &name).await.unwrap();
    let b = store.add_subscription(851_002, &name).await.unwrap();
    let channel = channel_id(&db, "pause_src").await;
    assert_eq!(store.channel_unreadable(channel).await.unwrap(), None);

    let told = store.pause_channel(channel, CHANNEL_PRIVATE).await.unwrap();
    let ids: Vec<i64> = told.iter().map(|n| n.subscription_id).collect();
    assert_eq!(ids, [a.subscription.id, b.subscription.id]);
    let pause = store.channel_unreadable(channel).await.unwrap().unwrap();
    assert_eq!(pause.why, CHANNEL_PRIVATE);
    assert!(
        store
            .pause_channel(channel, CHANNEL_PRIVATE)
            .await
            .unwrap()
            .is_empty(),
        "seen again: told already"
    );
    // Now gone: another problem, told again; the pause keeps its start.
    assert_eq!(
        store
            .pause_channel(channel, CHANNEL_GONE)
            .await
            .unwrap()
            .len(),
        2
    );
    let later = store.channel_unreadable(channel).await.unwrap().unwrap();
    assert_eq!(
        (later.why.as_str(), later.since),
        (CHANNEL_GONE, pause.since)
    );
    // Shown with the subscription, to its owner and the API.
    let mine = store.user_subscriptions(851_001).await.unwrap();
    assert_eq!(mine[0].channel_paused.as_ref(), Some(&later));
    let view = store.subscriptions_of_user(851_002).await.unwrap();
    assert_eq!(view[0].channel_paused.as_ref(), Some(&later));

    // Lifted: each subscription once, though told of two problems; a
    // second lift (another process) tells nobody.
    let resumed = store.resume_channel(channel).await.unwrap();
    let ids: Vec<i64> = resumed.iter().map(|n| n.subscription_id).collect();
    assert_eq!(ids, [a.subscription.id, b.subscription.id]);
    assert!(store.resume_channel(channel).await.unwrap().is_empty());
    assert_eq!(store.channel_unreadable(channel).await.unwrap(), None);
    assert_eq!(
        store.user_subscriptions(851_001).await.unwrap()[0].channel_paused,
        None
    );
    // Our bot removed: paused again, news again; a subscription removed
    // meanwhile is not told it resumed.
    assert_eq!(
        store
            .pause_channel(channel, CHANNEL_BOT_REMOVED)
            .await
            .unwrap()
            .len(),
        2
    );
    db.client()
        .await
        .execute(
            "UPDATE subscriptions SET removed_at = now(), is_active = false WHERE id = $1",
            &[&a.subscription.id],
        )
        .await
        .unwrap();
    let resumed = store.resume_channel(channel).await.unwrap();
    assert_eq!(
        resumed
            .iter()
            .map(|n| (n.subscription_id, n.user))
            .collect::<Vec<_>>(),
        [(b.subscription.id, 851_002)]
    );
    // A protected notice is no pause, and lifting a pause keeps it.
    assert_eq!(
        store
            .claim_channel_notices(channel, CHANNEL_PROTECTED)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.resume_channel(channel).await.unwrap().is_empty());
    assert_eq!(store.channel_unreadable(channel).await.unwrap(), None);
    assert!(
        store
            .claim_channel_notices(channel, CHANNEL_PROTECTED)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_upgrade_keeps_protected_and_private_notices_told_before_it() {
    let db = TestDb::new().await;
    let store = db.store();
    let before = MIGRATIONS
        .iter()
        .position(|m| m.name == "0014_channel_problems.sql")
        .unwrap();
    migrate::apply(&store, &MIGRATIONS[..before]).await.unwrap();
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO users (telegram_id) VALUES (852001), (852002);
         INSERT INTO channels (telegram_id, username, title, status)
              VALUES (-100852, 'guarded_old', 'Guarded', 'active'),
                     (-100853, 'closed_old', 'Closed', 'active');
         INSERT INTO destinations (chat_id, kind, owner_user_id)
              SELECT telegram_id, 'private', id FROM users;
         INSERT INTO subscriptions (user_id, channel_id, destination_id)
              SELECT u.id, c.id, d.id FROM users u, channels c, destinations d
               WHERE d.owner_user_id = u.id;
         UPDATE subscriptions s SET protected_told_at = now() - interval '1 day'
           FROM users u, channels c
          WHERE u.id = s.user_id AND c.id = s.channel_id
            AND u.telegram_id = 852001 AND c.username = 'guarded_old';
         INSERT INTO problem_notices (subject, subject_id, problem)
              SELECT 'subscription', s.id, 'channel-private'
                FROM subscriptions s JOIN channels c ON c.id = s.channel_id
               WHERE c.username = 'closed_old';",
    )
    .await
    .unwrap();
    let report = migrate::apply(&store, MIGRATIONS).await.unwrap();
    assert!(report.applied.contains(&"0014_channel_problems.sql"));

    // Told under 0007: not told again; the other subscriber is.
    let guarded = channel_id(&db, "guarded_old").await;
    let told = store
        .claim_channel_notices(guarded, CHANNEL_PROTECTED)
        .await
        .unwrap();
    assert_eq!(told.iter().map(|n| n.user).collect::<Vec<_>>(), [852_002]);
    // Told "private" before: paused now, and its next good read resumes it
    // for both (each told once).
    let closed = channel_id(&db, "closed_old").await;
    let pause = store.channel_unreadable(closed).await.unwrap().unwrap();
    assert_eq!(pause.why, CHANNEL_PRIVATE);
    assert!(
        store
            .pause_channel(closed, CHANNEL_PRIVATE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.resume_channel(closed).await.unwrap().len(), 2);
    assert_eq!(store.channel_unreadable(guarded).await.unwrap(), None);
}
