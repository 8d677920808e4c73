//! The delivery report: what arrived compared with what should have, and
//! the attribution of a `sendMessage` text to the channel post it came from.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

use super::state::State;

/// What was delivered, compared with what should have been. Every count but
/// `unexpected` is about the expected posts only, so a report can be asked
/// about a subset of chats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryReport {
    /// Distinct expected posts.
    pub expected: u64,
    /// Expected posts that arrived at least once.
    pub delivered: u64,
    /// Extra copies of an expected post in its chat (a post sent three times
    /// counts 2; an album counts by its most repeated part).
    pub duplicates: u64,
    /// Expected posts that never arrived.
    pub lost: u64,
    /// Distinct posts that arrived in a chat where they were not expected,
    /// plus messages that could not be attributed to any channel post.
    pub unexpected: u64,
    /// Expected posts that arrived, per (destination chat, source channel),
    /// after a post with a higher id had already arrived (first copies
    /// compared).
    pub out_of_order: u64,
    /// Expected albums of which no single request carried every part that
    /// arrived.
    pub albums_split: u64,
    /// Parts of delivered albums that never arrived (protected parts, which
    /// cannot be copied, are not counted).
    pub album_parts_missing: u64,
    /// Latency from [`FakeTelegram::post`](super::FakeTelegram::post) to the
    /// first copy, median.
    pub latency_p50_ms: f64,
    /// Latency, 99th percentile.
    pub latency_p99_ms: f64,
    /// Latency, maximum.
    pub latency_max_ms: f64,
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} delivered {} lost {} duplicates {} unexpected {} out_of_order {} \
             albums_split {} album_parts_missing {} latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            self.expected,
            self.delivered,
            self.lost,
            self.duplicates,
            self.unexpected,
            self.out_of_order,
            self.albums_split,
            self.album_parts_missing,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms
        )
    }
}

impl State {
    pub(super) fn report(&self, expected: &[(i64, i64, i32)]) -> DeliveryReport {
        /// What arrived of one post in one chat.
        struct Seen {
            first_at: Instant,
            /// Copies per message id of the post.
            copies: HashMap<i32, u32>,
            /// Parts per request.
            per_request: HashMap<u64, u32>,
        }

        let post_of = |source: i64, id: i32| {
            self.channels
                .get(&source)
                .map_or(id, |channel| channel.post_of(id))
        };
        let expected: HashSet<(i64, i64, i32)> = expected
            .iter()
            .map(|&(dest, source, id)| (dest, source, post_of(source, id)))
            .collect();

        let mut seen: HashMap<(i64, i64, i32), Seen> = HashMap::new();
        let mut unexpected: HashSet<(i64, i64, i32)> = HashSet::new();
        let mut highest: HashMap<(i64, i64), i32> = HashMap::new();
        let mut report = DeliveryReport {
            expected: expected.len() as u64,
            ..DeliveryReport::default()
        };
        for (&dest, chat) in &self.chats {
            for r in &chat.received {
                let Some((source, id)) = r.source else {
                    report.unexpected += 1;
                    continue;
                };
                let key = (dest, source, post_of(source, id));
                if !expected.contains(&key) {
                    unexpected.insert(key);
                    continue;
                }
                let s = match seen.entry(key) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let high = highest.entry((dest, source)).or_insert(key.2);
                        if key.2 < *high {
                            report.out_of_order += 1;
                        } else {
                            *high = key.2;
                        }
                        e.insert(Seen {
                            first_at: r.received_at,
                            copies: HashMap::new(),
                            per_request: HashMap::new(),
                        })
                    }
                };
                *s.copies.entry(id).or_default() += 1;
                *s.per_request.entry(r.request_id).or_default() += 1;
            }
        }
        report.unexpected += unexpected.len() as u64;
        report.delivered = seen.len() as u64;

        let mut latencies = Vec::with_capacity(seen.len());
        for (&(_, source, post), s) in &seen {
            let copies = s.copies.values().copied().max().unwrap_or(1);
            report.duplicates += u64::from(copies - 1);
            let Some(channel) = self.channels.get(&source) else {
                continue;
            };
            if let Some(parts) = channel.album_parts.get(&post) {
                let distinct = s.copies.len();
                let together = s.per_request.values().copied().max().unwrap_or(0);
                if parts.len() > 1 && (together as usize) < distinct {
                    report.albums_split += 1;
                }
                let missing = parts
                    .iter()
                    .filter(|id| channel.message(**id).is_some_and(|m| !m.protected))
                    .filter(|id| !s.copies.contains_key(id))
                    .count();
                report.album_parts_missing += missing as u64;
            }
            if let Some(message) = channel.message(post) {
                let latency = s.first_at.saturating_duration_since(message.posted_at);
                latencies.push(latency.as_secs_f64() * 1000.0);
            }
        }
        report.lost = report.expected - report.delivered;
        latencies.sort_by(f64::total_cmp);
        report.latency_p50_ms = percentile(&latencies, 0.50);
        report.latency_p99_ms = percentile(&latencies, 0.99);
        report.latency_max_ms = latencies.last().copied().unwrap_or(0.0);
        report
    }
}

/// Nearest-rank percentile of sorted values; 0 when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The channel message a `sendMessage` text came from: among the channel
/// messages with exactly this text, the newest one this chat has not received
/// yet, else the newest.
pub(super) fn attribute(
    texts: &HashMap<String, Vec<(i64, i32)>>,
    copies: &HashMap<(i64, i32), u32>,
    text: &str,
) -> Option<(i64, i32)> {
    let candidates = texts.get(text)?;
    candidates
        .iter()
        .rev()
        .find(|c| !copies.contains_key(c))
        .or_else(|| candidates.last())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 0.5) - 2.0).abs() < f64::EPSILON);
        assert!((percentile(&v, 0.99) - 4.0).abs() < f64::EPSILON);
        assert!(percentile(&[], 0.5).abs() < f64::EPSILON);
    }
}
