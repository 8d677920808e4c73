//! The control routes of the MTProto face (`/mtproto/…`), so a test or an
//! operator outside the process can do what [`MtprotoFake`]'s methods do:
//! create accounts (with an auth key a client can use at once) and
//! channels, publish, edit, delete, rename, make private, revoke sessions,
//! set flood limits, drop or delay pushes, and read what an account called.
//! JSON in, JSON out; a refusal is `{"error": code, "message": text}` with a
//! 4xx status (see the table in `crate::control`).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::fake_bot_api::{FakeTelegram, MediaKind, NewChannelMessage};
use crate::mtproto::{AccountSpec, ChannelRef, ChannelSpec, ControlError, FloodLimit, MtprotoFake};

/// What the MTProto routes act on.
pub(super) struct MtprotoControl {
    pub(super) fake: Arc<MtprotoFake>,
    pub(super) bot_api: FakeTelegram,
    /// The bots the Bot API face knows: `nth_bot_token(0..--bots)`, then
    /// the `--bot-token`s. `admin_bots` names them by index.
    pub(super) bot_tokens: Vec<String>,
}

/// A refused control request: the status, a stable code, and a sentence.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct ApiError {
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

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (status, code) = match &e {
            ControlError::PhoneInvalid(_) => (StatusCode::BAD_REQUEST, "phone_invalid"),
            ControlError::PhoneTaken(_) => (StatusCode::CONFLICT, "phone_taken"),
            ControlError::UsernameInvalid(_) => (StatusCode::BAD_REQUEST, "username_invalid"),
            ControlError::UsernameTaken(_) => (StatusCode::CONFLICT, "username_taken"),
        };
        Self::new(status, code, e.to_string())
    }
}

type Answer = Result<HttpResponse, ApiError>;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mtproto/accounts", web::post().to(create_account))
        .route("/mtproto/keys", web::post().to(issue_key))
        .route("/mtproto/login_code", web::get().to(login_code))
        .route("/mtproto/accounts/{id}/stats", web::get().to(account_stats))
        .route(
            "/mtproto/accounts/{id}/drop_pushes",
            web::post().to(drop_pushes),
        )
        .route(
            "/mtproto/accounts/{id}/delay_pushes",
            web::post().to(delay_pushes),
        )
        .route("/mtproto/accounts/{id}/too_long", web::post().to(too_long))
        .route("/mtproto/channels", web::post().to(create_channel))
        .route("/mtproto/channels/{id}/members", web::post().to(add_member))
        .route("/mtproto/channels/{id}/posts", web::post().to(publish))
        .route("/mtproto/channels/{id}/edit", web::post().to(edit))
        .route("/mtproto/channels/{id}/delete", web::post().to(delete))
        .route("/mtproto/channels/{id}/rename", web::post().to(rename))
        .route(
            "/mtproto/channels/{id}/private",
            web::post().to(make_private),
        )
        .route(
            "/mtproto/channels/{id}/delete_channel",
            web::post().to(delete_channel),
        )
        .route("/mtproto/sessions/revoke", web::post().to(revoke))
        .route("/mtproto/flood", web::post().to(flood));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn auth_key_from_hex(s: &str) -> Result<[u8; 256], ApiError> {
    let bad = || ApiError::bad("auth_key_invalid", "auth_key must be 512 hex digits");
    if s.len() != 512 || !s.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 256];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

/// What a client needs for a session on this fake: the key, and the DC
/// (id and address) that holds it.
fn key_json(fake: &MtprotoFake, key: [u8; 256]) -> Value {
    let dc = fake.dc_option(key);
    json!({
        "auth_key": hex(&key),
        "dc_id": dc.id,
        "dc_addr": fake.addr().to_string(),
    })
}

fn account(c: &MtprotoControl, id: i64) -> Result<i64, ApiError> {
    if c.fake.has_account(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found(
            "unknown_account",
            format!("no account {id}"),
        ))
    }
}

fn channel(c: &MtprotoControl, id: i64) -> Result<ChannelRef, ApiError> {
    c.fake
        .channel(id)
        .ok_or_else(|| ApiError::not_found("unknown_channel", format!("no channel {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    phone: String,
    #[serde(default)]
    first_name: String,
    username: Option<String>,
    password: Option<String>,
    /// Issue a key signed in to the account (default); false for a login
    /// test, which gets its key from `/mtproto/keys`.
    #[serde(default = "yes")]
    signed_in: bool,
}

fn yes() -> bool {
    true
}

async fn create_account(c: web::Data<MtprotoControl>, body: web::Json<NewAccount>) -> Answer {
    let body = body.into_inner();
    let fake = Arc::clone(&c.fake);
    // A 2FA password costs 100,000 PBKDF2 rounds: off the server's thread.
    let answer = web::block(move || -> Result<Value, ApiError> {
        let id = fake.try_create_account(AccountSpec {
            phone: body.phone,
            first_name: body.first_name,
            username: body.username,
            password: body.password,
        })?;
        let mut v = json!({ "user_id": id });
        if body.signed_in {
            let key = fake.issue_auth_key(Some(id));
            if let (Value::Object(v), Value::Object(k)) = (&mut v, key_json(&fake, key)) {
                v.extend(k);
            }
        }
        Ok(v)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// Signed in to this account; none: a key for a login.
    account: Option<i64>,
}

async fn issue_key(c: web::Data<MtprotoControl>, body: web::Json<NewKey>) -> Answer {
    if let Some(id) = body.account {
        account(&c, id)?;
    }
    let key = c.fake.issue_auth_key(body.account);
    Ok(HttpResponse::Ok().json(key_json(&c.fake, key)))
}

#[derive(Deserialize)]
struct PhoneQuery {
    phone: String,
}

async fn login_code(c: web::Data<MtprotoControl>, q: web::Query<PhoneQuery>) -> Answer {
    let code = c.fake.login_code(&q.phone).ok_or_else(|| {
        ApiError::not_found("no_code", format!("no login code was sent to {}", q.phone))
    })?;
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

async fn account_stats(c: web::Data<MtprotoControl>, id: web::Path<i64>) -> Answer {
    let id = account(&c, id.into_inner())?;
    let s = c.fake.stats(id);
    let methods: serde_json::Map<String, Value> = s
        .methods
        .iter()
        .map(|(name, m)| {
            (
                name.clone(),
                json!({
                    "calls": m.calls,
                    "errors": m.errors,
                    "calls_during_flood_wait": m.calls_during_flood_wait,
                }),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "methods": methods,
        "pushed": s.pushed,
        "dropped": s.dropped,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropPushes {
    /// The next `count` pushes; absent or null: all, until set to 0.
    count: Option<u32>,
}

async fn drop_pushes(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<DropPushes>,
) -> Answer {
    let id = account(&c, id.into_inner())?;
    c.fake.drop_pushes(id, body.count);
    Ok(HttpResponse::Ok().json(json!({ "account": id, "drop": body.count })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelayPushes {
    /// Every push waits this long; absent or null: no delay.
    ms: Option<u64>,
}

async fn delay_pushes(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<DelayPushes>,
) -> Answer {
    let id = account(&c, id.into_inner())?;
    if body.ms.is_some_and(|ms| ms > 600_000) {
        return Err(ApiError::bad("delay_too_long", "ms is at most 600000"));
    }
    c.fake.delay_pushes(id, body.ms.map(Duration::from_millis));
    Ok(HttpResponse::Ok().json(json!({ "account": id, "delay_ms": body.ms })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TooLong {
    /// `updateChannelTooLong` for this channel; absent: `updatesTooLong`.
    channel: Option<i64>,
}

async fn too_long(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<TooLong>,
) -> Answer {
    let id = account(&c, id.into_inner())?;
    match body.channel {
        Some(ch) => c.fake.push_channel_too_long(id, channel(&c, ch)?),
        None => c.fake.push_updates_too_long(id),
    }
    Ok(HttpResponse::Ok().json(json!({ "account": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewChannel {
    title: String,
    /// Public username; absent: a private channel.
    username: Option<String>,
    #[serde(default)]
    protected: bool,
    /// Bots `k` (`nth_bot_token(k)` for `k < --bots`, then the
    /// `--bot-token`s) made administrators on the Bot API face: they get its
    /// posts as `channel_post`.
    #[serde(default)]
    admin_bots: Vec<usize>,
    /// Accounts made members (the way into a private channel).
    #[serde(default)]
    members: Vec<i64>,
    /// Accounts made administrators (they may forward into it).
    #[serde(default)]
    admins: Vec<i64>,
}

async fn create_channel(c: web::Data<MtprotoControl>, body: web::Json<NewChannel>) -> Answer {
    let body = body.into_inner();
    if body.title.trim().is_empty() {
        return Err(ApiError::bad("title_empty", "a channel needs a title"));
    }
    if let Some(&k) = body.admin_bots.iter().find(|&&k| k >= c.bot_tokens.len()) {
        return Err(ApiError::not_found(
            "unknown_bot",
            format!("bot {k}: the process knows bots 0..{}", c.bot_tokens.len()),
        ));
    }
    for &a in body.members.iter().chain(&body.admins) {
        account(&c, a)?;
    }
    let r = c.fake.try_create_channel(ChannelSpec {
        title: body.title,
        username: body.username,
        protected: body.protected,
    })?;
    let chat = r.bot_api_chat_id();
    if body.protected {
        c.bot_api.set_channel_protected(chat, true);
    }
    for k in body.admin_bots {
        c.bot_api.set_admin(chat, &c.bot_tokens[k], true);
    }
    for a in body.members {
        c.fake.add_member(r, a);
    }
    for a in body.admins {
        c.fake.set_admin(r, a);
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": r.id,
        "access_hash": r.access_hash,
        "bot_api_chat_id": chat,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    account: i64,
    /// Also an administrator (may forward into the channel).
    #[serde(default)]
    admin: bool,
}

async fn add_member(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<Member>,
) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    let a = account(&c, body.account)?;
    c.fake.add_member(ch, a);
    if body.admin {
        c.fake.set_admin(ch, a);
    }
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "account": a, "admin": body.admin })))
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Media {
    Photo,
    Video,
    Document,
}

impl From<Media> for MediaKind {
    fn from(m: Media) -> Self {
        match m {
            Media::Photo => MediaKind::Photo,
            Media::Video => MediaKind::Video,
            Media::Document => MediaKind::Document,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    /// Text, or the caption of a media message.
    text: Option<String>,
    media: Option<Media>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPost {
    text: Option<String>,
    media: Option<Media>,
    /// An album (one post of several media messages sharing a `grouped_id`);
    /// instead of `text` / `media`.
    album: Option<Vec<Part>>,
    /// This post alone cannot be forwarded or copied.
    #[serde(default)]
    protected: bool,
}

async fn publish(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<NewPost>,
) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    let body = body.into_inner();
    let message = |p: Part, group: Option<&str>| {
        let mut m = NewChannelMessage {
            text: p.text,
            media: p.media.map(MediaKind::from),
            protected: body.protected,
            ..NewChannelMessage::default()
        };
        if let Some(g) = group {
            m = m.in_album(g);
        }
        m
    };
    let ids: Vec<i32> = match body.album {
        Some(parts) => {
            if body.text.is_some() || body.media.is_some() {
                return Err(ApiError::bad(
                    "post_invalid",
                    "a post is text / media or an album, not both",
                ));
            }
            if parts.len() < 2 || parts.len() > 10 || parts.iter().any(|p| p.media.is_none()) {
                return Err(ApiError::bad(
                    "album_invalid",
                    "an album is 2–10 parts, each with media",
                ));
            }
            let group = format!("album-{}-{:016x}", ch.id, rand::random::<u64>());
            parts
                .into_iter()
                .map(|p| c.fake.publish(ch, message(p, Some(&group))))
                .collect()
        }
        None => {
            if body.text.as_deref().is_none_or(str::is_empty) && body.media.is_none() {
                return Err(ApiError::bad("post_empty", "a post needs text or media"));
            }
            let part = Part {
                text: body.text.clone(),
                media: body.media,
            };
            vec![c.fake.publish(ch, message(part, None))]
        }
    };
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "ids": ids })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    message_id: i32,
    text: String,
}

async fn edit(c: web::Data<MtprotoControl>, id: web::Path<i64>, body: web::Json<Edit>) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    if !c.fake.edit(ch, body.message_id, &body.text) {
        return Err(ApiError::not_found(
            "unknown_message",
            format!("channel {} has no message {}", ch.id, body.message_id),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "message_id": body.message_id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    message_ids: Vec<i32>,
}

async fn delete(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<Delete>,
) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    if body.message_ids.is_empty() {
        return Err(ApiError::bad(
            "message_ids_empty",
            "name the messages to delete",
        ));
    }
    let deleted = c.fake.delete(ch, &body.message_ids);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "deleted": deleted })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    title: String,
}

async fn rename(
    c: web::Data<MtprotoControl>,
    id: web::Path<i64>,
    body: web::Json<Rename>,
) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    if body.title.trim().is_empty() {
        return Err(ApiError::bad("title_empty", "a channel needs a title"));
    }
    c.fake.rename(ch, &body.title);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "title": body.title })))
}

async fn make_private(c: web::Data<MtprotoControl>, id: web::Path<i64>) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    c.fake.make_private(ch);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "private": true })))
}

async fn delete_channel(c: web::Data<MtprotoControl>, id: web::Path<i64>) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    c.fake.delete_channel(ch);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "deleted": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    auth_key: String,
}

async fn revoke(c: web::Data<MtprotoControl>, body: web::Json<Revoke>) -> Answer {
    let key = auth_key_from_hex(&body.auth_key)?;
    if !c.fake.revoke_session(&key) {
        return Err(ApiError::not_found(
            "unknown_key",
            "the fake did not issue this key",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "revoked": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    max_calls: u32,
    per_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flood {
    /// A TL method name, `contacts.resolveUsername`.
    method: String,
    /// Absent or null removes the method's limit.
    limit: Option<Limit>,
}

async fn flood(c: web::Data<MtprotoControl>, body: web::Json<Flood>) -> Answer {
    let body = body.into_inner();
    // Method names are `namespace.method` in the TL schema the fake serves.
    if !body.method.contains('.') || body.method.starts_with('.') || body.method.ends_with('.') {
        return Err(ApiError::bad(
            "method_invalid",
            format!(
                "{:?} is not a TL method name like contacts.resolveUsername",
                body.method
            ),
        ));
    }
    let limit = match body.limit {
        Some(l) if l.max_calls == 0 || l.per_ms == 0 => {
            return Err(ApiError::bad(
                "limit_invalid",
                "max_calls and per_ms must be positive",
            ));
        }
        Some(l) => Some(FloodLimit {
            max_calls: l.max_calls,
            per: Duration::from_millis(l.per_ms),
        }),
        None => None,
    };
    c.fake.set_flood_limit(&body.method, limit);
    Ok(HttpResponse::Ok().json(json!({ "method": body.method, "limited": limit.is_some() })))
}
