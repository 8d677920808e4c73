//! Dead-letter updates an operator asked to replay (`kuryer dead-letters
//! replay`, `/dead_letters/{id}/replay`): the update loop takes them before
//! a `getUpdates` call and handles each exactly as a fresh update
//! ([`super::intake::handle`]). One that fails again waits again, with the
//! new reason beside the earlier ones.

use serde_json::Value;
use teloxide::types::{Update, UpdateKind};

use super::BotUpdates;
use super::intake::handle;
use crate::bot::BotHandler;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::telemetry::events;

/// Updates taken at once.
const BATCH: i64 = 20;

/// Takes and handles the updates waiting for a replay. A database error is
/// logged and left for the next call (nothing was taken then).
pub(super) async fn replay_kept(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    handler: &BotHandler,
) {
    let taken = match store.dead_letter_take_update_replays(BATCH).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the updates to replay; trying again later.");
            return;
        }
    };
    for (id, raw) in taken {
        let json = serde_json::from_slice::<Value>(&raw).ok();
        // A channel post is handled even when teloxide cannot read it: it
        // goes out by id.
        let post = json
            .as_ref()
            .is_some_and(|j| j.get("channel_post").is_some());
        let result = match serde_json::from_slice::<Update>(&raw) {
            Ok(u) if post || !matches!(u.kind, UpdateKind::Error(_)) => {
                handle(store, pipeline, updates, handler, &u, json.as_ref())
                    .await
                    .map_err(|e| e.to_string())
            }
            _ => Err("the update still cannot be parsed by this kuryer".to_owned()),
        };
        match result {
            Ok(()) => events::dead_letter_replayed(id, "update", "handled by the update loop"),
            Err(reason) => {
                if let Err(e) =
                    crate::dead_letters::failed_again(store, id, "update", &reason).await
                {
                    tracing::warn!(dead_letter_id = id, error = %e, "A replayed update failed again and could not be kept again.");
                }
            }
        }
    }
}
