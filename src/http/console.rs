//! The status page (`GET /status`): one server-rendered page an operator
//! opens first — instances and their leases, reader accounts, channels
//! (searchable, paginated), a user's subscriptions and destinations, queue
//! depths, dead letters with replay and discard buttons, the Grafana link.
//! No script, no asset fetched from anywhere.
//!
//! Access: the bearer token (`Authorization: Bearer …`), or the login form
//! (`POST /status/login`), which sets an HttpOnly, SameSite=Strict cookie
//! holding the token for `/status` only. Without either: the form, 401. No
//! `http.api_token`: 404, as every management route.
//!
//! Every read is bounded (a page of channels, the newest waiting dead
//! letters, the instances) and from the database, so any instance shows the
//! whole installation — the queue depths and flood waits too: each instance
//! writes its own into its `instances` row every few seconds
//! (`crate::instance_snapshot`). Nothing here waits on the pipeline's
//! actors.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::ApiState;
use super::auth::constant_time_eq;
use super::console_page::{self as page, Page};
use super::error::with_timeout;
use crate::dead_letters::{self, ReplayError};
use crate::store::DeadLetterQuery;

/// The cookie the login form sets.
const COOKIE: &str = "kuryer_console";

/// Channels a page shows.
const PER_PAGE: i64 = 50;

/// Waiting dead letters the page lists.
const DEAD_LETTERS_SHOWN: i64 = 25;

/// Whether the request may see the page; `None`: no token configured.
fn allowed(req: &HttpRequest, state: &ApiState) -> Option<bool> {
    let token = state.api_token.as_ref()?;
    let want = token.expose().as_bytes();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v);
    Some(
        bearer
            .into_iter()
            .chain(cookie)
            .any(|p| constant_time_eq(p.as_bytes(), want)),
    )
}

fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Nothing from elsewhere, no script at all, no framing.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
        ))
        .body(body)
}

/// Refused: 404 without a token configured, else the login form (401).
fn refused(allowed: Option<bool>, note: &str) -> HttpResponse {
    match allowed {
        None => HttpResponse::NotFound()
            .json(serde_json::json!({"error": "not_found", "message": "not found"})),
        Some(_) => html(actix_web::http::StatusCode::UNAUTHORIZED, page::login(note)),
    }
}

/// Query of `GET /status`.
#[derive(Debug, Deserialize)]
pub(super) struct StatusQuery {
    /// Channel search.
    #[serde(default)]
    q: String,
    /// Channel page, from 0.
    #[serde(default)]
    page: i64,
    /// A user (Telegram id) whose subscriptions and destinations to show.
    user: Option<i64>,
    /// What the last button did.
    msg: Option<String>,
}

pub(super) async fn status(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<StatusQuery>,
) -> HttpResponse {
    let ok = allowed(&req, &state);
    if ok != Some(true) {
        return refused(ok, "");
    }
    let store = &state.store;
    let channels = with_timeout(&state, store.console_channels(&q.q, q.page, PER_PAGE));
    let instances = with_timeout(&state, store.instances());
    let bots = with_timeout(&state, store.console_bot_leases());
    let waiting = DeadLetterQuery {
        state: Some("waiting".into()),
        limit: DEAD_LETTERS_SHOWN,
        ..DeadLetterQuery::default()
    };
    let dead = with_timeout(&state, store.dead_letter_list(&waiting));
    let dead_counts = with_timeout(&state, store.dead_letter_counts());
    let accounts = async {
        tokio::time::timeout(state.handler_timeout, crate::reader::login::accounts(store))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())
    };
    let user = async {
        match q.user {
            Some(u) => Some((
                with_timeout(&state, store.subscriptions_of_user(u)).await,
                with_timeout(&state, store.destinations_of(u)).await,
            )),
            None => None,
        }
    };
    let snapshots = with_timeout(&state, store.instance_snapshots());
    let (channels, instances, bots, dead, dead_counts, accounts, user, snapshots) = tokio::join!(
        channels,
        instances,
        bots,
        dead,
        dead_counts,
        accounts,
        user,
        snapshots
    );
    let body = page::render(&Page {
        search: &q.q,
        page: q.page.max(0),
        per_page: PER_PAGE,
        user_id: q.user,
        message: q.msg.as_deref(),
        channels: channels.map_err(|e| e.to_string()),
        instances: instances.map_err(|e| e.to_string()),
        bots: bots.map_err(|e| e.to_string()),
        accounts,
        snapshots: snapshots.map_err(|e| e.to_string()),
        dead: dead.map_err(|e| e.to_string()),
        dead_counts: dead_counts.unwrap_or_default(),
        user: user.map(|(s, d)| (s.map_err(|e| e.to_string()), d.map_err(|e| e.to_string()))),
        grafana_url: state.grafana_url.as_deref(),
    });
    html(actix_web::http::StatusCode::OK, body)
}

/// Body of `POST /status/login`.
#[derive(Debug, Deserialize)]
pub(super) struct Login {
    token: String,
}

pub(super) async fn login(state: web::Data<ApiState>, form: web::Form<Login>) -> HttpResponse {
    let Some(want) = &state.api_token else {
        return refused(None, "");
    };
    if !constant_time_eq(form.token.trim().as_bytes(), want.expose().as_bytes()) {
        tracing::warn!("Status page login with a wrong token.");
        return refused(Some(false), "That is not the API token.");
    }
    // The token itself is the session: nothing to keep on the server, and
    // a changed token ends every session.
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/status"))
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{COOKIE}={}; Path=/status; HttpOnly; SameSite=Strict",
                form.token.trim()
            ),
        ))
        .finish()
}

pub(super) async fn logout() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/status"))
        .insert_header((
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/status; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish()
}

/// Back to the page's dead letters, saying what happened.
fn back(message: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/status?msg={}#dead-letters", page::url_encode(message)),
        ))
        .finish()
}

fn said(e: &ReplayError) -> String {
    match e {
        ReplayError::FailedAgain { id, reason, .. } => {
            format!("Dead letter {id} failed again and waits again: {reason}")
        }
        other => other.to_string(),
    }
}

pub(super) async fn replay(
    req: HttpRequest,
    state: web::Data<ApiState>,
    id: web::Path<i64>,
) -> HttpResponse {
    let ok = allowed(&req, &state);
    if ok != Some(true) {
        return refused(ok, "");
    }
    match super::dead_letters::replay_one(&state, *id).await {
        Ok(_) => back(&format!("Dead letter {} replayed.", *id)),
        Err(e) => back(&said(&e)),
    }
}

pub(super) async fn discard(
    req: HttpRequest,
    state: web::Data<ApiState>,
    id: web::Path<i64>,
) -> HttpResponse {
    let ok = allowed(&req, &state);
    if ok != Some(true) {
        return refused(ok, "");
    }
    match dead_letters::discard(&state.store, *id).await {
        Ok(()) => back(&format!("Dead letter {} discarded.", *id)),
        Err(e) => back(&said(&e)),
    }
}
