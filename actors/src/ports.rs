//! What the actors need from the outside world, as traits: a channel source
//! (simulated, Bot API updates, or MTProto) and persistence (PostgreSQL).
//! The daemon implements them; tests can too.

use std::sync::Arc;

use futures_util::future::{BoxFuture, LocalBoxFuture};

use crate::model::{ChannelRef, DeliveryRecord, Post, SourceMessage};

/// Why a source could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// Try again later (network, flood wait); `retry_after` when Telegram said how long.
    #[error("source temporarily unavailable: {message}")]
    Transient {
        /// What went wrong.
        message: String,
        /// How long Telegram asked to wait, if it did.
        retry_after: Option<std::time::Duration>,
    },
    /// The channel is gone or unreadable; polling it again will not help.
    #[error("channel unavailable: {0}")]
    Gone(String),
}

/// Reads one channel's messages.
pub trait ChannelSource: 'static {
    /// Messages with an id greater than `after`, oldest first, at most `limit`.
    /// Reading the same range twice returns the same messages: the poller
    /// re-reads whatever it has not yet recorded.
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>>;

    /// How long a trailing album may still be gaining parts. Sources that
    /// yield an album whole (channel history, the simulator) keep the
    /// default of zero; the Bot API, which sends each part as its own
    /// update, needs a short grace so an album is not split.
    fn album_grace(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Makes the source of a channel; called again to replace a source whose
/// poller crashed.
pub type SourceFactory = Arc<dyn Fn(&ChannelRef) -> Box<dyn ChannelSource> + Send + Sync>;

/// Why persistence failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PersistError {
    /// What went wrong (never a secret).
    pub message: String,
    /// True when the same call may succeed later (connection lost, …).
    pub retriable: bool,
}

/// Durable storage of posts and deliveries.
pub trait Persistence: Send + Sync + 'static {
    /// Records a post and advances its channel's high-water mark to the
    /// post's last id, atomically. `Ok(false)`: it was already recorded.
    fn record_post(&self, post: Arc<Post>) -> BoxFuture<'static, Result<bool, PersistError>>;
    /// The channel's high-water mark.
    fn high_water_mark(&self, channel_id: i64) -> BoxFuture<'static, Result<i64, PersistError>>;
    /// Writes finished deliveries; a retried batch must not duplicate.
    fn write_deliveries(
        &self,
        rows: Vec<DeliveryRecord>,
    ) -> BoxFuture<'static, Result<u64, PersistError>>;
    /// Sets aside a post that cannot be recorded (an error no retry can
    /// fix) with the reason, and moves the channel's high-water mark past
    /// it, atomically, so its poller reads on. Required, not defaulted: a
    /// wrapper that forgot to forward it once kept a poller on such a post
    /// for good.
    fn dead_letter_post(
        &self,
        post: Arc<Post>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), PersistError>>;
}

/// The Redis layer of dedup: a key per (subscription, source message) set
/// right after Telegram accepted a send. Errors never fail a delivery: the
/// database's unique constraint is the final word, so an unreachable Redis
/// means "not seen" and is logged by the implementation.
pub trait Dedup: Send + Sync + 'static {
    /// The sent message id when this delivery was already accepted.
    fn seen(&self, subscription_id: i64, message_id: i32) -> BoxFuture<'static, Option<i64>>;
    /// [`Dedup::seen`] for many deliveries at once, answers in order; `None`
    /// when the layer could not answer (each is then asked before its send).
    fn seen_many(&self, keys: Vec<(i64, i32)>) -> BoxFuture<'static, Option<Vec<Option<i64>>>> {
        let lookups: Vec<_> = keys.into_iter().map(|(s, m)| self.seen(s, m)).collect();
        Box::pin(async move { Some(futures_util::future::join_all(lookups).await) })
    }
    /// Records an accepted send.
    fn mark(
        &self,
        subscription_id: i64,
        message_id: i32,
        sent_message_id: i64,
    ) -> BoxFuture<'static, ()>;
}

/// Whether this process may still send for a channel. With several
/// instances a channel is leased to one of them; an instance that was
/// paused past its lease (SIGSTOP, a long GC-like stall, a frozen VM) must
/// send nothing of that channel when it wakes, since the new owner resumes
/// the same deliveries. The sender asks right before each send.
pub trait LeaseGuard: Send + Sync + 'static {
    /// True only while the lease of `channel_id` is surely held (renewed
    /// recently enough by this process's monotonic clock).
    fn holds(&self, channel_id: i64) -> bool;
    /// A delivery was dropped unsent because its lease was not surely held:
    /// it stays owed in the database for the channel's owner.
    fn dropped(&self, delivery: &crate::model::Delivery);
}

/// A dedup layer that knows nothing (tests, Redis not configured).
pub struct NoDedup;

impl Dedup for NoDedup {
    fn seen(&self, _: i64, _: i32) -> BoxFuture<'static, Option<i64>> {
        Box::pin(async { None })
    }
    fn seen_many(&self, keys: Vec<(i64, i32)>) -> BoxFuture<'static, Option<Vec<Option<i64>>>> {
        Box::pin(async move { Some(vec![None; keys.len()]) })
    }
    fn mark(&self, _: i64, _: i32, _: i64) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// What happened to a destination, for the daemon to act on (database,
/// registry, telling the owner).
#[derive(Debug, Clone)]
pub enum DestinationEvent {
    /// The bot can no longer post there (blocked, kicked, chat gone).
    Gone {
        /// The subscription whose delivery found out.
        sub: Arc<crate::model::ActiveSubscription>,
        /// Telegram's reason.
        reason: String,
    },
    /// A group became a supergroup with a new chat id.
    Migrated {
        /// The subscription whose delivery found out.
        sub: Arc<crate::model::ActiveSubscription>,
        /// The supergroup's chat id.
        new_chat_id: i64,
    },
    /// The bot can no longer read a post's source (the relay channel, or
    /// the channel itself): its deliveries wait; no destination is touched.
    /// Told once per episode.
    SourceRefused {
        /// `channels.id` of the post that found out.
        channel_id: i64,
        /// The chat refused (`Post::source_chat_id`).
        source_chat_id: i64,
        /// The source is the relay channel (it serves every read channel).
        relay: bool,
        /// The channel's public name, if any.
        channel_username: Option<String>,
        /// Telegram's reason.
        reason: String,
    },
    /// A source refused before reads again: its deliveries go out.
    SourceReadable {
        /// `channels.id` of the post that found out.
        channel_id: i64,
        /// The chat that reads again.
        source_chat_id: i64,
        /// The source is the relay channel.
        relay: bool,
        /// The channel's public name, if any.
        channel_username: Option<String>,
    },
    /// A post kuryer cannot read (delivered by id, `MediaKind::Other`)
    /// that Telegram refused by id too — no copy, no forward, no link: kept
    /// as a dead letter for the operator to see and replay. Sent by every
    /// delivery that finds it out; the handler keeps one a post.
    PostUnsendable {
        /// The post.
        post: Arc<crate::model::Post>,
        /// Telegram's last refusal (its words; never the post's content).
        reason: String,
    },
    /// `max_failures` sends in a row failed.
    Failing {
        /// The subscription whose delivery failed last.
        sub: Arc<crate::model::ActiveSubscription>,
        /// The last failure.
        reason: String,
    },
}

/// Receives destination events; implemented by the daemon.
pub trait DestinationEvents: Send + Sync + 'static {
    /// Handles one event (in the background; it must not block sends).
    fn on_event(&self, event: DestinationEvent);
}

/// One send the RateLimiter's schedule allows locally, for the shared
/// limits to admit or hold back (several instances sending with one bot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSlot {
    /// The bot that sends (the number before `:` in its token).
    pub bot_id: i64,
    /// The destination chat.
    pub chat_id: i64,
    /// A group or channel (20/min) rather than a private chat (1/s).
    pub group_like: bool,
    /// Unique within this process: names the send in the shared window
    /// until its completion is reported.
    pub ticket: u64,
    /// Messages the send delivers (an album's items by `copyMessages`):
    /// each takes a slot of the bot's shared window, as Telegram counts it.
    pub items: u32,
}

/// A send admitted earlier that has completed, `ago` before the report:
/// the shared chat spacing and bot window count from its completion, as
/// the local schedule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotDone {
    /// As in its [`SendSlot`].
    pub bot_id: i64,
    /// As in its [`SendSlot`].
    pub chat_id: i64,
    /// As in its [`SendSlot`].
    pub ticket: u64,
    /// How long ago it completed.
    pub ago: std::time::Duration,
}

/// The shared limits' answer for one [`SendSlot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it now.
    Admitted,
    /// The chat is busy (another instance's send) or spaced: try again after this.
    ChatWait(std::time::Duration),
    /// The bot is at its rate (all instances together): the whole lane
    /// waits this long.
    BotWait(std::time::Duration),
}

/// Why the shared limits could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shared rate limits unavailable: {0}")]
pub struct SharedLimitsError(pub String);

/// Rate limits shared by every instance of one installation (Redis in the
/// daemon). The RateLimiter's own schedule stays the fast path: it picks
/// the candidates, and one call per scheduling round admits them.
pub trait SharedLimits: Send + Sync + 'static {
    /// Records `done` and then admits what it can of `want`, in order, as
    /// one atomic step; answers one [`Admission`] per `want`.
    fn admit(
        &self,
        want: Vec<SendSlot>,
        done: Vec<SlotDone>,
    ) -> BoxFuture<'static, Result<Vec<Admission>, SharedLimitsError>>;
    /// Whether sends should go through [`SharedLimits::admit`] now (the
    /// shared store is reachable, and sharing is on or more than one
    /// instance is live).
    fn active(&self) -> bool;
    /// Whether the shared store is reachable (as last seen).
    fn reachable(&self) -> bool;
    /// Live instances sending with these bots, at least 1 (as last seen):
    /// while the shared store is unreachable each instance sends at
    /// `1 / live_instances` of every limit.
    fn live_instances(&self) -> usize;
}
