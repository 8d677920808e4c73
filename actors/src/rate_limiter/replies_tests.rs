//! Tests of the bot's replies and the cap on one person's sends in flight
//! (`schedule/replies.rs`, `schedule/people.rs`), at exact instants.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tests::{Sent, done, exact, for_person, ms, run, schedule};
use super::*;
use crate::model::DestinationKind::{self, Private, Supergroup};
use crate::model::NoticeTarget;
use crate::testing::delivery;

/// A reply of `text` to `chat` (its channel in the log is 0).
fn reply(chat: i64, text: &str) -> Delivery {
    let kind = if chat > 0 {
        Private
    } else {
        DestinationKind::Group
    };
    let to = NoticeTarget {
        channel_id: 0,
        subscription_id: 0,
        chat_id: chat,
        kind,
        bot_id: None,
        thread_id: None,
    };
    Delivery::reply(&to, text.to_owned(), None).0
}

/// The text of a reply (`None` for a delivery).
fn text_of(d: &Delivery) -> Option<String> {
    match &d.op {
        crate::model::DeliveryOp::Notice(op) if op.urgent => Some(op.text.clone()),
        _ => None,
    }
}

#[test]
fn a_reply_goes_before_every_turn() {
    // 10 a second: one send every 100 ms. Five deliveries are queued, then
    // a reply to a sixth chat: it goes first.
    let t0 = Instant::now();
    let mut s = schedule(&exact(10.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=5).map(|c| delivery(1, c, Private)).collect(), t0);
    s.enqueue(vec![reply(9, "help")], t0);
    let log = run(&mut s, t0, Duration::ZERO, done);
    let mut want: Vec<Sent> = vec![(ms(0), 0, 9)];
    want.extend((1..=5).map(|i| (ms(100 * i), 1, i as i64)));
    assert_eq!(log, want);
    assert_eq!((s.queued(), s.in_flight()), (0, 0));
}

#[test]
fn a_reply_waits_for_its_chats_spacing_and_its_chats_deliveries_wait_for_it() {
    // A private chat, 1 a second, a 10 ms round trip: a delivery goes at
    // 0; a reply and a second delivery queued meanwhile. The reply goes
    // once the chat's second after the first completed is over, and the
    // second delivery a second after the reply completed.
    let t0 = Instant::now();
    let mut s = schedule(&exact(30.0, 1.0, 60_000.0), t0);
    s.enqueue(vec![delivery(1, 7, Private)], t0);
    let (first, _) = s.next_sends(t0, 0);
    assert_eq!(first.len(), 1);
    s.enqueue(vec![delivery(1, 7, Private), reply(7, "list")], t0);
    let (none, _) = s.next_sends(t0, 0);
    assert!(none.is_empty(), "the chat's send is in flight");
    for d in first {
        s.finished(d.lane, d.delivery, SendOutcome::Done, t0 + ms(10));
    }
    let log = run(&mut s, t0 + ms(10), ms(10), done);
    assert_eq!(log, vec![(ms(1000), 0, 7), (ms(2010), 1, 7)]);
}

#[test]
fn a_chats_replies_go_one_at_a_time_in_order() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(30.0, 1.0, 60_000.0), t0);
    s.enqueue(vec![reply(7, "a"), reply(7, "b")], t0);
    s.enqueue(vec![delivery(1, 7, Private), reply(7, "c")], t0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = {
        let seen = seen.clone();
        run(&mut s, t0, ms(10), move |d| {
            seen.lock().unwrap().push(text_of(d));
            SendOutcome::Done
        })
    };
    let times: Vec<Duration> = log.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(times, [ms(0), ms(1010), ms(2020), ms(3030)]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [Some("a".into()), Some("b".into()), Some("c".into()), None]
    );
}

#[test]
fn a_reply_refused_with_429_is_sent_again_first_after_the_wait() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(30.0, 1.0, 60_000.0), t0);
    s.enqueue(vec![reply(7, "a"), reply(7, "b")], t0);
    let mut refused = false;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = {
        let seen = seen.clone();
        run(&mut s, t0, ms(10), move |d| {
            if !refused {
                refused = true;
                return SendOutcome::RetryAfter(Duration::from_secs(2));
            }
            seen.lock().unwrap().push(text_of(d));
            SendOutcome::Done
        })
    };
    let times: Vec<Duration> = log.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(times, [ms(0), ms(2010), ms(3020)]);
    assert_eq!(*seen.lock().unwrap(), [Some("a".into()), Some("b".into())]);
    assert_eq!(s.counters().retry_after, 1);
}

#[test]
fn a_chats_waiting_replies_are_bounded() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(30.0, 1.0, 60_000.0), t0);
    s.enqueue(
        (0..MAX_REPLIES_QUEUED + 5).map(|_| reply(7, "x")).collect(),
        t0,
    );
    assert_eq!(s.queued(), MAX_REPLIES_QUEUED);
}

#[test]
fn a_person_at_the_cap_of_sends_in_flight_waits_and_no_one_else_does() {
    // 30 a second: a cap of 6 sends in flight a person. One person has 20
    // groups that answer slowly, another 3 private chats.
    const SLOW: i64 = 1_000_000;
    let t0 = Instant::now();
    let mut s = schedule(&exact(30.0, 1000.0, 60_000.0), t0);
    s.enqueue(
        (0..20)
            .map(|g| for_person(1, -(1000 + g), Supergroup, SLOW))
            .collect(),
        t0,
    );
    s.enqueue((1..=3).map(|c| delivery(2, c, Private)).collect(), t0);
    let mut out = Vec::new();
    let mut now = t0;
    while now < t0 + ms(500) {
        let (sends, _) = s.next_sends(now, 0);
        out.extend(sends);
        now += ms(10);
    }
    let slow = out
        .iter()
        .filter(|d| d.delivery.sub.user_telegram_id == SLOW)
        .count();
    assert_eq!(slow, 6, "the slow person's sends in flight");
    assert_eq!(out.len(), 9, "everyone else's went");
    // One of theirs completes: exactly one more of theirs goes.
    let first = out
        .iter()
        .position(|d| d.delivery.sub.user_telegram_id == SLOW)
        .unwrap();
    let d = out.remove(first);
    s.finished(d.lane, d.delivery, SendOutcome::Done, now);
    let (sends, _) = s.next_sends(now, 0);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].delivery.sub.user_telegram_id, SLOW);
    let (sends, _) = s.next_sends(now + ms(100), 0);
    assert!(sends.is_empty(), "still at the cap");
}

#[test]
fn a_fast_person_is_not_held_by_the_cap() {
    // One person, 60 private chats, a 10 ms round trip: the bot's full
    // rate (30 in the first second), the cap never binding.
    let t0 = Instant::now();
    let mut s = schedule(&exact(30.0, 1.0, 60_000.0), t0);
    s.enqueue(
        (1..=60).map(|c| for_person(1, c, Private, 42)).collect(),
        t0,
    );
    let log = run(&mut s, t0, ms(10), done);
    assert_eq!(log.len(), 60);
    let first_second = log.iter().filter(|(t, _, _)| *t < ms(1000)).count();
    assert_eq!(first_second, 30);
}

#[test]
fn while_the_bot_answers_commands_deliveries_leave_a_slot_for_a_reply() {
    // 10 a second (a window of 10), sends in flight for long. A reply
    // went out: deliveries take 8 more slots, not the last one, and the
    // next reply goes at once.
    let t0 = Instant::now();
    let mut s = schedule(&exact(10.0, 1000.0, 60_000.0), t0);
    s.enqueue(vec![reply(7, "a")], t0);
    s.enqueue((1..=20).map(|c| delivery(1, c, Private)).collect(), t0);
    let mut out = Vec::new();
    let mut now = t0;
    while now < t0 + ms(1500) {
        out.extend(s.next_sends(now, 0).0);
        now += ms(10);
    }
    assert_eq!(out.len(), 9, "one reply and 8 deliveries");
    s.enqueue(vec![reply(99, "b")], now);
    let (sends, _) = s.next_sends(now, 0);
    assert_eq!(sends.len(), 1);
    assert_eq!(text_of(&sends[0].delivery).as_deref(), Some("b"));
}

#[test]
fn a_bot_only_delivering_uses_its_whole_window() {
    let t0 = Instant::now();
    let mut s = schedule(&exact(10.0, 1000.0, 60_000.0), t0);
    s.enqueue((1..=20).map(|c| delivery(1, c, Private)).collect(), t0);
    let mut out = Vec::new();
    let mut now = t0;
    while now < t0 + ms(1500) {
        out.extend(s.next_sends(now, 0).0);
        now += ms(10);
    }
    assert_eq!(out.len(), 10);
}
