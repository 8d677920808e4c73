//! Deliveries for the tests of the limiter and of what this process holds.

use std::sync::Arc;

use chrono::Utc;

use crate::model::{ActiveSubscription, Delivery, DeliveryMode, DestinationKind, Post};

/// A delivery of a post of `channel` to `chat`, served by the primary bot.
pub(crate) fn delivery(channel: i64, chat: i64, kind: DestinationKind) -> Delivery {
    pinned(channel, chat, kind, None)
}

/// A delivery to a destination pinned to bot `bot_id`.
pub(crate) fn pinned(
    channel: i64,
    chat: i64,
    kind: DestinationKind,
    bot_id: Option<i64>,
) -> Delivery {
    let post = Post {
        channel_id: channel,
        source_chat_id: -100,
        channel_username: None,
        message_ids: vec![1],
        relay_message_ids: None,
        text: Some("t".into()),
        entities: vec![],
        media: None,
        album_id: None,
        copyable: true,
        published_at: Utc::now(),
        detected_at: Utc::now(),
    };
    Delivery {
        post: Arc::new(post),
        sub: Arc::new(ActiveSubscription {
            subscription_id: chat,
            channel_id: channel,
            user_telegram_id: chat,
            destination_id: chat,
            chat_id: chat,
            destination_kind: kind,
            bot_id,
            mode: DeliveryMode::Copy,
            filters: "{}".into(),
            transform: None,
            quiet: None,
            thread_id: None,
        }),
        attempt: 0,
        dedup: Default::default(),
        op: Default::default(),
    }
}
