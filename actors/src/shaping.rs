//! What a subscription's settings change in a send: its text
//! transforms applied to a copied text or single caption, and the forum
//! topic every request names; and what a deleted topic's error means.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use teloxide::types::{MessageId, ThreadId};
use teloxide::{ApiError, RequestError};

use crate::model::{Delivery, DeliveryMode};
use crate::outcome::CallResult;
use crate::transform::{CAPTION_LIMIT, TEXT_LIMIT, Transform};

/// What a subscription's settings change in a send: the text or caption
/// after its transforms (`None`: the post's own).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shaped {
    pub(crate) text: Option<(String, Vec<teloxide::types::MessageEntity>)>,
    /// The forum topic every request names (`message_thread_id`).
    pub(crate) thread: Option<ThreadId>,
}

impl Shaped {
    /// The text a plain-text fallback sends.
    pub(crate) fn plain(&self, d: &Delivery) -> String {
        match &self.text {
            Some((t, _)) => t.clone(),
            None => d.post.text.clone().unwrap_or_default(),
        }
    }
}

/// The most subscriptions whose compiled transforms are kept.
pub const MAX_CACHED_TRANSFORMS: usize = 10_000;
/// The most compiled regular expressions kept, all subscriptions together
/// (each may take up to `transform::REGEX_SIZE_LIMIT` compiled and as much
/// again of lazy-DFA cache).
pub const MAX_CACHED_PATTERNS: usize = 2_000;

/// One subscription's compiled transforms, the JSON they were compiled
/// from (a changed setting compiles again), and when last used.
struct Entry {
    json: Option<String>,
    compiled: Option<Arc<Transform>>,
    used: u64,
    patterns: usize,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<i64, Entry>,
    /// Regular expressions in `entries`.
    patterns: usize,
    tick: u64,
}

impl Cache {
    fn remove(&mut self, id: i64) {
        if let Some(e) = self.entries.remove(&id) {
            self.patterns -= e.patterns;
        }
    }

    /// Least recently used first, until both caps hold again (a tenth
    /// below the entry cap, so a full cache is not scanned every insert).
    fn evict(&mut self) {
        if self.entries.len() <= MAX_CACHED_TRANSFORMS && self.patterns <= MAX_CACHED_PATTERNS {
            return;
        }
        let mut by_age: Vec<(u64, i64, usize)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.used, *id, e.patterns))
            .collect();
        by_age.sort_unstable();
        let (mut n, mut patterns) = (self.entries.len(), self.patterns);
        let target = MAX_CACHED_TRANSFORMS - MAX_CACHED_TRANSFORMS / 10;
        let mut gone = Vec::new();
        for (_, id, p) in by_age {
            if n <= target && patterns <= MAX_CACHED_PATTERNS {
                break;
            }
            n -= 1;
            patterns -= p;
            gone.push(id);
        }
        for id in gone {
            self.remove(id);
        }
    }
}

/// Compiled text transforms by subscription, shared by the sender (which
/// uses them) and the registry (which forgets a subscription's when it
/// leaves). Bounded: [`MAX_CACHED_TRANSFORMS`] subscriptions and
/// [`MAX_CACHED_PATTERNS`] regular expressions, the least recently used
/// dropped first (compiled again when next needed).
#[derive(Default)]
pub struct Shaper {
    cache: Mutex<Cache>,
}

impl Shaper {
    /// Drops a subscription's compiled transforms (it was removed).
    pub fn forget(&self, subscription_id: i64) {
        self.lock().remove(subscription_id);
    }

    /// Subscriptions whose transforms are kept, and their regular expressions.
    pub fn cached(&self) -> (usize, usize) {
        let c = self.lock();
        (c.entries.len(), c.patterns)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Nothing in the cache can be left half-changed by a panic.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subscription's transforms applied to the post, where they can
    /// be: a copied text (`sendMessage`) or the caption of one copied media
    /// message (`copyMessage`'s `caption`). Forwards keep the original, and
    /// `copyMessages` (albums) takes no caption.
    pub(crate) fn shape(&self, d: &Delivery) -> Shaped {
        let thread = d.sub.thread_id.map(|t| ThreadId(MessageId(t)));
        let mut shaped = self.shape_text(d);
        shaped.thread = thread;
        shaped
    }

    /// The compiled transforms of `d`'s subscription, compiled (outside
    /// the lock) when not kept or changed.
    fn transform(&self, d: &Delivery) -> Option<Arc<Transform>> {
        let id = d.sub.subscription_id;
        let stored = d.sub.transform.as_deref();
        {
            let mut c = self.lock();
            c.tick += 1;
            let tick = c.tick;
            if let Some(e) = c.entries.get_mut(&id)
                && e.json.as_deref() == stored
            {
                e.used = tick;
                return e.compiled.clone();
            }
        }
        let compiled = Transform::from_stored(stored).map(Arc::new);
        let patterns = compiled.as_ref().map_or(0, |t| t.regex_rules());
        let mut c = self.lock();
        c.remove(id);
        c.tick += 1;
        let used = c.tick;
        c.patterns += patterns;
        c.entries.insert(
            id,
            Entry {
                json: stored.map(str::to_owned),
                compiled: compiled.clone(),
                used,
                patterns,
            },
        );
        c.evict();
        compiled
    }

    fn shape_text(&self, d: &Delivery) -> Shaped {
        if d.sub.transform.is_none() || d.sub.mode != DeliveryMode::Copy || !d.post.copyable {
            if d.sub.transform.is_none() {
                self.forget(d.sub.subscription_id);
            }
            return Shaped::default();
        }
        let Some(tr) = self.transform(d) else {
            return Shaped::default();
        };
        let post = &d.post;
        let limit = match (post.media, post.copy_ids().len()) {
            (None, _) if post.text.is_some() => TEXT_LIMIT,
            (Some(_), 1) => CAPTION_LIMIT,
            _ => return Shaped::default(),
        };
        let text = post.text.as_deref().unwrap_or_default();
        Shaped {
            text: Some(tr.apply(text, &post.entities, limit)),
            thread: None,
        }
    }
}

/// A deleted forum topic: Telegram answers "message thread not found" to
/// any send naming it. The destination (that topic) is gone; the rest of
/// the chat is not.
pub(crate) fn topic_gone(e: &RequestError, shaped: &Shaped) -> Option<CallResult> {
    match e {
        RequestError::Api(ApiError::Unknown(text))
            if shaped.thread.is_some() && text.contains("message thread not found") =>
        {
            Some(CallResult::Gone(TOPIC_DELETED.into()))
        }
        _ => None,
    }
}

/// The reason a destination recorded when its forum topic was deleted.
pub const TOPIC_DELETED: &str = "topic deleted";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DestinationKind;
    use crate::testing::delivery;

    /// A delivery of subscription `id` whose transform has `regexes`
    /// regex rules (a header alone when none).
    fn with_transform(id: i64, regexes: usize) -> Delivery {
        let mut d = delivery(1, id, DestinationKind::Private);
        let rules: Vec<String> = (0..regexes)
            .map(|i| format!(r#"{{"from": "x{i}+", "to": "y", "regex": true}}"#))
            .collect();
        let mut sub = (*d.sub).clone();
        sub.transform = Some(format!(
            r#"{{"header": "h", "replace": [{}]}}"#,
            rules.join(",")
        ));
        d.sub = Arc::new(sub);
        d
    }

    #[test]
    fn a_removed_subscription_is_forgotten_and_the_cache_is_capped() {
        let shaper = Shaper::default();
        let d = with_transform(7, 2);
        assert_eq!(shaper.shape(&d).plain(&d), "h\nt");
        assert_eq!(shaper.cached(), (1, 2));
        shaper.forget(7);
        assert_eq!(shaper.cached(), (0, 0));
        // Subscriptions past the cap: the least recently used go.
        for id in 0..(MAX_CACHED_TRANSFORMS as i64 + 1) {
            shaper.shape(&with_transform(id, 0));
        }
        let (n, _) = shaper.cached();
        assert!(n <= MAX_CACHED_TRANSFORMS, "{n}");
        // Compiled patterns past their cap: 20 a subscription.
        let shaper = Shaper::default();
        let keep = with_transform(-1, 20);
        for id in 0..(MAX_CACHED_PATTERNS as i64 / 20 + 5) {
            shaper.shape(&with_transform(id, 20));
            shaper.shape(&keep); // used all along: never the one evicted
        }
        let (_, patterns) = shaper.cached();
        assert!(patterns <= MAX_CACHED_PATTERNS, "{patterns}");
        assert!(shaper.lock().entries.contains_key(&-1));
    }
}
