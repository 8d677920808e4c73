//! `/healthz`, `/readyz`, `/metrics`: no token, for probes and scrapers.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiState;
use crate::pipeline::Pipeline;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers. Redis is reported but does not decide:
/// kuryer delivers without it (dedup falls back to the database alone).
pub(super) async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
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
    // Several instances (`kuryer run`): nothing is read before the lease
    // keeper's first round took a share and started its pollers.
    let started = state
        .pipeline
        .as_ref()
        .and_then(Pipeline::ownership)
        .is_none_or(|o| o.started());
    let ready = database == "ok" && actors_ok && started;
    // Bots whose token Telegram refused: the others deliver.
    let halted_bots = state
        .pipeline
        .as_ref()
        .map(Pipeline::halted_bot_ids)
        .unwrap_or_default();
    // Redis away or a bot halted is "degraded", still ready: delivery goes
    // on (with the database's dedup alone, through the other bots).
    // Answers of the Bot API this version cannot read: Telegram changed.
    let unreadable = crate::preflight::unreadable_methods();
    let degraded =
        redis.starts_with("unavailable") || !halted_bots.is_empty() || !unreadable.is_empty();
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
    if !unreadable.is_empty() {
        body["bot_api_unreadable"] = json!(unreadable);
    }
    // Several instances: what this one owns now.
    if let Some(o) = state.pipeline.as_ref().and_then(Pipeline::ownership) {
        let (channels, bots) = o.counts();
        body["instance"] = json!({
            "id": o.id(),
            "owned_channels": channels,
            "owned_accounts": o.accounts(),
            "owned_bots": bots,
            "leases_valid": o.leases_valid(),
            "started": o.started(),
        });
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub(super) async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::render())
}
