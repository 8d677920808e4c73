//! RateLimiter: sends each delivery at the earliest moment Telegram's limits
//! allow, fairly between channels.
//!
//! | file | what it holds |
//! |---|---|
//! | `limits.rs` | [`LimiterConfig`](crate::rate_limiter::LimiterConfig): Telegram's numbers, and the intervals that follow from them |
//! | `schedule.rs` | the policy as plain data, every step taking `now`: GCRA per bot, arrival window, per-chat spacing, round-robin over channels, flood waits |
//! | `halted.rs` | [`HaltedLanes`](crate::rate_limiter::HaltedLanes): the bots whose token was refused, shared with the daemon |
//! | `shared.rs` | the limits shared with other instances: candidates admitted by one call a round, the fallback share |
//! | `actor.rs` | [`RateLimiter`](crate::rate_limiter::RateLimiter), the actor: its messages, its timer, back-pressure on `Enqueue` |
//! | `room.rs` | [`QueueRoom`](crate::rate_limiter::QueueRoom): the queue's size shared with the registry, which waits for room before a fan-out |

mod actor;
mod halted;
mod limits;
mod room;
mod schedule;
mod shared;

pub use actor::{
    Drain, DropChannels, Enqueue, GetLimiterStats, Halt, LimiterStats, MoveChat, RateLimiter,
    SendDelivery, SendFinished,
};
pub use halted::HaltedLanes;
pub use limits::{LimiterConfig, SharedRates};
pub use room::QueueRoom;
pub use schedule::SendOutcome;

/// Deliveries for the limiter's tests.
#[cfg(test)]
pub(crate) mod testing {
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
}
