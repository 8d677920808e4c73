//! Outages and odd input: the Bot API unreachable, PostgreSQL going away,
//! Redis restarting, resumption after a crash, hostile posts.

use super::*;

#[actix_rt::test]
async fn the_bot_api_unreachable_for_a_while_loses_nothing() {
    let (db, store, pairs, fake) = world(2, 20, 2, FakeLimits::off()).await;
    let p = start(&store, &fake, Opts::default()).await;
    let mut posts = Vec::new();
    for i in 1..=2 {
        posts.push((
            fixtures::channel_chat(i),
            text(&fake, i, &format!("before {i}")),
        ));
        p.wake(i);
    }
    let expected = fixtures::expected_list(&pairs, &posts);
    assert!(
        wait_for(Duration::from_secs(20), || fake.report(&expected).delivered
            == expected.len() as u64)
        .await
    );
    fake.set_down(true);
    for i in 1..=2 {
        posts.push((
            fixtures::channel_chat(i),
            text(&fake, i, &format!("during {i}")),
        ));
        p.wake(i);
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    fake.set_down(false);
    let t_back = Instant::now();
    let expected = fixtures::expected_list(&pairs, &posts);
    assert!(
        wait_for(Duration::from_secs(60), || fake.report(&expected).delivered
            == expected.len() as u64)
        .await
    );
    eprintln!(
        "recovered {:?} after the Bot API came back",
        t_back.elapsed()
    );
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'"
        )
        .await as usize,
        expected.len()
    );
    fake.stop();
}

#[actix_rt::test]
async fn postgres_going_away_mid_run_holds_the_batches_and_loses_nothing() {
    let (db, store, pairs, fake) = world(3, 30, 2, FakeLimits::off()).await;
    let p = start(&store, &fake, Opts::default()).await;
    let mut posts = Vec::new();
    for round in 0..2 {
        for i in 1..=3 {
            posts.push((
                fixtures::channel_chat(i),
                text(&fake, i, &format!("r{round} c{i}")),
            ));
            p.wake(i);
        }
    }
    // The database refuses connections and drops every open one for 3 s —
    // to kuryer, exactly what a restart looks like.
    let admin = crate::common::connect(&crate::common::admin_url()).await;
    let name = db.name.clone();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    for round in 2..4 {
        for i in 1..=3 {
            posts.push((
                fixtures::channel_chat(i),
                text(&fake, i, &format!("r{round} c{i}")),
            ));
            p.wake(i);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let back = Instant::now();
    let expected = fixtures::expected_list(&pairs, &posts);
    assert!(
        wait_for(Duration::from_secs(60), || fake.report(&expected).delivered
            == expected.len() as u64)
        .await,
        "{:?}",
        fake.report(&expected)
    );
    p.shutdown(Duration::from_secs(30)).await;
    eprintln!(
        "all delivered {:?} after the database came back",
        back.elapsed()
    );
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates, r.out_of_order), (0, 0, 0), "{r:?}");
    // Every delivery's row reached the database once it was back.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'"
        )
        .await as usize,
        expected.len()
    );
    fake.stop();
}

#[actix_rt::test]
async fn redis_restarting_mid_run_is_survived_and_used_again_without_a_restart() {
    let (mut redis, dedup, port) = private_dedup("t:");
    let (_db, store, pairs, fake) = world(1, 10, 1, FakeLimits::off()).await;
    let p = start(
        &store,
        &fake,
        Opts {
            dedup: Arc::new(dedup.clone()),
            ..Opts::default()
        },
    )
    .await;
    let mut posts = Vec::new();
    let phase = async |label: &str, posts: &mut Vec<(i64, i32)>| {
        posts.push((fixtures::channel_chat(1), text(&fake, 1, label)));
        p.wake(1);
        let expected = fixtures::expected_list(&pairs, posts);
        assert!(
            wait_for(Duration::from_secs(20), || fake.report(&expected).delivered
                == expected.len() as u64)
            .await,
            "{label}"
        );
    };
    phase("redis up", &mut posts).await;
    redis.stop();
    phase("redis down", &mut posts).await;
    assert!(!dedup.is_healthy(), "the outage went unnoticed");
    redis.restart();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    phase("redis back", &mut posts).await;
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&fixtures::expected_list(&pairs, &posts));
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    // The last post's keys are in the restarted Redis: it is used again.
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let last = posts.last().unwrap().1;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("t:i:fwd:*:{last}"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), pairs.len(), "{keys:?}");
    assert!(dedup.is_healthy());
    fake.stop();
}

#[actix_rt::test]
async fn a_post_fanning_out_asks_redis_once_and_skips_what_was_already_accepted() {
    let (db, store, pairs, fake) = world(1, 6, 1, FakeLimits::off()).await;
    let (_redis, dedup, _) = private_dedup("m:");
    let id = text(&fake, 1, "one post");
    let posts = vec![(fixtures::channel_chat(1), id)];
    // Its delivery to the first subscriber was accepted once already (as
    // after a crash between the send and its row).
    let sub_of_first: i64 = subscription_to(&db, pairs[0].0).await;
    dedup.mark(sub_of_first, id, 4343).await;
    assert_eq!(
        dedup
            .seen_many(vec![(sub_of_first, id), (sub_of_first + 1, id)])
            .await,
        Some(vec![Some(4343), None])
    );
    let p = start(
        &store,
        &fake,
        Opts {
            dedup: Arc::new(dedup),
            ..Opts::default()
        },
    )
    .await;
    p.wake(1);
    let expected = fixtures::expected_list(&pairs, &posts);
    let want = expected.len() as u64 - 1;
    assert!(
        wait_for(Duration::from_secs(20), || fake.report(&expected).delivered
            == want)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert_eq!((r.delivered, r.duplicates), (want, 0), "{r:?}");
    assert!(fake.received(pairs[0].0).is_empty(), "sent again");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE status = 'sent' AND sent_message_id = 4343"
        )
        .await,
        1
    );
    fake.stop();
}

#[actix_rt::test]
async fn recorded_but_undelivered_posts_are_resumed_once_and_only_for_older_subscriptions() {
    let (db, store, pairs, fake) = world(1, 6, 1, FakeLimits::off()).await;
    // As if a poller recorded two posts and the process died before sending.
    let mut posts = Vec::new();
    for i in 0..2 {
        let id = text(&fake, 1, &format!("recorded {i}"));
        posts.push((fixtures::channel_chat(1), id));
        store
            .record_post(&NewPost {
                channel_id: 1,
                message_ids: vec![i64::from(id)],
                kind: "text".into(),
                detected_at: Utc::now(),
                source_chat_id: Some(fixtures::channel_chat(1)),
                channel_username: Some("demo_channel_1".into()),
                text: Some(format!("recorded {i}")),
                copyable: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // One delivery had been sent and recorded in Redis before the crash:
    // it must not go out again.
    let (_redis, dedup, _) = private_dedup("r:");
    let sub_of_first: i64 = subscription_to(&db, pairs[0].0).await;
    dedup.mark(sub_of_first, posts[0].1, 4242).await;
    // A subscription made after the posts were detected does not get them.
    db.client()
        .await
        .batch_execute(
            "INSERT INTO users (telegram_id) VALUES (900001);
             INSERT INTO destinations (chat_id, kind, owner_user_id) SELECT 900001, 'private', id FROM users WHERE telegram_id = 900001;
             INSERT INTO subscriptions (user_id, channel_id, destination_id, created_at)
                  SELECT u.id, 1, d.id, now() + interval '1 second' FROM users u JOIN destinations d ON d.owner_user_id = u.id WHERE u.telegram_id = 900001;",
        )
        .await
        .unwrap();
    fake.create_chat(900_001, ChatKind::Private);
    let p = start(
        &store,
        &fake,
        Opts {
            dedup: Arc::new(dedup),
            ..Opts::default()
        },
    )
    .await;
    let expected = fixtures::expected_list(&pairs, &posts);
    let want = expected.len() as u64 - 1;
    assert!(
        wait_for(Duration::from_secs(20), || fake.report(&expected).delivered
            == want)
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.shutdown(Duration::from_secs(10)).await;
    let r = fake.report(&expected);
    assert_eq!((r.delivered, r.duplicates, r.lost), (want, 0, 1), "{r:?}");
    assert!(
        fake.received(900_001).is_empty(),
        "a newer subscription got an older post"
    );
    // The deduplicated delivery is recorded as sent, with the id Redis held.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE status = 'sent'"
        )
        .await as usize,
        expected.len()
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM forwarded_messages WHERE sent_message_id = 4242"
        )
        .await,
        1
    );
    // And nothing is resumed twice: a second start finds nothing to do.
    let p = start(&store, &fake, Opts::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.shutdown(Duration::from_secs(10)).await;
    assert_eq!(fake.report(&expected).duplicates, 0);
    fake.stop();
}

/// Yields hostile messages once, then whatever the simulated channel has.
struct HostileSource {
    inner: SimSource,
    served: bool,
}

impl ChannelSource for HostileSource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        if !self.served {
            self.served = true;
            let now = Utc::now();
            let msg = |id: i32, text: Option<String>, media: Option<MediaKind>| SourceMessage {
                id,
                date: now,
                text,
                entities: vec![],
                media,
                media_group_id: None,
                copyable: true,
                relay: None,
            };
            // Ids going backwards, an empty caption, unsupported media, a
            // message that cannot be copied, all at once.
            let batch = vec![
                msg(5, None, Some(MediaKind::Other)),
                msg(3, Some(String::new()), Some(MediaKind::Photo)),
                SourceMessage {
                    copyable: false,
                    ..msg(4, None, Some(MediaKind::Sticker))
                },
            ];
            return Box::pin(async move { Ok(batch) });
        }
        self.inner.fetch(after, limit)
    }
}

/// A channel that has disappeared.
struct GoneSource;

impl ChannelSource for GoneSource {
    fn fetch(
        &mut self,
        _: i32,
        _: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        Box::pin(async { Err(SourceError::Gone("CHANNEL_PRIVATE".into())) })
    }
}

#[actix_rt::test]
async fn hostile_posts_and_a_vanished_channel_stop_no_poller() {
    let (_db, store, pairs, fake) = world(3, 9, 3, FakeLimits::off()).await;
    let factory: SourceFactory = {
        let fake = fake.clone();
        Arc::new(move |ch| -> Box<dyn ChannelSource> {
            match ch.channel_id {
                2 => Box::new(GoneSource),
                3 => Box::new(HostileSource {
                    inner: SimSource::new(fake.clone(), ch.chat_id),
                    served: false,
                }),
                _ => Box::new(SimSource::new(fake.clone(), ch.chat_id)),
            }
        })
    };
    let p = start(
        &store,
        &fake,
        Opts {
            factory: Some(factory),
            ..Opts::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Posts at the limits of what Telegram allows.
    let long = "ы".repeat(4096);
    let many_entities: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({"type": "bold", "offset": i * 2, "length": 1}))
        .collect();
    let mut posts = Vec::new();
    posts.push((
        fixtures::channel_chat(1),
        fake.post(
            fixtures::channel_chat(1),
            NewChannelMessage::text(long.clone()),
        ),
    ));
    posts.push((
        fixtures::channel_chat(1),
        fake.post(
            fixtures::channel_chat(1),
            NewChannelMessage::text("ab".repeat(120)).with_entities(many_entities),
        ),
    ));
    posts.push((
        fixtures::channel_chat(1),
        text(&fake, 1, "\u{200f}שלום\u{200b}\u{202e}"),
    ));
    // Channel 3's simulated posts come after its hostile batch (ids 3..5).
    for _ in 0..5 {
        fake.post(
            fixtures::channel_chat(3),
            NewChannelMessage::text(format!("filler {}", rand::random::<u32>())),
        );
    }
    posts.push((fixtures::channel_chat(3), text(&fake, 3, "after the storm")));
    for i in 1..=3 {
        p.wake(i);
    }
    let expected = fixtures::expected_list(&pairs, &posts);
    assert!(
        wait_for(Duration::from_secs(20), || fake.report(&expected).delivered
            == expected.len() as u64)
        .await,
        "{:?}",
        fake.report(&expected)
    );
    let s = stats(&p).await;
    p.shutdown(Duration::from_secs(10)).await;
    assert_eq!(s.channels_polled, 3, "a poller stopped");
    let r = fake.report(&expected);
    assert_eq!((r.lost, r.duplicates), (0, 0), "{r:?}");
    let got: HashSet<String> = pairs
        .iter()
        .filter(|(_, c)| *c == fixtures::channel_chat(1))
        .flat_map(|(d, _)| fake.received(*d))
        .filter_map(|m| m.text)
        .collect();
    assert!(
        got.contains(&long),
        "the 4,096-character post did not arrive whole"
    );
    fake.stop();
}
