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

mod access;
mod errors;
mod updates;

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
    // A source chat Telegram does not know: "chat not found" (Client.cpp
    // `TdOnCheckChatCallback`), before the message is looked for.
    let err = bot
        .copy_message(ChatId(USER), ChatId(-999), MessageId(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Api(ApiError::ChatNotFound)),
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
