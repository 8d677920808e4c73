//! Destinations: a user's chats posts can go to (their private chat, the
//! groups and channels they linked with the bot's `/link`), and routing a
//! subscription to one of them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::ApiState;
use super::auth::Authorized;
use super::error::{ApiError, make_live, with_timeout};
use super::subscriptions::{check_user_id, current};
use crate::store::RouteOutcome;

pub(super) async fn list(
    _auth: Authorized,
    state: web::Data<ApiState>,
    user_id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let user_id = check_user_id(*user_id)?;
    let list = with_timeout(&state, state.store.destinations_of(user_id)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Body of `PUT …/destination`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Route {
    destination_id: i64,
}

pub(super) async fn route(
    _auth: Authorized,
    state: web::Data<ApiState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<Route>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, subscription_id) = path.into_inner();
    check_user_id(user_id)?;
    let destination_id = body.destination_id;
    let outcome = with_timeout(
        &state,
        state
            .store
            .route_subscription(Some(user_id), subscription_id, destination_id),
    )
    .await?;
    if outcome == RouteOutcome::NotFound {
        return Err(not_routable(&state, user_id, subscription_id, destination_id).await?);
    }
    make_live(&state, subscription_id).await?;
    let sub = with_timeout(
        &state,
        state
            .store
            .user_subscription(Some(user_id), subscription_id),
    )
    .await?
    .ok_or_else(ApiError::no_subscription)?;
    if sub.destination_id != destination_id {
        // Another subscription of this user to the same channel already
        // delivers there; routing this one too would send every post twice.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_routed",
            "another subscription of this user to this channel already goes to that destination",
        ));
    }
    if outcome == RouteOutcome::Moved {
        tracing::info!(
            user_id,
            subscription_id,
            destination_id,
            "Subscription routed through the API."
        );
    }
    current(
        &state,
        user_id,
        subscription_id,
        outcome == RouteOutcome::Moved,
    )
    .await
}

/// Why routing found nothing: the subscription (404), the destination
/// (404), or a destination of this user that is inactive — the bot was
/// removed from that chat (409: `/link` there again first).
async fn not_routable(
    state: &ApiState,
    user_id: i64,
    subscription_id: i64,
    destination_id: i64,
) -> Result<ApiError, ApiError> {
    let sub = with_timeout(
        state,
        state
            .store
            .user_subscription(Some(user_id), subscription_id),
    )
    .await?;
    if sub.is_none() {
        return Ok(ApiError::no_subscription());
    }
    let dests = with_timeout(state, state.store.destinations_of(user_id)).await?;
    Ok(match dests.iter().find(|d| d.id == destination_id) {
        Some(d) if !d.active => ApiError::new(
            StatusCode::CONFLICT,
            "destination_inactive",
            "the bot is no longer in that chat; /link it there again first",
        ),
        _ => ApiError::new(
            StatusCode::NOT_FOUND,
            "destination_not_found",
            "no such destination of this user",
        ),
    })
}
