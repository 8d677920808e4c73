//! Tests of the schedule at exact instants: no clock, no actor, no slack.

use std::time::{Duration, Instant};

use super::*;
use crate::model::DestinationKind::{Private, Supergroup};
use crate::rate_limiter::limits::LimiterConfig;
use crate::testing::{delivery, pinned};

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Limits at their face value (`safety` 1: no tolerance, round intervals).
pub(super) fn exact(per_bot: f64, per_chat: f64, per_group_per_minute: f64) -> LimiterConfig {
    LimiterConfig {
        per_bot_per_second: per_bot,
        per_chat_per_second: per_chat,
        per_group_per_minute,
        safety: 1.0,
        ..LimiterConfig::default()
    }
}

pub(super) fn schedule(cfg: &LimiterConfig, t0: Instant) -> Schedule {
    Schedule::new(Limits::new(cfg), t0)
}

/// (time since t0, channel, chat) of a send.
pub(super) type Sent = (Duration, i64, i64);

/// Drives a schedule the way the actor does, at exact instants: a pass at
/// t0, then at each moment the schedule asked for or a send completes
/// (`rtt` after it went out, with the outcome `outcome` gives it).
pub(super) fn run(
    s: &mut Schedule,
    t0: Instant,
    rtt: Duration,
    mut outcome: impl FnMut(&Delivery) -> SendOutcome,
) -> Vec<Sent> {
    let mut log = Vec::new();
    let mut out: Vec<(Instant, Dispatch)> = Vec::new();
    let mut now = t0;
    loop {
        let (sends, wake) = s.next_sends(now, 0);
        for d in sends {
            log.push((now - t0, d.delivery.post.channel_id, d.delivery.sub.chat_id));
            out.push((now + rtt, d));
        }
        let next_done = out.iter().map(|(t, _)| *t).min();
        now = match wake.into_iter().chain(next_done).min() {
            Some(t) => t,
            None => break,
        };
        let (done, rest): (Vec<_>, Vec<_>) = out.into_iter().partition(|(t, _)| *t <= now);
        out = rest;
        for (_, d) in done {
            let o = outcome(&d.delivery);
            s.finished(d.lane, d.delivery, o, now);
        }
        assert!(log.len() < 10_000, "the schedule never settles");
    }
    log
}

pub(super) fn done(_: &Delivery) -> SendOutcome {
    SendOutcome::Done
}

#[test]
fn a_bots_sends_are_one_emission_interval_apart() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(10.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=5).map(|c| delivery(1, c, Private)).collect(), t0);
    let log = run(&mut s, t0, Duration::ZERO, done);
    let want: Vec<Sent> = (0..5).map(|i| (ms(100 * i), 1, i as i64 + 1)).collect();
    assert_eq!(log, want);
    assert_eq!((s.queued(), s.in_flight()), (0, 0));
    assert_eq!(s.counters().dispatched, 5);
}

#[test]
fn a_late_or_early_timer_keeps_the_bots_pace() {
    // 100/s at 98.5 %: 10.15 ms apart, with 5 ms of tolerance.
    let cfg = LimiterConfig {
        per_bot_per_second: 100.0,
        per_chat_per_second: 1000.0,
        ..LimiterConfig::default()
    };
    let limits = Limits::new(&cfg);
    let (interval, tolerance) = (limits.lane_interval, limits.tolerance);
    assert_eq!(tolerance, ms(5));
    let t0 = Instant::now();
    let mut s = schedule(&cfg, t0);
    s.enqueue((1..=4).map(|c| delivery(1, c, Private)).collect(), t0);
    let (sends, wake) = s.next_sends(t0, 0);
    assert_eq!(sends.len(), 1);
    // The next send is allowed the tolerance before its theoretical time.
    assert_eq!(wake, Some(t0 + interval - tolerance));
    let (sends, _) = s.next_sends(t0 + interval - tolerance - Duration::from_nanos(1), 0);
    assert!(sends.is_empty());
    let (sends, wake) = s.next_sends(t0 + interval - tolerance, 0);
    assert_eq!(sends.len(), 1);
    // Sent early, yet the pace holds: the third is due at 2 intervals.
    assert_eq!(wake, Some(t0 + interval * 2 - tolerance));
    // A timer that fires late sends once and does not make up for lost time
    // beyond the tolerance.
    let late = t0 + interval * 5;
    let (sends, wake) = s.next_sends(late, 0);
    assert_eq!(sends.len(), 1);
    assert_eq!(wake, Some(late + interval - tolerance));
}

#[test]
fn a_chat_waits_its_interval_after_its_send_completed() {
    // 10/s a private chat; 300/min = 5/s a group: the stricter applies.
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 10.0, 300.0), t0);
    let mut batch: Vec<Delivery> = (0..3).map(|_| delivery(2, 7, Private)).collect();
    batch.extend((0..3).map(|_| delivery(3, -7, Supergroup)));
    s.enqueue(batch, t0);
    let log = run(&mut s, t0, ms(30), done);
    assert_eq!(
        log,
        vec![
            (ms(0), 2, 7),
            (ms(1), 3, -7),
            // Completed at 30 ms, + 100 ms.
            (ms(130), 2, 7),
            // Completed at 31 ms, + 200 ms.
            (ms(231), 3, -7),
            (ms(260), 2, 7),
            (ms(461), 3, -7),
        ]
    );
}

#[test]
fn channels_take_turns() {
    // Channel 1 queued four chats before channel 2 queued two.
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=4).map(|c| delivery(1, c, Private)).collect(), t0);
    s.enqueue(vec![delivery(2, 11, Private), delivery(2, 12, Private)], t0);
    let log = run(&mut s, t0, Duration::ZERO, done);
    assert_eq!(
        log,
        vec![
            (ms(0), 1, 1),
            (ms(1), 2, 11),
            (ms(2), 1, 2),
            (ms(3), 2, 12),
            (ms(4), 1, 3),
            (ms(5), 1, 4),
        ]
    );
}

/// A delivery of `channel` to `chat` for `person` (the subscriber).
pub(super) fn for_person(
    channel: i64,
    chat: i64,
    kind: crate::model::DestinationKind,
    person: i64,
) -> Delivery {
    let mut d = delivery(channel, chat, kind);
    std::sync::Arc::make_mut(&mut d.sub).user_telegram_id = person;
    d
}

#[test]
fn one_person_with_many_busy_channels_takes_one_turn_a_round() {
    // One person owns 4 channels, each fanning out to 40 of their groups, all
    // queued first; then 50 people get one post each of channel 99.
    const HOSTILE: i64 = 1_000_000;
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 1000.0, 60_000.0), t0);
    for channel in 1..=4 {
        s.enqueue(
            (0..40)
                .map(|g| for_person(channel, -(channel * 1000 + g), Supergroup, HOSTILE))
                .collect(),
            t0,
        );
    }
    s.enqueue((1..=50).map(|c| delivery(99, c, Private)).collect(), t0);
    let log = run(&mut s, t0, Duration::ZERO, done);
    assert_eq!(log.len(), 210);
    // Round-robin over channels gave channel 99 one turn in five: the
    // fiftieth person was served after about 250 sends.
    let last = log.iter().rposition(|(_, ch, _)| *ch == 99).unwrap();
    assert!(last < 55, "the 50 people were served by send {last}");
    // That person had one turn a round meanwhile, and their channels took turns.
    let hostile: Vec<i64> = log
        .iter()
        .filter(|(_, ch, _)| *ch != 99)
        .map(|(_, ch, _)| *ch)
        .collect();
    assert_eq!(hostile[..8], [1, 2, 3, 4, 1, 2, 3, 4]);
    assert!(log[..=last].iter().filter(|(_, ch, _)| *ch != 99).count() <= 2);
}

#[test]
fn a_person_ready_again_in_a_round_waits_for_the_next() {
    let mut t = Turns::default();
    // People 1, 2, 3 each one chat of channel 5; person 1 a second chat of
    // channel 6, listed after their first turn.
    t.push(1, 5, 11);
    t.push(2, 5, 21);
    t.push(3, 5, 31);
    assert_eq!(t.pop(), Some(11));
    t.push(1, 6, 12);
    assert_eq!(
        [t.pop(), t.pop(), t.pop(), t.pop()],
        [Some(21), Some(31), Some(12), None]
    );
    assert!(t.is_empty());
}

#[test]
fn a_bots_window_counts_sends_until_a_second_after_they_completed() {
    // 4/s: 250 ms apart, at most 4 in flight or completed within a second.
    // With a 600 ms round trip the GCRA would allow the fifth at 1000 ms;
    // the window holds it until the first completion (600 ms) is a second old.
    let t0 = Instant::now();
    let mut s = schedule(&exact(4.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=5).map(|c| delivery(1, c, Private)).collect(), t0);
    let log = run(&mut s, t0, ms(600), done);
    assert_eq!(
        log,
        vec![
            (ms(0), 1, 1),
            (ms(250), 1, 2),
            (ms(500), 1, 3),
            (ms(750), 1, 4),
            (ms(1600), 1, 5),
        ]
    );
}

#[test]
fn a_window_full_of_sends_in_flight_waits_for_a_completion() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(4.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=5).map(|c| delivery(1, c, Private)).collect(), t0);
    let mut out = Vec::new();
    for i in 0..4 {
        let (sends, _) = s.next_sends(t0 + ms(250 * i), 0);
        out.extend(sends);
    }
    assert_eq!(out.len(), 4);
    // No timer can help: only a completion can.
    let (sends, wake) = s.next_sends(t0 + ms(1000), 0);
    assert!(sends.is_empty());
    assert_eq!(wake, None);
    let first = out.remove(0);
    s.finished(first.lane, first.delivery, SendOutcome::Done, t0 + ms(1200));
    let (sends, wake) = s.next_sends(t0 + ms(1200), 0);
    assert!(sends.is_empty());
    assert_eq!(wake, Some(t0 + ms(2200)));
}

#[test]
fn retry_after_pauses_exactly_that_chat() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=4).map(|c| delivery(1, c, Private)).collect(), t0);
    let mut refused = false;
    let log = run(&mut s, t0, Duration::ZERO, |d| {
        if d.sub.chat_id == 1 && !refused {
            refused = true;
            SendOutcome::RetryAfter(ms(400))
        } else {
            SendOutcome::Done
        }
    });
    assert_eq!(
        log,
        vec![
            (ms(0), 1, 1),
            (ms(1), 1, 2),
            (ms(2), 1, 3),
            (ms(3), 1, 4),
            (ms(400), 1, 1),
        ]
    );
    let c = s.counters();
    assert_eq!((c.dispatched, c.retry_after, c.lane_pauses), (5, 1, 0));
}

#[test]
fn three_chats_refused_within_a_second_pause_the_whole_bot() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=5).map(|c| delivery(1, c, Private)).collect(), t0);
    let mut refused = Vec::new();
    let log = run(&mut s, t0, Duration::ZERO, |d| {
        let chat = d.sub.chat_id;
        if chat <= 3 && !refused.contains(&chat) {
            refused.push(chat);
            SendOutcome::RetryAfter(ms(2000))
        } else {
            SendOutcome::Done
        }
    });
    // The third 429 (at 2 ms) pauses the bot until 2002 ms: chats 4 and 5,
    // never refused, wait too, then go first (they were ready first).
    assert_eq!(
        log,
        vec![
            (ms(0), 1, 1),
            (ms(1), 1, 2),
            (ms(2), 1, 3),
            (ms(2002), 1, 4),
            (ms(2003), 1, 5),
            (ms(2004), 1, 1),
            (ms(2005), 1, 2),
            (ms(2006), 1, 3),
        ]
    );
    let c = s.counters();
    assert_eq!((c.dispatched, c.retry_after, c.lane_pauses), (8, 3, 1));
}

#[test]
fn finished_says_how_a_flood_wait_was_taken() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=3).map(|c| delivery(1, c, Private)).collect(), t0);
    let mut flood = Vec::new();
    for i in 0..3 {
        let now = t0 + ms(i);
        let (sends, _) = s.next_sends(now, 0);
        for d in sends {
            flood.push(s.finished(d.lane, d.delivery, SendOutcome::RetryAfter(ms(50)), now));
        }
    }
    use FloodWait::{Chat, Lane};
    assert_eq!(flood, vec![Some(Chat), Some(Chat), Some(Lane)]);
    let (sends, wake) = s.next_sends(t0 + ms(3), 0);
    assert!(sends.is_empty());
    // Chat 1 is ready at 50 ms, the bot at 52 ms.
    assert_eq!(wake, Some(t0 + ms(50)));
    let (sends, wake) = s.next_sends(t0 + ms(50), 0);
    assert!(sends.is_empty());
    assert_eq!(wake, Some(t0 + ms(51)));
}

#[test]
fn a_transient_failure_retries_after_its_backoff_or_the_chats_interval() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 10.0, 60_000.0), t0);
    // Two posts (channels 1 and 2) to one chat; the first is retried twice.
    s.enqueue(vec![delivery(1, 7, Private), delivery(2, 7, Private)], t0);
    let mut outcomes = vec![
        SendOutcome::Done,
        SendOutcome::Done,
        SendOutcome::Retry(ms(300)),
        SendOutcome::Retry(ms(50)),
    ];
    let log = run(&mut s, t0, Duration::ZERO, |_| outcomes.pop().unwrap());
    assert_eq!(
        log,
        vec![
            (ms(0), 1, 7),
            // 50 ms of backoff, but the chat's 100 ms interval is longer.
            (ms(100), 1, 7),
            (ms(400), 1, 7),
            // The retried post kept its place ahead of the second.
            (ms(500), 2, 7),
        ]
    );
    assert_eq!(s.counters().retried, 2);
}

#[test]
fn a_database_backlog_holds_every_send() {
    let cfg = exact(1000.0, 1000.0, 60_000.0);
    let t0 = Instant::now();
    let mut s = schedule(&cfg, t0);
    s.enqueue(vec![delivery(1, 1, Private)], t0);
    assert!(s.over_backlog(cfg.max_db_backlog + 1));
    assert!(!s.over_backlog(cfg.max_db_backlog));
    let (sends, wake) = s.next_sends(t0, cfg.max_db_backlog + 1);
    assert!(sends.is_empty());
    assert_eq!(wake, Some(t0 + ms(10)));
    let (sends, _) = s.next_sends(t0 + ms(10), cfg.max_db_backlog);
    assert_eq!(sends.len(), 1);
}

#[test]
fn no_more_than_max_in_flight_sends_are_out() {
    // The tolerance would allow five sends at once; two may be out.
    let cfg = LimiterConfig {
        per_bot_per_second: 1000.0,
        per_chat_per_second: 1000.0,
        max_in_flight: 2,
        ..LimiterConfig::default()
    };
    let t0 = Instant::now();
    let mut s = schedule(&cfg, t0);
    s.enqueue((1..=4).map(|c| delivery(1, c, Private)).collect(), t0);
    let (mut sends, wake) = s.next_sends(t0, 0);
    assert_eq!(sends.len(), 2);
    assert_eq!(wake, None);
    let d = sends.remove(0);
    s.finished(d.lane, d.delivery, SendOutcome::Done, t0);
    let (sends, _) = s.next_sends(t0, 0);
    assert_eq!(sends.len(), 1);
    assert_eq!(s.in_flight(), 2);
}

#[test]
fn each_bot_has_its_own_pace_and_passes_start_with_the_next_bot() {
    let cfg = LimiterConfig {
        bots: 2,
        bot_ids: vec![111, 222],
        ..exact(10.0, 1000.0, 60_000.0)
    };
    let t0 = Instant::now();
    let mut s = schedule(&cfg, t0);
    s.enqueue(
        vec![pinned(1, 1, Private, Some(222)), delivery(1, 2, Private)],
        t0,
    );
    let lanes = |sends: Vec<Dispatch>| -> Vec<(usize, i64)> {
        sends
            .into_iter()
            .map(|d| (d.lane, d.delivery.sub.chat_id))
            .collect()
    };
    // Both bots send at once; the first pass starts with lane 0.
    let (sends, wake) = s.next_sends(t0, 0);
    assert_eq!(lanes(sends), vec![(0, 2), (1, 1)]);
    assert_eq!(wake, None);
    let t1 = t0 + ms(1000);
    s.enqueue(
        vec![pinned(1, 3, Private, Some(222)), delivery(1, 4, Private)],
        t1,
    );
    let (sends, _) = s.next_sends(t1, 0);
    assert_eq!(lanes(sends), vec![(1, 3), (0, 4)]);
}

#[test]
fn idle_chats_are_forgotten_once_their_interval_ran_out() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(1000.0, 1.0, 60_000.0), t0);
    s.enqueue(vec![delivery(1, 1, Private)], t0);
    s.sweep(t0);
    assert_eq!(s.chats_known(), 1);
    let (sends, _) = s.next_sends(t0, 0);
    let d = sends.into_iter().next().unwrap();
    s.sweep(t0);
    assert_eq!(s.chats_known(), 1, "in flight");
    s.finished(d.lane, d.delivery, SendOutcome::Done, t0);
    s.sweep(t0 + ms(999));
    assert_eq!(s.chats_known(), 1, "still spacing");
    s.sweep(t0 + ms(1000));
    assert_eq!(s.chats_known(), 0);
}

/// A 401 used to be retried forever, so the deliveries
/// of the revoked bot stayed queued (and filled the queue's capacity,
/// which blocked every poller). Now the lane halts on the first 401: what
/// it had queued leaves the queue, what comes later is turned away on
/// arrival, and the other bot keeps its exact pace.
#[test]
fn a_revoked_token_halts_its_lane_and_empties_its_queue() {
    let t0 = Instant::now();
    let cfg = LimiterConfig {
        bots: 2,
        bot_ids: vec![111, 222],
        ..exact(10.0, 1000.0, 60_000.0)
    };
    let mut s = schedule(&cfg, t0);
    let mut batch: Vec<Delivery> = (1..=3).map(|c| pinned(1, c, Private, Some(222))).collect();
    batch.extend((11..=13).map(|c| pinned(1, c, Private, Some(111))));
    s.enqueue(batch, t0);
    assert_eq!(s.queued(), 6);
    let log = run(&mut s, t0, ms(10), |d| {
        if d.sub.bot_id == Some(222) {
            SendOutcome::Revoked
        } else {
            SendOutcome::Done
        }
    });
    // Bot 222 made one request (chat 1, refused at 10 ms); bot 111 sent
    // its three 100 ms apart, as if nothing had happened.
    assert_eq!(
        log,
        vec![
            (ms(0), 1, 11),
            (ms(0), 1, 1),
            (ms(100), 1, 12),
            (ms(200), 1, 13)
        ]
    );
    assert!(s.is_halted(1) && !s.is_halted(0));
    assert_eq!((s.queued(), s.in_flight()), (0, 0));
    let mut dropped: Vec<i64> = s.take_dropped().iter().map(|d| d.sub.chat_id).collect();
    dropped.sort_unstable();
    assert_eq!(dropped, vec![1, 2, 3]);
    assert_eq!(s.counters().dropped_halted, 3);
    // Later deliveries of the halted bot never enter the queue.
    let later = t0 + ms(300);
    s.enqueue(vec![pinned(1, 4, Private, Some(222))], later);
    assert_eq!(s.queued(), 0);
    assert_eq!(s.take_dropped().len(), 1);
    assert_eq!(s.next_sends(later, 0).0.len(), 0);
}

#[test]
fn a_send_held_back_by_the_shared_limits_goes_back_unsent() {
    let t0 = Instant::now();
    let mut s = Schedule::new(Limits::new(&LimiterConfig::default()), t0);
    s.enqueue(vec![delivery(1, 7, Private), delivery(1, 7, Private)], t0);
    let (sends, _) = s.next_sends(t0, 0);
    assert_eq!(sends.len(), 1);
    let d = sends.into_iter().next().unwrap();
    // Another instance holds chat 7 for 300 ms.
    s.unadmitted(
        d.lane,
        d.delivery,
        Duration::from_millis(300),
        Duration::ZERO,
        t0,
    );
    assert_eq!((s.queued(), s.in_flight()), (2, 0));
    assert_eq!(s.counters().dispatched, 0);
    assert_eq!(s.counters().shared_held, 1);
    let (sends, wake) = s.next_sends(t0 + Duration::from_millis(299), 0);
    assert!(sends.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_millis(300)));
    let (sends, _) = s.next_sends(t0 + Duration::from_millis(300), 0);
    assert_eq!(sends.len(), 1);
}

#[test]
fn the_fallback_share_divides_a_bots_rate() {
    let t0 = Instant::now();
    let mut s = Schedule::new(Limits::new(&LimiterConfig::default()), t0);
    s.set_share(3);
    let batch = (0..30).map(|c| delivery(1, 100 + c, Private)).collect();
    s.enqueue(batch, t0);
    // 30/s × 0.985 over three instances: a send every 101.5 ms, and at
    // most 10 in a second's window.
    let (sends, wake) = s.next_sends(t0, 0);
    assert_eq!(sends.len(), 1);
    let interval = Limits::new(&LimiterConfig::default()).lane_interval * 3;
    assert!((interval.as_secs_f64() - 3.0 / 29.55).abs() < 1e-8);
    assert_eq!(wake, Some(t0 + interval - Duration::from_millis(5)));
    // A quiet second: nothing on any lane before it ends.
    s.pause_lanes(t0 + Duration::from_secs(1));
    let (sends, wake) = s.next_sends(t0 + Duration::from_millis(500), 0);
    assert!(sends.is_empty());
    assert_eq!(wake, Some(t0 + Duration::from_secs(1)));
}

/// Post `id` of channel 1 to `chat`.
fn post_to(chat: i64, kind: crate::model::DestinationKind, id: i32) -> Delivery {
    let mut d = delivery(1, chat, kind);
    std::sync::Arc::make_mut(&mut d.post).message_ids = vec![id];
    d
}

#[test]
fn a_moved_groups_queue_goes_ahead_of_what_its_supergroup_gets_later() {
    use crate::model::DestinationKind::Group;
    const OLD: i64 = -600;
    const NEW: i64 = -100_600;
    let t0 = Instant::now();
    // A group: one send a second.
    let mut s = schedule(&exact(30.0, 1.0, 60.0), t0);
    s.enqueue(vec![post_to(OLD, Group, 1), post_to(OLD, Group, 2)], t0);
    let (mut sends, _) = s.next_sends(t0, 0);
    assert_eq!(sends.len(), 1, "post 2 waits for the group's spacing");
    let first = sends.pop().unwrap();
    // Post 1's send finds the group moved (and is resent to the
    // supergroup): the limiter is told while it is in flight. Then a fan-out
    // made before the move arrives, still addressed to the group (post 3),
    // and one made after it, addressed to the supergroup (post 4).
    s.move_chat(OLD, NEW, t0 + ms(5));
    s.enqueue(vec![post_to(OLD, Group, 3)], t0 + ms(8));
    s.enqueue(vec![post_to(NEW, Supergroup, 4)], t0 + ms(10));
    // Nothing goes to the supergroup while post 1 is still on its way there
    // (before the fix post 4 went now, to a chat with no history).
    let (early, _) = s.next_sends(t0 + ms(10), 0);
    assert!(early.is_empty(), "{early:?}");
    s.finished(first.lane, first.delivery, SendOutcome::Done, t0 + ms(20));
    let t1 = t0 + ms(20);
    let mut order = Vec::new();
    let log = run(&mut s, t1, ms(20), |d| {
        order.push((d.post.first_id(), d.sub.chat_id, d.sub.destination_kind));
        SendOutcome::Done
    });
    // Each a second after the previous one completed, all to the supergroup.
    assert_eq!(
        log,
        vec![(ms(1000), 1, NEW), (ms(2020), 1, NEW), (ms(3040), 1, NEW)]
    );
    assert_eq!(
        order,
        vec![
            (2, NEW, Supergroup),
            (3, NEW, Supergroup),
            (4, NEW, Supergroup)
        ]
    );
    assert_eq!((s.queued(), s.in_flight()), (0, 0));
}
