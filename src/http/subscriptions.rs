//! Subscriptions: add (the seed's `POST /add_channel`), list, and what the
//! bot does to one — remove, pause, resume, its mode and filters.
//!
//! A subscription is addressed under its user
//! (`/subscriptions/{user_id}/{subscription_id}`), as the bot passes the
//! user as owner: another user's id finds nothing (404). Every change is
//! stored, then taken by the registry before the 200 (as the bot does it),
//! so it is in effect for the next post without a restart.

use actix_web::{HttpResponse, web};
use kuryer_actors::filters::FilterSpec;
use kuryer_actors::model::{ChannelUsername, DeliveryMode};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::auth::Authorized;
use super::error::{ApiError, make_live, with_timeout};
use crate::store::{NO_READER_ACCOUNT, SubState, UserSubscription};
use crate::telemetry::events;

/// Body of `POST /add_channel`.
#[derive(Debug, Deserialize)]
pub(super) struct AddChannel {
    user_id: i64,
    channel_username: String,
    /// History on subscribe: the last N (1–50) recorded posts, oldest first.
    #[serde(default)]
    backfill: Option<i64>,
}

pub(super) fn check_user_id(user_id: i64) -> Result<i64, ApiError> {
    if user_id <= 0 {
        return Err(ApiError::bad_request(
            "invalid_user_id",
            "user_id must be a positive Telegram user id",
        ));
    }
    Ok(user_id)
}

pub(super) async fn add_channel(
    _auth: Authorized,
    state: web::Data<ApiState>,
    body: web::Json<AddChannel>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_user_id(body.user_id)?;
    let channel = ChannelUsername::parse(&body.channel_username)
        .map_err(|e| ApiError::bad_request("invalid_channel_username", e.to_string()))?;
    let backfill = super::copies::check_backfill(body.backfill)?;
    let added = with_timeout(&state, state.store.add_subscription(body.user_id, &channel)).await?;
    if let Some(pipeline) = &state.pipeline {
        // 200 only once the registry knows: posts from now on reach this
        // subscriber. Stored but not live is a 503 to retry (idempotent:
        // the retry finds it stored and makes it live).
        let live = tokio::time::timeout(
            state.handler_timeout,
            pipeline.subscription_added(&state.store, added.subscription.id),
        )
        .await;
        let failure = match live {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out".to_owned()),
        };
        if let Some(error) = failure {
            return Err(ApiError::not_live(added.subscription.id, &error));
        }
    }
    if added.created {
        events::subscription_created(body.user_id, &channel, added.subscription.id);
        if added.subscription.channel_status_reason.as_deref() == Some(NO_READER_ACCOUNT) {
            events::channels_wait_for_reader(1, &channel.to_string());
        }
    }
    let backfill = super::copies::backfill(&state, added.subscription.id, backfill).await?;
    let mut answer = serde_json::to_value(&added).unwrap_or_else(|_| json!({}));
    super::copies::add_settings(&state, added.subscription.id, &mut answer).await?;
    if let Some(b) = backfill {
        answer["backfill"] = json!(b);
    }
    Ok(HttpResponse::Ok().json(answer))
}

pub(super) async fn list(
    _auth: Authorized,
    state: web::Data<ApiState>,
    user_id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let list = with_timeout(&state, state.store.subscriptions_of_user(*user_id)).await?;
    let settings = with_timeout(&state, state.store.mirror_settings_of_user(*user_id)).await?;
    // Every subscription answer carries `edits` and `deletions` (README).
    let answer: Vec<serde_json::Value> = list
        .iter()
        .map(|sub| {
            let mut v = serde_json::to_value(sub).unwrap_or_else(|_| json!({}));
            if let Some(m) = settings.get(&sub.id) {
                v["edits"] = json!(m.edits.as_str());
                v["deletions"] = json!(m.deletions.as_str());
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(answer))
}

/// `(user_id, subscription_id)` of a subscription's path.
type SubPath = web::Path<(i64, i64)>;

/// The subscription as it is now, with whether the call changed it.
pub(super) async fn current(
    state: &ApiState,
    user_id: i64,
    subscription_id: i64,
    changed: bool,
) -> Result<HttpResponse, ApiError> {
    let sub: UserSubscription = with_timeout(
        state,
        state
            .store
            .user_subscription(Some(user_id), subscription_id),
    )
    .await?
    .ok_or_else(ApiError::no_subscription)?;
    let mut body = serde_json::to_value(sub).unwrap_or_else(|_| json!({}));
    body["changed"] = json!(changed);
    super::copies::add_settings(state, subscription_id, &mut body).await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn set_state(
    state: &ApiState,
    path: SubPath,
    to: SubState,
) -> Result<(i64, i64, bool), ApiError> {
    let (user_id, subscription_id) = path.into_inner();
    check_user_id(user_id)?;
    let changed = with_timeout(
        state,
        state
            .store
            .set_subscription_state(Some(user_id), subscription_id, to),
    )
    .await?
    .ok_or_else(ApiError::no_subscription)?;
    // Also when unchanged: a retry after a 503 makes the stored state live.
    make_live(state, subscription_id).await?;
    if changed {
        tracing::info!(
            user_id,
            subscription_id,
            state = ?to,
            "Subscription changed through the API."
        );
    }
    Ok((user_id, subscription_id, changed))
}

pub(super) async fn remove(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: SubPath,
) -> Result<HttpResponse, ApiError> {
    let (_, subscription_id, _) = set_state(&state, path, SubState::Removed).await?;
    Ok(HttpResponse::Ok().json(json!({"id": subscription_id, "removed": true})))
}

pub(super) async fn pause(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: SubPath,
) -> Result<HttpResponse, ApiError> {
    let (user_id, subscription_id, changed) = set_state(&state, path, SubState::Paused).await?;
    current(&state, user_id, subscription_id, changed).await
}

pub(super) async fn resume(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: SubPath,
) -> Result<HttpResponse, ApiError> {
    let (user_id, subscription_id, changed) = set_state(&state, path, SubState::Active).await?;
    current(&state, user_id, subscription_id, changed).await
}

/// Body of `PATCH …/settings`: either or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    /// `copy` or `forward`.
    mode: Option<String>,
    /// A filter spec (`{}` clears the filters).
    filters: Option<serde_json::Value>,
    /// `mirror`, `ignore` or `repost`.
    edits: Option<String>,
    /// `mirror` or `ignore`.
    deletions: Option<String>,
}

/// The keys a filter spec may have; anything else is a typo to report,
/// not to drop silently.
const FILTER_KEYS: [&str; 4] = ["include", "exclude", "regex", "skip_media"];

/// Validates filters as the bot's `/filter` does (sizes, regex, media
/// kinds) and returns the JSON to store.
fn check_filters(filters: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_filters", m);
    let Some(obj) = filters.as_object() else {
        return Err(bad("filters must be an object".to_owned()));
    };
    if let Some(k) = obj.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown filter {k:?}; expected include, exclude, regex, skip_media"
        )));
    }
    let spec: FilterSpec =
        serde_json::from_value(filters.clone()).map_err(|e| bad(e.to_string()))?;
    spec.compile().map_err(|e| bad(e.to_string()))?;
    serde_json::to_value(&spec).map_err(|e| bad(e.to_string()))
}

pub(super) async fn settings(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: SubPath,
    body: web::Json<Settings>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, subscription_id) = path.into_inner();
    check_user_id(user_id)?;
    let body = body.into_inner();
    let mirror = super::copies::check_settings(body.edits.as_deref(), body.deletions.as_deref())?;
    if body.mode.is_none() && body.filters.is_none() && mirror.is_none() {
        return Err(ApiError::bad_request(
            "nothing_to_change",
            "give mode, filters, edits and/or deletions",
        ));
    }
    let mode = body
        .mode
        .as_deref()
        .map(|m| {
            DeliveryMode::parse(m)
                .ok_or_else(|| ApiError::bad_request("invalid_mode", "mode is copy or forward"))
        })
        .transpose()?;
    let filters = body.filters.as_ref().map(check_filters).transpose()?;
    if let Some(f) = &filters {
        let regex = f
            .get("regex")
            .and_then(|r| r.as_str())
            .is_some_and(|r| !r.is_empty());
        super::send_settings::check_pattern_budget(
            &state,
            (user_id, subscription_id),
            usize::from(regex),
        )
        .await?;
    }
    super::copies::set_settings(&state, user_id, subscription_id, mirror).await?;
    let found = with_timeout(
        &state,
        state.store.set_subscription_settings(
            Some(user_id),
            subscription_id,
            mode,
            filters.as_ref(),
        ),
    )
    .await?;
    if !found {
        return Err(ApiError::no_subscription());
    }
    make_live(&state, subscription_id).await?;
    tracing::info!(
        user_id,
        subscription_id,
        mode = mode.map(DeliveryMode::as_str),
        filters_changed = filters.is_some(),
        "Subscription settings changed through the API."
    );
    current(&state, user_id, subscription_id, true).await
}
