//! The control routes of the MTProto face for accounts and what they do
//! on the wire: create an account (with an auth key a client can use at
//! once), issue a key, read a login code or an account's call counts, drop,
//! delay or force too-long pushes, freeze or spam-limit an account, revoke
//! a session, set a method's flood limits. The routes and their refusals are listed in
//! `control_api/mtproto_routes.rs`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::ApiError;
use super::{Answer, MtprotoFace, account, channel};
use crate::mtproto::{AccountSpec, EscalatingLimit, FloodLimit, MtprotoFake};

/// Registers the account routes.
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
        .route("/mtproto/accounts/{id}/home_dc", web::post().to(home_dc))
        .route("/mtproto/public_key", web::get().to(public_key))
        .route("/mtproto/accounts/{id}/restrict", web::post().to(restrict))
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

async fn create_account(c: web::Data<MtprotoFace>, body: web::Json<NewAccount>) -> Answer {
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

async fn issue_key(c: web::Data<MtprotoFace>, body: web::Json<NewKey>) -> Answer {
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

async fn login_code(c: web::Data<MtprotoFace>, q: web::Query<PhoneQuery>) -> Answer {
    let code = c.fake.login_code(&q.phone).ok_or_else(|| {
        ApiError::not_found("no_code", format!("no login code was sent to {}", q.phone))
    })?;
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

async fn account_stats(c: web::Data<MtprotoFace>, id: web::Path<i64>) -> Answer {
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
struct HomeDc {
    dc: i32,
}

async fn home_dc(c: web::Data<MtprotoFace>, id: web::Path<i64>, body: web::Json<HomeDc>) -> Answer {
    let id = account(&c, id.into_inner())?;
    if !c.fake.set_home_dc(id, body.dc) {
        return Err(ApiError::bad(
            "dc_invalid",
            format!("the fake has no data centre {}", body.dc),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "account": id, "dc": body.dc })))
}

/// What a client needs to make its own auth key with the fake: its RSA
/// public key and its data centres.
async fn public_key(c: web::Data<MtprotoFace>) -> Answer {
    let dcs: serde_json::Map<String, Value> = c
        .fake
        .dcs()
        .into_iter()
        .map(|(id, addr)| (id.to_string(), json!(addr.to_string())))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "pem": c.fake.public_key_pem(), "dcs": dcs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropPushes {
    /// The next `count` pushes; absent or null: all, until set to 0.
    count: Option<u32>,
}

async fn drop_pushes(
    c: web::Data<MtprotoFace>,
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
    c: web::Data<MtprotoFace>,
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
    c: web::Data<MtprotoFace>,
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
struct Revoke {
    auth_key: String,
}

async fn revoke(c: web::Data<MtprotoFace>, body: web::Json<Revoke>) -> Answer {
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
struct Escalating {
    free: u32,
    per_ms: u64,
    waits_s: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flood {
    /// A TL method name, `contacts.resolveUsername`.
    method: String,
    /// Absent or null removes the method's limit.
    limit: Option<Limit>,
    /// Absent leaves the escalating limit alone; null removes it.
    #[serde(default, with = "serde_with_null")]
    escalating: Option<Option<Escalating>>,
}

/// `escalating`: absent (`None`), null (`Some(None)`) or a value.
mod serde_with_null {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restrict {
    /// Frozen: read-only, other methods answer `FROZEN_METHOD_INVALID`.
    frozen: Option<bool>,
    /// Spam-limited: joins answer `PEER_FLOOD`.
    peer_flood: Option<bool>,
}

async fn restrict(
    c: web::Data<MtprotoFace>,
    id: web::Path<i64>,
    body: web::Json<Restrict>,
) -> Answer {
    let id = account(&c, id.into_inner())?;
    if let Some(f) = body.frozen {
        c.fake.set_frozen(id, f);
    }
    if let Some(p) = body.peer_flood {
        c.fake.set_peer_flood(id, p);
    }
    Ok(HttpResponse::Ok()
        .json(json!({ "account": id, "frozen": body.frozen, "peer_flood": body.peer_flood })))
}

async fn flood(c: web::Data<MtprotoFace>, body: web::Json<Flood>) -> Answer {
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
    if let Some(e) = body.escalating {
        let e = match e {
            Some(e) if e.free == 0 || e.per_ms == 0 || e.waits_s.is_empty() => {
                return Err(ApiError::bad(
                    "limit_invalid",
                    "escalating: free, per_ms and waits_s must be positive and not empty",
                ));
            }
            Some(e) => Some(EscalatingLimit {
                free: e.free,
                per: Duration::from_millis(e.per_ms),
                waits: e.waits_s.into_iter().map(Duration::from_secs).collect(),
            }),
            None => None,
        };
        c.fake.set_escalating_limit(&body.method, e);
    }
    c.fake.set_flood_limit(&body.method, limit);
    Ok(HttpResponse::Ok().json(json!({ "method": body.method, "limited": limit.is_some() })))
}
