//! Changes reach every instance: a subscription changed through the bot or
//! the HTTP API of one instance reaches the registry of every instance, and
//! a post the `getUpdates` holder wrote into the inbox wakes the poller of
//! the instance that owns its channel (`i:<channel id>`,
//! `sql/0021_inbox_notify.sql`) instead of waiting for its next inbox read.
//!
//! A trigger (`sql/0012_change_notify.sql`) sends `pg_notify` in the
//! transaction of every change, so a notification exists exactly when the
//! change committed. Each instance LISTENs on a session of its own
//! ([`crate::store::listen`]) and brings its registry in line with the
//! database for each payload (`s:<subscription id>`, `d:<destination id>`),
//! reading the row from the primary — never a replica, whose lag could
//! undo the change. Its own changes come back too; applying one twice is
//! harmless (the registry's add replaces, its remove of an absent one is a
//! no-op).
//!
//! PostgreSQL does not keep notifications for a session that is gone, so
//! after every (re)connect the LISTEN is issued first and then the whole
//! registry is reloaded ([`Pipeline::resync`]): a change committed while
//! no session listened is in the reload, one committed after the LISTEN
//! arrives as a notification and is applied after the reload.

use std::time::Duration;

use crate::pipeline::Pipeline;
use crate::store::Store;

/// The PostgreSQL channel of installation `installation`'s subscription
/// changes (the trigger's, `sql/0017_notify_per_installation.sql`): NOTIFY
/// channels are the whole database's, so each installation has its own.
pub fn channel(installation: &str) -> String {
    format!("kuryer_{}", installation.replace('-', ""))
}

/// Rows a chunk of a re-sync's load.
const RESYNC_CHUNK: usize = 5000;

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Applies one notification's payload to the registry.
pub async fn apply(store: &Store, pipeline: &Pipeline, payload: &str) {
    let ids = match payload.split_once(':') {
        Some(("s", id)) => match id.parse::<i64>() {
            Ok(id) => vec![id],
            Err(_) => Vec::new(),
        },
        Some(("d", id)) => match id.parse::<i64>() {
            Ok(dest) => match store.subscription_ids_of_destination(dest).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(destination_id = dest, error = %e, "Cannot read a changed destination's subscriptions; the next re-sync brings them in line.");
                    return;
                }
            },
            Err(_) => Vec::new(),
        },
        Some(("i", id)) => {
            // A post in the inbox (written by the getUpdates holder): the
            // channel's owner polls now; elsewhere the wake is a no-op.
            match id.parse::<i64>() {
                Ok(channel_id) => pipeline.wake(channel_id),
                Err(_) => tracing::warn!(payload, "Unreadable inbox notification; ignored."),
            }
            return;
        }
        _ => Vec::new(),
    };
    if ids.is_empty() && !payload.starts_with("d:") {
        tracing::warn!(
            payload,
            "Unreadable subscription change notification; ignored."
        );
    }
    for id in ids {
        if let Err(e) = pipeline.sync_subscription(store, id).await {
            tracing::warn!(subscription_id = id, error = %e, "Cannot apply a subscription change from another instance.");
        }
    }
}

/// Listens until aborted, reconnecting with a backoff; each session starts
/// with a re-sync of the registry.
pub fn spawn(store: Store, pipeline: Pipeline) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let listening = match store.installation_id().await {
                Ok(installation) => store.listen(&channel(&installation)).await,
                Err(e) => Err(e),
            };
            match listening {
                Ok(mut session) => {
                    backoff = Duration::from_millis(200);
                    match pipeline.resync(&store, RESYNC_CHUNK).await {
                        Ok((indexed, removed)) => tracing::info!(
                            indexed,
                            removed,
                            "Listening for subscription changes from every instance; registry re-synced."
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "Registry re-sync failed; changes from now on still arrive.")
                        }
                    }
                    let reason = loop {
                        match session.rx.recv().await {
                            Some(Ok(payload)) => apply(&store, &pipeline, &payload).await,
                            Some(Err(e)) => break e,
                            None => break "the session ended".to_owned(),
                        }
                    };
                    tracing::warn!(
                        error = %reason,
                        "Lost the subscription change feed from PostgreSQL; reconnecting, then re-syncing the registry."
                    );
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "Cannot listen for subscription changes; retrying."
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}
