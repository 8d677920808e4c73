//! The rate-limit audit `/report` carries: Telegram's limits checked from
//! the arrival times alone, independent of the fake's own enforcement, so a
//! run that stayed under them shows it from what the fake received.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::bot_api_routes::BotApiFace;

/// Most requests within any window of `window` among sorted instants (a
/// window is `(t − window, t]`, as the fake and Telegram count).
fn max_in_window(sorted: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut i = 0;
    for j in 0..sorted.len() {
        while sorted[j].duration_since(sorted[i]) >= window {
            i += 1;
        }
        best = best.max(j - i + 1);
    }
    best
}

/// An audit of the limits from the arrival times alone, independent of the
/// fake's own enforcement: the densest second of each bot, the densest
/// second of each private chat and minute of each group, and each bot's
/// sustained rate after `skip_s` of ramp-up.
pub(super) fn audit(face: &BotApiFace, pairs: &[(i64, i64)], skip_s: f64) -> Value {
    let dests: HashSet<i64> = pairs.iter().map(|p| p.0).collect();
    let mut per_bot: HashMap<i64, Vec<Instant>> = HashMap::new();
    let mut items: HashMap<i64, Vec<(Instant, bool)>> = HashMap::new();
    let (mut max_private_1s, mut max_group_60s) = (0usize, 0usize);
    for dest in dests {
        let times = request_times(face, dest, &mut per_bot, &mut items);
        if face.groups.contains(&dest) {
            max_group_60s = max_group_60s.max(max_in_window(&times, Duration::from_secs(60)));
        } else {
            max_private_1s = max_private_1s.max(max_in_window(&times, Duration::from_secs(1)));
        }
    }
    let mut bots = Vec::new();
    let mut max_bot_1s = 0usize;
    let mut max_bot_items_1s = 0usize;
    for (bot, mut times) in per_bot {
        times.sort();
        max_bot_1s = max_bot_1s.max(max_in_window(&times, Duration::from_secs(1)));
        let mut line = bot_rates(bot, &times, skip_s);
        let mut its = items.remove(&bot).unwrap_or_default();
        its.sort_by_key(|(t, _)| *t);
        let free: Vec<Instant> = its.iter().filter(|(_, p)| !p).map(|(t, _)| *t).collect();
        let all: Vec<Instant> = its.iter().map(|(t, _)| *t).collect();
        max_bot_items_1s = max_bot_items_1s.max(max_in_window(&free, Duration::from_secs(1)));
        // Items after the same ramp-up as the requests, over the same span.
        let start = times[0] + Duration::from_secs_f64(skip_s.max(0.0));
        let span = times
            .last()
            .map_or(0.0, |b| b.saturating_duration_since(start).as_secs_f64());
        let rate = |v: &[Instant]| {
            let n = v.iter().filter(|t| **t >= start).count();
            if span > 0.0 { n as f64 / span } else { 0.0 }
        };
        line["items"] = json!(all.len());
        line["steady_items_per_s"] = json!(rate(&all));
        line["steady_free_items_per_s"] = json!(rate(&free));
        bots.push(line);
    }
    let l = face.limits;
    json!({
        "enforced": l.enforce,
        "allowed_per_bot_per_s": l.per_bot_per_second,
        "allowed_paid_per_bot_per_s": l.paid_per_bot_per_second,
        "allowed_per_chat_per_s": l.per_chat_per_second,
        "allowed_per_group_per_min": l.per_group_per_minute,
        "max_bot_requests_in_1s": max_bot_1s,
        "max_private_chat_requests_in_1s": max_private_1s,
        "max_group_requests_in_60s": max_group_60s,
        "max_bot_free_items_in_1s": max_bot_items_1s,
        "bots": bots,
    })
}

/// The sorted arrival times of the requests that reached `dest`, each also
/// added to its bot's list in `per_bot`. One request may carry an album's
/// parts: a request counts once here, and each message it delivered once
/// in `items` (with whether it carried `allow_paid_broadcast`), as the
/// fake's own per-bot limit counts them (`fake_bot_api/limits.rs`).
fn request_times(
    face: &BotApiFace,
    dest: i64,
    per_bot: &mut HashMap<i64, Vec<Instant>>,
    items: &mut HashMap<i64, Vec<(Instant, bool)>>,
) -> Vec<Instant> {
    let received = face.fake.received(dest);
    let mut seen = HashSet::new();
    let mut times = Vec::new();
    for r in &received {
        items
            .entry(r.bot_id)
            .or_default()
            .push((r.received_at, r.allow_paid_broadcast));
        if seen.insert(r.request_id) {
            times.push(r.received_at);
            per_bot.entry(r.bot_id).or_default().push(r.received_at);
        }
    }
    times.sort();
    times
}

/// One bot's line of the audit: its requests, and its sustained rate over
/// the requests after `skip_s` of ramp-up (`times` sorted, not empty).
fn bot_rates(bot: i64, times: &[Instant], skip_s: f64) -> Value {
    let start = times[0] + Duration::from_secs_f64(skip_s.max(0.0));
    let steady: Vec<&Instant> = times.iter().filter(|t| **t >= start).collect();
    let rate = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if steady.len() > 1 && *b > *a => {
            (steady.len() - 1) as f64 / b.duration_since(**a).as_secs_f64()
        }
        _ => 0.0,
    };
    let span = match (times.first(), times.last()) {
        (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    json!({
        "bot_id": bot,
        "requests": times.len(),
        "steady_requests": steady.len(),
        "steady_rate_per_s": rate,
        "span_s": span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densest_window_is_half_open() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let v = [at(0), at(500), at(999), at(1000), at(1999)];
        // (t − 1 s, t]: the request at 0 is out of the window at 1000.
        assert_eq!(max_in_window(&v, Duration::from_secs(1)), 3);
        assert_eq!(max_in_window(&[], Duration::from_secs(1)), 0);
        assert_eq!(max_in_window(&v[..1], Duration::from_secs(1)), 1);
    }
}
