//! The control routes of the Bot API face: what `kuryer-bench` and the demo
//! drive the fake with from outside the process (publish the demo's posts,
//! read a channel's history as a reader would, declare the subscriptions,
//! read the counters, and judge a run).
//!
//! | route | what it does |
//! |---|---|
//! | `POST /publish {"posts": [[i, round], …]}` | publishes post `round` on demo channel `i` (as [`fixtures::publish`]); answers `{"ids": [[chat, first id], …]}` |
//! | `GET /history?chat=C&after=N&limit=L` | messages of channel `C` above id `N`, oldest first: what a reader account's `getHistory` returns (channels made on the MTProto face too, by their `bot_api_chat_id`) |
//! | `POST /pairs [[dest, channel chat], …]` | the subscriptions, so `/report` knows what must arrive |
//! | `GET /stats` | the fake's counters |
//! | `POST /report {"posts": [[chat, first id]]?, "skip_s": s?}` | delivered / lost / duplicates / latency for those posts (default: all published) and the rate-limit audit (`rate_audit.rs`) |

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::rate_audit;
use crate::fake_bot_api::{FakeLimits, FakeTelegram, MediaKind};
use crate::fixtures;

/// What the Bot API face's routes act on: the fake, the limits it enforces,
/// and what the process was told and did (subscriptions, published posts,
/// which destination chats are groups).
pub(super) struct BotApiFace {
    pub(super) fake: FakeTelegram,
    pub(super) limits: FakeLimits,
    pairs: Mutex<Vec<(i64, i64)>>,
    published: Mutex<Vec<(i64, i32)>>,
    pub(super) groups: HashSet<i64>,
}

impl BotApiFace {
    pub(super) fn new(fake: FakeTelegram, limits: FakeLimits, groups: HashSet<i64>) -> Self {
        Self {
            fake,
            limits,
            pairs: Mutex::default(),
            published: Mutex::default(),
            groups,
        }
    }

    fn pairs(&self) -> MutexGuard<'_, Vec<(i64, i64)>> {
        self.pairs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn published(&self) -> MutexGuard<'_, Vec<(i64, i32)>> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/publish", web::post().to(publish))
        .route("/history", web::get().to(history))
        .route("/pairs", web::post().to(pairs))
        .route("/stats", web::get().to(stats))
        .route("/report", web::post().to(report));
}

#[derive(Deserialize)]
struct PublishBody {
    posts: Vec<(i64, u32)>,
}

async fn publish(face: web::Data<BotApiFace>, body: web::Json<PublishBody>) -> HttpResponse {
    let mut ids = Vec::with_capacity(body.posts.len());
    for &(i, round) in &body.posts {
        let chat = fixtures::channel_chat(i);
        ids.push((chat, fixtures::publish(&face.fake, chat, i, round)));
    }
    face.published().extend_from_slice(&ids);
    HttpResponse::Ok().json(json!({ "ids": ids }))
}

#[derive(Deserialize)]
struct HistoryQuery {
    chat: i64,
    after: i32,
    limit: Option<usize>,
}

async fn history(face: web::Data<BotApiFace>, q: web::Query<HistoryQuery>) -> HttpResponse {
    // At most 100 messages a call, as a reader asks `messages.getHistory`
    // for (source: grammers-client 0.11 `src/client/messages.rs`,
    // `MAX_LIMIT = 100`; the method's page names no maximum).
    let limit = q.limit.unwrap_or(100).clamp(1, 100);
    let messages: Vec<Value> = face
        .fake
        .channel_messages_after(q.chat, q.after, limit)
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "date": m.date,
                "text": m.text,
                "entities": m.entities,
                "media": m.media.map(|k| match k {
                    MediaKind::Photo => "photo",
                    MediaKind::Video => "video",
                    MediaKind::Document => "document",
                }),
                "media_group_id": m.media_group_id,
                "protected": m.protected,
            })
        })
        .collect();
    HttpResponse::Ok().json(messages)
}

async fn pairs(face: web::Data<BotApiFace>, body: web::Json<Vec<(i64, i64)>>) -> HttpResponse {
    let mut pairs = face.pairs();
    pairs.extend(body.into_inner());
    HttpResponse::Ok().json(json!({ "pairs": pairs.len() }))
}

fn stats_json(fake: &FakeTelegram) -> Value {
    let s = fake.stats();
    json!({
        "requests_total": s.requests_total,
        "messages_received": s.messages_received,
        "rate_limited_429": s.rate_limited_429,
        "faults_injected": s.faults_injected,
        "unauthorized_401": s.unauthorized_401,
        "per_method": s.per_method,
    })
}

async fn stats(face: web::Data<BotApiFace>) -> HttpResponse {
    HttpResponse::Ok().json(stats_json(&face.fake))
}

#[derive(Deserialize, Default)]
struct ReportBody {
    /// Posts to judge; all published ones when absent.
    posts: Option<Vec<(i64, i32)>>,
    /// Seconds after each bot's first request left out of its rate (ramp-up).
    skip_s: Option<f64>,
}

async fn report(face: web::Data<BotApiFace>, body: web::Json<ReportBody>) -> HttpResponse {
    let face = face.into_inner();
    let body = body.into_inner();
    // The report walks every message received: off the server's thread.
    let answer = web::block(move || {
        let pairs = face.pairs().clone();
        let posts = body.posts.unwrap_or_else(|| face.published().clone());
        let expected = fixtures::expected_list(&pairs, &posts);
        let r = face.fake.report(&expected);
        let audit = rate_audit::audit(&face, &pairs, body.skip_s.unwrap_or(0.0));
        json!({
            "expected": r.expected,
            "delivered": r.delivered,
            "duplicates": r.duplicates,
            "lost": r.lost,
            "unexpected": r.unexpected,
            "out_of_order": r.out_of_order,
            "albums_split": r.albums_split,
            "album_parts_missing": r.album_parts_missing,
            "latency_p50_ms": r.latency_p50_ms,
            "latency_p99_ms": r.latency_p99_ms,
            "latency_max_ms": r.latency_max_ms,
            "stats": stats_json(&face.fake),
            "audit": audit,
        })
    })
    .await;
    match answer {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
