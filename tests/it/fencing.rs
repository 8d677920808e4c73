//! Fencing at the store (several instances): a post is recorded, and a
//! dead post kept, only under the channel lease's current generation; a
//! stale generation records nothing and moves no mark.

use crate::common::TestDb;
use chrono::Utc;
use kuryer::store::NewPost;
use kuryer_actors::model::{ChannelUsername, Post};

#[tokio::test]
async fn a_stale_generation_records_no_post_keeps_no_dead_post_and_moves_no_mark() {
    let db = TestDb::new().await;
    let store = db.migrated().await;
    store
        .add_subscription(5, &ChannelUsername::parse("fenced_channel").unwrap())
        .await
        .unwrap();
    let client = db.client().await;
    let channel_id: i64 = client
        .query_one(
            "UPDATE channels SET telegram_id = -1001, status = 'active'
              WHERE username = 'fenced_channel' RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    store
        .instance_register(
            "a:1",
            30,
            "test",
            &kuryer::instance::identity::of_this_process(&Default::default()),
        )
        .await
        .unwrap();
    let taken = store.claim_channels("a:1", 10).await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let generation: i64 = client
        .query_one(
            "SELECT lease_generation FROM channels WHERE id = $1",
            &[&channel_id],
        )
        .await
        .unwrap()
        .get(0);
    let stale = generation - 1;
    let post = |id: i64| NewPost {
        channel_id,
        message_ids: vec![id],
        kind: "text".into(),
        detected_at: Utc::now(),
        ..Default::default()
    };
    assert_eq!(
        store
            .record_post_fenced(&post(10), Some(stale))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(0));
    assert!(
        store
            .record_post_fenced(&post(11), Some(generation))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(11));

    let dead = Post {
        channel_id,
        source_chat_id: -1001,
        channel_username: Some("fenced_channel".into()),
        message_ids: vec![20],
        relay_message_ids: None,
        text: Some("x".into()),
        entities: Vec::new(),
        media: None,
        album_id: None,
        copyable: true,
        published_at: Utc::now(),
        detected_at: Utc::now(),
    };
    assert!(
        !store
            .dead_letter_post_fenced(&dead, "refused", Some(stale))
            .await
            .unwrap()
    );
    assert_eq!(store.dead_letters("post").await.unwrap(), 0);
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(11));
    assert!(
        store
            .dead_letter_post_fenced(&dead, "refused", Some(generation))
            .await
            .unwrap()
    );
    assert_eq!(store.dead_letters("post").await.unwrap(), 1);
    assert_eq!(store.high_water_mark(channel_id).await.unwrap(), Some(20));
}
