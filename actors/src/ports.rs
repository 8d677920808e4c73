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
        message: String,
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
}
