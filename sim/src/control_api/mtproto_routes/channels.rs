//! The control routes of the MTProto face for channels: create one (on
//! both faces, with admin bots, members and admins), add a member, publish
//! a post or an album, edit, delete, rename, make private, delete the
//! channel, short history pages and silenced pushes. The routes and their refusals are listed in
//! `control_api/mtproto_routes.rs`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::super::ApiError;
use super::{Answer, MtprotoFace, account, channel};
use crate::fake_bot_api::{MediaKind, NewChannelMessage};
use crate::mtproto::ChannelSpec;

/// Registers the channel routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mtproto/channels", web::post().to(create_channel))
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
        .route(
            "/mtproto/channels/{id}/behaviour",
            web::post().to(behaviour),
        );
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

async fn create_channel(c: web::Data<MtprotoFace>, body: web::Json<NewChannel>) -> Answer {
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
    let mut hashes = serde_json::Map::new();
    for &a in body.members.iter().chain(&body.admins) {
        hashes.insert(a.to_string(), json!(c.fake.access_hash(r, a)));
    }
    for a in body.members {
        c.fake.add_member(r, a);
    }
    for a in body.admins {
        c.fake.set_admin(r, a);
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": r.id,
        "access_hashes": hashes,
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
    c: web::Data<MtprotoFace>,
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
    c: web::Data<MtprotoFace>,
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

async fn edit(c: web::Data<MtprotoFace>, id: web::Path<i64>, body: web::Json<Edit>) -> Answer {
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

async fn delete(c: web::Data<MtprotoFace>, id: web::Path<i64>, body: web::Json<Delete>) -> Answer {
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

async fn rename(c: web::Data<MtprotoFace>, id: web::Path<i64>, body: web::Json<Rename>) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    if body.title.trim().is_empty() {
        return Err(ApiError::bad("title_empty", "a channel needs a title"));
    }
    c.fake.rename(ch, &body.title);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "title": body.title })))
}

async fn make_private(c: web::Data<MtprotoFace>, id: web::Path<i64>) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    c.fake.make_private(ch);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "private": true })))
}

async fn delete_channel(c: web::Data<MtprotoFace>, id: web::Path<i64>) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    c.fake.delete_channel(ch);
    Ok(HttpResponse::Ok().json(json!({ "channel": ch.id, "deleted": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Behaviour {
    short_pages: Option<bool>,
    silent: Option<bool>,
}

/// Short history pages (deleted ids count against the limit) and silenced
/// pushes; the sources are cited where the fake models them
/// (`rpc/channels.rs`, `get_history`; `updates.rs`, `push_event`).
async fn behaviour(
    c: web::Data<MtprotoFace>,
    id: web::Path<i64>,
    body: web::Json<Behaviour>,
) -> Answer {
    let ch = channel(&c, id.into_inner())?;
    if let Some(on) = body.short_pages {
        c.fake.set_short_pages(ch, on);
    }
    if let Some(on) = body.silent {
        c.fake.silence_channel(ch, on);
    }
    Ok(HttpResponse::Ok().json(json!({
        "channel": ch.id,
        "short_pages": body.short_pages,
        "silent": body.silent,
    })))
}
