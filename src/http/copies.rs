//! The subscription routes' edits/deletions settings (`PATCH …/settings`
//! `{"edits", "deletions"}`, shown in every subscription answer) and
//! history on subscribe (`POST /add_channel` `{"backfill": N}`, N ≤ 50).

use serde_json::json;

use super::ApiState;
use super::error::{ApiError, with_timeout};
use crate::store::{BackfillAsked, DeletionsMode, EditsMode};

/// Most posts a backfill sends.
const MAX_BACKFILL: i64 = 50;

/// Checks `backfill` (1–50).
pub(super) fn check_backfill(n: Option<i64>) -> Result<Option<i32>, ApiError> {
    match n {
        None => Ok(None),
        Some(n) if (1..=MAX_BACKFILL).contains(&n) => Ok(Some(n as i32)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_backfill",
            "backfill is a number of posts from 1 to 50",
        )),
    }
}

/// Asks for the backfill, if any, and wakes the worker.
pub(super) async fn backfill(
    state: &ApiState,
    subscription_id: i64,
    n: Option<i32>,
) -> Result<Option<&'static str>, ApiError> {
    let Some(n) = n else { return Ok(None) };
    // The operator's API has no daily budget; a subscription still has one
    // open backfill at a time: a second request while one is being sent is
    // answered `"backfill": "already_running"` (ask again when it is done).
    let asked = with_timeout(
        state,
        state.store.request_backfill(subscription_id, n, None),
    )
    .await?;
    if !matches!(asked, BackfillAsked::Asked(_)) {
        return Ok(Some("already_running"));
    }
    if let Some(p) = &state.pipeline {
        p.mirror_wake();
    }
    tracing::info!(
        subscription_id,
        posts = n,
        "Backfill asked through the API."
    );
    Ok(Some("asked"))
}

/// Parsed settings; `None` when neither is given.
pub(super) type MirrorChange = Option<(Option<EditsMode>, Option<DeletionsMode>)>;

/// Checks `edits` and `deletions`.
pub(super) fn check_settings(
    edits: Option<&str>,
    deletions: Option<&str>,
) -> Result<MirrorChange, ApiError> {
    let e = edits
        .map(|s| {
            EditsMode::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_edits", "edits is mirror, ignore or repost")
            })
        })
        .transpose()?;
    let d = deletions
        .map(|s| {
            DeletionsMode::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_deletions", "deletions is mirror or ignore")
            })
        })
        .transpose()?;
    Ok((e.is_some() || d.is_some()).then_some((e, d)))
}

/// Stores them (the registry needs nothing: the copies worker reads them
/// per event).
pub(super) async fn set_settings(
    state: &ApiState,
    user_id: i64,
    subscription_id: i64,
    change: MirrorChange,
) -> Result<(), ApiError> {
    let Some((e, d)) = change else { return Ok(()) };
    let found = with_timeout(
        state,
        state
            .store
            .set_mirror_settings(Some(user_id), subscription_id, e, d),
    )
    .await?;
    if !found {
        return Err(ApiError::no_subscription());
    }
    Ok(())
}

/// Adds `edits` and `deletions` to a subscription's JSON.
pub(super) async fn add_settings(
    state: &ApiState,
    subscription_id: i64,
    body: &mut serde_json::Value,
) -> Result<(), ApiError> {
    if let Some(m) = with_timeout(state, state.store.mirror_settings(None, subscription_id)).await?
    {
        body["edits"] = json!(m.edits.as_str());
        body["deletions"] = json!(m.deletions.as_str());
    }
    Ok(())
}
