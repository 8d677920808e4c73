//! The control routes of the simulated people: what a person does in a
//! Telegram app, from outside the process (so `kuryer-sim chat`, or a
//! script, can talk to a bot that a real `kuryer run` serves), and what
//! that person's chat shows.
//!
//! `{user}` is a person's user id (their private chat with the bot has the
//! same id, as on Telegram: core.telegram.org/bots/api#chat, "for private
//! chats, the id is the user's id"). `"bot": k` picks the bot talked to
//! (`nth_bot_token(k)` below `--bots`, then the `--bot-token`s); absent, the
//! first `--bot-token` (the one a `kuryer run` pointed at the process is
//! configured with), or bot 0 when there is none.
//!
//! | route | what it does | refusals |
//! |---|---|---|
//! | `POST /people/{user}/says {"text", "lang"?, "bot"?}` | the person sends `text` to the bot (a `message` update; `/commands` carry their `bot_command` entity), their app in language `lang` (`language_code`; absent: not shared): `{"message_id"}` | 400 `text_invalid`, `lang_invalid`, `user_invalid`; 404 `unknown_bot` |
//! | `POST /people/{user}/forwards {"channel", "message_id", "bot"?}` | the person forwards post `message_id` of channel `channel` (its `-100…` id) to the bot: `{"message_id"}` | 400 `user_invalid`; 404 `unknown_message`, `unknown_bot` |
//! | `POST /people/{user}/presses {"message_id", "data", "bot"?}` | the person presses the inline button carrying `data` under message `message_id` the bot sent them (a `callback_query`): `{"callback_query_id"}` | 400 `user_invalid`; 404 `unknown_message`, `no_such_button`, `unknown_bot` |
//! | `GET /chats/{chat}/messages?after=N&limit=L` | what the bots sent to `chat`, in arrival order, from position `N + 1` (default 0; at most `L`, default and maximum 100): `{"messages": [{"seq", "message_id", "text", "entities", "reply_markup", "source", "method", "edits"}], "next"}` — `next` is the `after` of the following call, so a client follows new messages; `source` is `[channel, post id]` for a delivered post; `edits` counts edits of that message (an edit does not move it) | |

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::fake_bot_api::FakeTelegram;

/// What the people's routes act on: the fake and the bots it knows, in the
/// control API's order.
pub(super) struct PeopleFace {
    pub(super) fake: FakeTelegram,
    pub(super) bot_tokens: Vec<String>,
    /// The bot talked to when a body names none.
    pub(super) default_bot: usize,
}

type Answer = Result<HttpResponse, ApiError>;

/// Registers the routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/people/{user}/says", web::post().to(says))
        .route("/people/{user}/forwards", web::post().to(forwards))
        .route("/people/{user}/presses", web::post().to(presses))
        .route("/chats/{chat}/messages", web::get().to(messages));
}

/// A message's text is 1–4096 characters (core.telegram.org/bots/api#sendmessage,
/// "1-4096 characters"; the apps hold people to the same
/// `message_length_max`, core.telegram.org/api/config). Counted in UTF-16
/// code units, a safe upper bound of characters.
const TEXT_MAX: usize = 4096;

impl PeopleFace {
    fn token(&self, bot: Option<usize>) -> Result<&str, ApiError> {
        let k = bot.unwrap_or(self.default_bot);
        self.bot_tokens.get(k).map(String::as_str).ok_or_else(|| {
            ApiError::not_found(
                "unknown_bot",
                format!(
                    "bot {k}: the process knows bots 0..{}",
                    self.bot_tokens.len()
                ),
            )
        })
    }
}

/// A user id is positive (core.telegram.org/bots/api#user: "id: Unique
/// identifier for this user or bot"; users' ids are positive, groups' and
/// channels' negative, core.telegram.org/api/bots/ids).
fn user(user: i64) -> Result<i64, ApiError> {
    if user > 0 {
        Ok(user)
    } else {
        Err(ApiError::bad(
            "user_invalid",
            format!("{user}: a user id is a positive number"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Says {
    text: String,
    lang: Option<String>,
    bot: Option<usize>,
}

async fn says(face: web::Data<PeopleFace>, path: web::Path<i64>, body: web::Json<Says>) -> Answer {
    let user = user(path.into_inner())?;
    let token = face.token(body.bot)?;
    let len = body.text.encode_utf16().count();
    if body.text.trim().is_empty() || len > TEXT_MAX {
        return Err(ApiError::bad(
            "text_invalid",
            format!("a message is 1-{TEXT_MAX} characters, not blank; this one has {len}"),
        ));
    }
    if let Some(l) = &body.lang {
        // An IETF language tag (core.telegram.org/bots/api#user,
        // `language_code`); its length is not documented: up to 35
        // characters, the longest tag RFC 5646 section 4.4.1 asks to accept.
        let ok =
            (2..=35).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(ApiError::bad(
                "lang_invalid",
                format!("{l:?}: a language code is an IETF tag such as \"uz\" or \"pt-BR\""),
            ));
        }
    }
    let id = face
        .fake
        .user_says(token, user, &body.text, body.lang.as_deref());
    Ok(HttpResponse::Ok().json(json!({ "message_id": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Forward {
    channel: i64,
    message_id: i32,
    bot: Option<usize>,
}

async fn forwards(
    face: web::Data<PeopleFace>,
    path: web::Path<i64>,
    body: web::Json<Forward>,
) -> Answer {
    let user = user(path.into_inner())?;
    let token = face.token(body.bot)?;
    // `user_forwards` needs the post: a person can only forward what is there.
    let exists = body.message_id > 0
        && face
            .fake
            .channel_messages_after(body.channel, body.message_id - 1, 1)
            .first()
            .is_some_and(|m| m.id == body.message_id);
    if !exists {
        return Err(ApiError::not_found(
            "unknown_message",
            format!("channel {} has no post {}", body.channel, body.message_id),
        ));
    }
    let id = face
        .fake
        .user_forwards(token, user, body.channel, body.message_id);
    Ok(HttpResponse::Ok().json(json!({ "message_id": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Press {
    message_id: i32,
    data: String,
    bot: Option<usize>,
}

/// Whether an inline keyboard (`reply_markup` JSON) has a button carrying
/// `data` as its `callback_data`.
fn has_button(markup: &Value, data: &str) -> bool {
    markup["inline_keyboard"].as_array().is_some_and(|rows| {
        rows.iter()
            .filter_map(Value::as_array)
            .flatten()
            .any(|b| b["callback_data"].as_str() == Some(data))
    })
}

async fn presses(
    face: web::Data<PeopleFace>,
    path: web::Path<i64>,
    body: web::Json<Press>,
) -> Answer {
    let user = user(path.into_inner())?;
    let token = face.token(body.bot)?;
    let received = face.fake.received(user);
    let Some(message) = received.iter().find(|m| m.message_id == body.message_id) else {
        return Err(ApiError::not_found(
            "unknown_message",
            format!("the bot sent no message {} to {user}", body.message_id),
        ));
    };
    // A press carries the `callback_data` of a button shown under the
    // message (core.telegram.org/bots/api#inlinekeyboardbutton,
    // "callback_data: Data to be sent in a callback query to the bot when
    // the button is pressed"); an app cannot press a button that is not there.
    if !message
        .reply_markup
        .as_ref()
        .is_some_and(|k| has_button(k, &body.data))
    {
        return Err(ApiError::not_found(
            "no_such_button",
            format!(
                "message {} has no button with data {:?}",
                body.message_id, body.data
            ),
        ));
    }
    let id = face
        .fake
        .press(token, user, user, body.message_id, &body.data);
    Ok(HttpResponse::Ok().json(json!({ "callback_query_id": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    after: Option<usize>,
    limit: Option<usize>,
}

async fn messages(
    face: web::Data<PeopleFace>,
    path: web::Path<i64>,
    q: web::Query<Cursor>,
) -> HttpResponse {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 100);
    let received = face.fake.received(path.into_inner());
    let page: Vec<Value> = received
        .iter()
        .enumerate()
        .skip(after)
        .take(limit)
        .map(|(i, m)| {
            json!({
                "seq": i + 1,
                "message_id": m.message_id,
                "text": m.text,
                "entities": m.entities,
                "reply_markup": m.reply_markup,
                "source": m.source,
                "method": m.method,
                "edits": m.edits,
            })
        })
        .collect();
    let next = after.saturating_add(page.len());
    HttpResponse::Ok().json(json!({ "messages": page, "next": next }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::has_button;

    #[test]
    fn a_button_is_found_by_its_data_only() {
        let k = json!({"inline_keyboard": [[{"text": "a", "callback_data": "x:1"}],
                                           [{"text": "b", "url": "https://t.me/x"}]]});
        assert!(has_button(&k, "x:1"));
        assert!(!has_button(&k, "x:2"));
        assert!(!has_button(&json!({}), "x:1"));
    }
}
