//! The fake Telegram Bot API against teloxide's real client: every answer
//! must deserialize into teloxide-core's types, every error must surface as
//! the teloxide error the daemon would get from the real Telegram, and the
//! delivery report must count what actually arrived.

use std::time::{Duration, Instant};

use kuryer_sim::fake_bot_api::{
    ChatKind, FakeLimits, FakeTelegram, Fault, MediaKind, NewChannelMessage,
};
use serde_json::{Value, json};
use teloxide::prelude::*;
use teloxide::types::{
    ChatMemberKind, MessageEntity, MessageId, MessageOrigin, Recipient, UpdateKind, UserId,
};
use teloxide::{ApiError, RequestError};

const TOKEN: &str = "1001:secret-a";
const CHANNEL: i64 = -1_001_001;
const USER: i64 = 42;

/// A fake with one bot and one channel (`@news`), and a client for the bot.
fn fake(limits: FakeLimits) -> (FakeTelegram, Bot) {
    let tg = FakeTelegram::start(limits).expect("start the fake");
    tg.add_bot(TOKEN);
    tg.create_channel(CHANNEL, "news", "News");
    let bot = tg.bot(TOKEN);
    (tg, bot)
}

fn bold(offset: usize, length: usize) -> Value {
    json!({"type": "bold", "offset": offset, "length": length})
}

#[tokio::test]
async fn get_me_returns_the_registered_bot() {
    let (tg, bot) = fake(FakeLimits::telegram());
    let me = bot.get_me().await.expect("getMe");
    assert_eq!(me.id, UserId(1001));
    assert!(me.is_bot);
    assert_eq!(me.username(), "fake1001_bot");
    let stats = tg.stats();
    assert_eq!(stats.requests_total, 1);
    assert_eq!(stats.per_method.get("getMe"), Some(&1));
}

#[tokio::test]
async fn unknown_token_is_401_and_unknown_method_is_404() {
    let (tg, _bot) = fake(FakeLimits::telegram());
    let err = tg.bot("999:unknown").get_me().await.unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::InvalidToken)),
        "{err:?}"
    );

    let response = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/sendSticker", tg.url()))
        .json(&json!({"chat_id": USER}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );

    let response = reqwest::get(format!("{}/bot999:unknown/getMe", tg.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    assert_eq!(tg.stats().unauthorized_401, 2);
}

#[tokio::test]
async fn send_message_with_entities_arrives_attributed_to_its_post() {
    let (tg, bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("first post"));
    let id = tg.post(
        CHANNEL,
        NewChannelMessage::text("Hello world").with_entities(vec![bold(0, 5)]),
    );
    assert_eq!(id, 2);

    let msg = bot
        .send_message(ChatId(USER), "Hello world")
        .entities(vec![MessageEntity::bold(0, 5)])
        .await
        .expect("sendMessage");
    assert_eq!(msg.text(), Some("Hello world"));
    assert_eq!(msg.entities(), Some(&[MessageEntity::bold(0, 5)][..]));
    assert!(msg.chat.is_private());
    assert_eq!(msg.chat.id, ChatId(USER));
    assert_eq!(msg.from.as_ref().map(|u| u.id), Some(UserId(1001)));

    // A text no post has.
    bot.send_message(ChatId(USER), "not from any channel")
        .await
        .expect("sendMessage");

    let received = tg.received(USER);
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].method, "sendMessage");
    assert_eq!(received[0].source, Some((CHANNEL, 2)));
    assert_eq!(received[0].entities, vec![bold(0, 5)]);
    assert_eq!(received[0].bot_id, 1001);
    assert_eq!(received[0].message_id, 1);
    assert_eq!(received[1].source, None);

    let report = tg.report(&[(USER, CHANNEL, 2)]);
    assert_eq!(report.delivered, 1);
    assert_eq!(report.lost, 0);
    assert_eq!(report.unexpected, 1);
}

#[tokio::test]
async fn copy_messages_of_an_album_is_one_post_in_one_request() {
    let (tg, bot) = fake(FakeLimits::off());
    for (i, kind) in [MediaKind::Photo, MediaKind::Video, MediaKind::Document]
        .into_iter()
        .enumerate()
    {
        let caption = (i == 0).then_some("album caption");
        tg.post(
            CHANNEL,
            NewChannelMessage::media(kind, caption).in_album("a1"),
        );
    }
    tg.post(CHANNEL, NewChannelMessage::text("after the album"));

    let ids = bot
        .copy_messages(
            ChatId(USER),
            ChatId(CHANNEL),
            [MessageId(1), MessageId(2), MessageId(3)],
        )
        .await
        .expect("copyMessages");
    assert_eq!(ids, vec![MessageId(1), MessageId(2), MessageId(3)]);

    let received = tg.received(USER);
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.method == "copyMessages"));
    assert!(
        received
            .iter()
            .all(|r| r.request_id == received[0].request_id)
    );
    assert!(
        received
            .iter()
            .all(|r| r.media_group_id.as_deref() == Some("a1"))
    );
    let sources: Vec<_> = received.iter().map(|r| r.source).collect();
    assert_eq!(
        sources,
        vec![Some((CHANNEL, 1)), Some((CHANNEL, 2)), Some((CHANNEL, 3))]
    );
    assert_eq!(received[0].text.as_deref(), Some("album caption"));

    // Any part names the album.
    let report = tg.report(&[(USER, CHANNEL, 2)]);
    assert_eq!(report.expected, 1);
    assert_eq!(report.delivered, 1);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.albums_split, 0);
    assert_eq!(report.album_parts_missing, 0);
    assert_eq!(tg.stats().messages_received, 3);

    // The same album part by part: split, and the parts leave the album.
    for id in 1..=3 {
        bot.copy_message(ChatId(43), ChatId(CHANNEL), MessageId(id))
            .await
            .expect("copyMessage");
    }
    assert!(tg.received(43).iter().all(|r| r.media_group_id.is_none()));
    let report = tg.report(&[(43, CHANNEL, 1)]);
    assert_eq!(report.delivered, 1);
    assert_eq!(report.albums_split, 1);

    // Only the first part: delivered, but parts are missing.
    bot.copy_message(ChatId(44), ChatId(CHANNEL), MessageId(1))
        .await
        .expect("copyMessage");
    let report = tg.report(&[(44, CHANNEL, 1)]);
    assert_eq!(report.albums_split, 0);
    assert_eq!(report.album_parts_missing, 2);
}

#[tokio::test]
async fn copy_messages_skips_protected_parts() {
    let (tg, bot) = fake(FakeLimits::off());
    tg.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Photo, None).in_album("g"),
    );
    tg.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Photo, None)
            .in_album("g")
            .protected(),
    );
    let ids = bot
        .copy_messages(ChatId(USER), ChatId(CHANNEL), [MessageId(1), MessageId(2)])
        .await
        .expect("copyMessages");
    assert_eq!(ids, vec![MessageId(1)]);
    let report = tg.report(&[(USER, CHANNEL, 1)]);
    assert_eq!(report.delivered, 1);
    assert_eq!(report.album_parts_missing, 0);
    assert_eq!(report.albums_split, 0);
}

#[tokio::test]
async fn forward_message_returns_a_full_message_with_its_origin() {
    let (tg, bot) = fake(FakeLimits::off());
    tg.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Photo, Some("a photo")).with_entities(vec![bold(2, 5)]),
    );
    tg.post(CHANNEL, NewChannelMessage::media(MediaKind::Video, None));
    tg.post(
        CHANNEL,
        NewChannelMessage::media(MediaKind::Document, Some("a file")),
    );
    tg.post(CHANNEL, NewChannelMessage::text("plain"));

    let msg = bot
        .forward_message(ChatId(USER), ChatId(CHANNEL), MessageId(1))
        .await
        .expect("forwardMessage");
    assert!(msg.photo().is_some());
    assert_eq!(msg.caption(), Some("a photo"));
    assert_eq!(
        msg.caption_entities(),
        Some(&[MessageEntity::bold(2, 5)][..])
    );
    match msg.forward_origin() {
        Some(MessageOrigin::Channel {
            chat, message_id, ..
        }) => {
            assert_eq!(chat.id, ChatId(CHANNEL));
            assert!(chat.is_channel());
            assert_eq!(chat.username(), Some("news"));
            assert_eq!(*message_id, MessageId(1));
        }
        other => panic!("forward origin {other:?}"),
    }

    tg.create_chat(-200, ChatKind::Supergroup);
    let video = bot
        .forward_message(ChatId(-200), ChatId(CHANNEL), MessageId(2))
        .await
        .expect("forward a video");
    assert!(video.video().is_some());
    assert!(video.chat.is_supergroup());

    tg.create_chat(-300, ChatKind::Channel);
    let document = bot
        .forward_message(ChatId(-300), ChatId(CHANNEL), MessageId(3))
        .await
        .expect("forward a document");
    assert!(document.document().is_some());
    assert!(document.chat.is_channel());
    assert!(document.from.is_none());
    assert_eq!(
        document.sender_chat.as_ref().map(|c| c.id),
        Some(ChatId(-300))
    );

    tg.create_chat(-400, ChatKind::Group);
    let text = bot
        .forward_message(
            ChatId(-400),
            Recipient::ChannelUsername("@news".to_owned()),
            MessageId(4),
        )
        .await
        .expect("forward by channel username");
    assert_eq!(text.text(), Some("plain"));
    assert!(text.chat.is_group());

    let ids = bot
        .forward_messages(ChatId(USER), ChatId(CHANNEL), [MessageId(2), MessageId(4)])
        .await
        .expect("forwardMessages");
    assert_eq!(ids, vec![MessageId(2), MessageId(3)]);

    let received = tg.received(USER);
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].method, "forwardMessage");
    assert_eq!(received[1].method, "forwardMessages");
    assert_eq!(received[2].source, Some((CHANNEL, 4)));
}

#[tokio::test]
async fn invalid_copies_are_rejected_and_deliver_nothing() {
    let (tg, bot) = fake(FakeLimits::off());
    tg.post(CHANNEL, NewChannelMessage::text("open"));
    tg.post(CHANNEL, NewChannelMessage::text("secret").protected());

    let err = bot
        .copy_message(ChatId(USER), ChatId(CHANNEL), MessageId(99))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageToCopyNotFound)),
        "{err:?}"
    );
    let err = bot
        .copy_message(ChatId(USER), ChatId(-999), MessageId(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageToCopyNotFound)),
        "{err:?}"
    );
    let err = bot
        .copy_message(ChatId(USER), ChatId(CHANNEL), MessageId(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Api(ApiError::Unknown(d)) if d == "Bad Request: message can't be copied"),
        "{err:?}"
    );
    let err = bot
        .forward_message(ChatId(USER), ChatId(CHANNEL), MessageId(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Api(ApiError::Unknown(d)) if d == "Bad Request: message can't be forwarded"),
        "{err:?}"
    );
    let err = bot
        .forward_message(ChatId(USER), ChatId(CHANNEL), MessageId(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageToForwardNotFound)),
        "{err:?}"
    );
    let err = bot
        .copy_messages(ChatId(USER), ChatId(CHANNEL), [MessageId(1), MessageId(3)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageToCopyNotFound)),
        "{err:?}"
    );
    let err = bot
        .copy_messages(ChatId(USER), ChatId(CHANNEL), [MessageId(2), MessageId(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::Unknown(_))),
        "{err:?}"
    );

    let err = bot
        .send_message(ChatId(USER), "a".repeat(4097))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageIsTooLong)),
        "{err:?}"
    );
    // The limit is in UTF-16 units: 2049 astral characters are 4098 units.
    let err = bot
        .send_message(ChatId(USER), "😀".repeat(2049))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageIsTooLong)),
        "{err:?}"
    );
    assert_eq!(tg.stats().messages_received, 0);
    assert!(tg.received(USER).is_empty());

    bot.send_message(ChatId(USER), "a".repeat(4096))
        .await
        .expect("4096 characters fit");
    assert_eq!(tg.received(USER).len(), 1);
}

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
