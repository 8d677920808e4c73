//! One account's update stream: pushed posts into their channels' buffers,
//! edits and deletions onto the change queue, and grammers' update state
//! written into the session as it moves.
//!
//! grammers 0.11 keeps the update state (pts, date, each channel's pts) in
//! its message box and writes it into the session only when
//! `UpdateStream::sync_update_state` is called ("This is not automatically
//! done on drop", grammers-client `client/updates.rs`). Without it the
//! session keeps the state of the stream's first start and every restart
//! catches up from there. It is synced [`SYNC_EVERY`] after an update (the
//! session writes the whole state to PostgreSQL at once), so a restart asks
//! `updates.getDifference` from at most that long ago.
//!
//! Errors of the stream itself (grammers' own getDifference and
//! getChannelDifference): a flood wait is slept in full before the stream
//! is polled again (grammers' retries are off, `client.rs`), a session
//! Telegram ended marks the account lost, anything else is retried after a
//! second.

use std::sync::{Arc, Weak};
use std::time::Duration;

use grammers_client::sender::UpdatesConfiguration;
use grammers_client::session::updates::UpdatesLike;
use grammers_client::tl;
use tokio::time::Instant;

use super::client::{AccountClient, CallError};
use super::pool::Inner;
use crate::telemetry::events;

/// How long after an update the state is written into the session.
pub(super) const SYNC_EVERY: Duration = Duration::from_secs(2);

/// Pushed updates of one account, into the channels' buffers.
pub(super) async fn update_loop(
    pool: Weak<Inner>,
    client: Arc<AccountClient>,
    updates: tokio::sync::mpsc::Receiver<UpdatesLike>,
) {
    let name = client.name().to_owned();
    let mut stream = match client
        .client()
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(account = name, error = %e, "Cannot stream the reader account's updates.");
            return;
        }
    };
    // When the state moved last without being synced.
    let mut unsynced: Option<Instant> = None;
    loop {
        let next = match unsynced {
            Some(since) => {
                tokio::select! {
                    biased;
                    next = stream.next_raw() => next,
                    () = tokio::time::sleep_until(since + SYNC_EVERY) => {
                        sync(&stream, &client).await;
                        unsynced = None;
                        continue;
                    }
                }
            }
            None => stream.next_raw().await,
        };
        let Some(pool) = pool.upgrade() else { return };
        match next {
            Ok((update, _, _)) => {
                unsynced.get_or_insert_with(Instant::now);
                handle(&pool, update);
            }
            Err(e) => {
                let e = super::client::classify("updates", e);
                let pause = match &e {
                    CallError::Lost(reason) => {
                        // grammers' own calls do not pass `AccountClient::call`,
                        // which tells a freeze: told here.
                        if reason == super::client::FROZEN {
                            events::reader_account_frozen(&name, "updates");
                        }
                        pool.lost(&name, reason).await;
                        return;
                    }
                    CallError::FloodWait { wait, .. } => {
                        events::reader_flood_wait(&name, "updates", *wait);
                        tracing::warn!(
                            account = name,
                            wait_s = wait.as_secs(),
                            "Reader update stream got a flood wait; sleeping it in full."
                        );
                        *wait
                    }
                    _ => {
                        tracing::warn!(account = name, error = %e, "Reader update stream failed; resuming.");
                        Duration::from_secs(1)
                    }
                };
                drop(pool);
                tokio::time::sleep(pause).await;
            }
        }
        if unsynced.is_some_and(|since| since.elapsed() >= SYNC_EVERY) {
            sync(&stream, &client).await;
            unsynced = None;
        }
    }
}

/// Writes grammers' update state into the session (and so PostgreSQL).
async fn sync(stream: &grammers_client::client::UpdateStream, client: &AccountClient) {
    if let Err(e) = stream.sync_update_state().await {
        tracing::warn!(account = client.name(), error = %e, "Cannot store the update state.");
    }
}

fn handle(pool: &Inner, update: tl::enums::Update) {
    match update {
        tl::enums::Update::NewChannelMessage(u) => {
            if let Some(bare) = channel_of(&u.message) {
                pool.pushed(bare, &u.message);
            }
        }
        tl::enums::Update::EditChannelMessage(u) => {
            events::reader_change_seen("edit");
            if let Some(bare) = channel_of(&u.message) {
                pool.edited(bare, &u.message);
            }
        }
        tl::enums::Update::DeleteChannelMessages(u) => {
            events::reader_change_seen("delete");
            pool.deleted(u.channel_id, &u.messages);
        }
        _ => {}
    }
}

fn channel_of(m: &tl::enums::Message) -> Option<i64> {
    let peer = match m {
        tl::enums::Message::Message(m) => &m.peer_id,
        tl::enums::Message::Service(m) => &m.peer_id,
        tl::enums::Message::Empty(_) => return None,
    };
    match peer {
        tl::enums::Peer::Channel(c) => Some(c.channel_id),
        _ => None,
    }
}
