//! Quiet hours: a daily span of local time (in the subscriber's time zone)
//! during which a subscription's posts are held and delivered after it,
//! in order. Stored as JSON in `subscriptions.quiet`.
//!
//! The one question — "is this instant quiet, and when does quiet end?" —
//! is [`Quiet::quiet_until`], a pure function of `now`, so it is tested
//! with exact instants across midnight and daylight-saving changes.
//!
//! A span is a pair of instants computed from the wall clock: it starts at
//! the start time of some local day and ends at the next occurrence of the
//! end time (the same day, or the next when the span crosses midnight).
//! A wall time that does not exist (skipped by a spring-forward change) is
//! read as the same time after the jump (02:30 in Berlin on the last Sunday
//! of March is 03:30 CEST); a repeated one (the autumn fold) is its first
//! occurrence. So a 23:00–07:00 span lasts 7 hours of real time the night
//! clocks go forward and 9 the night they go back, as its owner expects.

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// What a user sets: the JSON of `subscriptions.quiet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietSpec {
    /// Local start, `HH:MM`.
    pub from: String,
    /// Local end, `HH:MM`; before `from` when the span crosses midnight.
    pub to: String,
    /// IANA time zone, e.g. `Asia/Tashkent`.
    pub tz: String,
}

/// Why quiet hours cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietError {
    /// Not `HH:MM-HH:MM ZONE` or not the JSON of a [`QuietSpec`].
    #[error("quiet hours are written HH:MM-HH:MM Area/City, e.g. 23:00-07:00 Asia/Tashkent")]
    Syntax,
    /// A time that is not `HH:MM` (00:00 to 23:59).
    #[error("{0:?} is not a time of day (HH:MM)")]
    Time(String),
    /// Start and end are the same.
    #[error("quiet hours must not start and end at the same time")]
    Empty,
    /// An unknown time zone.
    #[error("unknown time zone {0:?}")]
    Zone(String),
}

/// Compiled quiet hours.
#[derive(Debug, Clone)]
pub struct Quiet {
    start: Time,
    end: Time,
    tz: TimeZone,
    /// Holds every post (a digest subscription, `digest.rs`): the stored
    /// marker [`DIGEST_HOLD`] the subscription queries put in place of the
    /// quiet hours while a digest is set.
    always: bool,
}

/// What the subscription queries read instead of the quiet hours of a
/// subscription with a digest: hold everything, the digest sends it.
pub const DIGEST_HOLD: &str = r#"{"hold":"digest"}"#;

/// A wall-clock `HH:MM` (also the digest's time of day); `None` when it
/// is not one.
pub(crate) fn parse_hh_mm(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Time::new(h, m, 0, 0).ok()
}

fn parse_time(s: &str) -> Result<Time, QuietError> {
    parse_hh_mm(s).ok_or_else(|| QuietError::Time(s.to_owned()))
}

impl QuietSpec {
    /// Parses what a user types: `23:00-07:00 Asia/Tashkent`.
    pub fn parse_args(s: &str) -> Result<Self, QuietError> {
        let mut words = s.split_whitespace();
        let (span, tz) = (words.next(), words.next());
        let (Some(span), Some(tz), None) = (span, tz, words.next()) else {
            return Err(QuietError::Syntax);
        };
        let (from, to) = span.split_once('-').ok_or(QuietError::Syntax)?;
        let spec = Self {
            from: from.to_owned(),
            to: to.to_owned(),
            tz: tz.to_owned(),
        };
        spec.compile()?;
        Ok(spec)
    }

    /// Reads the stored JSON.
    pub fn from_json(json: &str) -> Result<Self, QuietError> {
        serde_json::from_str(json).map_err(|_| QuietError::Syntax)
    }

    /// Checks and compiles it.
    pub fn compile(&self) -> Result<Quiet, QuietError> {
        let start = parse_time(&self.from)?;
        let end = parse_time(&self.to)?;
        if start == end {
            return Err(QuietError::Empty);
        }
        let tz = TimeZone::get(&self.tz).map_err(|_| QuietError::Zone(self.tz.clone()))?;
        Ok(Quiet {
            start,
            end,
            tz,
            always: false,
        })
    }
}

fn to_jiff(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millisecond(t.timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn from_jiff(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.as_millisecond()).unwrap_or_default()
}

impl Quiet {
    /// Compiles stored JSON; `None` when there is none. Stored quiet hours
    /// that no longer compile (a time zone gone from the system's database)
    /// hold nothing (and say so): a post delivered at night beats one held
    /// for ever.
    pub fn from_stored(json: Option<&str>) -> Option<Self> {
        let t = json?.trim();
        if t.is_empty() || t == "null" || t == "{}" {
            return None;
        }
        if t.replace(' ', "") == DIGEST_HOLD {
            return Some(Self {
                start: Time::midnight(),
                end: Time::midnight(),
                tz: TimeZone::UTC,
                always: true,
            });
        }
        match QuietSpec::from_json(t).and_then(|s| s.compile()) {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::warn!(error = %e, "Stored quiet hours do not compile; not holding.");
                None
            }
        }
    }

    /// The instant a local wall time of `day` happens (see the module doc
    /// for gaps and folds).
    fn instant(&self, day: Date, time: Time) -> Option<Timestamp> {
        self.tz.to_timestamp(day.to_datetime(time)).ok()
    }

    /// When `now` is inside quiet hours, the instant they end; `None` when
    /// it is not.
    pub fn quiet_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.always {
            // Held until the digest sends it; "a day from now" keeps it in
            // every window that reads held posts.
            return Some(now + chrono::TimeDelta::days(1));
        }
        let now = to_jiff(now);
        let today = self.tz.to_datetime(now).date();
        let crosses = self.start > self.end;
        // A span that began yesterday may still run (when it crosses midnight).
        for day in [today.yesterday().ok()?, today] {
            let start = self.instant(day, self.start)?;
            let end_day = if crosses { day.tomorrow().ok()? } else { day };
            let end = self.instant(end_day, self.end)?;
            if start <= now && now < end {
                return Some(from_jiff(end));
            }
        }
        None
    }

    /// When a post detected at `at` is due: `at` itself, or the end of the
    /// quiet hours it fell in.
    pub fn due(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.quiet_until(at).unwrap_or(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(args: &str) -> Quiet {
        QuietSpec::parse_args(args).unwrap().compile().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn across_midnight_in_tashkent() {
        // Asia/Tashkent is UTC+5 all year.
        let night = q("23:00-07:00 Asia/Tashkent");
        // 22:59:59 local: not yet.
        assert_eq!(night.quiet_until(at("2026-03-10T17:59:59Z")), None);
        // 23:00 local: quiet until 07:00 local the next day (02:00 UTC).
        assert_eq!(
            night.quiet_until(at("2026-03-10T18:00:00Z")),
            Some(at("2026-03-11T02:00:00Z"))
        );
        // 00:30 local, after midnight: the span that began yesterday.
        assert_eq!(
            night.quiet_until(at("2026-03-10T19:30:00Z")),
            Some(at("2026-03-11T02:00:00Z"))
        );
        assert_eq!(
            night.quiet_until(at("2026-03-11T01:59:59Z")),
            Some(at("2026-03-11T02:00:00Z"))
        );
        // 07:00 local: over.
        assert_eq!(night.quiet_until(at("2026-03-11T02:00:00Z")), None);
        assert_eq!(night.quiet_until(at("2026-03-11T09:00:00Z")), None);
        // A daytime span does not cross midnight.
        let lunch = q("13:00-14:30 Asia/Tashkent");
        assert_eq!(
            lunch.quiet_until(at("2026-03-11T08:10:00Z")),
            Some(at("2026-03-11T09:30:00Z"))
        );
        assert_eq!(lunch.quiet_until(at("2026-03-11T09:30:00Z")), None);
        assert_eq!(lunch.quiet_until(at("2026-03-11T07:59:00Z")), None);
    }

    #[test]
    fn across_the_spring_dst_change_in_berlin() {
        // 2026-03-29 (last Sunday of March): 02:00 CET → 03:00 CEST at 01:00 UTC.
        let night = q("23:00-07:00 Europe/Berlin");
        // 23:00 CET on the 28th = 22:00 UTC; 07:00 CEST on the 29th = 05:00 UTC:
        // seven hours of real time.
        assert_eq!(
            night.quiet_until(at("2026-03-28T22:00:00Z")),
            Some(at("2026-03-29T05:00:00Z"))
        );
        assert_eq!(
            night.quiet_until(at("2026-03-29T04:59:59Z")),
            Some(at("2026-03-29T05:00:00Z"))
        );
        assert_eq!(night.quiet_until(at("2026-03-29T05:00:00Z")), None);
        // The next evening starts at 23:00 CEST = 21:00 UTC.
        assert_eq!(night.quiet_until(at("2026-03-29T20:59:59Z")), None);
        assert_eq!(
            night.quiet_until(at("2026-03-29T21:00:00Z")),
            Some(at("2026-03-30T05:00:00Z"))
        );
        // An end inside the skipped hour: 02:30 is read as 03:30 CEST (01:30 UTC).
        let gap = q("01:00-02:30 Europe/Berlin");
        assert_eq!(
            gap.quiet_until(at("2026-03-29T00:00:00Z")),
            Some(at("2026-03-29T01:30:00Z"))
        );
        assert_eq!(gap.quiet_until(at("2026-03-29T01:30:00Z")), None);
    }

    #[test]
    fn across_the_autumn_dst_change_in_berlin() {
        // 2026-10-25 (last Sunday of October): 03:00 CEST → 02:00 CET at 01:00 UTC.
        let night = q("23:00-07:00 Europe/Berlin");
        // 23:00 CEST on the 24th = 21:00 UTC; 07:00 CET on the 25th = 06:00 UTC:
        // nine hours of real time.
        assert_eq!(
            night.quiet_until(at("2026-10-24T21:00:00Z")),
            Some(at("2026-10-25T06:00:00Z"))
        );
        assert_eq!(night.quiet_until(at("2026-10-24T20:59:59Z")), None);
        // 02:30 happens twice; a span starting then starts at the first (CEST).
        let fold = q("02:30-04:00 Europe/Berlin");
        assert_eq!(
            fold.quiet_until(at("2026-10-25T00:30:00Z")),
            Some(at("2026-10-25T03:00:00Z"))
        );
        assert_eq!(fold.quiet_until(at("2026-10-25T00:29:59Z")), None);
        assert_eq!(
            fold.due(at("2026-10-25T01:45:00Z")),
            at("2026-10-25T03:00:00Z")
        );
        assert_eq!(
            fold.due(at("2026-10-25T03:00:00Z")),
            at("2026-10-25T03:00:00Z")
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let e = |s: &str| QuietSpec::parse_args(s).unwrap_err();
        assert_eq!(e("23:00-07:00"), QuietError::Syntax);
        assert_eq!(e("23:00 Asia/Tashkent"), QuietError::Syntax);
        assert_eq!(
            e("24:00-07:00 Asia/Tashkent"),
            QuietError::Time("24:00".into())
        );
        assert_eq!(e("07:00-07:00 Asia/Tashkent"), QuietError::Empty);
        assert_eq!(
            e("23:00-07:00 Mars/Olympus"),
            QuietError::Zone("Mars/Olympus".into())
        );
        assert!(Quiet::from_stored(Some(r#"{"from":"1","to":"2","tz":"UTC"}"#)).is_none());
        assert!(Quiet::from_stored(None).is_none());
        // A digest holds everything.
        let held = Quiet::from_stored(Some(DIGEST_HOLD)).unwrap();
        assert!(held.quiet_until(at("2026-03-10T12:00:00Z")).is_some());
    }
}

/// The subscriptions whose posts are being held, shared by the registry
/// (which holds new posts of a quiet subscription instead of queueing them)
/// and the daemon's resume and sweep (which hold what is owed while quiet,
/// and release it in order after). A held delivery is simply not queued:
/// it stays owed in the database, with no outcome row.
///
/// Order after quiet hours: once a subscription holds, every new post of it
/// is held too — even after its hours ended — until a release pass has
/// queued everything owed up to the newest post held ([`QuietHolds::try_release`]);
/// so the backlog always reaches the chat before newer posts.
#[derive(Debug, Default)]
pub struct QuietHolds {
    /// Subscription → the newest held post's first message id.
    held: std::sync::Mutex<std::collections::HashMap<i64, i32>>,
}

impl QuietHolds {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, i32>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that a post of the subscription was held.
    pub fn hold(&self, subscription_id: i64, message_id: i32) {
        let mut m = self.map();
        let e = m.entry(subscription_id).or_insert(message_id);
        *e = (*e).max(message_id);
    }

    /// True while the subscription holds its posts.
    pub fn is_holding(&self, subscription_id: i64) -> bool {
        self.map().contains_key(&subscription_id)
    }

    /// A release pass queued every owed delivery of the subscription up to
    /// post `seen`: it stops holding unless a newer post was held meanwhile
    /// (then the next pass takes that one too). True when released.
    pub fn try_release(&self, subscription_id: i64, seen: i32) -> bool {
        let mut m = self.map();
        match m.get(&subscription_id) {
            Some(&newest) if newest > seen => false,
            _ => m.remove(&subscription_id).is_some(),
        }
    }

    /// Subscriptions holding now.
    pub fn holding(&self) -> usize {
        self.map().len()
    }
}
