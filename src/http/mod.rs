//! The management HTTP API (actix-web).
//!
//! Routes (README has each with curl):
//! - `POST /add_channel` `{"user_id": …, "channel_username": "…"}` — subscribe (idempotent).
//! - `GET /subscriptions/{user_id}` — a user's subscriptions.
//! - `DELETE /subscriptions/{user_id}/{subscription_id}` — remove.
//! - `POST /subscriptions/{user_id}/{subscription_id}/pause`, `…/resume`.
//! - `PATCH /subscriptions/{user_id}/{subscription_id}/settings` `{"mode", "filters", "edits", "deletions"}`.
//! - `PUT /subscriptions/{user_id}/{subscription_id}/destination` `{"destination_id"}`.
//! - `GET /destinations/{user_id}` — the chats a user's posts can go to.
//! - `PUT /subscriptions/{user_id}/{subscription_id}/transform`, `…/quiet`, `…/digest` — the send settings ([`send_settings`]).
//! - `GET /dead_letters?kind=&state=&since=&before=&limit=`, `GET /dead_letters/{id}?redact=true`,
//!   `POST /dead_letters/{id}/replay`, `POST /dead_letters/{id}/discard`,
//!   `POST /dead_letters/replay` `{"kind"}` — dead letters ([`dead_letters`]).
//! - `GET /status` — the status page (HTML; bearer token or the login form's cookie), its
//!   forms `POST /status/login`, `/status/logout`, `/status/dead_letters/{id}/replay|discard` ([`console`]).
//! - `GET /metrics` — Prometheus text. `GET /healthz`, `GET /readyz` — health.
//!
//! Management routes need `Authorization: Bearer <http.api_token>`
//! ([`auth`]); errors are JSON `{"error": code, "message": text}` and never
//! echo a secret ([`error`]).

mod auth;
/// The status page: handlers and access.
mod console;
/// The status page's HTML.
mod console_page;
/// Edits/deletions settings and backfills of the subscription routes.
mod copies;
/// Dead letters: list, show, replay, discard.
mod dead_letters;
mod destinations;
mod error;
mod health;
mod send_settings;
mod subscriptions;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;

pub use error::ApiError;

use crate::config::HttpConfig;
use crate::dedup::RedisDedup;
use crate::pipeline::Pipeline;
use crate::secret::Secret;
use crate::store::Store;
use crate::telemetry::metrics_handle;

/// Shared state of the HTTP workers.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    /// The running pipeline, told about changed subscriptions (absent in
    /// tests of the API alone).
    pipeline: Option<Pipeline>,
    /// Redis, when the daemon uses it (reported by `/readyz`).
    redis: Option<RedisDedup>,
    api_token: Option<Secret>,
    handler_timeout: Duration,
    /// The Grafana dashboard the status page links to.
    grafana_url: Option<String>,
}

/// Registers the routes on an actix-web app; shared by the server and tests.
pub fn configure(cfg: &mut web::ServiceConfig, state: ApiState, body_limit: usize) {
    cfg.app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                // The seed's load test may omit the content type; the body is still JSON.
                .content_type_required(false)
                .error_handler(error::json_error),
        )
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .route("/add_channel", web::post().to(subscriptions::add_channel))
        .route(
            "/subscriptions/{user_id}",
            web::get().to(subscriptions::list),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}",
            web::delete().to(subscriptions::remove),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}/pause",
            web::post().to(subscriptions::pause),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}/resume",
            web::post().to(subscriptions::resume),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}/settings",
            web::patch().to(subscriptions::settings),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}/destination",
            web::put().to(destinations::route),
        )
        .route("/destinations/{user_id}", web::get().to(destinations::list))
        .route(
            "/subscriptions/{user_id}/{subscription_id}/transform",
            web::put().to(send_settings::transform),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}/quiet",
            web::put().to(send_settings::quiet),
        )
        .route(
            "/subscriptions/{user_id}/{subscription_id}/digest",
            web::put().to(send_settings::digest),
        )
        .route("/dead_letters", web::get().to(dead_letters::list))
        .route(
            "/dead_letters/replay",
            web::post().to(dead_letters::replay_all),
        )
        .route("/dead_letters/{id}", web::get().to(dead_letters::show))
        .route(
            "/dead_letters/{id}/replay",
            web::post().to(dead_letters::replay),
        )
        .route(
            "/dead_letters/{id}/discard",
            web::post().to(dead_letters::discard),
        )
        .route("/status", web::get().to(console::status))
        .route("/status/login", web::post().to(console::login))
        .route("/status/logout", web::post().to(console::logout))
        .route(
            "/status/dead_letters/{id}/replay",
            web::post().to(console::replay),
        )
        .route(
            "/status/dead_letters/{id}/discard",
            web::post().to(console::discard),
        )
        .route("/metrics", web::get().to(health::metrics_text))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(error::not_found));
}

/// A bound, not yet running, API server.
pub struct ApiServer {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The server future; run or spawn it.
    pub server: Server,
}

/// Binds the API server on `cfg.listen`, alone (no pipeline to notify):
/// what the HTTP tests need.
#[cfg(any(test, feature = "test-hooks"))]
pub fn bind(cfg: &HttpConfig, store: Store) -> std::io::Result<ApiServer> {
    bind_with(cfg, store, None, None)
}

/// Binds the API server on `cfg.listen`; new subscriptions go to
/// `pipeline`; `/readyz` reports on `redis` too.
pub fn bind_with(
    cfg: &HttpConfig,
    store: Store,
    pipeline: Option<Pipeline>,
    redis: Option<RedisDedup>,
) -> std::io::Result<ApiServer> {
    if cfg.api_token.is_none() {
        tracing::warn!(
            "http.api_token is not set: management routes (/add_channel, /subscriptions, /destinations) answer 404."
        );
    }
    // Install the recorder before the first request can race to.
    metrics_handle();
    let state = ApiState {
        store,
        pipeline,
        redis,
        api_token: cfg.api_token.clone(),
        handler_timeout: Duration::from_millis(cfg.handler_timeout_ms),
        grafana_url: cfg.grafana_url.clone(),
    };
    let body_limit = cfg.body_limit_bytes;
    let mut server = actix_web::HttpServer::new(move || {
        let state = state.clone();
        actix_web::App::new()
            .wrap(actix_web::middleware::from_fn(count_requests))
            .configure(|c| configure(c, state, body_limit))
    })
    .client_request_timeout(Duration::from_millis(cfg.request_timeout_ms))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(Duration::from_secs(30))
    .disable_signals()
    .shutdown_timeout(5);
    if cfg.workers > 0 {
        server = server.workers(cfg.workers);
    }
    let server = server.bind(cfg.listen)?;
    let addr = server.addrs().first().copied().unwrap_or(cfg.listen);
    tracing::info!(%addr, "HTTP API listening.");
    Ok(ApiServer {
        addr,
        server: server.run(),
    })
}

/// Counts requests by matched route pattern (not the raw path, which would
/// make a series per user id) and status.
async fn count_requests(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await?;
    crate::telemetry::events::http_request(route, res.status().as_u16());
    Ok(res)
}
