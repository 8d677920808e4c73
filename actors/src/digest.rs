//! Digests: a subscription's posts bundled into one message a day (at a
//! local time in the subscriber's time zone) or an hour, instead of one
//! message a post. Stored as JSON in `subscriptions.digest`.
//!
//! Two pure parts, tested here: [`Digest::next_due`] — when the next digest
//! is due after an instant, across midnight and daylight-saving changes —
//! and [`render`], which lists the held posts (oldest first) in messages of
//! at most [`MAX_UNITS`] UTF-16 units, never splitting an entry.
//!
//! A local time that does not exist (skipped by a spring-forward change) is
//! read as the same time after the jump, a repeated one (the autumn fold)
//! as its first occurrence — as for quiet hours (`quiet.rs`).

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Telegram's limit on a message text, in UTF-16 units.
pub const MAX_UNITS: usize = 4096;

/// Words of a post's text shown in its entry.
const FIRST_WORDS: usize = 12;
/// And at most this many characters of them.
const FIRST_CHARS: usize = 120;

/// How often a digest is sent: the JSON of `subscriptions.digest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "every", rename_all = "lowercase")]
pub enum DigestSpec {
    /// Once a day at `at` (`HH:MM`) local time in `tz` (IANA).
    Daily {
        /// Local time, `HH:MM`.
        at: String,
        /// IANA time zone, e.g. `Asia/Tashkent`.
        tz: String,
    },
    /// At the start of every hour (UTC).
    Hourly,
    /// Turned off with posts still held: one last digest of them is due
    /// at once, then the setting is cleared (never typed by a user: the
    /// store writes it for `/digest off`, so nothing held is left owed).
    Closing,
}

/// Why a digest setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `daily HH:MM Area/City`, `hourly` or the JSON of a [`DigestSpec`].
    #[error("a digest is written `daily HH:MM Area/City` or `hourly`")]
    Syntax,
    /// A time that is not `HH:MM`.
    #[error("{0:?} is not a time of day (HH:MM)")]
    Time(String),
    /// An unknown time zone.
    #[error("unknown time zone {0:?}")]
    Zone(String),
}

/// A compiled digest schedule.
#[derive(Debug, Clone)]
pub enum Digest {
    /// Daily at a local time.
    Daily {
        /// The local time.
        at: Time,
        /// Its zone.
        tz: TimeZone,
    },
    /// Hourly.
    Hourly,
    /// The last one, due at once.
    Closing,
}

fn parse_time(s: &str) -> Result<Time, DigestError> {
    crate::quiet::parse_hh_mm(s).ok_or_else(|| DigestError::Time(s.to_owned()))
}

impl DigestSpec {
    /// Parses what a user types after `/digest`: `daily 09:00 Asia/Tashkent`
    /// or `hourly` (`off` is the caller's).
    pub fn parse_args(s: &str) -> Result<Self, DigestError> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let spec = match words.as_slice() {
            [w] if w.eq_ignore_ascii_case("hourly") => Self::Hourly,
            [w, at, tz] if w.eq_ignore_ascii_case("daily") => Self::Daily {
                at: (*at).to_owned(),
                tz: (*tz).to_owned(),
            },
            _ => return Err(DigestError::Syntax),
        };
        spec.compile()?;
        Ok(spec)
    }

    /// Checks and compiles it.
    pub fn compile(&self) -> Result<Digest, DigestError> {
        match self {
            Self::Hourly => Ok(Digest::Hourly),
            Self::Closing => Ok(Digest::Closing),
            Self::Daily { at, tz } => Ok(Digest::Daily {
                at: parse_time(at)?,
                tz: TimeZone::get(tz).map_err(|_| DigestError::Zone(tz.clone()))?,
            }),
        }
    }
}

fn to_jiff(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millisecond(t.timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn from_jiff(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.as_millisecond()).unwrap_or_default()
}

impl Digest {
    /// Compiles stored JSON; `None` when there is none or it no longer
    /// compiles (logged).
    pub fn from_stored(json: Option<&str>) -> Option<Self> {
        let t = json?.trim();
        if t.is_empty() || t == "null" || t == "{}" {
            return None;
        }
        match serde_json::from_str::<DigestSpec>(t)
            .map_err(|_| DigestError::Syntax)
            .and_then(|s| s.compile())
        {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "Stored digest setting does not compile.");
                None
            }
        }
    }

    /// The first instant strictly after `after` at which a digest is due.
    pub fn next_due(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            // Due at once; cleared once sent, so never due again.
            Self::Closing => after,
            Self::Hourly => {
                let secs = after.timestamp().div_euclid(3600) * 3600 + 3600;
                DateTime::from_timestamp(secs, 0).unwrap_or(after)
            }
            Self::Daily { at, tz } => {
                let now = to_jiff(after);
                let mut day = tz.to_datetime(now).date();
                // Today's time, else tomorrow's (two days cover any gap).
                for _ in 0..3 {
                    if let Ok(t) = tz.to_timestamp(day.to_datetime(*at))
                        && t > now
                    {
                        return from_jiff(t);
                    }
                    match day.tomorrow() {
                        Ok(d) => day = d,
                        Err(_) => break,
                    }
                }
                after + chrono::TimeDelta::days(1)
            }
        }
    }
}

/// One held post in a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The channel's public username (without `@`); `None`: no link.
    pub username: Option<String>,
    /// The channel's title (shown when it has no username).
    pub title: String,
    /// The post's (first) message id.
    pub message_id: i64,
    /// Its text or caption.
    pub text: String,
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The first words of a text, on one line, with "…" when cut.
pub fn first_words(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::new();
    let mut cut = words.len() > FIRST_WORDS;
    for w in words.iter().take(FIRST_WORDS) {
        if out.chars().count() + 1 + w.chars().count() > FIRST_CHARS {
            cut = true;
            if out.is_empty() {
                out = w.chars().take(FIRST_CHARS).collect();
            }
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    if cut {
        out.push('…');
    }
    out
}

/// An entry's line: `https://t.me/<username>/<id> — first words` (or the
/// channel's title instead of the link).
pub fn entry_line(e: &Entry) -> String {
    let head = match &e.username {
        Some(u) => format!("https://t.me/{u}/{}", e.message_id),
        None => {
            let title: String = e.title.chars().take(128).collect();
            if title.is_empty() {
                "?".to_owned()
            } else {
                title
            }
        }
    };
    let words = first_words(&e.text);
    if words.is_empty() {
        format!("• {head}")
    } else {
        format!("• {head} — {words}")
    }
}

/// The digest's messages: `header` then one line an entry, in the given
/// order, cut into messages of at most `max_units` UTF-16 units between
/// entries (never inside one; an entry is far shorter than the limit). The
/// header starts the first message only. Empty when there are no entries.
pub fn render(header: &str, entries: &[Entry], max_units: usize) -> Vec<String> {
    let mut parts = Vec::new();
    if entries.is_empty() {
        return parts;
    }
    let mut cur = header.to_owned();
    let mut cur_units = units(&cur);
    for e in entries {
        let line = entry_line(e);
        let n = units(&line);
        let sep = usize::from(!cur.is_empty());
        if !cur.is_empty() && cur_units + sep + n > max_units {
            parts.push(std::mem::take(&mut cur));
            cur_units = 0;
        }
        if !cur.is_empty() {
            cur.push('\n');
            cur_units += 1;
        }
        cur.push_str(&line);
        cur_units += n;
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(args: &str) -> Digest {
        DigestSpec::parse_args(args).unwrap().compile().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn daily_across_midnight_in_tashkent() {
        // Asia/Tashkent is UTC+5: 09:00 local = 04:00 UTC.
        let g = d("daily 09:00 Asia/Tashkent");
        assert_eq!(
            g.next_due(at("2026-03-10T03:59:59Z")),
            at("2026-03-10T04:00:00Z")
        );
        // Exactly due: the next one is tomorrow's.
        assert_eq!(
            g.next_due(at("2026-03-10T04:00:00Z")),
            at("2026-03-11T04:00:00Z")
        );
        // 23:30 local on the 10th (18:30 UTC) → 09:00 on the 11th.
        assert_eq!(
            g.next_due(at("2026-03-10T18:30:00Z")),
            at("2026-03-11T04:00:00Z")
        );
        // 00:30 local on the 11th is the 10th in UTC (19:30Z): still the 11th's.
        assert_eq!(
            g.next_due(at("2026-03-10T19:30:00Z")),
            at("2026-03-11T04:00:00Z")
        );
        // A late evening digest: 23:45 local = 18:45 UTC, local midnight crossed.
        let late = d("daily 23:45 Asia/Tashkent");
        assert_eq!(
            late.next_due(at("2026-03-10T19:00:00Z")),
            at("2026-03-11T18:45:00Z")
        );
    }

    #[test]
    fn daily_across_dst_changes_in_berlin() {
        // Spring 2026-03-29: 02:00 CET → 03:00 CEST at 01:00 UTC.
        let g = d("daily 09:00 Europe/Berlin");
        // 09:00 CET on the 28th = 08:00Z; then 09:00 CEST on the 29th = 07:00Z:
        // 23 hours apart.
        assert_eq!(
            g.next_due(at("2026-03-28T07:00:00Z")),
            at("2026-03-28T08:00:00Z")
        );
        assert_eq!(
            g.next_due(at("2026-03-28T08:00:00Z")),
            at("2026-03-29T07:00:00Z")
        );
        // A time inside the skipped hour: 02:30 is read as 03:30 CEST (01:30Z).
        let gap = d("daily 02:30 Europe/Berlin");
        assert_eq!(
            gap.next_due(at("2026-03-28T23:00:00Z")),
            at("2026-03-29T01:30:00Z")
        );
        // Autumn 2026-10-25: 03:00 CEST → 02:00 CET at 01:00 UTC; 02:30 happens
        // twice, the digest goes at the first (00:30Z), once.
        let fold = d("daily 02:30 Europe/Berlin");
        assert_eq!(
            fold.next_due(at("2026-10-24T23:00:00Z")),
            at("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            fold.next_due(at("2026-10-25T00:30:00Z")),
            at("2026-10-26T01:30:00Z")
        );
        // 09:00 CEST on the 24th = 07:00Z; 09:00 CET on the 25th = 08:00Z.
        assert_eq!(
            g.next_due(at("2026-10-24T07:00:00Z")),
            at("2026-10-25T08:00:00Z")
        );
    }

    #[test]
    fn hourly_is_the_next_full_hour() {
        let h = d("hourly");
        assert_eq!(
            h.next_due(at("2026-03-10T23:59:59Z")),
            at("2026-03-11T00:00:00Z")
        );
        assert_eq!(
            h.next_due(at("2026-03-11T00:00:00Z")),
            at("2026-03-11T01:00:00Z")
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let e = |s: &str| DigestSpec::parse_args(s).unwrap_err();
        assert_eq!(e("weekly"), DigestError::Syntax);
        assert_eq!(e("daily 09:00"), DigestError::Syntax);
        assert_eq!(e("daily 9h Asia/Tashkent"), DigestError::Time("9h".into()));
        assert_eq!(
            e("daily 09:00 Mars/Olympus"),
            DigestError::Zone("Mars/Olympus".into())
        );
        let json =
            serde_json::to_string(&DigestSpec::parse_args("daily 09:00 UTC").unwrap()).unwrap();
        assert_eq!(json, r#"{"every":"daily","at":"09:00","tz":"UTC"}"#);
        assert!(Digest::from_stored(Some(&json)).is_some());
        assert!(Digest::from_stored(Some(r#"{"every":"hourly"}"#)).is_some());
        assert!(Digest::from_stored(Some(r#"{"every":"weekly"}"#)).is_none());
    }

    #[test]
    fn a_closing_digest_is_due_at_once_and_never_typed() {
        assert_eq!(
            DigestSpec::parse_args("closing").unwrap_err(),
            DigestError::Syntax
        );
        let stored = serde_json::to_string(&DigestSpec::Closing).unwrap();
        assert_eq!(stored, r#"{"every":"closing"}"#);
        let d = Digest::from_stored(Some(&stored)).unwrap();
        let now = at("2026-12-01T21:00:00Z");
        assert_eq!(d.next_due(now), now);
    }

    fn entry(user: Option<&str>, id: i64, text: &str) -> Entry {
        Entry {
            username: user.map(str::to_owned),
            title: "News of the day".into(),
            message_id: id,
            text: text.into(),
        }
    }

    #[test]
    fn entries_are_linked_or_titled_and_cut_to_first_words() {
        let lines = render(
            "Digest: 2 posts",
            &[
                entry(Some("news"), 7, "one two three"),
                entry(None, 8, &"word ".repeat(30)),
            ],
            MAX_UNITS,
        );
        assert_eq!(lines.len(), 1);
        let expect = format!(
            "Digest: 2 posts\n• https://t.me/news/7 — one two three\n• News of the day — {}…",
            ["word"; 12].join(" ")
        );
        assert_eq!(lines[0], expect);
        assert_eq!(entry_line(&entry(Some("a"), 1, "")), "• https://t.me/a/1");
    }

    #[test]
    fn a_long_digest_splits_between_entries_in_utf16_units() {
        // Emoji are two UTF-16 units each: the split counts units, not chars.
        let text = "😀😀😀😀😀 ".repeat(12);
        let entries: Vec<Entry> = (1..=200).map(|i| entry(Some("news"), i, &text)).collect();
        let parts = render("Digest", &entries, MAX_UNITS);
        assert!(parts.len() > 1);
        let mut seen = Vec::new();
        for p in &parts {
            assert!(units(p) <= MAX_UNITS, "{} units", units(p));
            for line in p.lines().filter(|l| l.starts_with('•')) {
                // Every line is a whole entry.
                let id: i64 = line
                    .trim_start_matches("• https://t.me/news/")
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(line, entry_line(&entry(Some("news"), id, &text)));
                seen.push(id);
            }
        }
        assert_eq!(seen, (1..=200).collect::<Vec<_>>());
        assert!(parts[0].starts_with("Digest\n"));
        assert!(!parts[1].starts_with("Digest"));
    }
}
