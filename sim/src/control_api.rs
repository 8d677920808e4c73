//! The fake Telegram as a process of its own (`kuryer-sim`, and the
//! benchmark's `kuryer-bench fake-telegram`): both faces, and the control
//! HTTP API that drives them from outside.
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
//! the process serves a control API on `--listen`. JSON in, JSON out; a
//! refusal is `{"error": code, "message": text}` with a 4xx status — 400
//! `bad_request` for a body or query that does not parse (unknown fields
//! included), 404 `not_found` for an unknown route or a malformed id in the
//! path, and the codes each route lists.
//!
//! | file | routes |
//! |---|---|
//! | `control_api/bot_api_routes.rs` | the Bot API face: `/publish`, `/history`, `/pairs`, `/stats`, `/report` (its rate-limit audit in `control_api/rate_audit.rs`) |
//! | `control_api/mtproto_routes.rs` | the MTProto face, `/mtproto/…`: accounts and keys (`mtproto_routes/accounts.rs`), channels and posts (`mtproto_routes/channels.rs`) |
//! | `control_api/people_routes.rs` | the simulated people: `/people/{user}/says`, `/forwards`, `/presses`, and `/chats/{chat}/messages` (what the bot sent there) |
//! | this file | `POST /quit`: stops the process |
//!
//! The process prints one JSON line on stdout once every server listens,
//! `{"bot_api": URL, "control": URL, "mtproto": "127.0.0.1:PORT",
//! "mtproto_dcs": {"2": "127.0.0.1:PORT", "1": "127.0.0.1:PORT"}}` (the
//! main data centre, and every one by DC id; neither with
//! `--no-mtproto`) — or, with [`RunOptions::print_config`], a config.toml
//! for `kuryer run` against it — and ends on `/quit` or when its standard
//! input closes (its parent died; said on stderr), unless
//! [`RunOptions::ignore_stdin`].

mod bot_api_routes;
mod mtproto_routes;
mod people_routes;
mod print_config;
mod rate_audit;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use serde_json::json;
use tokio::sync::Notify;

use crate::fake_bot_api::{ChatKind, FakeLimits, FakeTelegram};
use crate::fixtures::{self, group_chat, nth_bot_token};
use crate::mtproto::{MtprotoConfig, MtprotoFake};
use crate::process::FakeSpec;

use bot_api_routes::BotApiFace;
use mtproto_routes::MtprotoFace;
use people_routes::PeopleFace;

/// How the process announces itself and when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Print a config.toml for `kuryer run` against this process instead
    /// of the JSON line of addresses.
    pub print_config: bool,
    /// Keep running when standard input closes (end on `POST /quit` or a
    /// signal only).
    pub ignore_stdin: bool,
}

/// Runs the fake process until `/quit` or the end of standard input. Call
/// inside an actix `System`.
pub async fn run(cfg: FakeSpec) -> std::io::Result<()> {
    run_with(cfg, RunOptions::default()).await
}

/// [`run`], announcing and ending as `opts` says.
pub async fn run_with(cfg: FakeSpec, opts: RunOptions) -> std::io::Result<()> {
    let limits = fake_limits(cfg.limit_scale);
    let fake = fixtures::start_fake_on(limits, cfg.channels, cfg.users, cfg.bot_api_port)
        .map_err(|e| port_taken(e, "--bot-api-port", cfg.bot_api_port))?;
    let bot_tokens = bot_tokens(cfg.bots, &cfg.bot_tokens)?;
    for t in &bot_tokens[1..] {
        fake.add_bot(t);
    }
    // The bot a person talks to by default: the first `--bot-token`.
    let default_bot = if cfg.bot_tokens.is_empty() {
        0
    } else {
        bot_tokens.len() - cfg.bot_tokens.len()
    };
    let people = web::Data::new(PeopleFace {
        fake: fake.clone(),
        bot_tokens: bot_tokens.clone(),
        default_bot,
    });
    let mtproto = if cfg.no_mtproto {
        None
    } else {
        Some(start_mtproto_face(&fake, bot_tokens.clone())?)
    };
    let groups = create_groups(&fake, cfg.groups);
    let bot_api = web::Data::new(BotApiFace::new(fake.clone(), limits, groups));
    let quit = web::Data::new(Quit(Notify::new(), AtomicBool::new(false)));
    let (server, addr) = control_server(cfg.listen, &bot_api, &people, mtproto.as_ref(), &quit)
        .map_err(|e| port_taken(e, "--listen", cfg.listen))?;
    let handle = server.handle();
    let served = actix_rt::spawn(server);
    if opts.print_config {
        let token = &bot_tokens[default_bot];
        print_config::print(&fake.url(), token, default_bot, addr, mtproto.is_some())?;
    } else {
        announce(&fake, addr, mtproto.as_ref())?;
    }
    if !opts.ignore_stdin {
        quit_when_stdin_closes(quit.clone().into_inner());
    }
    quit.0.notified().await;
    handle.stop(false).await;
    let _ = served.await;
    if let Some(m) = &mtproto {
        m.fake.stop();
    }
    fake.stop();
    Ok(())
}

/// A bind error naming the option that chooses the address, and how to
/// take a free port instead (two kuryer-sims, or something else on it).
fn port_taken(e: std::io::Error, option: &str, value: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("cannot listen on {value} ({option}): {e}; give another, or 0 for a free one"),
    )
}

/// `--limit-scale`: Telegram's limits × k, or none at all for 0.
fn fake_limits(scale: f64) -> FakeLimits {
    if scale > 0.0 {
        FakeLimits::scaled(scale)
    } else {
        FakeLimits::off()
    }
}

/// Bot k of the control API: the generated `nth_bot_token(0..bots)` (at
/// least one), then the `--bot-token`s.
fn bot_tokens(bots: usize, extra: &[String]) -> std::io::Result<Vec<String>> {
    let mut tokens: Vec<String> = (0..bots.max(1)).map(nth_bot_token).collect();
    for t in extra {
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
        tokens.push(t.clone());
    }
    Ok(tokens)
}

/// Starts the MTProto face in one world with the Bot API face: channels
/// and posts made through `/mtproto/…` are channel posts to admin bots too.
fn start_mtproto_face(
    bot_api: &FakeTelegram,
    bot_tokens: Vec<String>,
) -> std::io::Result<web::Data<MtprotoFace>> {
    let face = Arc::new(MtprotoFake::start(MtprotoConfig::default())?);
    face.attach_bot_api(bot_api.clone());
    Ok(web::Data::new(MtprotoFace {
        fake: face,
        bot_api: bot_api.clone(),
        bot_tokens,
    }))
}

/// Declares the group chats `group_chat(1..=groups)` on the Bot API face.
fn create_groups(fake: &FakeTelegram, groups: u32) -> HashSet<i64> {
    (1..=i64::from(groups))
        .map(|g| {
            fake.create_chat(group_chat(g), ChatKind::Group);
            group_chat(g)
        })
        .collect()
}

/// Binds the control API on `listen` and starts serving it (one worker, no
/// signal handling: the process ends on `/quit` or end of stdin).
fn control_server(
    listen: SocketAddr,
    bot_api: &web::Data<BotApiFace>,
    people: &web::Data<PeopleFace>,
    mtproto: Option<&web::Data<MtprotoFace>>,
    quit: &web::Data<Quit>,
) -> std::io::Result<(Server, SocketAddr)> {
    let (bot_api, mtproto, quit) = (bot_api.clone(), mtproto.cloned(), quit.clone());
    let people = people.clone();
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(bot_api.clone())
            .app_data(people.clone())
            .app_data(quit.clone())
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
        if let Some(m) = &mtproto {
            app = app.app_data(m.clone()).configure(mtproto_routes::routes);
        }
        app.configure(bot_api_routes::routes)
            .configure(people_routes::routes)
            .route("/quit", web::post().to(quit_route))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    Ok((server.run(), addr))
}

/// Prints the one JSON line that tells the parent where every face listens.
fn announce(
    fake: &FakeTelegram,
    control: SocketAddr,
    mtproto: Option<&web::Data<MtprotoFace>>,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut announce = json!({"bot_api": fake.url(), "control": format!("http://{control}")});
    if let Some(m) = mtproto {
        announce["mtproto"] = json!(m.fake.addr().to_string());
        let dcs: serde_json::Map<String, serde_json::Value> = m
            .fake
            .dcs()
            .into_iter()
            .map(|(id, addr)| (id.to_string(), json!(addr.to_string())))
            .collect();
        announce["mtproto_dcs"] = json!(dcs);
    }
    writeln!(out, "{announce}")?;
    out.flush()
}

/// The parent holds our stdin; when it goes away, so do we.
fn quit_when_stdin_closes(quit: Arc<Quit>) {
    std::thread::spawn(move || {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
        // Said, not silent: run by hand with `< /dev/null` or in the
        // background, the process would otherwise vanish with status 0.
        // Not after `/quit`: a parent that quits it also closes its stdin.
        if !quit.1.load(Ordering::SeqCst) {
            eprintln!(
                "kuryer-sim: standard input closed, stopping (keep it open, or pass --ignore-stdin and stop it with POST /quit)"
            );
        }
        quit.0.notify_one();
    });
}

/// Told when the process should end (`/quit`, or end of standard input);
/// the flag: `/quit` came first.
struct Quit(Notify, AtomicBool);

async fn quit_route(quit: web::Data<Quit>) -> HttpResponse {
    quit.1.store(true, Ordering::SeqCst);
    quit.0.notify_one();
    HttpResponse::Ok().json(json!({ "quit": true }))
}

/// A refused control request: the status, a stable code, and a sentence.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ApiError {
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

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
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

/// A body or query the route cannot read: 400 in the control API's error shape.
fn bad_request(message: String) -> actix_web::Error {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_tokens_are_distinct_and_well_formed() {
        let a = nth_bot_token(1);
        let b = nth_bot_token(2);
        assert_ne!(a, b);
        assert!(a.split(':').next().unwrap().parse::<u64>().is_ok());
        assert_eq!(nth_bot_token(0), fixtures::bot_token());
    }
}
