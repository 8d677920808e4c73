//! The management HTTP API (actix-web).
//!
//! Routes:
//! - `POST /add_channel` `{"user_id": …, "channel_username": "…"}` — subscribe (idempotent).
//! - `GET /subscriptions/{user_id}` — a user's subscriptions.
//! - `GET /metrics` — Prometheus text. `GET /healthz`, `GET /readyz` — health.
//!
//! Management routes need `Authorization: Bearer <http.api_token>`; with no
//! token configured they answer 404, so a forgotten token never means an open
//! API. Errors are JSON `{"error": code, "message": text}` and never echo a
//! secret.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::{Payload, Server};
use actix_web::http::StatusCode;
use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, error::JsonPayloadError, web,
};
use kuryer_actors::model::ChannelUsername;
use serde::Deserialize;
use serde_json::json;

use crate::config::HttpConfig;
use crate::dedup::RedisDedup;
use crate::pipeline::Pipeline;
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::telemetry::{metrics_handle, names};

/// Shared state of the HTTP workers.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    /// The running pipeline, told about new subscriptions (absent in tests
    /// of the API alone).
    pipeline: Option<Pipeline>,
    /// Redis, when the daemon uses it (reported by `/readyz`).
    redis: Option<RedisDedup>,
    api_token: Option<Secret>,
    handler_timeout: Duration,
}

/// An API error: status, machine-readable code, human message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn from_store(e: StoreError) -> Self {
        // Logged in full (it carries no secret); the client gets a short text.
        // A database that is away is a WARN per request (the client is told
        // to retry, /readyz says it); a query that cannot work is an ERROR.
        if e.is_retriable() {
            tracing::warn!(error = %e, error_kind = "database_unavailable", "Database operation failed; the client may retry.");
        } else {
            tracing::error!(error = %e, error_kind = "database_error", "Database operation failed.");
        }
        if e.is_retriable() {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; try again",
            )
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({"error": self.code, "message": self.message}))
    }
}

/// Proof that a management request carried the right bearer token.
struct Authorized;

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<Authorized, ApiError> {
    let state = req
        .app_data::<web::Data<ApiState>>()
        .expect("ApiState is registered");
    let Some(token) = &state.api_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "not found",
        ));
    };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.expose().as_bytes()) => Ok(Authorized),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )),
    }
}

/// Compares without an early exit, so response time tells neither how much
/// of a guessed token was right nor how long the token is: both sides are
/// hashed to 32 bytes first, and the digests compared byte by byte in full.
/// (Returning early on a length mismatch told the token's length.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Body of `POST /add_channel`.
#[derive(Debug, Deserialize)]
struct AddChannel {
    user_id: i64,
    channel_username: String,
}

async fn add_channel(
    _auth: Authorized,
    state: web::Data<ApiState>,
    body: web::Json<AddChannel>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.user_id <= 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
            "user_id must be a positive Telegram user id",
        ));
    }
    let channel = ChannelUsername::parse(&body.channel_username).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_channel_username",
            e.to_string(),
        )
    })?;
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
            tracing::warn!(
                subscription_id = added.subscription.id,
                error = %error,
                "A subscription was stored but the pipeline could not take it; the caller retries."
            );
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_live",
                "the subscription is stored but not yet delivering; try again",
            ));
        }
    }
    if added.created {
        metrics::counter!(names::SUBSCRIPTIONS_CREATED_TOTAL).increment(1);
        tracing::info!(
            user_id = body.user_id,
            channel = %channel,
            subscription_id = added.subscription.id,
            "Subscription created through the API."
        );
    }
    Ok(HttpResponse::Ok().json(added))
}

async fn subscriptions(
    _auth: Authorized,
    state: web::Data<ApiState>,
    user_id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let list = with_timeout(&state, state.store.subscriptions_of_user(*user_id)).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn with_timeout<T>(
    state: &ApiState,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(state.handler_timeout, fut).await {
        Ok(r) => r.map_err(ApiError::from_store),
        Err(_) => {
            tracing::warn!(
                timeout_ms = state.handler_timeout.as_millis() as u64,
                "HTTP handler timed out waiting for the database."
            );
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the database did not answer in time; try again",
            ))
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers. Redis is reported but does not decide:
/// kuryer delivers without it (dedup falls back to the database alone).
async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let redis = match &state.redis {
        Some(r) if r.ping().await => "ok",
        Some(_) => "unavailable (dedup on the database alone)",
        None => "not used",
    };
    let database = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Readiness check: database unreachable.");
            "unreachable"
        }
        Err(_) => "timeout",
    };
    // Each shared actor of the pipeline: a stopped one means posts are not
    // delivered, whatever the database says.
    let mut actors = serde_json::Map::new();
    let mut actors_ok = true;
    if let Some(p) = &state.pipeline {
        for (name, alive) in p.actors() {
            actors_ok &= alive;
            actors.insert(
                name.to_owned(),
                json!(if alive { "running" } else { "stopped" }),
            );
        }
    }
    let ready = database == "ok" && actors_ok;
    // Bots whose token Telegram refused: the others deliver.
    let halted_bots = state
        .pipeline
        .as_ref()
        .map(Pipeline::halted_bot_ids)
        .unwrap_or_default();
    // Redis away or a bot halted is "degraded", still ready: delivery goes
    // on (with the database's dedup alone, through the other bots).
    let degraded = redis.starts_with("unavailable") || !halted_bots.is_empty();
    let status = match (ready, degraded) {
        (false, _) => "not_ready",
        (true, true) => "degraded",
        (true, false) => "ready",
    };
    let mut body = json!({
        "status": status,
        "database": database,
        "redis": redis,
        "actors": actors,
    });
    if !halted_bots.is_empty() {
        body["halted_bots"] = json!(halted_bots);
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::render())
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "not_found", "message": "no such route"}))
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let (status, code) = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_json"),
    };
    ApiError::new(status, code, err.to_string()).into()
}

fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_user_id",
        format!("user_id must be an integer: {err}"),
    )
    .into()
}

/// Registers the routes on an actix-web app; shared by the server and tests.
pub fn configure(cfg: &mut web::ServiceConfig, state: ApiState, body_limit: usize) {
    cfg.app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                // The seed's load test may omit the content type; the body is still JSON.
                .content_type_required(false)
                .error_handler(json_error),
        )
        .app_data(web::PathConfig::default().error_handler(path_error))
        .route("/add_channel", web::post().to(add_channel))
        .route("/subscriptions/{user_id}", web::get().to(subscriptions))
        .route("/metrics", web::get().to(metrics_text))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .default_service(web::to(not_found));
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
            "http.api_token is not set: management routes (/add_channel, /subscriptions) answer 404."
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
    metrics::counter!(
        names::HTTP_REQUESTS_TOTAL,
        "route" => route,
        "status" => res.status().as_u16().to_string()
    )
    .increment(1);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_has_no_length_shortcut() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"secret-token"));
    }
}
