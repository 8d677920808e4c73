//! Updates built from the published Bot API specification rather than from
//! our idea of it: every content and service field of a `Message`, each
//! with its optional fields absent (`min`) and present (`full`), as a
//! channel post, an edited channel post and a private message; and the
//! other kinds kuryer reads (`my_chat_member`, `callback_query`) with every
//! variant of their abstract fields.
//!
//! The specification is `sim/spec/bot_api_types.json`: Bot API 10.1 from
//! PaulSonOfLars/telegram-bot-api-spec (`api.json`, commit 160fd995…),
//! trimmed; `sim/spec/README.md` records its origin and how to renew it.
//! Values are the simplest the field's type allows (the constant its
//! description names, the first of the values it lists); where that would
//! not be a value Telegram sends (an entity past the end of its text, a
//! dice emoji), [`named_value`] gives a plausible one.

/// What each `Message` field is.
pub mod classes;

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use classes::FieldClass;

/// The vendored, trimmed specification.
const SPEC: &str = include_str!("../../spec/bot_api_types.json");

/// Below this depth optional fields are left out of `full` shapes (a reply
/// in a reply in a reply is all required fields).
const FULL_DEPTH: usize = 3;
/// Deeper than this nothing is built (no type of the specification needs
/// it: required fields do not nest that far).
const MAX_DEPTH: usize = 8;

fn spec() -> &'static Value {
    static SPEC_JSON: OnceLock<Value> = OnceLock::new();
    SPEC_JSON
        .get_or_init(|| serde_json::from_str(SPEC).expect("the vendored specification is JSON"))
}

/// The specification's version, e.g. "Bot API 10.1".
pub fn spec_version() -> &'static str {
    spec()["version"].as_str().unwrap_or("unknown")
}

/// The `Message` fields whose description says "Service message".
pub(crate) fn spec_service_fields() -> &'static HashSet<String> {
    static SERVICE: OnceLock<HashSet<String>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        message_fields()
            .iter()
            .filter(|f| f["service"] == true)
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect()
    })
}

fn message_fields() -> &'static [Value] {
    spec()["types"]["Message"]["fields"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// Every `Message` field and its class; `None` for one the class lists do
/// not know.
pub fn message_field_classes() -> Vec<(String, Option<FieldClass>)> {
    let service = spec_service_fields();
    message_fields()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .map(|n| (n.to_owned(), classes::message_field(n, service.contains(n))))
        .collect()
}

/// The content of one message shape: the fields beside `message_id`,
/// `date` and `chat`, which whoever sends it fills in.
#[derive(Clone, Debug)]
pub struct MessageShape {
    /// The content or service field it is built around.
    pub field: String,
    /// What that field is.
    pub class: FieldClass,
    /// Optional fields present (true) or absent.
    pub full: bool,
    /// The fields.
    pub content: Map<String, Value>,
}

impl MessageShape {
    /// "video/full", "pinned_message/min".
    pub fn name(&self) -> String {
        format!("{}/{}", self.field, if self.full { "full" } else { "min" })
    }
}

/// Fields the sender of a message fills in itself.
const FILLED_BY_SENDER: &[&str] = &["message_id", "date", "chat", "sender_chat", "from"];
/// Fields left out of every shape: protected content cannot be copied or
/// forwarded at all (a different test's matter), and an automatic forward
/// is a discussion group's copy of a post, never a channel's own.
const NEVER: &[&str] = &["has_protected_content", "is_automatic_forward"];
/// Fields only a text message has.
const TEXT_ONLY: &[&str] = &["entities", "link_preview_options"];
/// Fields only a media message has.
const MEDIA_ONLY: &[&str] = &[
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
];

/// One shape per content and service field of `Message`, min and full.
/// `tag` makes texts unique (the fake attributes a `sendMessage` to the
/// post whose text it repeats).
pub fn message_shapes(tag: &str) -> Vec<MessageShape> {
    let generator = Generator;
    let service = spec_service_fields();
    let mut out = Vec::new();
    for f in message_fields() {
        let Some(name) = f["name"].as_str() else {
            continue;
        };
        let class = match classes::message_field(name, service.contains(name)) {
            Some(FieldClass::About) => continue,
            Some(c) => c,
            // Unknown to the lists: generated as content, so a test sees it.
            None => FieldClass::Copyable,
        };
        for full in [false, true] {
            let mut content = Map::new();
            let value = if name == "text" {
                Value::String(format!(
                    "{tag} {name}/{}",
                    if full { "full" } else { "min" }
                ))
            } else {
                generator.field_value(name, &f["types"], 1, full)
            };
            content.insert(name.to_owned(), value);
            if full && class != FieldClass::Service {
                for g in message_fields() {
                    let Some(other) = g["name"].as_str() else {
                        continue;
                    };
                    let about = classes::ABOUT.contains(&other);
                    let wrong_kind = if name == "text" {
                        MEDIA_ONLY.contains(&other)
                    } else {
                        TEXT_ONLY.contains(&other)
                    };
                    if !about
                        || FILLED_BY_SENDER.contains(&other)
                        || NEVER.contains(&other)
                        || wrong_kind
                    {
                        continue;
                    }
                    let v = match other {
                        // One album per post: its own group.
                        "media_group_id" => Value::String(format!("{tag}-{name}")),
                        "caption" => Value::String(format!("{tag} caption of {name}")),
                        _ => generator.field_value(other, &g["types"], 1, true),
                    };
                    content.insert(other.to_owned(), v);
                }
            }
            out.push(MessageShape {
                field: name.to_owned(),
                class,
                full,
                content,
            });
        }
    }
    out
}

/// `my_chat_member` payloads about `chat` (a supergroup's JSON): every
/// pair of the first member status with each status, by `owner_user`,
/// about `bot_user`; min and full.
pub fn my_chat_member_shapes(chat: &Value, owner_user: &Value, bot_user: &Value) -> Vec<Value> {
    let generator = Generator;
    let statuses: Vec<String> = subtypes("ChatMember");
    let mut out = Vec::new();
    for status in &statuses {
        for full in [false, true] {
            let mut v = generator.object("ChatMemberUpdated", 0, full);
            let old = generator.object(&statuses[0], 1, full);
            let new = generator.object(status, 1, full);
            let with_bot = |mut m: Value| {
                m["user"] = bot_user.clone();
                m
            };
            v["chat"] = chat.clone();
            v["from"] = owner_user.clone();
            v["old_chat_member"] = with_bot(old);
            v["new_chat_member"] = with_bot(new);
            out.push(v);
        }
    }
    out
}

/// `callback_query` payloads from `user`: the message as each variant of
/// `MaybeInaccessibleMessage`, min and full, in `chat` (a private chat's
/// JSON).
pub fn callback_query_shapes(user: &Value, chat: &Value) -> Vec<Value> {
    let generator = Generator;
    let mut out = Vec::new();
    for variant in subtypes("MaybeInaccessibleMessage") {
        for full in [false, true] {
            let mut v = generator.object("CallbackQuery", 0, full);
            v["from"] = user.clone();
            let mut message = generator.object(&variant, 1, false);
            message["chat"] = chat.clone();
            if variant == "InaccessibleMessage" {
                // Its `date` is always 0 (Bot API, InaccessibleMessage).
                message["date"] = json!(0);
            }
            v["message"] = message;
            if !full {
                // A button's press carries its data or a game's name.
                v["data"] = json!("x");
            }
            out.push(v);
        }
    }
    out
}

fn subtypes(name: &str) -> Vec<String> {
    spec()["types"][name]["subtypes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds values from the specification's types.
#[derive(Default)]
struct Generator;

impl Generator {
    /// A value for field `name` of the types `types` (the first is used).
    fn field_value(&self, name: &str, types: &Value, depth: usize, full: bool) -> Value {
        if let Some(v) = named_value(name) {
            return v;
        }
        let ty = types
            .as_array()
            .and_then(|t| t.first())
            .and_then(Value::as_str)
            .unwrap_or("String");
        self.value(ty, depth, full)
    }

    fn value(&self, ty: &str, depth: usize, full: bool) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(inner) = ty.strip_prefix("Array of ") {
            return Value::Array(vec![self.value(inner, depth + 1, full)]);
        }
        match ty {
            "Integer" => json!(1),
            "Float" => json!(1.5),
            "Boolean" | "True" => json!(true),
            "String" => json!("x"),
            _ => {
                let subs = subtypes(ty);
                match (subs.first(), subs.last()) {
                    // An abstract type: its first variant, or its last in
                    // full shapes, so both ends are seen.
                    (Some(first), Some(last)) => {
                        self.object(if full { last } else { first }, depth, full)
                    }
                    _ => self.object(ty, depth, full),
                }
            }
        }
    }

    /// An object of type `ty`: its required fields, and in full shapes
    /// (above [`FULL_DEPTH`]) its optional ones.
    fn object(&self, ty: &str, depth: usize, full: bool) -> Value {
        let mut m = Map::new();
        let fields = spec()["types"][ty]["fields"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for f in fields {
            let Some(name) = f["name"].as_str() else {
                continue;
            };
            let required = f["required"] == true;
            let optional_wanted = full && depth < FULL_DEPTH;
            if !(required || optional_wanted) {
                continue;
            }
            let v = if let Some(c) = f["const"].as_str() {
                json!(c)
            } else if let Some(c) = f["one_of"].as_str() {
                json!(c)
            } else {
                self.field_value(name, &f["types"], depth + 1, full)
            };
            if !v.is_null() {
                m.insert(name.to_owned(), v);
            }
        }
        Value::Object(m)
    }
}

/// Values where the type's simplest one is not one Telegram sends.
fn named_value(name: &str) -> Option<Value> {
    Some(match name {
        // Entities cover the first character of their text ("x").
        "offset" => json!(0),
        "length" => json!(1),
        "url" | "thumbnail_url" => json!("https://t.me/x"),
        // Dice: one of the emoji the Bot API lists.
        "emoji" => json!("🎲"),
        "currency" => json!("XTR"),
        "language_code" => json!("en"),
        "mime_type" => json!("application/octet-stream"),
        // Unix seconds of a plausible moment.
        "date" | "edit_date" | "until_date" | "expiration_date" | "winners_selection_date" => {
            json!(1_780_000_000)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_updates_every_message_field_is_classified() {
        let unknown: Vec<String> = message_field_classes()
            .into_iter()
            .filter(|(_, c)| c.is_none())
            .map(|(n, _)| n)
            .collect();
        assert!(
            unknown.is_empty(),
            "Message fields of {} no list in classes.rs names: {unknown:?}",
            spec_version()
        );
        assert_eq!(spec_version(), "Bot API 10.1");
    }

    #[test]
    fn spec_updates_shapes_cover_content_and_service_both_ways() {
        let shapes = message_shapes("t");
        let video = shapes
            .iter()
            .find(|s| s.name() == "video/full")
            .expect("a full video");
        assert!(video.content.contains_key("caption"));
        assert!(!video.content.contains_key("entities"));
        assert!(video.content["video"]["file_id"].is_string());
        let min = shapes.iter().find(|s| s.name() == "video/min").unwrap();
        assert_eq!(min.content.len(), 1);
        assert!(shapes.iter().any(|s| s.class == FieldClass::Service));
        assert!(
            shapes
                .iter()
                .any(|s| s.field == "paid_media" && s.class == FieldClass::ForwardOnly)
        );
        let origin = &shapes
            .iter()
            .find(|s| s.name() == "text/full")
            .unwrap()
            .content["forward_origin"];
        // Abstract types take a variant, with its constant tag.
        assert_eq!(origin["type"], "channel", "{origin}");
    }

    #[test]
    fn spec_updates_a_message_is_as_strict_as_its_strictest_field() {
        let class = |v: Value| classes::of_message(&v);
        assert_eq!(class(json!({"text": "x"})), FieldClass::Copyable);
        assert_eq!(
            class(json!({"paid_media": {}, "caption": "x"})),
            FieldClass::ForwardOnly
        );
        assert_eq!(
            class(json!({"pinned_message": {}, "text": "x"})),
            FieldClass::Service
        );
        assert_eq!(class(json!({"chat_owner_left": {}})), FieldClass::Service);
        assert_eq!(class(json!({"hologram": {}})), FieldClass::Copyable);
    }
}
