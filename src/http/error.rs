//! The API's errors: one JSON shape, `{"error": code, "message": text}`,
//! for bad bodies, bad paths, a database away and what handlers refuse.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error::JsonPayloadError};
use serde_json::json;

use super::ApiState;
use crate::pipeline::PipelineError;
use crate::store::StoreError;

/// An API error: status, machine-readable code, human message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// No such subscription of this user (or removed already).
    pub(super) fn no_subscription() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "subscription_not_found",
            "no such subscription of this user",
        )
    }

    pub(super) fn from_store(e: StoreError) -> Self {
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

    /// Stored, but the registry has not taken it: a 503 to retry (every
    /// change is idempotent, the retry makes it live).
    pub(super) fn not_live(subscription_id: i64, error: &str) -> Self {
        tracing::warn!(
            subscription_id,
            error,
            "A subscription change was stored but the pipeline could not take it; the caller retries."
        );
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_live",
            "the change is stored but not yet in effect; try again",
        )
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

/// A store call bounded by the handler timeout; a database away is a 503.
pub(super) async fn with_timeout<T>(
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

/// Brings a stored change of one subscription to the running pipeline's
/// registry (as the bot does), within the handler timeout; 503 when it
/// could not. Without a pipeline (the API alone, in tests) nothing to do.
pub(super) async fn make_live(state: &ApiState, subscription_id: i64) -> Result<(), ApiError> {
    let Some(pipeline) = &state.pipeline else {
        return Ok(());
    };
    let live = tokio::time::timeout(
        state.handler_timeout,
        pipeline.sync_subscription(&state.store, subscription_id),
    )
    .await;
    match live {
        Ok(Ok(())) => Ok(()),
        // The database gone between the change and the registry's read.
        Ok(Err(PipelineError::Store(e))) => Err(ApiError::from_store(e)),
        Ok(Err(e)) => Err(ApiError::not_live(subscription_id, &e.to_string())),
        Err(_) => Err(ApiError::not_live(subscription_id, "timed out")),
    }
}

pub(super) fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let (status, code) = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_json"),
    };
    ApiError::new(status, code, err.to_string()).into()
}

/// A path segment that is not an integer: the code names which one.
pub(super) fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    let bad = |name: &str| {
        req.match_info()
            .get(name)
            .is_some_and(|v| v.parse::<i64>().is_err())
    };
    let (code, what) = if bad("subscription_id") && !bad("user_id") {
        ("invalid_subscription_id", "subscription_id")
    } else {
        ("invalid_user_id", "user_id")
    };
    ApiError::bad_request(code, format!("{what} must be an integer: {err}")).into()
}

pub(super) async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": "not_found", "message": "no such route"}))
}
