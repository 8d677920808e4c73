//! The control routes of the MTProto face (`/mtproto/…`), so a test or an
//! operator outside the process can do what [`MtprotoFake`]'s methods do:
//! this file is what they act on, their table and the lookups they share;
//! the handlers are in `mtproto_routes/accounts.rs` (accounts, keys,
//! pushes, sessions, flood limits) and `mtproto_routes/channels.rs`
//! (channels and their posts).
//!
//! `{a}` is an account's user id, `{c}` a channel's bare id; a refusal is
//! `{"error": code, "message": text}` with the status below.
//!
//! | route | what it does | refusals |
//! |---|---|---|
//! | `POST /mtproto/accounts {"phone", "first_name"?, "username"?, "password"?, "signed_in"?: true}` | creates an account (`password`: its 2FA password, checked by SRP) and, unless `signed_in` is false, an auth key signed in to it: `{"user_id", "auth_key": 512 hex digits, "dc_id", "dc_addr": "127.0.0.1:PORT"}`, what a grammers session needs (home DC `dc_id` at `dc_addr` holding the key) | 400 `phone_invalid`, 409 `phone_taken` |
//! | `POST /mtproto/keys {"account": a \| null}` | another key, signed in to `a` or to nobody (for a login): `{"auth_key", "dc_id", "dc_addr"}` | 404 `unknown_account` |
//! | `GET /mtproto/login_code?phone=P` | the login code last sent to `P`: `{"code"}` | 404 `no_code` |
//! | `GET /mtproto/public_key` | the fake's RSA public key and data centres, for a client that makes its own auth key by the key exchange: `{"pem", "dcs": {"2": "127.0.0.1:PORT", "1": …}}` | |
//! | `POST /mtproto/accounts/{a}/home_dc {"dc"}` | moves `a` to data centre `dc` (2, the main one, or 1): `auth.sendCode` on the other answers `PHONE_MIGRATE_{dc}` | 400 `dc_invalid`, 404 `unknown_account` |
//! | `GET /mtproto/accounts/{a}/stats` | `{"methods": {name: {"calls", "errors": {error: n}, "calls_during_flood_wait"}}, "pushed", "dropped"}` | 404 `unknown_account` |
//! | `POST /mtproto/accounts/{a}/drop_pushes {"count": n \| null}` | drops the next `n` pushes (null: all, until `0`) | 404 `unknown_account` |
//! | `POST /mtproto/accounts/{a}/delay_pushes {"ms": n \| null}` | delays every push by `n` ms (null: none) | 400 `delay_too_long` (over 600000), 404 `unknown_account` |
//! | `POST /mtproto/accounts/{a}/too_long {"channel": c?}` | pushes `updateChannelTooLong` for `c`, or `updatesTooLong` | 404 `unknown_account`, `unknown_channel` |
//! | `POST /mtproto/channels {"title", "username"?, "protected"?, "admin_bots"?: [k], "members"?: [a], "admins"?: [a]}` | creates a broadcast channel (no username: private) on both faces; bot `k` (`nth_bot_token(k)` below `--bots`, then the `--bot-token`s) becomes its admin on the Bot API face: `{"id", "access_hashes": {account: hash}, "bot_api_chat_id"}` (each member's and admin's own hash: Telegram gives every account its own) | 400 `title_empty`, `username_invalid`; 409 `username_taken`; 404 `unknown_bot`, `unknown_account` |
//! | `POST /mtproto/channels/{c}/members {"account": a, "admin"?}` | makes `a` a member (the way into a private channel), and an admin | 404 `unknown_channel`, `unknown_account` |
//! | `POST /mtproto/channels/{c}/posts {"text"?, "media"?: "photo" \| "video" \| "document", "protected"?}` or `{"album": [{"text"?, "media"}, …]}` | publishes a post, or an album (2–10 parts, one `grouped_id`): pushed to members, a `channel_post` to admin bots; `{"ids": [message id, …]}` | 400 `post_empty`, `album_invalid`, `post_invalid`; 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/edit {"message_id", "text"}` | edits a post (pushed; not mirrored to the Bot API face) | 404 `unknown_channel`, `unknown_message` |
//! | `POST /mtproto/channels/{c}/delete {"message_ids": […]}` | deletes posts (pushed): `{"deleted": n}` | 400 `message_ids_empty`, 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/rename {"title"}` | renames the channel (MTProto face) | 400 `title_empty`, 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/private` | frees its username: non-members get `CHANNEL_PRIVATE` | 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/delete_channel` | deletes the channel: its username is freed, everyone (members too) gets `CHANNEL_PRIVATE` | 404 `unknown_channel` |
//! | `POST /mtproto/channels/{c}/behaviour {"short_pages"?, "silent"?}` | `short_pages`: getHistory counts deleted ids against the limit (a page may be short while more exist); `silent`: its events are no longer pushed (still in getChannelDifference and the history); absent: unchanged | 404 `unknown_channel` |
//! | `POST /mtproto/sessions/revoke {"auth_key": hex}` | every later call on the key gets `SESSION_REVOKED` | 400 `auth_key_invalid`, 404 `unknown_key` |
//! | `POST /mtproto/flood {"method", "limit": {"max_calls", "per_ms"} \| null, "escalating"?: {"free", "per_ms", "waits_s": [s, …]} \| null}` | sets (null: removes) the per-account flood limit of a TL method (`contacts.resolveUsername`), and its escalating limit (`free` calls a window, then each call earns the next wait; absent: unchanged) | 400 `method_invalid`, `limit_invalid` |
//! | `POST /mtproto/accounts/{a}/restrict {"frozen"?, "peer_flood"?}` | freezes (`FROZEN_METHOD_INVALID` on all but reading) or spam-limits (`PEER_FLOOD` on joins) an account, or lifts it | 404 `unknown_account` |

mod accounts;
mod channels;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::ApiError;
use crate::fake_bot_api::FakeTelegram;
use crate::mtproto::{ChannelRef, ControlError, MtprotoFake};

/// What the MTProto routes act on.
pub(super) struct MtprotoFace {
    pub(super) fake: Arc<MtprotoFake>,
    pub(super) bot_api: FakeTelegram,
    /// The bots the Bot API face knows: `nth_bot_token(0..--bots)`, then
    /// the `--bot-token`s. `admin_bots` names them by index.
    pub(super) bot_tokens: Vec<String>,
}

/// A refusal of the MTProto face, in the control API's error shape.
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
    accounts::routes(cfg);
    channels::routes(cfg);
}

fn account(c: &MtprotoFace, id: i64) -> Result<i64, ApiError> {
    if c.fake.has_account(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found(
            "unknown_account",
            format!("no account {id}"),
        ))
    }
}

fn channel(c: &MtprotoFace, id: i64) -> Result<ChannelRef, ApiError> {
    c.fake
        .channel(id)
        .ok_or_else(|| ApiError::not_found("unknown_channel", format!("no channel {id}")))
}
