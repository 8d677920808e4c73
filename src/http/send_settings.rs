//! Routes of the per-subscription extras, the API's side of the
//! bot's `/header`, `/footer`, `/replace` and `/quiet`:
//!
//! - `PUT /subscriptions/{user_id}/{subscription_id}/transform` with a
//!   `TransformSpec` (`{"header", "footer", "replace": [{"from", "to", "regex"}]}`;
//!   `{}` clears it);
//! - `PUT /subscriptions/{user_id}/{subscription_id}/quiet` with a
//!   `QuietSpec` (`{"from": "23:00", "to": "07:00", "tz": "Asia/Tashkent"}`;
//!   `{}` clears it).
//!
//! Validated as the bot validates them; unknown keys are refused. Answers
//! the subscription with its extras, once the change is in the registry.

use actix_web::{HttpResponse, web};
use kuryer_actors::digest::DigestSpec;
use kuryer_actors::quiet::QuietSpec;
use kuryer_actors::transform::{MAX_PATTERNS_PER_USER, TransformSpec};
use serde_json::json;

use super::ApiState;
use super::auth::Authorized;
use super::error::{ApiError, make_live, with_timeout};
use super::subscriptions::check_user_id;
use crate::store::Extra;

fn is_empty_object(v: &serde_json::Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|o| o.is_empty())
}

/// Refuses a change that would take `user_id`'s subscriptions past the
/// per-user budget of compiled regular expressions
/// (`MAX_PATTERNS_PER_USER`, transforms and filters together), counting
/// `adding` in place of `subscription_id`'s current ones.
pub(super) async fn check_pattern_budget(
    state: &ApiState,
    (user_id, subscription_id): (i64, i64),
    adding: usize,
) -> Result<(), ApiError> {
    if adding == 0 {
        return Ok(());
    }
    let others = with_timeout(state, state.store.user_patterns(user_id, subscription_id)).await?;
    if others + adding > MAX_PATTERNS_PER_USER {
        return Err(ApiError::bad_request(
            "pattern_budget",
            format!(
                "a user's subscriptions may use at most {MAX_PATTERNS_PER_USER} regular expressions together"
            ),
        ));
    }
    Ok(())
}

async fn set(
    state: &ApiState,
    (user_id, subscription_id): (i64, i64),
    extra: Extra,
    value: Option<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    check_user_id(user_id)?;
    let changed = with_timeout(
        state,
        state.store.set_subscription_extra(
            Some(user_id),
            Some(subscription_id),
            extra,
            value.as_ref(),
        ),
    )
    .await?;
    if changed.is_empty() {
        return Err(ApiError::no_subscription());
    }
    make_live(state, subscription_id).await?;
    tracing::info!(user_id, subscription_id, extra = ?extra, set = value.is_some(), "Subscription extras changed through the API.");
    let sub = with_timeout(
        state,
        state
            .store
            .user_subscription(Some(user_id), subscription_id),
    )
    .await?
    .ok_or_else(ApiError::no_subscription)?;
    let transform = with_timeout(
        state,
        state
            .store
            .subscription_extra(Some(user_id), subscription_id, Extra::Transform),
    )
    .await?;
    let quiet = with_timeout(
        state,
        state
            .store
            .subscription_extra(Some(user_id), subscription_id, Extra::Quiet),
    )
    .await?;
    let digest = with_timeout(
        state,
        state
            .store
            .subscription_extra(Some(user_id), subscription_id, Extra::Digest),
    )
    .await?;
    let mut body = serde_json::to_value(sub).unwrap_or_else(|_| json!({}));
    body["transform"] = transform.unwrap_or(json!(null));
    body["quiet"] = quiet.unwrap_or(json!(null));
    body["digest"] = digest.unwrap_or(json!(null));
    body["changed"] = json!(true);
    Ok(HttpResponse::Ok().json(body))
}

pub(super) async fn transform(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let bad = |m: String| ApiError::bad_request("invalid_transform", m);
    let value = if is_empty_object(&body) {
        None
    } else {
        let spec: TransformSpec = serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
        let compiled = spec.compile().map_err(|e| bad(e.to_string()))?;
        check_pattern_budget(&state, *path, compiled.regex_rules()).await?;
        (!spec.is_empty())
            .then(|| serde_json::to_value(&spec))
            .transpose()
            .map_err(|e| bad(e.to_string()))?
    };
    set(&state, path.into_inner(), Extra::Transform, value).await
}

pub(super) async fn quiet(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let bad = |m: String| ApiError::bad_request("invalid_quiet", m);
    let value = if is_empty_object(&body) {
        None
    } else {
        let spec: QuietSpec = serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
        spec.compile().map_err(|e| bad(e.to_string()))?;
        Some(serde_json::to_value(&spec).map_err(|e| bad(e.to_string()))?)
    };
    set(&state, path.into_inner(), Extra::Quiet, value).await
}

/// `PUT /subscriptions/{user_id}/{subscription_id}/digest` with a
/// `DigestSpec` (`{"every": "daily", "at": "09:00", "tz": "Asia/Tashkent"}`
/// or `{"every": "hourly"}`; `{}` turns the digest off).
pub(super) async fn digest(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let bad = |m: String| ApiError::bad_request("invalid_digest", m);
    let value = if is_empty_object(&body) {
        None
    } else {
        let spec: DigestSpec = serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
        if spec == DigestSpec::Closing {
            return Err(bad(
                "\"closing\" is set by turning a digest off ({})".to_owned()
            ));
        }
        spec.compile().map_err(|e| bad(e.to_string()))?;
        Some(serde_json::to_value(&spec).map_err(|e| bad(e.to_string()))?)
    };
    set(&state, path.into_inner(), Extra::Digest, value).await
}
