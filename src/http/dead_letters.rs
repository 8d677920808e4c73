//! Dead letters through the API: listed, shown (optionally redacted),
//! replayed one at a time or all of a kind, discarded. The same operations
//! as `kuryer dead-letters` ([`crate::dead_letters`]); in the daemon a
//! replayed post of a channel this instance owns is fanned out at once.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::auth::Authorized;
use super::error::{ApiError, with_timeout};
use crate::dead_letters::{self, ReplayError, Replayed};
use crate::store::{DeadLetterQuery, StoreError};

/// Query of `GET /dead_letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    kind: Option<String>,
    state: Option<String>,
    /// RFC 3339 time, or an age such as `6h`.
    since: Option<String>,
    /// Ids below this one (the next page).
    before: Option<i64>,
    limit: Option<i64>,
}

fn check_kind(kind: Option<&str>) -> Result<(), ApiError> {
    match kind {
        None | Some("update" | "post") => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "invalid_kind",
            "kind is update or post",
        )),
    }
}

pub(super) async fn list(
    _auth: Authorized,
    state: web::Data<ApiState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    check_kind(q.kind.as_deref())?;
    if let Some(s) = q.state.as_deref()
        && !["waiting", "replaying", "replayed", "discarded"].contains(&s)
    {
        return Err(ApiError::bad_request(
            "invalid_state",
            "state is waiting, replaying, replayed or discarded",
        ));
    }
    let since = q
        .since
        .as_deref()
        .map(dead_letters::parse_since)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_since", e))?;
    let rows = with_timeout(
        &state,
        state.store.dead_letter_list(&DeadLetterQuery {
            kind: q.kind.clone(),
            state: q.state.clone(),
            since,
            before_id: q.before,
            limit: q.limit.unwrap_or(50),
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Query of `GET /dead_letters/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShowQuery {
    #[serde(default)]
    redact: bool,
}

pub(super) async fn show(
    _auth: Authorized,
    state: web::Data<ApiState>,
    id: web::Path<i64>,
    q: web::Query<ShowQuery>,
) -> Result<HttpResponse, ApiError> {
    let (d, raw) = with_timeout(&state, state.store.dead_letter_get(*id))
        .await?
        .ok_or_else(|| not_found(*id))?;
    let mut body = serde_json::to_value(&d).unwrap_or_default();
    body["raw"] = json!(dead_letters::render(&raw, q.redact));
    body["redacted"] = json!(q.redact);
    Ok(HttpResponse::Ok().json(body))
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "dead_letter_not_found",
        format!("no dead letter {id}"),
    )
}

/// Replays one dead letter through the running daemon (the status page's
/// button too); the database's errors within the handler timeout.
pub(super) async fn replay_one(state: &ApiState, id: i64) -> Result<Replayed, ReplayError> {
    match tokio::time::timeout(
        state.handler_timeout * 4,
        dead_letters::replay(&state.store, state.pipeline.as_ref(), id),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ReplayError::Store(StoreError::Data {
            op: "replay a dead letter",
            message: "timed out".into(),
        })),
    }
}

/// A replay's or discard's error as the API answers it.
fn answer_error(e: ReplayError) -> HttpResponse {
    match e {
        ReplayError::NotFound(id) => HttpResponse::NotFound().json(
            json!({"error": "dead_letter_not_found", "message": format!("no dead letter {id}")}),
        ),
        ReplayError::NotWaiting { id, state } => HttpResponse::Conflict().json(json!({
            "error": "not_waiting",
            "message": format!("dead letter {id} is {state}, not waiting"),
            "state": state,
        })),
        ReplayError::FailedAgain {
            id,
            reason,
            reasons,
        } => HttpResponse::Conflict().json(json!({
            "error": "failed_again",
            "message": format!("dead letter {id} failed again and waits again: {reason}"),
            "reasons": reasons,
        })),
        ReplayError::Store(e) => actix_web::ResponseError::error_response(&ApiError::from_store(e)),
    }
}

pub(super) async fn replay(
    _auth: Authorized,
    state: web::Data<ApiState>,
    id: web::Path<i64>,
) -> HttpResponse {
    match replay_one(&state, *id).await {
        Ok(done) => HttpResponse::Ok().json(json!({"id": *id, "replayed": done})),
        Err(e) => answer_error(e),
    }
}

/// Body of `POST /dead_letters/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayAll {
    kind: String,
}

pub(super) async fn replay_all(
    _auth: Authorized,
    state: web::Data<ApiState>,
    body: web::Json<ReplayAll>,
) -> Result<HttpResponse, ApiError> {
    check_kind(Some(&body.kind))?;
    let ids = with_timeout(&state, state.store.dead_letter_waiting_ids(&body.kind, 500)).await?;
    let (mut replayed, mut failed) = (Vec::new(), Vec::new());
    for id in ids {
        match replay_one(&state, id).await {
            Ok(_) => replayed.push(id),
            Err(ReplayError::FailedAgain { .. }) => failed.push(id),
            // Taken by someone else meanwhile: not ours to count.
            Err(ReplayError::NotFound(_) | ReplayError::NotWaiting { .. }) => {}
            Err(ReplayError::Store(e)) => return Err(ApiError::from_store(e)),
        }
    }
    Ok(HttpResponse::Ok().json(json!({"replayed": replayed, "failed_again": failed})))
}

pub(super) async fn discard(
    _auth: Authorized,
    state: web::Data<ApiState>,
    id: web::Path<i64>,
) -> HttpResponse {
    match dead_letters::discard(&state.store, *id).await {
        Ok(()) => HttpResponse::Ok().json(json!({"id": *id, "discarded": true})),
        Err(e) => answer_error(e),
    }
}
