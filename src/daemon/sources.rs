//! Where each channel's posts are read from: the bot's inbox for channels
//! our bot administers, a reader account otherwise, and with no reader
//! account a source that says so.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use kuryer_actors::model::SourceMessage;
use kuryer_actors::ports::{ChannelSource, SourceError, SourceFactory};

use crate::reader::ReaderPool;
use crate::store::Store;
use crate::telemetry::events;
use crate::updates::BotUpdates;

/// The source of a channel our bot is not admin of, while no MTProto reader
/// exists: it says so, and the poller asks rarely.
struct NoReader;

impl ChannelSource for NoReader {
    fn fetch(
        &mut self,
        _after: i32,
        _limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        Box::pin(async {
            Err(SourceError::Gone(
                "our bot is not an admin of this channel and no MTProto reader account is configured"
                    .to_owned(),
            ))
        })
    }
}

/// Each channel's source, chosen when its poller starts.
pub(super) fn factory(updates: BotUpdates, readers: ReaderPool) -> SourceFactory {
    Arc::new(move |ch| -> Box<dyn ChannelSource> {
        if ch.bot_is_admin {
            Box::new(updates.source(ch.channel_id))
        } else if readers.may_read() {
            Box::new(readers.source(ch))
        } else {
            Box::new(NoReader)
        }
    })
}

/// Says at start, once, that channels wait for a reader account none of
/// which exists (the poller of such a channel asks rarely and quietly).
pub(super) async fn warn_channels_without_reader(store: &Store) {
    match store.channels_waiting_for_reader(5).await {
        Ok((0, _)) => {}
        Ok((n, names)) => events::channels_wait_for_reader(n, &names.join(", ")),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot count the channels waiting for a reader account.")
        }
    }
}
