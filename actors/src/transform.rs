//! Per-subscription text transforms: an optional header and footer, and
//! plain or regex replacements, applied to a post's text or caption when it
//! is copied (`sendMessage` for text, `copyMessage`'s `caption` for one
//! media message). Stored as JSON in `subscriptions.transform`; compiled
//! once per subscription (the sender keeps the compiled form), never per post.
//!
//! Entities keep pointing at the same characters: Telegram measures their
//! offsets in UTF-16 code units, so every edit is mapped in UTF-16 units
//! (an emoji before an entity counts two). An entity that contains a
//! replaced range grows or shrinks with it; one that overlaps it partly is
//! trimmed to the part outside it; one wholly inside a replaced range is
//! dropped (its characters are gone).
//!
//! Bounds: at most [`MAX_RULES`] replacements, patterns of at most
//! [`MAX_PATTERN_CHARS`] characters, compiled with the regex crate's
//! `size_limit`/`dfa_size_limit` ([`REGEX_SIZE_LIMIT`]). The regex crate has
//! no backtracking: a search is linear in pattern × input, so no pattern
//! can take exponential time. Input is what Telegram sent (≤ 4,096 UTF-16
//! units of text), and a rule whose output would pass [`MAX_WORK_UNITS`] is
//! not applied, so replacements cannot grow the text without bound.
//!
//! Too long a result is cut, not split: at Telegram's limit (4,096 for a
//! text, 1,024 for a caption, in UTF-16 units, which is never more than
//! Telegram's own count), ending in "…", never inside a surrogate pair;
//! entities past the cut are trimmed or dropped. One post stays one message.

use serde::{Deserialize, Serialize};

use crate::model::MessageEntity;

/// The most replacement rules a subscription may have.
pub const MAX_RULES: usize = 20;
/// The longest pattern (plain or regex), in characters.
pub const MAX_PATTERN_CHARS: usize = 200;
/// The longest replacement, header or footer, in characters.
pub const MAX_TEXT_CHARS: usize = 1_000;
/// The compiled size a regular expression may reach (bytes).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// A rule whose result would be longer than this (UTF-16 units) is skipped.
pub const MAX_WORK_UNITS: usize = 16 * 1024;
/// Telegram's limit on a message text (UTF-16 units).
pub const TEXT_LIMIT: usize = 4_096;
/// Telegram's limit on a media caption (UTF-16 units).
pub const CAPTION_LIMIT: usize = 1_024;

/// One replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replacement {
    /// What to find: literal text, or a regular expression when `regex`.
    pub from: String,
    /// What to put instead (with `regex`, `$1`/`${name}` name groups).
    #[serde(default)]
    pub to: String,
    /// `from` is a regular expression.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regex: bool,
}

/// What a user sets: the JSON of `subscriptions.transform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformSpec {
    /// A line put before the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A line put after the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    /// Applied in order, each to the previous one's result.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<Replacement>,
}

/// Why a transform cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// Not the JSON of a [`TransformSpec`].
    #[error("transform is not valid: {0}")]
    Json(String),
    /// More than [`MAX_RULES`] rules.
    #[error("at most {MAX_RULES} replacements")]
    TooManyRules,
    /// An empty pattern, or one over [`MAX_PATTERN_CHARS`].
    #[error("a pattern must be 1 to {MAX_PATTERN_CHARS} characters")]
    PatternLength,
    /// A header, footer or replacement over [`MAX_TEXT_CHARS`].
    #[error("a header, footer or replacement must be at most {MAX_TEXT_CHARS} characters")]
    TextLength,
    /// Not a regular expression, or over [`REGEX_SIZE_LIMIT`] compiled.
    #[error("the regular expression is not valid or too big: {0}")]
    Regex(String),
}

#[derive(Debug, Clone)]
enum Finder {
    Plain(String),
    Regex(regex::Regex),
}

/// A compiled [`TransformSpec`].
#[derive(Debug, Clone)]
pub struct Transform {
    header: Option<String>,
    footer: Option<String>,
    rules: Vec<(Finder, String)>,
}

/// One edit in a text: the UTF-16 range `[start, start + old)` became `new` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    start: usize,
    old: usize,
    new: usize,
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

impl TransformSpec {
    /// Reads the stored JSON (`{}` or empty: none).
    pub fn from_json(json: &str) -> Result<Self, TransformError> {
        serde_json::from_str(json).map_err(|e| TransformError::Json(e.to_string()))
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.header.is_none() && self.footer.is_none() && self.replace.is_empty()
    }

    /// Checks and compiles it.
    pub fn compile(&self) -> Result<Transform, TransformError> {
        if self.replace.len() > MAX_RULES {
            return Err(TransformError::TooManyRules);
        }
        let long = |s: &Option<String>| {
            s.as_ref()
                .is_some_and(|s| s.chars().count() > MAX_TEXT_CHARS)
        };
        if long(&self.header) || long(&self.footer) {
            return Err(TransformError::TextLength);
        }
        let mut rules = Vec::with_capacity(self.replace.len());
        for r in &self.replace {
            let n = r.from.chars().count();
            if n == 0 || n > MAX_PATTERN_CHARS {
                return Err(TransformError::PatternLength);
            }
            if r.to.chars().count() > MAX_TEXT_CHARS {
                return Err(TransformError::TextLength);
            }
            let finder = if r.regex {
                Finder::Regex(
                    regex::RegexBuilder::new(&r.from)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .dfa_size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| TransformError::Regex(e.to_string()))?,
                )
            } else {
                Finder::Plain(r.from.clone())
            };
            rules.push((finder, r.to.clone()));
        }
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(Transform {
            header: nonempty(&self.header),
            footer: nonempty(&self.footer),
            rules,
        })
    }
}

impl Transform {
    /// Compiles stored JSON; `None` when there is nothing to do. A stored
    /// transform that no longer compiles is not applied (and says so): the
    /// post delivered as it is beats a post lost.
    pub fn from_stored(json: Option<&str>) -> Option<Self> {
        let t = json?.trim();
        if t.is_empty() || t == "{}" || t == "null" {
            return None;
        }
        match TransformSpec::from_json(t).and_then(|s| s.compile()) {
            Ok(f) if f.header.is_none() && f.footer.is_none() && f.rules.is_empty() => None,
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "A stored transform does not compile; delivering the text unchanged.");
                None
            }
        }
    }

    /// The transformed text and its entities, cut at `limit` UTF-16 units
    /// ([`TEXT_LIMIT`] or [`CAPTION_LIMIT`]).
    pub fn apply(
        &self,
        text: &str,
        entities: &[MessageEntity],
        limit: usize,
    ) -> (String, Vec<MessageEntity>) {
        let mut text = text.to_owned();
        let mut entities = entities.to_vec();
        for (finder, to) in &self.rules {
            if let Some((t, edits)) = replace_all(&text, finder, to) {
                entities = map_entities(&entities, &edits);
                text = t;
            }
        }
        if let Some(h) = &self.header {
            let head = format!("{h}\n");
            let n = utf16_len(&head);
            for e in &mut entities {
                e.offset += n;
            }
            text.insert_str(0, &head);
        }
        if let Some(f) = &self.footer {
            text.push('\n');
            text.push_str(f);
        }
        clip(&text, entities, limit)
    }
}

/// Replaces every non-empty match of `finder` in `text`; `None` when nothing
/// matched or the result would pass [`MAX_WORK_UNITS`].
fn replace_all(text: &str, finder: &Finder, to: &str) -> Option<(String, Vec<Edit>)> {
    let mut out = String::with_capacity(text.len());
    let mut edits = Vec::new();
    let mut last = 0; // byte offset in `text` copied up to
    let mut pos16 = 0; // UTF-16 offset of `last` in `text`
    let mut push = |start: usize, end: usize, with: &str, out: &mut String| {
        let before = &text[last..start];
        out.push_str(before);
        pos16 += utf16_len(before);
        let old = utf16_len(&text[start..end]);
        edits.push(Edit {
            start: pos16,
            old,
            new: utf16_len(with),
        });
        pos16 += old;
        out.push_str(with);
        last = end;
    };
    match finder {
        Finder::Plain(p) => {
            for (start, m) in text.match_indices(p.as_str()) {
                push(start, start + m.len(), to, &mut out);
            }
        }
        Finder::Regex(re) => {
            let mut with = String::new();
            for caps in re.captures_iter(text) {
                let m = caps.get(0).expect("group 0 always matches");
                // An empty match inserts text at a point no entity can
                // sensibly claim: skipped.
                if m.is_empty() {
                    continue;
                }
                with.clear();
                caps.expand(to, &mut with);
                push(m.start(), m.end(), &with, &mut out);
            }
        }
    }
    if edits.is_empty() {
        return None;
    }
    out.push_str(&text[last..]);
    if utf16_len(&out) > MAX_WORK_UNITS {
        tracing::debug!("A replacement would make the text too long; not applied.");
        return None;
    }
    Some((out, edits))
}

/// Where an entity's start moves: a start inside a replaced range moves past
/// the replacement (the entity loses the replaced part).
fn map_start(a: usize, edits: &[Edit]) -> usize {
    let mut delta: isize = 0;
    for e in edits {
        if e.start + e.old <= a && !(e.old == 0 && e.start == a) {
            delta += e.new as isize - e.old as isize;
        } else if e.start < a {
            // Strictly inside the edit.
            return (e.start as isize + delta) as usize + e.new;
        } else {
            break;
        }
    }
    (a as isize + delta) as usize
}

/// Where an entity's end moves: an end inside a replaced range moves before
/// it; an end exactly at a range's end keeps the whole replacement.
fn map_end(b: usize, edits: &[Edit]) -> usize {
    let mut delta: isize = 0;
    for e in edits {
        if e.start + e.old <= b && e.start < b {
            delta += e.new as isize - e.old as isize;
        } else if e.start < b {
            return (e.start as isize + delta) as usize;
        } else {
            break;
        }
    }
    (b as isize + delta) as usize
}

/// Entities mapped through `edits` (sorted, not overlapping, in the old
/// text's UTF-16 units); those left empty are dropped.
fn map_entities(entities: &[MessageEntity], edits: &[Edit]) -> Vec<MessageEntity> {
    entities
        .iter()
        .filter_map(|e| {
            let a = map_start(e.offset, edits);
            let b = map_end(e.offset + e.length, edits);
            (b > a).then(|| MessageEntity {
                kind: e.kind.clone(),
                offset: a,
                length: b - a,
            })
        })
        .collect()
}

/// Cuts `text` to `limit` UTF-16 units ending in "…", never inside a
/// surrogate pair; entities are cut to the kept text.
fn clip(text: &str, entities: Vec<MessageEntity>, limit: usize) -> (String, Vec<MessageEntity>) {
    if utf16_len(text) <= limit {
        return (text.to_owned(), entities);
    }
    let keep = limit.saturating_sub(1); // room for "…" (one unit)
    let mut units = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        if units + c.len_utf16() > keep {
            break;
        }
        units += c.len_utf16();
        end = i + c.len_utf8();
    }
    let mut out = text[..end].to_owned();
    out.push('…');
    let entities = entities
        .into_iter()
        .filter_map(|mut e| {
            if e.offset >= units {
                return None;
            }
            e.length = e.length.min(units - e.offset);
            Some(e)
        })
        .collect();
    (out, entities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::types::MessageEntityKind;

    fn t(json: &str) -> Transform {
        TransformSpec::from_json(json).unwrap().compile().unwrap()
    }

    fn bold(offset: usize, length: usize) -> MessageEntity {
        MessageEntity::bold(offset, length)
    }

    /// The UTF-16 slice an entity covers, as a string.
    fn covered(text: &str, e: &MessageEntity) -> String {
        let u: Vec<u16> = text.encode_utf16().collect();
        String::from_utf16(&u[e.offset..e.offset + e.length]).unwrap()
    }

    #[test]
    fn a_shorter_replacement_before_an_entity_after_an_emoji_shifts_it_in_utf16_units() {
        // "😀" is two UTF-16 units; "ad" → "" removes two units before "bold".
        let text = "😀 ad: bold";
        let e = bold(7, 4);
        assert_eq!(covered(text, &e), "bold");
        let (out, es) =
            t(r#"{"replace": [{"from": "ad: ", "to": ""}]}"#).apply(text, &[e], TEXT_LIMIT);
        assert_eq!(out, "😀 bold");
        assert_eq!(es, vec![bold(3, 4)]);
        assert_eq!(covered(&out, &es[0]), "bold");
    }

    #[test]
    fn a_longer_replacement_with_emoji_grows_an_entity_that_contains_it() {
        let text = "👍🏽 buy cats now";
        // "buy cats now" after the emoji (4 units) and a space.
        let e = bold(5, 12);
        assert_eq!(covered(text, &e), "buy cats now");
        let (out, es) = t(r#"{"replace": [{"from": "cats", "to": "🐈🐈 cats"}]}"#).apply(
            text,
            &[e],
            TEXT_LIMIT,
        );
        assert_eq!(out, "👍🏽 buy 🐈🐈 cats now");
        assert_eq!(covered(&out, &es[0]), "buy 🐈🐈 cats now");
        assert_eq!(es[0].length, 12 - 4 + 9);
    }

    #[test]
    fn entities_overlapping_a_replaced_range_are_trimmed_and_inside_ones_dropped() {
        let text = "ab SECRET cd";
        let left = bold(0, 5); // "ab SE"
        let right = MessageEntity::italic(7, 5); // "ET cd"
        let inside = MessageEntity::code(4, 3); // "ECR"
        let after = MessageEntity::underline(10, 2); // "cd"
        let (out, es) = t(r#"{"replace": [{"from": "S\\w+T", "to": "x", "regex": true}]}"#).apply(
            text,
            &[left, right, inside, after],
            TEXT_LIMIT,
        );
        assert_eq!(out, "ab x cd");
        assert_eq!(es.len(), 3);
        assert_eq!(covered(&out, &es[0]), "ab ");
        assert_eq!(es[1].kind, MessageEntityKind::Italic);
        assert_eq!(covered(&out, &es[1]), " cd");
        assert_eq!(covered(&out, &es[2]), "cd");
    }

    #[test]
    fn regex_groups_header_and_footer() {
        let text = "Narx: 1500 so'm";
        let e = bold(0, 4);
        let tr = t(r#"{"header": "📣 Kanal", "footer": "— @kuryer",
                "replace": [{"from": "(\\d+) so'm", "to": "$1 UZS", "regex": true}]}"#);
        let (out, es) = tr.apply(text, &[e], TEXT_LIMIT);
        assert_eq!(out, "📣 Kanal\nNarx: 1500 UZS\n— @kuryer");
        assert_eq!(covered(&out, &es[0]), "Narx");
    }

    #[test]
    fn too_long_a_result_is_cut_with_an_ellipsis_outside_a_surrogate_pair() {
        let text = format!("{}😀tail", "a".repeat(1_022));
        let e = bold(1_000, 30);
        let (out, es) = t(r#"{"footer": "end"}"#).apply(&text, &[e], CAPTION_LIMIT);
        // 1,022 "a" + "😀" would be 1,024 units; the pair does not fit before "…".
        assert_eq!(out, format!("{}…", "a".repeat(1_022)));
        assert_eq!(utf16_len(&out), 1_023);
        assert_eq!(es, vec![bold(1_000, 22)]);
    }

    #[test]
    fn limits_are_enforced() {
        let bad = |json: &str| TransformSpec::from_json(json).and_then(|s| s.compile());
        assert!(matches!(
            bad(r#"{"replace": [{"from": "(", "regex": true}]}"#),
            Err(TransformError::Regex(_))
        ));
        assert!(matches!(
            bad(r#"{"replace": [{"from": "\\w{1000}\\w{1000}", "regex": true}]}"#),
            Err(TransformError::Regex(_))
        ));
        let long = "x".repeat(MAX_PATTERN_CHARS + 1);
        assert!(matches!(
            bad(&format!(r#"{{"replace": [{{"from": "{long}"}}]}}"#)),
            Err(TransformError::PatternLength)
        ));
        assert!(matches!(
            bad(r#"{"colour": 1}"#),
            Err(TransformError::Json(_))
        ));
        // An empty-matching regex changes nothing; a growth past the cap is skipped.
        let (out, _) = t(r#"{"replace": [{"from": "x*", "to": "y", "regex": true}]}"#).apply(
            "ab",
            &[],
            TEXT_LIMIT,
        );
        assert_eq!(out, "ab");
        let big = "z".repeat(1000);
        let tr = t(&format!(
            r#"{{"replace": [{{"from": "a", "to": "{big}"}}]}}"#
        ));
        let (out, _) = tr.apply(&"a".repeat(100), &[], usize::MAX);
        assert_eq!(out, "a".repeat(100));
        assert!(Transform::from_stored(Some("{}")).is_none());
        assert!(Transform::from_stored(None).is_none());
    }
}
