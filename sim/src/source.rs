//! The simulated channel source: reads a channel's history from the fake
//! Telegram, as the MTProto reader reads a real channel (`messages.getHistory`
//! from the high-water mark).

use futures_util::future::LocalBoxFuture;
use kuryer_actors::model::{MediaKind, MessageEntity, SourceMessage};
use kuryer_actors::ports::{ChannelSource, SourceError};

use crate::fake_bot_api::{self, ChannelMessage, FakeTelegram};

/// A `ChannelSource` over one channel of a [`FakeTelegram`].
pub struct SimSource {
    fake: FakeTelegram,
    chat_id: i64,
}

impl SimSource {
    /// Reads channel `chat_id` of `fake`.
    pub fn new(fake: FakeTelegram, chat_id: i64) -> Self {
        Self { fake, chat_id }
    }
}

/// Converts a fake channel message into what a source yields.
pub fn to_source_message(m: ChannelMessage) -> SourceMessage {
    SourceMessage {
        id: m.id,
        date: chrono::DateTime::from_timestamp(m.date, 0).unwrap_or_default(),
        entities: m
            .entities
            .into_iter()
            .filter_map(|e| serde_json::from_value::<MessageEntity>(e).ok())
            .collect(),
        text: m.text,
        media: m.media.map(|k| match k {
            fake_bot_api::MediaKind::Photo => MediaKind::Photo,
            fake_bot_api::MediaKind::Video => MediaKind::Video,
            fake_bot_api::MediaKind::Document => MediaKind::Document,
        }),
        media_group_id: m.media_group_id,
        copyable: !m.protected,
        relay: None,
    }
}

impl ChannelSource for SimSource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        let messages = self
            .fake
            .channel_messages_after(self.chat_id, after, limit)
            .into_iter()
            .map(to_source_message)
            .collect();
        Box::pin(async move { Ok(messages) })
    }
}
