//! Updates and the rest of the wire: long-polled channel posts, history,
//! the delivery report, a fake that goes down, form and query parameters,
//! and concurrent requests.
use super::*;

#[tokio::test]
async fn get_updates_long_polls_channel_posts_of_admin_channels() {
    let (tg, bot) = fake(FakeLimits::telegram());
    tg.create_channel(-1_002_002, "other", "Other");
    tg.set_admin(CHANNEL, TOKEN, true);
    tg.set_admin(CHANNEL, TOKEN, true); // already admin: no second update
    tg.post(-1_002_002, NewChannelMessage::text("not admin here"));
    tg.post(
        CHANNEL,
        NewChannelMessage::text("hello").with_entities(vec![bold(0, 5)]),
    );
    tg.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Photo, Some("p")).in_album("g1"),
    );
    tg.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Video, None)
            .in_album("g1")
            .protected(),
    );

    let updates = bot.get_updates().await.expect("getUpdates");
    assert_eq!(updates.len(), 4, "{updates:?}");
    match &updates[0].kind {
        UpdateKind::MyChatMember(m) => {
            assert_eq!(m.chat.id, ChatId(CHANNEL));
            assert!(matches!(m.old_chat_member.kind, ChatMemberKind::Left));
            assert!(m.new_chat_member.is_administrator());
            assert_eq!(m.new_chat_member.user.id, UserId(1001));
        }
        other => panic!("expected my_chat_member, got {other:?}"),
    }
    let posts: Vec<&Message> = updates[1..]
        .iter()
        .map(|u| match &u.kind {
            UpdateKind::ChannelPost(m) => m,
            other => panic!("expected channel_post, got {other:?}"),
        })
        .collect();
    assert_eq!(posts[0].text(), Some("hello"));
    assert_eq!(posts[0].entities(), Some(&[MessageEntity::bold(0, 5)][..]));
    assert_eq!(posts[0].chat.id, ChatId(CHANNEL));
    assert!(posts[0].chat.is_channel());
    assert_eq!(posts[0].chat.username(), Some("news"));
    assert_eq!(posts[0].chat.title(), Some("News"));
    assert_eq!(
        posts[0].sender_chat.as_ref().map(|c| c.id),
        Some(ChatId(CHANNEL))
    );
    assert_eq!(posts[0].id, MessageId(1));
    assert!(posts[1].photo().is_some());
    assert_eq!(posts[1].caption(), Some("p"));
    assert_eq!(posts[1].media_group_id().map(|g| g.0.as_str()), Some("g1"));
    assert!(posts[2].video().is_some());
    assert!(posts[2].has_protected_content());
    assert_eq!(posts[2].media_group_id(), posts[1].media_group_id());

    // Unconfirmed updates come again; the offset confirms them.
    assert_eq!(bot.get_updates().await.unwrap().len(), 4);
    let offset = updates.last().unwrap().id.as_offset();
    let none = bot.get_updates().offset(offset).await.unwrap();
    assert!(none.is_empty());
    assert!(
        bot.get_updates().await.unwrap().is_empty(),
        "confirmed ones are gone"
    );

    // A long poll returns as soon as a post arrives.
    let poster = tg.clone();
    let post_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        poster.post(CHANNEL, NewChannelMessage::text("late"))
    });
    let started = Instant::now();
    let late = bot.get_updates().offset(offset).timeout(5).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(post_thread.join().unwrap(), 4);
    assert_eq!(late.len(), 1);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    match &late[0].kind {
        UpdateKind::ChannelPost(m) => assert_eq!(m.text(), Some("late")),
        other => panic!("expected channel_post, got {other:?}"),
    }

    // A long poll with nothing to say waits its timeout out.
    let offset = late[0].id.as_offset();
    let started = Instant::now();
    assert!(
        bot.get_updates()
            .offset(offset)
            .timeout(1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // No longer admin: a my_chat_member back to left, and no more posts.
    tg.set_admin(CHANNEL, TOKEN, false);
    tg.post(CHANNEL, NewChannelMessage::text("unseen"));
    let updates = bot.get_updates().offset(offset).await.unwrap();
    assert_eq!(updates.len(), 1, "{updates:?}");
    match &updates[0].kind {
        UpdateKind::MyChatMember(m) => {
            assert!(m.old_chat_member.is_administrator());
            assert!(m.new_chat_member.is_left());
        }
        other => panic!("expected my_chat_member, got {other:?}"),
    }
}

#[tokio::test]
async fn history_reads_oldest_first() {
    let (tg, _bot) = fake(FakeLimits::off());
    for i in 1..=5 {
        assert_eq!(
            tg.post(CHANNEL, NewChannelMessage::text(format!("m{i}"))),
            i
        );
    }
    let page = tg.channel_messages_after(CHANNEL, 2, 2);
    let ids: Vec<i32> = page.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![3, 4]);
    assert_eq!(page[0].text.as_deref(), Some("m3"));
    assert!(page[0].posted_at <= page[1].posted_at);
    assert!(tg.channel_messages_after(CHANNEL, 5, 10).is_empty());
    assert_eq!(tg.channel_messages_after(CHANNEL, 0, 10).len(), 5);
    assert!(tg.channel_messages_after(-5, 0, 10).is_empty());
}

#[tokio::test]
async fn report_counts_duplicates_lost_and_out_of_order() {
    let (tg, bot) = fake(FakeLimits::off());
    for i in 1..=5 {
        tg.post(CHANNEL, NewChannelMessage::text(format!("post {i}")));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    // 4 is lost, 3 twice, 2 after 3.
    for id in [1, 3, 2, 3, 5] {
        bot.copy_message(ChatId(USER), ChatId(CHANNEL), MessageId(id))
            .await
            .expect("copyMessage");
    }
    // Not expected anywhere.
    bot.copy_message(ChatId(77), ChatId(CHANNEL), MessageId(1))
        .await
        .expect("copyMessage");

    let expected: Vec<_> = (1..=5).map(|id| (USER, CHANNEL, id)).collect();
    let report = tg.report(&expected);
    assert_eq!(report.expected, 5);
    assert_eq!(report.delivered, 4);
    assert_eq!(report.lost, 1);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.out_of_order, 1);
    assert_eq!(report.unexpected, 1);
    assert_eq!(report.albums_split, 0);
    assert!(report.latency_p50_ms >= 20.0, "{report}");
    assert!(report.latency_p50_ms <= report.latency_p99_ms);
    assert!(report.latency_p99_ms <= report.latency_max_ms);

    // Nothing delivered: everything lost, no latency.
    let report = tg.report(&[(555, CHANNEL, 1)]);
    assert_eq!((report.delivered, report.lost), (0, 1));
    assert!(report.latency_max_ms.abs() < f64::EPSILON);
}

#[tokio::test]
async fn down_fails_at_the_tcp_level_and_comes_back() {
    let (tg, bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("kept"));
    bot.copy_message(ChatId(USER), ChatId(CHANNEL), MessageId(1))
        .await
        .expect("up");

    tg.set_down(true);
    let started = Instant::now();
    let err = bot.get_me().await.unwrap_err();
    assert!(matches!(err, RequestError::Network(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");

    tg.set_down(false);
    bot.get_me().await.expect("back up");
    bot.copy_message(ChatId(USER), ChatId(CHANNEL), MessageId(1))
        .await
        .expect("back up");
    assert_eq!(tg.received(USER).len(), 2, "state survives the outage");

    tg.stop();
    assert!(bot.get_me().await.is_err());
    assert_eq!(tg.received(USER).len(), 2, "readable after stop");
}

#[tokio::test]
async fn form_and_query_parameters_are_accepted() {
    let (tg, _bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("via form"));
    let client = reqwest::Client::new();

    let body: Value = client
        .post(format!("{}/bot{TOKEN}/sendMessage", tg.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("chat_id=42&text=via+form&entities=%5B%7B%22type%22%3A%22bold%22%2C%22offset%22%3A0%2C%22length%22%3A3%7D%5D")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["ok"], json!(true), "{body}");
    assert_eq!(body["result"]["message_id"], json!(1));

    let body: Value = client
        .get(format!(
            "{}/bot{TOKEN}/copyMessages?chat_id=42&from_chat_id=@news&message_ids=[1]",
            tg.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"ok": true, "result": [{"message_id": 2}]}));

    let received = tg.received(USER);
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].source, Some((CHANNEL, 1)));
    assert_eq!(received[0].entities, vec![bold(0, 3)]);
    assert_eq!(received[1].method, "copyMessages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_counted() {
    const TASKS: i64 = 40;
    const EACH: i64 = 50;
    let (tg, bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("fan out"));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let bot = bot.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    bot.copy_message(ChatId(1000 + t * EACH + i), ChatId(CHANNEL), MessageId(1))
                        .await
                        .expect("copyMessage");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = TASKS * EACH;
    eprintln!(
        "{total} copyMessage requests in {elapsed:?} ({:.0}/s)",
        total as f64 / elapsed.as_secs_f64()
    );
    let stats = tg.stats();
    assert_eq!(stats.messages_received, total as u64);
    assert_eq!(stats.per_method.get("copyMessage"), Some(&(total as u64)));
    let expected: Vec<_> = (0..total).map(|i| (1000 + i, CHANNEL, 1)).collect();
    let report = tg.report(&expected);
    assert_eq!(report.delivered, total as u64);
    assert_eq!(report.duplicates + report.lost + report.unexpected, 0);
}
