//! Per-subscription filters, applied in the fan-out: keywords a post must
//! (or must not) contain, an optional regular expression, media kinds to
//! skip. Stored as JSON in `subscriptions.filters`; compiled once when a
//! subscription enters the registry, never per post.
//!
//! Keywords match case-insensitively on Unicode lower case (`Ё` and `ё`,
//! `O'zbek` and `o'zbek` are one), as substrings of the text or caption. The
//! regular expression is compiled with a size limit, so a pattern cannot make
//! the fan-out slow or take memory without bound; it is case-insensitive and
//! Unicode-aware too.

use serde::{Deserialize, Serialize};

use crate::model::{MediaKind, Post};

/// The most keywords in each list.
pub const MAX_KEYWORDS: usize = 50;
/// The longest keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 100;
/// The longest regular expression, in characters.
pub const MAX_REGEX_CHARS: usize = 200;
/// The compiled size a regular expression may reach (bytes).
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// What a user sets: the JSON of `subscriptions.filters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSpec {
    /// Only posts containing any of these (empty: every post).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never posts containing any of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Only posts matching this regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Posts with these media are skipped; `text` skips text-only posts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_media: Vec<String>,
}

/// Why a filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not the JSON of a [`FilterSpec`].
    #[error("filters are not valid: {0}")]
    Json(String),
    /// More than [`MAX_KEYWORDS`] keywords in a list.
    #[error("at most {MAX_KEYWORDS} keywords a list")]
    TooManyKeywords,
    /// A keyword empty or over [`MAX_KEYWORD_CHARS`].
    #[error("a keyword must be 1 to {MAX_KEYWORD_CHARS} characters")]
    KeywordLength,
    /// A regular expression over [`MAX_REGEX_CHARS`] or [`REGEX_SIZE_LIMIT`],
    /// or not one at all.
    #[error("the regular expression is not valid or too big")]
    Regex,
    /// A media kind that does not exist.
    #[error("unknown media kind {0:?}")]
    MediaKind(String),
}

/// The media kinds a user may skip, by their spelling in [`FilterSpec`].
pub const MEDIA_KINDS: [&str; 9] = [
    "text",
    "photo",
    "video",
    "document",
    "audio",
    "voice",
    "animation",
    "sticker",
    "other",
];

fn media_name(media: Option<MediaKind>) -> &'static str {
    match media {
        None => "text",
        Some(MediaKind::Photo) => "photo",
        Some(MediaKind::Video) => "video",
        Some(MediaKind::Document) => "document",
        Some(MediaKind::Audio) => "audio",
        Some(MediaKind::Voice) => "voice",
        Some(MediaKind::Animation) => "animation",
        Some(MediaKind::Sticker) => "sticker",
        Some(MediaKind::Other) => "other",
    }
}

/// A compiled [`FilterSpec`].
#[derive(Debug, Clone)]
pub struct PostFilter {
    include: Vec<String>,
    exclude: Vec<String>,
    regex: Option<regex::Regex>,
    skip_media: Vec<&'static str>,
}

impl FilterSpec {
    /// Reads the stored JSON (`{}`: no filter).
    pub fn from_json(json: &str) -> Result<Self, FilterError> {
        serde_json::from_str(json).map_err(|e| FilterError::Json(e.to_string()))
    }

    /// True when it lets every post through.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.regex.is_none()
            && self.skip_media.is_empty()
    }

    /// Checks and compiles it.
    pub fn compile(&self) -> Result<PostFilter, FilterError> {
        let words = |list: &[String]| -> Result<Vec<String>, FilterError> {
            if list.len() > MAX_KEYWORDS {
                return Err(FilterError::TooManyKeywords);
            }
            list.iter()
                .map(|w| {
                    let n = w.trim().chars().count();
                    if n == 0 || n > MAX_KEYWORD_CHARS {
                        Err(FilterError::KeywordLength)
                    } else {
                        Ok(w.trim().to_lowercase())
                    }
                })
                .collect()
        };
        let regex = match &self.regex {
            None => None,
            Some(r) if r.chars().count() > MAX_REGEX_CHARS || r.is_empty() => {
                return Err(FilterError::Regex);
            }
            Some(r) => Some(
                regex::RegexBuilder::new(r)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|_| FilterError::Regex)?,
            ),
        };
        let skip_media = self
            .skip_media
            .iter()
            .map(|m| {
                MEDIA_KINDS
                    .iter()
                    .copied()
                    .find(|k| k.eq_ignore_ascii_case(m))
                    .ok_or_else(|| FilterError::MediaKind(m.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(PostFilter {
            include: words(&self.include)?,
            exclude: words(&self.exclude)?,
            regex,
            skip_media,
        })
    }
}

impl PostFilter {
    /// Compiles stored JSON; `None` when it lets everything through. A
    /// stored filter that no longer compiles lets everything through too
    /// (and says so): a post delivered unfiltered beats a post lost.
    pub fn from_stored(json: &str) -> Option<Self> {
        let t = json.trim();
        if t.is_empty() || t == "{}" {
            return None;
        }
        match FilterSpec::from_json(t).and_then(|s| s.compile()) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "A stored filter does not compile; delivering unfiltered.");
                None
            }
        }
    }

    /// Whether `post` passes.
    pub fn accepts(&self, post: &Post) -> bool {
        self.accepts_parts(post.text.as_deref(), post.media)
    }

    /// Whether a post with this text (or caption) and media passes.
    pub fn accepts_parts(&self, text: Option<&str>, media: Option<MediaKind>) -> bool {
        if self.skip_media.contains(&media_name(media)) {
            return false;
        }
        if self.include.is_empty() && self.exclude.is_empty() && self.regex.is_none() {
            return true;
        }
        let text = text.unwrap_or_default();
        let lower = text.to_lowercase();
        if self.exclude.iter().any(|w| lower.contains(w.as_str())) {
            return false;
        }
        if !self.include.is_empty() && !self.include.iter().any(|w| lower.contains(w.as_str())) {
            return false;
        }
        self.regex.as_ref().is_none_or(|r| r.is_match(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> PostFilter {
        FilterSpec::from_json(json).unwrap().compile().unwrap()
    }

    #[test]
    fn keywords_match_case_insensitively_in_any_script() {
        let f = spec(r#"{"include": ["Ташкент", "o'zbek"], "exclude": ["РЕКЛАМА"]}"#);
        assert!(f.accepts_parts(Some("Новости ТАШКЕНТА"), None));
        assert!(f.accepts_parts(Some("O'ZBEK tili"), None));
        assert!(!f.accepts_parts(Some("Ташкент: реклама"), None));
        assert!(!f.accepts_parts(Some("Москва"), None));
        assert!(!f.accepts_parts(None, None));
        // Ё/ё and Greek final sigma fold through Unicode lower case.
        assert!(spec(r#"{"include": ["ЁЛКА"]}"#).accepts_parts(Some("ёлка"), None));
    }

    #[test]
    fn regex_and_media_kinds() {
        let f = spec(r#"{"regex": "^\\d+ (so'm|сум)$", "skip_media": ["video", "Sticker"]}"#);
        assert!(f.accepts_parts(Some("1500 СУМ"), Some(MediaKind::Photo)));
        assert!(!f.accepts_parts(Some("1500 сум"), Some(MediaKind::Video)));
        assert!(!f.accepts_parts(Some("narx: 1500 so'm"), None));
        let text_only = spec(r#"{"skip_media": ["text"]}"#);
        assert!(!text_only.accepts_parts(Some("hi"), None));
        assert!(text_only.accepts_parts(Some("hi"), Some(MediaKind::Photo)));
    }

    #[test]
    fn what_cannot_be_used_is_refused() {
        let bad = |json: &str| FilterSpec::from_json(json).and_then(|s| s.compile());
        assert!(matches!(bad(r#"{"regex": "("}"#), Err(FilterError::Regex)));
        // Compiles to far more than the size limit.
        assert!(matches!(
            bad(r#"{"regex": "\\w{500}\\w{500}"}"#),
            Err(FilterError::Regex)
        ));
        assert!(matches!(
            bad(r#"{"skip_media": ["gif"]}"#),
            Err(FilterError::MediaKind(_))
        ));
        assert!(matches!(
            bad(r#"{"include": [" "]}"#),
            Err(FilterError::KeywordLength)
        ));
        assert!(matches!(bad(r#"{"colour": 1}"#), Err(FilterError::Json(_))));
        assert!(PostFilter::from_stored("{}").is_none());
        assert!(PostFilter::from_stored(r#"{"regex": "("}"#).is_none());
    }
}
