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
//! units of text). A rule is applied under a budget and not at all when it
//! passes one: its output is counted while it is built and the rule given
//! up the moment it passes [`MAX_WORK_UNITS`] (no longer string is ever
//! built), at most [`MAX_MATCHES`] matches and [`MAX_EXPANSIONS`] `$` group
//! references expanded. A replacement's `$` references are parsed once, at
//! compile time, with the regex crate's own rules (`$1`, `${name}`, `$$`).
//!
//! Too long a result is cut, not split: at Telegram's limit (4,096 for a
//! text, 1,024 for a caption, in UTF-16 units, which is never more than
//! Telegram's own count), ending in "…", never inside a surrogate pair;
//! entities past the cut are trimmed or dropped. One post stays one message.

use serde::{Deserialize, Serialize};

use crate::model::MessageEntity;

mod entities;
use entities::{Edit, clip, map_entities};

/// The most replacement rules a subscription may have.
pub const MAX_RULES: usize = 20;
/// The longest pattern (plain or regex), in characters.
pub const MAX_PATTERN_CHARS: usize = 200;
/// The longest replacement, header or footer, in characters.
pub const MAX_TEXT_CHARS: usize = 1_000;
/// The compiled size a regular expression may reach (bytes), and the most
/// its lazy DFA's cache may take.
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// A rule whose result would be longer than this (UTF-16 units) is skipped.
pub const MAX_WORK_UNITS: usize = 16 * 1024;
/// A rule matching more often than this in one text is skipped.
pub const MAX_MATCHES: usize = 4_096;
/// A rule expanding more `$` group references than this in one text is skipped.
pub const MAX_EXPANSIONS: usize = 4_096;
/// The most regular expressions one user's subscriptions may compile, all
/// transforms and filters together (each is kept compiled while in use).
pub const MAX_PATTERNS_PER_USER: usize = 40;
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

/// A replacement, parsed: literal text and the capture groups (by index)
/// put between it. A plain rule's replacement is one literal.
#[derive(Debug, Clone)]
enum Piece {
    Text { text: String, units: usize },
    Group(usize),
}

/// A compiled [`TransformSpec`].
#[derive(Debug, Clone)]
pub struct Transform {
    header: Option<String>,
    footer: Option<String>,
    rules: Vec<(Finder, Vec<Piece>)>,
}

/// Why a rule was not applied to a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Long,
    Matches,
    Expansions,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Self::Long => "too long",
            Self::Matches => "too many matches",
            Self::Expansions => "too many group references",
        }
    }
}

fn literal(text: &str) -> Piece {
    Piece::Text {
        text: text.to_owned(),
        units: utf16_len(text),
    }
}

/// `to` split at its `$` references, read exactly as the regex crate reads
/// them (its own interpolation routine, with a recorder for the groups):
/// `$$` is a `$`, an unknown name expands to nothing.
fn parse_replacement(re: &regex::Regex, to: &str) -> Vec<Piece> {
    let mut flat = String::new();
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (offset in `flat`, group)
    regex_automata::util::interpolate::string(
        to,
        |i, dst| groups.push((dst.len(), i)),
        |name| re.capture_names().position(|n| n == Some(name)),
        &mut flat,
    );
    let mut pieces = Vec::new();
    let mut at = 0;
    for (offset, group) in groups {
        if offset > at {
            pieces.push(literal(&flat[at..offset]));
        }
        pieces.push(Piece::Group(group));
        at = offset;
    }
    if at < flat.len() {
        pieces.push(literal(&flat[at..]));
    }
    pieces
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
            if r.regex {
                let re = regex::RegexBuilder::new(&r.from)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| TransformError::Regex(e.to_string()))?;
                let pieces = parse_replacement(&re, &r.to);
                rules.push((Finder::Regex(re), pieces));
            } else {
                rules.push((Finder::Plain(r.from.clone()), vec![literal(&r.to)]));
            }
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

    /// How many rules are regular expressions (what a per-user budget of
    /// compiled patterns counts).
    pub fn regex_rules(&self) -> usize {
        self.rules
            .iter()
            .filter(|(f, _)| matches!(f, Finder::Regex(_)))
            .count()
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

/// The output of one rule as it is built, under its budget.
struct Builder<'a> {
    text: &'a str,
    out: String,
    /// UTF-16 units in `out`.
    units: usize,
    edits: Vec<Edit>,
    /// Byte offset in `text` copied up to, and its UTF-16 offset.
    last: usize,
    last16: usize,
    expansions: usize,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            out: String::with_capacity(text.len()),
            units: 0,
            edits: Vec::new(),
            last: 0,
            last16: 0,
            expansions: 0,
        }
    }

    /// Appends `s` of `n` units, unless that passes the budget.
    fn push(&mut self, s: &str, n: usize) -> Result<(), Refused> {
        if self.units + n > MAX_WORK_UNITS {
            return Err(Refused::Long);
        }
        self.units += n;
        self.out.push_str(s);
        Ok(())
    }

    /// The text before `start` copied, then `[start, end)` replaced by `pieces`.
    fn replace(
        &mut self,
        start: usize,
        end: usize,
        pieces: &[Piece],
        caps: Option<&regex::Captures<'_>>,
    ) -> Result<(), Refused> {
        if self.edits.len() >= MAX_MATCHES {
            return Err(Refused::Matches);
        }
        let before = &self.text[self.last..start];
        let n = utf16_len(before);
        self.push(before, n)?;
        self.last16 += n;
        let at = self.units;
        for p in pieces {
            match p {
                Piece::Text { text, units } => self.push(text, *units)?,
                Piece::Group(i) => {
                    self.expansions += 1;
                    if self.expansions > MAX_EXPANSIONS {
                        return Err(Refused::Expansions);
                    }
                    if let Some(g) = caps.and_then(|c| c.get(*i)) {
                        self.push(g.as_str(), utf16_len(g.as_str()))?;
                    }
                }
            }
        }
        let old = utf16_len(&self.text[start..end]);
        self.edits.push(Edit {
            start: self.last16,
            old,
            new: self.units - at,
        });
        self.last16 += old;
        self.last = end;
        Ok(())
    }

    fn finish(mut self) -> Result<Option<(String, Vec<Edit>)>, Refused> {
        if self.edits.is_empty() {
            return Ok(None);
        }
        let rest = &self.text[self.last..];
        self.push(rest, utf16_len(rest))?;
        Ok(Some((self.out, self.edits)))
    }
}

/// Replaces every non-empty match of `finder` in `text`; `None` when nothing
/// matched, or when the rule passed its budget (output over
/// [`MAX_WORK_UNITS`], [`MAX_MATCHES`], [`MAX_EXPANSIONS`]): then it stopped
/// there, having built no more than the limit.
fn replace_all(text: &str, finder: &Finder, to: &[Piece]) -> Option<(String, Vec<Edit>)> {
    let mut b = Builder::new(text);
    let built = match finder {
        Finder::Plain(p) => text
            .match_indices(p.as_str())
            .try_for_each(|(start, m)| b.replace(start, start + m.len(), to, None)),
        Finder::Regex(re) => re.captures_iter(text).try_for_each(|caps| {
            let m = caps.get(0).expect("group 0 always matches");
            // An empty match inserts text at a point no entity can
            // sensibly claim: skipped.
            if m.is_empty() {
                return Ok(());
            }
            b.replace(m.start(), m.end(), to, Some(&caps))
        }),
    };
    match built.and_then(|()| b.finish()) {
        Ok(done) => done,
        Err(why) => {
            tracing::debug!(
                reason = why.as_str(),
                "A replacement passed its budget; not applied."
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use teloxide::types::MessageEntityKind;

    /// Counts the bytes this thread allocates (the test binary's allocator).
    struct Counting;

    thread_local! {
        static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards to the system allocator; the counter is a const
    // thread-local without a destructor, so counting never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = ALLOCATED.try_with(|a| a.set(a.get() + l.size()));
            // SAFETY: the caller's layout, passed on.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: allocated above with this layout.
            unsafe { System.dealloc(p, l) }
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    fn allocated_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let before = ALLOCATED.with(Cell::get);
        let r = f();
        (r, ALLOCATED.with(Cell::get) - before)
    }

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

    /// The hostile transform: `a => aaaa` grows a 4,096-character post to
    /// the work limit, then nineteen rules `a => ` 1,000 characters would
    /// each build a ~16 M-character string before being refused.
    fn hostile() -> Transform {
        let big = "z".repeat(MAX_TEXT_CHARS);
        let mut rules = vec![r#"{"from": "a", "to": "aaaa"}"#.to_owned()];
        rules.extend((0..19).map(|_| format!(r#"{{"from": "a", "to": "{big}"}}"#)));
        t(&format!(r#"{{"replace": [{}]}}"#, rules.join(",")))
    }

    #[test]
    fn a_growing_rule_is_given_up_at_the_limit_without_building_past_it() {
        let tr = hostile();
        let text = "a".repeat(TEXT_LIMIT);
        let ((out, _), bytes) = allocated_by(|| tr.apply(&text, &[], usize::MAX));
        // The first rule fits exactly; every other passes the limit.
        assert!(out.len() == MAX_WORK_UNITS && out.bytes().all(|b| b == b'a'));
        // Each refused rule built at most the limit (16 Ki units, a few
        // doublings of a String): well under a megabyte each. Building the
        // whole output first allocated some 650 MB here.
        assert!(bytes < 8_000_000, "allocated {bytes} bytes");
    }

    #[test]
    fn matches_and_group_expansions_are_capped_per_rule() {
        // One match more than the cap: not applied at all.
        let text = "x ".repeat(MAX_MATCHES + 1);
        let (out, _) =
            t(r#"{"replace": [{"from": "x", "to": "y"}]}"#).apply(&text, &[], usize::MAX);
        assert_eq!(out, text);
        let text = "x ".repeat(MAX_MATCHES);
        let (out, _) =
            t(r#"{"replace": [{"from": "x", "to": "y"}]}"#).apply(&text, &[], usize::MAX);
        assert_eq!(out, "y ".repeat(MAX_MATCHES));
        // Empty groups cost no output, but each reference is counted:
        // 100 references × 41 matches passes 4,096.
        let to = "$1".repeat(100);
        let tr = t(&format!(
            r#"{{"replace": [{{"from": "b(c?)", "to": "{to}", "regex": true}}]}}"#
        ));
        let (out, _) = tr.apply(&"b".repeat(41), &[], usize::MAX);
        assert_eq!(out, "b".repeat(41));
        let (out, _) = tr.apply(&"b".repeat(40), &[], usize::MAX);
        assert_eq!(out, "");
    }

    #[test]
    fn group_references_read_as_the_regex_crate_reads_them() {
        let cases = [
            (r"(\d+)-(?P<w>\w+)", "$2/$1 ${w}!$$ $w1 ${9} $"),
            (r"(a)(b)?", "[$1$2]"),
            (r"(?P<n>x)", "$n$n${n}"),
        ];
        let text = "12-ab a ab x 7-q";
        for (pattern, to) in cases {
            let spec = TransformSpec {
                replace: vec![Replacement {
                    from: pattern.to_owned(),
                    to: to.to_owned(),
                    regex: true,
                }],
                ..TransformSpec::default()
            };
            let want = regex::Regex::new(pattern).unwrap().replace_all(text, to);
            let (out, _) = spec.compile().unwrap().apply(text, &[], usize::MAX);
            assert_eq!(out, want, "{pattern} => {to}");
        }
    }
}
