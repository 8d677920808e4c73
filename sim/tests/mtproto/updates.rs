//! Pushed updates: new, edited and deleted posts of joined channels, gaps
//! filled by getChannelDifference, and the push throughput measurement.
use super::*;

async fn next_update(stream: &mut UpdateStream) -> tl::enums::Update {
    tokio::time::timeout(Duration::from_secs(10), stream.next_raw())
        .await
        .expect("an update within 10 s")
        .expect("update stream")
        .0
}

fn text_of(u: &tl::enums::Update) -> (&'static str, i32, String) {
    match u {
        tl::enums::Update::NewChannelMessage(u) => match &u.message {
            tl::enums::Message::Message(m) => ("new", m.id, m.message.clone()),
            other => panic!("{other:?}"),
        },
        tl::enums::Update::EditChannelMessage(u) => match &u.message {
            tl::enums::Message::Message(m) => ("edit", m.id, m.message.clone()),
            other => panic!("{other:?}"),
        },
        tl::enums::Update::DeleteChannelMessages(u) => ("delete", u.messages[0], String::new()),
        other => panic!("unexpected update {other:?}"),
    }
}

/// A signed-in reader that joined `channel` and streams its updates.
async fn joined_reader(
    fake: &MtprotoFake,
    key: [u8; 256],
    username: &str,
) -> (Reader, UpdateStream) {
    joined(Reader::signed_in(fake, key).await, username).await
}

async fn joined(mut reader: Reader, username: &str) -> (Reader, UpdateStream) {
    let peer = reader
        .client
        .resolve_username(username)
        .await
        .expect("resolve")
        .expect("occupied");
    reader
        .client
        .join_chat(peer.to_ref().await.expect("ref").expect("hash"))
        .await
        .expect("join");
    // What a reader keeps in its session after login: the account's update
    // state (grammers' MemorySession does not answer `self_user()`, so the
    // stream would not fetch it itself).
    let tl::enums::updates::State::State(state) = reader
        .client
        .invoke(&tl::functions::updates::GetState {})
        .await
        .expect("getState");
    reader
        .session
        .set_update_state(UpdateState::All(UpdatesState {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels: Vec::new(),
        }))
        .await
        .expect("save state");
    let stream = reader
        .client
        .stream_updates(
            reader.updates.take().expect("updates receiver"),
            UpdatesConfiguration { catch_up: true },
        )
        .await
        .expect("stream");
    (reader, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_channels_push_new_edited_and_deleted_posts() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000004");
    let news = public_channel(&fake, "pushes");
    let (reader, mut stream) = joined_reader(&fake, key, "pushes").await;
    let one = fake.publish_text(news, "one");
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("new", one, "one".to_owned())
    );
    let two = fake.publish_text(news, "two");
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("new", two, "two".to_owned())
    );
    assert!(fake.edit(news, one, "one, edited"));
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("edit", one, "one, edited".to_owned())
    );
    assert_eq!(fake.delete(news, &[two]), 1);
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("delete", two, String::new())
    );
    let three = fake.publish_text(news, "three");
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        ("new", three, "three".to_owned())
    );
    let stats = fake.stats(id);
    assert_eq!(stats.pushed, 5);
    assert_eq!(
        stats.calls("updates.getChannelDifference"),
        0,
        "no gap: {stats:?}"
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_push_is_recovered_by_get_channel_difference() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000005");
    let news = public_channel(&fake, "gappy");
    let (reader, mut stream) = joined_reader(&fake, key, "gappy").await;
    fake.publish_text(news, "a");
    assert_eq!(text_of(&next_update(&mut stream).await).2, "a");
    fake.drop_pushes(id, Some(2));
    fake.publish_text(news, "b");
    fake.publish_text(news, "c");
    fake.publish_text(news, "d");
    let got: Vec<String> = [
        next_update(&mut stream).await,
        next_update(&mut stream).await,
        next_update(&mut stream).await,
    ]
    .iter()
    .map(|u| text_of(u).2)
    .collect();
    assert_eq!(got, ["b", "c", "d"]);
    let stats = fake.stats(id);
    assert_eq!(stats.dropped, 2);
    assert_eq!(stats.calls("updates.getChannelDifference"), 1, "{stats:?}");
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_missed_posts_answer_channel_difference_too_long() {
    let fake = MtprotoFake::start(MtprotoConfig {
        channel_difference_limit: 5,
        ..MtprotoConfig::default()
    })
    .expect("start");
    let (id, key) = account(&fake, "+998900000006");
    let news = public_channel(&fake, "floody");
    let (reader, mut stream) = joined_reader(&fake, key, "floody").await;
    fake.publish_text(news, "first");
    assert_eq!(text_of(&next_update(&mut stream).await).2, "first");
    fake.drop_pushes(id, Some(10));
    for i in 0..10 {
        fake.publish_text(news, &format!("missed {i}"));
    }
    fake.publish_text(news, "after the gap");
    // channelDifferenceTooLong carries no updates: the client jumps to the
    // channel's pts, and the next push applies cleanly.
    let (u, last) = tokio::join!(next_update(&mut stream), async {
        wait_for(|| fake.stats(id).calls("updates.getChannelDifference") == 1).await;
        fake.publish_text(news, "next")
    });
    assert_eq!(text_of(&u), ("new", last, "next".to_owned()));
    let stats = fake.stats(id);
    assert_eq!(stats.calls("updates.getChannelDifference"), 1, "{stats:?}");
    // What the jump skipped is still in the history, above the last id read.
    let ids = message_ids(
        reader
            .client
            .invoke(&history(1, 0, 100, input_peer(&fake, news, id)))
            .await
            .expect("history"),
    );
    assert_eq!(ids.len(), 12);
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_too_long_and_updates_too_long_pushes_lead_to_the_missed_posts() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000007");
    let news = public_channel(&fake, "toolong");
    let (reader, mut stream) = joined_reader(&fake, key, "toolong").await;
    fake.publish_text(news, "seen");
    assert_eq!(text_of(&next_update(&mut stream).await).2, "seen");
    fake.drop_pushes(id, Some(1));
    fake.publish_text(news, "lost push 1");
    fake.push_channel_too_long(id, news);
    assert_eq!(text_of(&next_update(&mut stream).await).2, "lost push 1");
    let differences = fake.stats(id).calls("updates.getDifference");
    fake.drop_pushes(id, Some(1));
    fake.publish_text(news, "lost push 2");
    fake.push_updates_too_long(id);
    assert_eq!(text_of(&next_update(&mut stream).await).2, "lost push 2");
    let stats = fake.stats(id);
    assert_eq!(
        stats.calls("updates.getDifference"),
        differences + 1,
        "{stats:?}"
    );
    assert_eq!(stats.calls("updates.getChannelDifference"), 2, "{stats:?}");
    reader.close().await;
}

/// Pushed updates per second the fake sustains to one grammers client (the
/// client's own decryption and update handling included). A measurement, not
/// a check: `cargo test -p kuryer-sim --test mtproto -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run explicitly"]
async fn measure_push_throughput_to_one_account() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (id, key) = account(&fake, "+998900000099");
    let news = public_channel(&fake, "firehose");
    let params = ConnectionParams {
        updates_channel_capacity: std::num::NonZeroUsize::new(1 << 20).unwrap(),
        ..ConnectionParams::default()
    };
    let reader = Reader::connect_with(&fake, key, params).await;
    reader.client.get_me().await.expect("get_me");
    let (reader, mut stream) = joined(reader, "firehose").await;
    const N: usize = 5000;
    let started = std::time::Instant::now();
    let fake = Arc::new(fake);
    let publisher = {
        let fake = Arc::clone(&fake);
        std::thread::spawn(move || {
            for i in 0..N {
                fake.publish_text(news, &format!("p{i}"));
            }
            started.elapsed()
        })
    };
    let mut got = 0;
    while got < N {
        let u = next_update(&mut stream).await;
        if matches!(u, tl::enums::Update::NewChannelMessage(_)) {
            got += 1;
        }
    }
    let publish_time = publisher.join().expect("publisher");
    let elapsed = started.elapsed();
    let stats = fake.stats(id);
    println!(
        "pushed {N} updates to one account in {elapsed:?} ({:.0}/s; publishing took {publish_time:?}); \
         dropped by the client's channel and recovered by getChannelDifference: {} calls",
        N as f64 / elapsed.as_secs_f64(),
        stats.calls("updates.getChannelDifference"),
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_world_posts_from_either_face_reach_both() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let bot_api = FakeTelegram::start(FakeLimits::off()).expect("bot api");
    fake.attach_bot_api(bot_api.clone());
    let (_, key) = account(&fake, "+998900000030");
    let news = public_channel(&fake, "both_faces");
    let (reader, mut stream) = joined_reader(&fake, key, "both_faces").await;

    let from_bot_api = bot_api.post(
        news.bot_api_chat_id(),
        kuryer_sim::fake_bot_api::NewChannelMessage::text("published on the Bot API face"),
    );
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        (
            "new",
            from_bot_api,
            "published on the Bot API face".to_owned()
        )
    );
    let from_control = fake.publish_text(news, "published on the MTProto face");
    assert_eq!(from_control, from_bot_api + 1);
    assert_eq!(
        text_of(&next_update(&mut stream).await),
        (
            "new",
            from_control,
            "published on the MTProto face".to_owned()
        )
    );
    let on_bot_api: Vec<_> = bot_api
        .channel_messages_after(news.bot_api_chat_id(), 0, 10)
        .into_iter()
        .map(|m| (m.id, m.text.unwrap_or_default()))
        .collect();
    assert_eq!(
        on_bot_api,
        [
            (from_bot_api, "published on the Bot API face".to_owned()),
            (from_control, "published on the MTProto face".to_owned())
        ]
    );
    reader.close().await;
    bot_api.stop();
}

/// Pushed updates per second to 20 grammers clients, one channel they all
/// joined (the fan-out side of the fake). A measurement, run explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run explicitly"]
async fn measure_push_throughput_to_twenty_accounts() {
    const ACCOUNTS: usize = 20;
    const POSTS: usize = 500;
    let fake = Arc::new(MtprotoFake::start(MtprotoConfig::default()).expect("start"));
    let news = public_channel(&fake, "fanout");
    let mut streams = Vec::new();
    for i in 0..ACCOUNTS {
        let (_, key) = account(&fake, &format!("+99890100{i:04}"));
        let params = ConnectionParams {
            updates_channel_capacity: std::num::NonZeroUsize::new(1 << 20).unwrap(),
            ..ConnectionParams::default()
        };
        let reader = Reader::connect_with(&fake, key, params).await;
        reader.client.get_me().await.expect("get_me");
        streams.push(joined(reader, "fanout").await);
    }
    let started = std::time::Instant::now();
    let publisher = {
        let fake = Arc::clone(&fake);
        std::thread::spawn(move || {
            for i in 0..POSTS {
                fake.publish_text(news, &format!("p{i}"));
            }
        })
    };
    let mut tasks = Vec::new();
    for (reader, mut stream) in streams {
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < POSTS {
                if matches!(
                    next_update(&mut stream).await,
                    tl::enums::Update::NewChannelMessage(_)
                ) {
                    got += 1;
                }
            }
            reader.close().await;
        }));
    }
    for t in tasks {
        t.await.expect("reader");
    }
    publisher.join().expect("publisher");
    let elapsed = started.elapsed();
    let total = ACCOUNTS * POSTS;
    println!(
        "pushed {total} updates ({POSTS} posts x {ACCOUNTS} accounts) in {elapsed:?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );
}
