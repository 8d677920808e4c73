//! Dead letters as an operator handles them (`kuryer dead-letters`, the
//! `/dead_letters` routes, the status page): replayed back through the path
//! they came by, discarded, shown with secrets and personal data redacted.
//!
//! **A post** is recorded again exactly as its poller records one
//! (`Store::record_post`, the post and its channel's mark in one
//! transaction, detected now) and, in the running daemon of the instance
//! that owns its channel, published to the registry as the poller publishes
//! it; elsewhere (the command line, another instance) its deliveries are
//! owed in the database and the owner's sweep sends them. A post already
//! recorded is not recorded twice, and each delivery has one row
//! (`forwarded_messages`' unique key) and one dedup key: a post replayed
//! twice is delivered once.
//!
//! **An update** that still cannot be parsed fails again at once; one that
//! parses is handed to the running update loop (`replaying`), which takes
//! it before its next `getUpdates` and handles it like a fresh one.
//!
//! A replay that fails again returns the dead letter to `waiting` with the
//! new reason and the earlier ones.

use std::sync::Arc;

use chrono::{DateTime, Duration as Age, Utc};
use std::time::Duration;

use serde_json::Value;

use crate::pipeline::Pipeline;
use crate::store::{Claim, Store, StoreError, new_post};
use crate::telemetry::events;
use kuryer_actors::model::Post;

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replayed {
    /// The post is recorded again; `published`: this process fanned it out
    /// at once (otherwise the owner's sweep delivers it). `owed_again`: a
    /// post recorded before whose deliveries Telegram refused: that many
    /// failed deliveries are owed again, for the sweep to send.
    Post {
        recorded: bool,
        published: bool,
        #[serde(default)]
        owed_again: u64,
    },
    /// The update is handed to the running update loop.
    UpdateHanded,
}

/// Why a replay or discard did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no dead letter {0}")]
    NotFound(i64),
    #[error("dead letter {id} is {state}, not waiting")]
    NotWaiting { id: i64, state: String },
    /// It failed again and waits again; `reasons` oldest first.
    #[error("dead letter {id} failed again: {reason}")]
    FailedAgain {
        id: i64,
        reason: String,
        reasons: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays dead letter `id`; `pipeline` is the running daemon's, absent on
/// the command line.
pub async fn replay(
    store: &Store,
    pipeline: Option<&Pipeline>,
    id: i64,
) -> Result<Replayed, ReplayError> {
    let (kind, raw) = match store.dead_letter_claim(id).await? {
        Claim::Taken { kind, raw } => (kind, raw),
        Claim::NotFound => return Err(ReplayError::NotFound(id)),
        Claim::NotWaiting(state) => return Err(ReplayError::NotWaiting { id, state }),
    };
    let outcome = if kind == "post" {
        replay_post(store, pipeline, &raw).await
    } else {
        check_update(&raw).map(|()| Replayed::UpdateHanded)
    };
    match outcome {
        Ok(done) => {
            // A handed update stays `replaying` until its loop takes it.
            if kind == "post" {
                store.dead_letter_replayed(id).await?;
            }
            let how = match &done {
                Replayed::Post {
                    published: true, ..
                } => "recorded and published",
                Replayed::Post {
                    owed_again: 1.., ..
                } => "its refused deliveries are owed again; the owner's sweep sends them",
                Replayed::Post { .. } => "recorded; the owner's sweep delivers it",
                Replayed::UpdateHanded => "handed to the update loop",
            };
            events::dead_letter_replayed(id, &kind, how);
            Ok(done)
        }
        Err(reason) => Err(failed_again(store, id, &kind, &reason).await?),
    }
}

/// Returns a dead letter whose replay failed with `reason` to `waiting`.
pub async fn failed_again(
    store: &Store,
    id: i64,
    kind: &str,
    reason: &str,
) -> Result<ReplayError, StoreError> {
    let reasons = store.dead_letter_failed_again(id, reason).await?;
    events::dead_letter_replay_failed(id, kind, &reason);
    Ok(ReplayError::FailedAgain {
        id,
        reason: reason.to_owned(),
        reasons,
    })
}

/// Records the kept post again and publishes it where its poller would.
async fn replay_post(
    store: &Store,
    pipeline: Option<&Pipeline>,
    raw: &[u8],
) -> Result<Replayed, String> {
    let mut post: Post = serde_json::from_slice(raw).map_err(|_| {
        "the post was kept before replays existed (as text, not JSON); it cannot be replayed"
            .to_owned()
    })?;
    let kept = post.clone();
    // Detected again now: a replayed post is new to the delivery path (the
    // resume window counts from its replay).
    post.detected_at = chrono::Utc::now();
    // The reason is the store's error: an operation and PostgreSQL's
    // message, never the post's text.
    let recorded = store
        .record_post(&new_post(&post))
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    let owner = pipeline.filter(|p| {
        p.ownership()
            .is_none_or(|o| o.owns_channel(post.channel_id))
    });
    let published = match owner {
        Some(p) if recorded => p.publish(Arc::new(post)).await,
        _ => false,
    };
    // Recorded before (a post Telegram refused by id, or one replayed
    // already): its failed deliveries are owed again, under the post's
    // own detection day, and the sweep sends them — only those, so no
    // destination that had it gets it twice.
    let mut owed_again = 0;
    if !recorded {
        owed_again = store
            .reowe_failed_deliveries(&kept)
            .await
            .map_err(|e| e.to_string())?;
        if owed_again > 0
            && let Some(p) = owner
            && let Some(&first) = kept.message_ids.first()
        {
            p.owe_again(kept.channel_id, first);
        }
    }
    Ok(Replayed::Post {
        recorded,
        published,
        owed_again,
    })
}

/// An update that still cannot be read fails again at once.
fn check_update(raw: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<teloxide::types::Update>(raw) {
        Ok(u) if !matches!(u.kind, teloxide::types::UpdateKind::Error(_)) => Ok(()),
        _ => Err("the update still cannot be parsed by this kuryer".to_owned()),
    }
}

/// Discards dead letter `id`.
pub async fn discard(store: &Store, id: i64) -> Result<(), ReplayError> {
    match store.dead_letter_discard(id).await? {
        Claim::Taken { kind, .. } => {
            events::dead_letter_discarded(id, &kind);
            Ok(())
        }
        Claim::NotFound => Err(ReplayError::NotFound(id)),
        Claim::NotWaiting(state) => Err(ReplayError::NotWaiting { id, state }),
    }
}

/// `--since` and `?since=`: an RFC 3339 time, or an age such as `90s`, `30m`, `6h`, `2d`.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
        format!("since {s:?}: expected an RFC 3339 time or an age like 30m, 6h, 2d")
    })?;
    let age = match unit {
        "s" => Age::seconds(n),
        "m" => Age::minutes(n),
        "h" => Age::hours(n),
        "d" => Age::days(n),
        _ => return Err(format!("since {s:?}: the age's unit is s, m, h or d")),
    };
    Ok(Utc::now() - age)
}

/// Keys whose string values are kept when redacting: they name kinds and
/// types, never a person or what they wrote.
const KEEP_STRINGS: &[&str] = &["type", "kind", "media", "status", "parse_mode"];

/// Objects that describe a person: every value inside is redacted, ids
/// included.
const PERSONS: &[&str] = &[
    "from",
    "user",
    "contact",
    "new_chat_member",
    "old_chat_member",
    "sender_chat",
    "forward_from",
    "via_bot",
];

/// The raw update or post for a person to read: pretty JSON, or the text
/// as kept when it is not JSON. `redact`: every string but kinds and types,
/// and everything describing a person, replaced by its length.
pub fn render(raw: &[u8], redact: bool) -> String {
    match serde_json::from_slice::<Value>(raw) {
        Ok(mut v) => {
            if redact {
                redact_value(&mut v, false);
            }
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) if redact => format!("<{} bytes, not JSON, redacted>", raw.len()),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

fn redact_value(v: &mut Value, person: bool) {
    match v {
        Value::String(s) => *s = format!("<redacted {} chars>", s.chars().count()),
        Value::Number(_) | Value::Bool(_) if person => *v = Value::String("<redacted>".into()),
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, person)),
        Value::Object(o) => {
            // A private chat is a person too.
            let person = person || o.get("type").and_then(Value::as_str) == Some("private");
            for (k, x) in o.iter_mut() {
                if x.is_string() && KEEP_STRINGS.contains(&k.as_str()) {
                    continue;
                }
                redact_value(x, person || PERSONS.contains(&k.as_str()));
            }
        }
        _ => {}
    }
}

/// How often the daemon reads the waiting dead letters into the gauge.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(15);

/// Sets `kuryer_dead_letters_waiting` from the database (the whole
/// installation's, whichever process kept or settled them).
pub async fn refresh_gauge(store: &Store) -> Result<(), StoreError> {
    let counts = store.dead_letter_counts().await?;
    for kind in ["update", "post"] {
        let n = counts
            .iter()
            .filter(|(k, s, _)| k == kind && s == "waiting")
            .map(|(_, _, n)| *n)
            .sum();
        events::dead_letters_waiting(kind, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_the_shape_and_hides_people_and_text() {
        let raw = br#"{"update_id":7,"message":{"message_id":3,"text":"my secret words",
            "from":{"id":4242,"first_name":"Ann","is_bot":false},
            "chat":{"id":4242,"type":"private","username":"ann"}}}"#;
        let shown = render(raw, true);
        for gone in ["my secret words", "4242", "Ann", "\"ann\""] {
            assert!(!shown.contains(gone), "{gone} in {shown}");
        }
        assert!(shown.contains("\"private\""), "{shown}");
        assert!(shown.contains("\"update_id\": 7"), "{shown}");
        assert!(render(raw, false).contains("my secret words"));
        assert_eq!(render(b"\x00abc", true), "<4 bytes, not JSON, redacted>");
    }
}
