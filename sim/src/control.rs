//! The fake Telegram as a process of its own (`kuryer-sim`, and the
//! benchmark's `kuryer-bench fake-telegram`).
//!
//! `kuryer-bench` runs the fake Bot API in a separate process so that the
//! fake's bookkeeping (every message it received is kept) is not counted in
//! the pipeline's memory, and so that the Python baseline of the seed's
//! design can talk to the very same server over HTTP.
//!
//! Besides the Bot API (on a free port chosen by
//! [`FakeTelegram::start`](crate::fake_bot_api::FakeTelegram::start)) and,
//! unless `--no-mtproto`, the MTProto face (a fake data centre on a free
//! port of 127.0.0.1, one world with the Bot API face through
//! [`MtprotoFake::attach_bot_api`](crate::mtproto::MtprotoFake::attach_bot_api)),
//! the process serves a control API on `--listen`. JSON in, JSON out; a refusal is `{"error": code, "message":
//! text}` with a 4xx status — 400 `bad_request` for a body or query that
//! does not parse (unknown fields included), 404 `not_found` for an unknown
//! route or a malformed id in the path, and the codes below.
//!
//! The Bot API face:
//!
//! | route | what it does |
//! |---|---|
//! | `POST /publish {"posts": [[i, round], …]}` | publishes post `round` on demo channel `i` (as [`fixtures::publish`]); answers `{"ids": [[chat, first id], …]}` |
//! | `GET /history?chat=C&after=N&limit=L` | messages of channel `C` above id `N`, oldest first: what a reader account's `getHistory` returns (channels made on the MTProto face too, by their `bot_api_chat_id`) |
//! | `POST /pairs [[dest, channel chat], …]` | the subscriptions, so `/report` knows what must arrive |
//! | `GET /stats` | the fake's counters |
//! | `POST /report {"posts": [[chat, first id]]?, "skip_s": s?}` | delivered / lost / duplicates / latency for those posts (default: all published) and the rate-limit audit |
//! | `POST /quit` | stops the process |
//!
//! The MTProto face (`control/mtproto.rs`); `{a}` is an account's user id,
//! `{c}` a channel's bare id:
//!
//! | route | what it does | refusals |
//! |---|---|---|
//! | `POST /mtproto/accounts {"phone", "first_name"?, "username"?, "password"?, "signed_in"?: true}` | creates an account (`password`: its 2FA password, checked by SRP) and, unless `signed_in` is false, an auth key signed in to it: `{"user_id", "auth_key": 512 hex digits, "dc_id", "dc_addr": "127.0.0.1:PORT"}`, what a grammers session needs (home DC `dc_id` at `dc_addr` holding the key) | 400 `phone_invalid`, 409 `phone_taken` |
//! | `POST /mtproto/keys {"account": a \| null}` | another key, signed in to `a` or to nobody (for a login): `{"auth_key", "dc_id", "dc_addr"}` | 404 `unknown_account` |
//! | `GET /mtproto/login_code?phone=P` | the login code last sent to `P`: `{"code"}` | 404 `no_code` |
//! | `GET /mtproto/accounts/{a}/stats` | `{"methods": {name: {"calls", "errors": {error: n}, "calls_during_flood_wait"}}, "pushed", "dropped"}` | 404 `unknown_account` |
//! | `POST /mtproto/accounts/{a}/drop_pushes {"count": n \| null}` | drops the next `n` pushes (null: all, until `0`) | 404 `unknown_account` |
//! | `POST /mtproto/accounts/{a}/delay_pushes {"ms": n \| null}` | delays every push by `n` ms (null: none) | 400 `delay_too_long` (over 600000), 404 `unknown_account` |
//! | `POST /mtproto/accounts/{a}/too_long {"channel": c?}` | pushes `updateChannelTooLong` for `c`, or `updatesTooLong` | 404 `unknown_account`, `unknown_channel` |
//! | `POST /mtproto/channels {"title", "username"?, "protected"?, "admin_bots"?: [k], "members"?: [a], "admins"?: [a]}` | creates a broadcast channel (no username: private) on both faces; bot `k` (`nth_bot_token(k)` below `--bots`, then the `--bot-token`s) becomes its admin on the Bot API face: `{"id", "access_hash", "bot_api_chat_id"}` | 400 `title_empty`, `username_invalid`; 409 `username_taken`; 404 `unknown_bot`, `unknown_account` |
//! | `POST /mtproto/channels/{c}/members {"account": a, "admin"?}` | makes `a` a member (the way into a private channel), and an admin | 404 `unknown_channel`, `unknown_account` |
//! | `POST /mtproto/channels/{c}/posts {"text"?, "media"?: "photo" \| "video" \| "document", "protected"?}` or `{"album": [{"text"?, "media"}, …]}` | publishes a post, or an album (2–10 parts, one `grouped_id`): pushed to members, a `channel_post` to admin bots; `{"ids": [message id, …]}` | 400 `post_empty`, `album_invalid`, `post_invalid`; 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/edit {"message_id", "text"}` | edits a post (pushed; not mirrored to the Bot API face) | 404 `unknown_channel`, `unknown_message` |
//! | `POST /mtproto/channels/{c}/delete {"message_ids": […]}` | deletes posts (pushed): `{"deleted": n}` | 400 `message_ids_empty`, 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/rename {"title"}` | renames the channel (MTProto face) | 400 `title_empty`, 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/private` | frees its username: non-members get `CHANNEL_PRIVATE` | 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/delete_channel` | deletes the channel: its username is freed, everyone (members too) gets `CHANNEL_PRIVATE` | 404 `unknown_channel` |
//! | `POST /mtproto/sessions/revoke {"auth_key": hex}` | every later call on the key gets `SESSION_REVOKED` | 400 `auth_key_invalid`, 404 `unknown_key` |
//! | `POST /mtproto/flood {"method", "limit": {"max_calls", "per_ms"} \| null}` | sets (null: removes) the per-account flood limit of a TL method (`contacts.resolveUsername`) | 400 `method_invalid`, `limit_invalid` |
//!
//! The process prints one JSON line on stdout once every server listens,
//! `{"bot_api": URL, "control": URL, "mtproto": "127.0.0.1:PORT"}` (no
//! `mtproto` with `--no-mtproto`), and ends on `/quit` or when its standard
//! input closes (its parent died).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram, MediaKind};
use crate::fixtures::{self, group_chat, nth_bot_token};
use crate::mtproto::{MtprotoConfig, MtprotoFake};
use crate::process::FakeSpec;

mod mtproto;

use mtproto::{ApiError, MtprotoControl};

struct State {
    fake: FakeTelegram,
    limits: FakeLimits,
    pairs: Mutex<Vec<(i64, i64)>>,
    published: Mutex<Vec<(i64, i32)>>,
    groups: HashSet<i64>,
    quit: Notify,
}

impl State {
    fn pairs(&self) -> std::sync::MutexGuard<'_, Vec<(i64, i64)>> {
        self.pairs.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn published(&self) -> std::sync::MutexGuard<'_, Vec<(i64, i32)>> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the fake process until `/quit` or the end of standard input. Call
/// inside an actix `System`.
pub async fn run(cfg: FakeSpec) -> std::io::Result<()> {
    let limits = if cfg.limit_scale > 0.0 {
        FakeLimits::scaled(cfg.limit_scale)
    } else {
        FakeLimits::off()
    };
    let fake = fixtures::start_fake(limits, cfg.channels, cfg.users)?;
    // Bot k of the control API: the generated ones, then `--bot-token`s.
    let mut bot_tokens: Vec<String> = (0..cfg.bots.max(1)).map(nth_bot_token).collect();
    for t in &cfg.bot_tokens {
        // `add_bot` panics on a malformed token: refused here with its reason.
        let well_formed = t.split_once(':').is_some_and(|(id, secret)| {
            id.parse::<u64>().is_ok_and(|id| id > 0) && !secret.is_empty()
        });
        if !well_formed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--bot-token must be \"<bot id>:<secret>\" with a positive numeric bot id",
            ));
        }
        bot_tokens.push(t.clone());
    }
    for t in &bot_tokens[1..] {
        fake.add_bot(t);
    }
    // The MTProto face shares the world with the Bot API face: channels and
    // posts made through `/mtproto/…` are channel posts to admin bots too.
    let mtproto = if cfg.no_mtproto {
        None
    } else {
        let face = Arc::new(MtprotoFake::start(MtprotoConfig::default())?);
        face.attach_bot_api(fake.clone());
        Some(web::Data::new(MtprotoControl {
            fake: face,
            bot_api: fake.clone(),
            bot_tokens,
        }))
    };
    let mut groups = HashSet::new();
    for g in 1..=i64::from(cfg.groups) {
        fake.create_chat(group_chat(g), ChatKind::Group);
        groups.insert(group_chat(g));
    }
    let state = web::Data::new(State {
        fake: fake.clone(),
        limits,
        pairs: Mutex::default(),
        published: Mutex::default(),
        groups,
        quit: Notify::new(),
    });
    let data = state.clone();
    let mtproto_data = mtproto.clone();
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(data.clone())
            // Pairs and expected lists of a large run are megabytes of JSON.
            .app_data(
                web::JsonConfig::default()
                    .limit(256 << 20)
                    .error_handler(|e, _| bad_request(e.to_string())),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| bad_request(e.to_string())))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()).into()
            }))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such route",
                ))
            }));
        if let Some(m) = &mtproto_data {
            app = app.app_data(m.clone()).configure(mtproto::routes);
        }
        app.route("/publish", web::post().to(publish))
            .route("/history", web::get().to(history))
            .route("/pairs", web::post().to(pairs))
            .route("/stats", web::get().to(stats))
            .route("/report", web::post().to(report))
            .route("/quit", web::post().to(quit))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(cfg.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    let server = server.run();
    let handle = server.handle();
    let served = actix_rt::spawn(server);
    {
        let mut out = std::io::stdout().lock();
        let mut announce = json!({"bot_api": fake.url(), "control": format!("http://{addr}")});
        if let Some(m) = &mtproto {
            announce["mtproto"] = json!(m.fake.addr().to_string());
        }
        writeln!(out, "{announce}")?;
        out.flush()?;
    }
    // The parent holds our stdin; when it goes away, so do we.
    let stdin_state = state.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
        stdin_state.quit.notify_one();
    });
    state.quit.notified().await;
    handle.stop(false).await;
    let _ = served.await;
    if let Some(m) = &mtproto {
        m.fake.stop();
    }
    fake.stop();
    Ok(())
}

#[derive(Deserialize)]
struct PublishBody {
    posts: Vec<(i64, u32)>,
}

async fn publish(state: web::Data<State>, body: web::Json<PublishBody>) -> HttpResponse {
    let mut ids = Vec::with_capacity(body.posts.len());
    for &(i, round) in &body.posts {
        let chat = fixtures::channel_chat(i);
        ids.push((chat, fixtures::publish(&state.fake, chat, i, round)));
    }
    state.published().extend_from_slice(&ids);
    HttpResponse::Ok().json(json!({ "ids": ids }))
}

#[derive(Deserialize)]
struct HistoryQuery {
    chat: i64,
    after: i32,
    limit: Option<usize>,
}

async fn history(state: web::Data<State>, q: web::Query<HistoryQuery>) -> HttpResponse {
    let limit = q.limit.unwrap_or(100).clamp(1, 100);
    let messages: Vec<Value> = state
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

async fn pairs(state: web::Data<State>, body: web::Json<Vec<(i64, i64)>>) -> HttpResponse {
    let mut pairs = state.pairs();
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

async fn stats(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(stats_json(&state.fake))
}

#[derive(Deserialize, Default)]
struct ReportBody {
    /// Posts to judge; all published ones when absent.
    posts: Option<Vec<(i64, i32)>>,
    /// Seconds after each bot's first request left out of its rate (ramp-up).
    skip_s: Option<f64>,
}

async fn report(state: web::Data<State>, body: web::Json<ReportBody>) -> HttpResponse {
    let state = state.into_inner();
    let body = body.into_inner();
    // The report walks every message received: off the server's thread.
    let answer = web::block(move || {
        let pairs = state.pairs().clone();
        let posts = body.posts.unwrap_or_else(|| state.published().clone());
        let expected = fixtures::expected_list(&pairs, &posts);
        let r = state.fake.report(&expected);
        let audit = audit(&state, &pairs, body.skip_s.unwrap_or(0.0));
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
            "stats": stats_json(&state.fake),
            "audit": audit,
        })
    })
    .await;
    match answer {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// A body or query the route cannot read: 400 in the control API's error shape.
fn bad_request(message: String) -> actix_web::Error {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).into()
}

async fn quit(state: web::Data<State>) -> HttpResponse {
    state.quit.notify_one();
    HttpResponse::Ok().json(json!({ "quit": true }))
}

/// Most requests within any window of `window` among sorted instants (a
/// window is `(t − window, t]`, as the fake and Telegram count).
fn max_in_window(sorted: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut i = 0;
    for j in 0..sorted.len() {
        while sorted[j].duration_since(sorted[i]) >= window {
            i += 1;
        }
        best = best.max(j - i + 1);
    }
    best
}

/// An audit of the limits from the arrival times alone, independent of the
/// fake's own enforcement: the densest second of each bot, the densest
/// second of each private chat and minute of each group, and each bot's
/// sustained rate after `skip_s` of ramp-up.
fn audit(state: &State, pairs: &[(i64, i64)], skip_s: f64) -> Value {
    let dests: HashSet<i64> = pairs.iter().map(|p| p.0).collect();
    let mut per_bot: HashMap<i64, Vec<Instant>> = HashMap::new();
    let (mut max_private_1s, mut max_group_60s) = (0usize, 0usize);
    for dest in dests {
        let received = state.fake.received(dest);
        // One request may carry an album's parts: limits count requests.
        let mut seen = HashSet::new();
        let mut times = Vec::new();
        for r in &received {
            if seen.insert(r.request_id) {
                times.push(r.received_at);
                per_bot.entry(r.bot_id).or_default().push(r.received_at);
            }
        }
        times.sort();
        if state.groups.contains(&dest) {
            max_group_60s = max_group_60s.max(max_in_window(&times, Duration::from_secs(60)));
        } else {
            max_private_1s = max_private_1s.max(max_in_window(&times, Duration::from_secs(1)));
        }
    }
    let mut bots = Vec::new();
    let mut max_bot_1s = 0usize;
    for (bot, mut times) in per_bot {
        times.sort();
        max_bot_1s = max_bot_1s.max(max_in_window(&times, Duration::from_secs(1)));
        let start = times[0] + Duration::from_secs_f64(skip_s.max(0.0));
        let steady: Vec<&Instant> = times.iter().filter(|t| **t >= start).collect();
        let rate = match (steady.first(), steady.last()) {
            (Some(a), Some(b)) if steady.len() > 1 && *b > *a => {
                (steady.len() - 1) as f64 / b.duration_since(**a).as_secs_f64()
            }
            _ => 0.0,
        };
        let span = match (times.first(), times.last()) {
            (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
            _ => 0.0,
        };
        bots.push(json!({
            "bot_id": bot,
            "requests": times.len(),
            "steady_requests": steady.len(),
            "steady_rate_per_s": rate,
            "span_s": span,
        }));
    }
    let l = state.limits;
    json!({
        "enforced": l.enforce,
        "allowed_per_bot_per_s": l.per_bot_per_second,
        "allowed_per_chat_per_s": l.per_chat_per_second,
        "allowed_per_group_per_min": l.per_group_per_minute,
        "max_bot_requests_in_1s": max_bot_1s,
        "max_private_chat_requests_in_1s": max_private_1s,
        "max_group_requests_in_60s": max_group_60s,
        "bots": bots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densest_window_is_half_open() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let v = [at(0), at(500), at(999), at(1000), at(1999)];
        // (t − 1 s, t]: the request at 0 is out of the window at 1000.
        assert_eq!(max_in_window(&v, Duration::from_secs(1)), 3);
        assert_eq!(max_in_window(&[], Duration::from_secs(1)), 0);
        assert_eq!(max_in_window(&v[..1], Duration::from_secs(1)), 1);
    }

    #[test]
    fn bench_tokens_are_distinct_and_well_formed() {
        let a = nth_bot_token(1);
        let b = nth_bot_token(2);
        assert_ne!(a, b);
        assert!(a.split(':').next().unwrap().parse::<u64>().is_ok());
        assert_eq!(nth_bot_token(0), fixtures::bot_token());
    }
}
