//! The Bot API on the wire: the methods the fake knows, the request path
//! and parameters in any of their encodings, and replies in the API's
//! envelope.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, web};
use serde_json::{Map, Value, json};

use super::Fault;

/// The Bot API methods the fake knows; the discriminant indexes counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    GetMe,
    GetUpdates,
    SendMessage,
    CopyMessage,
    CopyMessages,
    ForwardMessage,
    ForwardMessages,
    GetChat,
    GetChatMember,
    AnswerCallbackQuery,
    SetMyCommands,
    EditMessageText,
    EditMessageReplyMarkup,
    EditMessageCaption,
    EditMessageMedia,
    DeleteMessage,
    DeleteMessages,
    GetWebhookInfo,
    DeleteWebhook,
    Unknown,
}

pub(super) const METHOD_COUNT: usize = 20;

impl Method {
    /// A request that delivers a message to a chat.
    pub(super) fn is_send(self) -> bool {
        matches!(
            self,
            Method::SendMessage
                | Method::CopyMessage
                | Method::CopyMessages
                | Method::ForwardMessage
                | Method::ForwardMessages
        )
    }

    pub(super) const ALL: [Method; METHOD_COUNT] = [
        Method::GetMe,
        Method::GetUpdates,
        Method::SendMessage,
        Method::CopyMessage,
        Method::CopyMessages,
        Method::ForwardMessage,
        Method::ForwardMessages,
        Method::GetChat,
        Method::GetChatMember,
        Method::AnswerCallbackQuery,
        Method::SetMyCommands,
        Method::EditMessageText,
        Method::EditMessageReplyMarkup,
        Method::EditMessageCaption,
        Method::EditMessageMedia,
        Method::DeleteMessage,
        Method::DeleteMessages,
        Method::GetWebhookInfo,
        Method::DeleteWebhook,
        Method::Unknown,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Method::GetMe => "getMe",
            Method::GetUpdates => "getUpdates",
            Method::SendMessage => "sendMessage",
            Method::CopyMessage => "copyMessage",
            Method::CopyMessages => "copyMessages",
            Method::ForwardMessage => "forwardMessage",
            Method::ForwardMessages => "forwardMessages",
            Method::GetChat => "getChat",
            Method::GetChatMember => "getChatMember",
            Method::AnswerCallbackQuery => "answerCallbackQuery",
            Method::SetMyCommands => "setMyCommands",
            Method::EditMessageText => "editMessageText",
            Method::EditMessageReplyMarkup => "editMessageReplyMarkup",
            Method::EditMessageCaption => "editMessageCaption",
            Method::EditMessageMedia => "editMessageMedia",
            Method::DeleteMessage => "deleteMessage",
            Method::DeleteMessages => "deleteMessages",
            Method::GetWebhookInfo => "getWebhookInfo",
            Method::DeleteWebhook => "deleteWebhook",
            Method::Unknown => "unknown",
        }
    }

    /// Telegram matches method names case-insensitively.
    pub(super) fn parse(name: &str) -> Method {
        Method::ALL[..METHOD_COUNT - 1]
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(name))
            .unwrap_or(Method::Unknown)
    }

    pub(super) fn is_forward(self) -> bool {
        matches!(self, Method::ForwardMessage | Method::ForwardMessages)
    }

    /// The methods of the simulated people's side (`handler_methods.rs`): they
    /// neither deliver a post nor count against the sending limits.
    pub(super) fn is_people(self) -> bool {
        matches!(
            self,
            Method::GetChat
                | Method::GetChatMember
                | Method::AnswerCallbackQuery
                | Method::SetMyCommands
                | Method::EditMessageText
                | Method::EditMessageReplyMarkup
        )
    }

    pub(super) fn is_batch(self) -> bool {
        matches!(self, Method::CopyMessages | Method::ForwardMessages)
    }
}

/// An HTTP answer in the Bot API's envelope.
#[derive(Clone, Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    /// Answer only after this long ([`Fault::Slow`]).
    pub(super) delay: Option<Duration>,
}

impl Reply {
    pub(super) fn ok(result: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: json!({"ok": true, "result": result}),
            delay: None,
        }
    }

    pub(super) fn error(code: u16, description: &str, parameters: Option<Value>) -> Self {
        let mut body = json!({"ok": false, "error_code": code, "description": description});
        if let Some(p) = parameters {
            body["parameters"] = p;
        }
        Self {
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
            delay: None,
        }
    }

    pub(super) fn bad_request(description: &str) -> Self {
        Self::error(400, description, None)
    }

    pub(super) fn not_found() -> Self {
        Self::error(404, "Not Found", None)
    }

    pub(super) fn too_many(retry_after: u32) -> Self {
        Self::error(
            429,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        )
    }

    pub(super) fn fault(fault: &Fault) -> Self {
        match fault {
            Fault::Forbidden => Self::error(403, super::access::BLOCKED, None),
            Fault::BadRequest(description) => Self::bad_request(description),
            Fault::MigrateTo(to) => Self::error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                Some(json!({"migrate_to_chat_id": to})),
            ),
            Fault::ServerError => Self::error(500, "Internal Server Error", None),
            Fault::TooManyRequests { retry_after } => Self::too_many(*retry_after),
            // Handled by the caller: it is not an error.
            Fault::Slow(_) => Self::error(500, "Internal Server Error", None),
        }
    }
}

/// The text fields of a `multipart/form-data` body (teloxide sends
/// `editMessageMedia` that way); an uploaded file is refused, the fake
/// keeps no files.
fn parse_multipart(header: &str, body: &[u8], map: &mut Map<String, Value>) -> Result<(), Reply> {
    let bad = || Reply::bad_request("Bad Request: can't parse multipart/form-data body");
    let boundary = header
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(bad)?;
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    let delimiter = format!("--{boundary}");
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, value) = part.split_once("\r\n\r\n").ok_or_else(bad)?;
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .ok_or_else(bad)?;
        if disposition.contains("filename=") {
            return Err(Reply::bad_request(
                "Bad Request: file uploads are not supported by the fake",
            ));
        }
        let name = disposition
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("name="))
            .next()
            .map(|n| n.trim_matches('"'))
            .ok_or_else(bad)?;
        map.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    Ok(())
}

/// `/bot<token>/<method>` → (token, method).
/// A path may start with `/c/<client>` (a base URL that names the client,
/// so a test tells several processes apart): the client and the rest.
pub(super) fn split_client(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/c/")
        && let Some(slash) = rest.find('/')
    {
        return (Some(&rest[..slash]), &rest[slash..]);
    }
    (None, path)
}

pub(super) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (token, method) = path.strip_prefix("/bot")?.split_once('/')?;
    (!token.is_empty() && !method.is_empty() && !method.contains('/')).then_some((token, method))
}

/// A `chat_id`/`from_chat_id` value: an id or `@username`.
pub(super) enum Target {
    Id(i64),
    Username(String),
}

/// Request parameters from the query string and the body, whatever its
/// encoding. Form and query values are strings (arrays JSON-encoded inside),
/// so the accessors accept both shapes.
pub(super) struct Params(Map<String, Value>);

impl Params {
    pub(super) fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, Reply> {
        let mut map = Map::new();
        if !req.query_string().is_empty() {
            parse_form(req.query_string(), &mut map)?;
        }
        if !body.is_empty() {
            let content_type = req.content_type();
            if content_type.starts_with("multipart/") {
                let header = req
                    .headers()
                    .get("content-type")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default();
                parse_multipart(header, body, &mut map)?;
            } else if content_type == "application/x-www-form-urlencoded" {
                let text = std::str::from_utf8(body)
                    .map_err(|_| Reply::bad_request("Bad Request: body is not UTF-8"))?;
                parse_form(text, &mut map)?;
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(object)) => map.extend(object),
                    _ => {
                        return Err(Reply::bad_request(
                            "Bad Request: can't parse request body as a JSON object",
                        ));
                    }
                }
            }
        }
        Ok(Params(map))
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid(key)),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid(key)),
            Some(_) => Err(invalid(key)),
        }
    }

    pub(super) fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub(super) fn target(&self, key: &str) -> Result<Option<Target>, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(|id| Some(Target::Id(id)))
                .ok_or_else(|| invalid(key)),
            Some(Value::String(s)) => match s.strip_prefix('@') {
                Some(name) => Ok(Some(Target::Username(name.to_ascii_lowercase()))),
                None => s
                    .trim()
                    .parse()
                    .map(|id| Some(Target::Id(id)))
                    .map_err(|_| Reply::bad_request("Bad Request: chat not found")),
            },
            Some(_) => Err(invalid(key)),
        }
    }

    /// A JSON value, or a string holding one (form encoding); a string that
    /// is not JSON is itself.
    pub(super) fn json(&self, key: &str) -> Option<Value> {
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => {
                Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())))
            }
            v => Some(v.clone()),
        }
    }

    /// A boolean, JSON or `"true"`/`"false"`; absent is false.
    pub(super) fn flag(&self, key: &str) -> bool {
        match self.0.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }

    /// A JSON array, or a string holding one (form encoding).
    pub(super) fn array(&self, key: &str) -> Result<Option<Vec<Value>>, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| invalid(key)),
            Some(_) => Err(invalid(key)),
        }
    }
}

pub(super) fn invalid(key: &str) -> Reply {
    Reply::bad_request(&format!("Bad Request: invalid parameter {key}"))
}

fn parse_form(text: &str, map: &mut Map<String, Value>) -> Result<(), Reply> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(text)
        .map_err(|_| Reply::bad_request("Bad Request: can't parse parameters"))?;
    for (key, value) in pairs.into_inner() {
        map.insert(key, Value::String(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_split() {
        assert_eq!(split_path("/bot1:a/getMe"), Some(("1:a", "getMe")));
        assert_eq!(
            split_client("/c/a/bot1:a/getMe"),
            (Some("a"), "/bot1:a/getMe")
        );
        assert_eq!(split_client("/bot1:a/getMe"), (None, "/bot1:a/getMe"));
        assert_eq!(split_path("/bot/getMe"), None);
        assert_eq!(split_path("/x1:a/getMe"), None);
        assert_eq!(split_path("/bot1:a/getMe/x"), None);
        assert_eq!(Method::parse("COPYMESSAGES"), Method::CopyMessages);
        assert_eq!(Method::parse("sendPhoto"), Method::Unknown);
    }
}
