//! Limits and errors: 429s of the per-chat, group and bot limits, injected
//! faults as teloxide sees them, and server errors.
use super::*;

#[tokio::test]
async fn per_chat_limit_answers_429_and_spaced_sends_pass() {
    let (tg, bot) = fake(FakeLimits::telegram());
    bot.send_message(ChatId(USER), "one").await.expect("first");
    let sent_at = Instant::now();
    let err = bot.send_message(ChatId(USER), "two").await.unwrap_err();
    match err {
        RequestError::RetryAfter(after) => assert_eq!(after.seconds(), 1),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
    // Another chat has its own window.
    bot.send_message(ChatId(USER + 1), "elsewhere")
        .await
        .expect("another chat");
    assert_eq!(tg.stats().rate_limited_429, 1);
    assert_eq!(tg.received(USER).len(), 1, "a 429 delivers nothing");

    // One second after the accepted send (measured after its answer, so at
    // least that on the server) the window is free again.
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(sent_at.elapsed())).await;
    bot.send_message(ChatId(USER), "three")
        .await
        .expect("spaced by a second");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    bot.send_message(ChatId(USER), "four")
        .await
        .expect("spaced by a second");
    assert_eq!(tg.stats().rate_limited_429, 1);
    assert_eq!(tg.received(USER).len(), 3);
}

#[tokio::test]
async fn group_and_bot_limits_answer_429() {
    let limits = FakeLimits {
        per_bot_per_second: 1000.0,
        paid_per_bot_per_second: 1000.0,
        per_chat_per_second: 1000.0,
        per_group_per_minute: 3.0,
        enforce: true,
    };
    let (tg, bot) = fake(limits);
    tg.create_chat(-500, ChatKind::Group);
    for i in 0..3 {
        bot.send_message(ChatId(-500), format!("g{i}"))
            .await
            .expect("within the group limit");
    }
    match bot.send_message(ChatId(-500), "g3").await.unwrap_err() {
        // The window is a minute: the wait is just under 60 s, rounded up.
        RequestError::RetryAfter(after) => assert!((59..=60).contains(&after.seconds())),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
    // Private chats are not under the group limit.
    for i in 0..5 {
        bot.send_message(ChatId(USER), format!("p{i}"))
            .await
            .expect("private chat");
    }

    let limits = FakeLimits {
        per_bot_per_second: 3.0,
        paid_per_bot_per_second: 1000.0,
        per_chat_per_second: 1000.0,
        per_group_per_minute: 1000.0,
        enforce: true,
    };
    let (tg2, bot2) = fake(limits);
    for chat in 1..=3 {
        bot2.send_message(ChatId(chat), "x")
            .await
            .expect("within the bot limit");
    }
    match bot2.send_message(ChatId(4), "x").await.unwrap_err() {
        RequestError::RetryAfter(after) => assert_eq!(after.seconds(), 1),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
    assert_eq!(tg.stats().rate_limited_429, 1);
    assert_eq!(tg2.stats().rate_limited_429, 1);
}

#[tokio::test]
async fn injected_faults_map_to_teloxide_errors() {
    let (tg, bot) = fake(FakeLimits::off());

    tg.set_fault(USER, Fault::Forbidden, Some(1));
    let err = bot.send_message(ChatId(USER), "x").await.unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::BotBlocked)),
        "{err:?}"
    );
    bot.send_message(ChatId(USER), "x")
        .await
        .expect("the fault was for one request");

    tg.set_fault(-500, Fault::MigrateTo(-100_777), None);
    for _ in 0..2 {
        let err = bot.send_message(ChatId(-500), "x").await.unwrap_err();
        assert!(
            matches!(err, RequestError::MigrateToChatId(ChatId(-100_777))),
            "{err:?}"
        );
    }
    tg.clear_fault(-500);
    bot.send_message(ChatId(-500), "x").await.expect("cleared");

    tg.set_fault(USER, Fault::TooManyRequests { retry_after: 7 }, Some(1));
    let err = bot.send_message(ChatId(USER), "x").await.unwrap_err();
    assert!(
        matches!(&err, RequestError::RetryAfter(s) if s.seconds() == 7),
        "{err:?}"
    );

    tg.set_fault(
        USER,
        Fault::BadRequest("Bad Request: chat not found".to_owned()),
        Some(1),
    );
    let err = bot.send_message(ChatId(USER), "x").await.unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::ChatNotFound)),
        "{err:?}"
    );

    tg.set_fault(USER, Fault::Slow(Duration::from_millis(400)), Some(1));
    let started = Instant::now();
    bot.send_message(ChatId(USER), "slow").await.expect("slow");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let slow = tg.received(USER).pop().expect("delivered");
    assert_eq!(slow.text.as_deref(), Some("slow"));
    assert!(
        Instant::now().duration_since(slow.received_at) >= Duration::from_millis(400),
        "delivered at once, answered late"
    );

    let stats = tg.stats();
    assert_eq!(stats.faults_injected, 6);
    assert_eq!(stats.rate_limited_429, 1);
    // Only the requests without a fault, and the slow one, delivered.
    assert_eq!(stats.messages_received, 3);
}

#[tokio::test]
async fn server_error_is_a_500() {
    let (tg, bot) = fake(FakeLimits::off());
    tg.set_fault(USER, Fault::ServerError, Some(2));

    let response = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/sendMessage", tg.url()))
        .json(&json!({"chat_id": USER, "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})
    );

    // teloxide waits 10 s after any 5xx before it returns the error.
    let err = bot.send_message(ChatId(USER), "x").await.unwrap_err();
    assert!(
        matches!(&err, RequestError::Api(ApiError::Unknown(d)) if d == "Internal Server Error"),
        "{err:?}"
    );
    assert!(tg.received(USER).is_empty());
}

/// A request with `allow_paid_broadcast` goes past the free limit, a batch
/// request cannot carry the flag (Client.cpp passes `false` for it).
#[tokio::test]
async fn paid_requests_skip_the_free_limit_and_batches_cannot_be_paid() {
    use teloxide::payloads::SendMessageSetters;
    let limits = FakeLimits {
        per_bot_per_second: 1.0,
        paid_per_bot_per_second: 1000.0,
        per_chat_per_second: 1000.0,
        per_group_per_minute: 1000.0,
        enforce: true,
    };
    let (tg, bot) = fake(limits);
    let ids: Vec<MessageId> = (0..3)
        .map(|_| {
            MessageId(
                tg.post(
                    CHANNEL,
                    NewChannelMessage::media(kuryer_sim::fake_bot_api::MediaKind::Photo, None)
                        .in_album("a"),
                ),
            )
        })
        .collect();
    bot.copy_messages(ChatId(USER), ChatId(CHANNEL), ids.clone())
        .await
        .expect("the album fills the bot's window of 1");
    let err = bot.send_message(ChatId(USER + 1), "x").await.unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(_)), "{err:?}");
    for i in 0..5 {
        bot.send_message(ChatId(USER + 2 + i), "paid")
            .allow_paid_broadcast(true)
            .await
            .expect("a paid request is held to the paid limit only");
    }
    let err = bot
        .copy_messages(ChatId(USER + 10), ChatId(CHANNEL), ids)
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(_)), "{err:?}");
}

/// An album's items each count against the bot's 30 a second (the sources
/// are cited in `send.rs`): three albums of 10 fill the second, a fourth
/// album and a single message then wait. Counted as one request each, the
/// fourth album passed.
#[tokio::test]
async fn each_album_item_counts_against_the_bots_limit() {
    let (tg, bot) = fake(FakeLimits::telegram());
    let ids: Vec<MessageId> = (0..10)
        .map(|_| {
            MessageId(
                tg.post(
                    CHANNEL,
                    NewChannelMessage::media(kuryer_sim::fake_bot_api::MediaKind::Photo, None)
                        .in_album("ten"),
                ),
            )
        })
        .collect();
    for chat in 0..3 {
        bot.copy_messages(ChatId(USER + chat), ChatId(CHANNEL), ids.clone())
            .await
            .expect("30 items fit the bot's second");
    }
    let err = bot
        .copy_messages(ChatId(USER + 3), ChatId(CHANNEL), ids.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(_)), "{err:?}");
    let err = bot
        .forward_messages(ChatId(USER + 4), ChatId(CHANNEL), ids)
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(_)), "{err:?}");
    assert_eq!(tg.stats().rate_limited_429, 2);
    assert_eq!(tg.stats().messages_received, 30);
}
