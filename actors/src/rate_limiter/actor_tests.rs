//! Tests of the RateLimiter actor: its passes, back-pressure, halts and
//! stats, against a recording sender.

use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::model::DestinationKind;
use crate::testing::delivery;

/// Stands in for the SenderPool: notes what was sent, when, and answers
/// at once with the scripted outcome.
struct Recorder {
    log: Arc<Mutex<Vec<(Instant, i64, i64)>>>,
    retry_after_once: Option<i64>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<SendDelivery> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: SendDelivery, _: &mut Context<Self>) {
        let chat = msg.delivery.sub.chat_id;
        let outcome = if self.retry_after_once == Some(chat) {
            self.retry_after_once = None;
            SendOutcome::RetryAfter(Duration::from_millis(400))
        } else {
            self.log
                .lock()
                .unwrap()
                .push((Instant::now(), msg.delivery.post.channel_id, chat));
            SendOutcome::Done
        };
        msg.reply_to.do_send(SendFinished {
            delivery: msg.delivery,
            lane: msg.lane,
            outcome,
        });
    }
}

fn limiter(cfg: LimiterConfig, recorder: Recorder) -> Addr<RateLimiter> {
    let sender = recorder.start();
    RateLimiter::new(cfg, sender.recipient(), Arc::new(AtomicUsize::new(0))).start()
}

#[actix_rt::test]
async fn a_big_channel_does_not_starve_a_small_one() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = LimiterConfig {
        per_bot_per_second: 200.0,
        per_chat_per_second: 1000.0,
        ..LimiterConfig::default()
    };
    let l = limiter(
        cfg,
        Recorder {
            log: log.clone(),
            retry_after_once: None,
        },
    );
    // Channel 1 fans out to 400 chats first; channel 2's 5 come after.
    let big: Vec<Delivery> = (0..400)
        .map(|c| delivery(1, 1000 + c, DestinationKind::Private))
        .collect();
    let small: Vec<Delivery> = (0..5)
        .map(|c| delivery(2, 5000 + c, DestinationKind::Private))
        .collect();
    l.send(Enqueue(big)).await.unwrap();
    l.send(Enqueue(small)).await.unwrap();
    l.send(Drain).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 405);
    let last_small = log.iter().rposition(|(_, ch, _)| *ch == 2).unwrap();
    // Round-robin: the small channel is done within its first few turns,
    // not after the 400 deliveries queued before it.
    assert!(
        last_small < 20,
        "small channel finished at position {last_small}"
    );
}

#[actix_rt::test]
async fn the_bot_rate_and_the_chat_spacing_hold() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = LimiterConfig {
        per_bot_per_second: 100.0,
        per_chat_per_second: 10.0,
        per_group_per_minute: 300.0,
        ..LimiterConfig::default()
    };
    let l = limiter(
        cfg,
        Recorder {
            log: log.clone(),
            retry_after_once: None,
        },
    );
    let mut batch: Vec<Delivery> = (0..60)
        .map(|c| delivery(1, 10 + c, DestinationKind::Private))
        .collect();
    // One private chat and one group get five each.
    batch.extend((0..5).map(|_| delivery(2, 7, DestinationKind::Private)));
    batch.extend((0..5).map(|_| delivery(3, -7, DestinationKind::Supergroup)));
    let start = Instant::now();
    l.send(Enqueue(batch)).await.unwrap();
    l.send(Drain).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 70);
    // 70 sends at 100/s (× 0.985) take at least ~0.69 s.
    assert!(
        start.elapsed() >= Duration::from_millis(680),
        "{:?}",
        start.elapsed()
    );
    // No 1-second window holds more than 100 sends.
    for (i, (t, _, _)) in log.iter().enumerate() {
        let in_window = log[i..]
            .iter()
            .take_while(|(u, _, _)| u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(in_window <= 100);
    }
    let gaps = |chat: i64| -> Vec<Duration> {
        let times: Vec<Instant> = log
            .iter()
            .filter(|(_, _, c)| *c == chat)
            .map(|(t, _, _)| *t)
            .collect();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    };
    // 10/s per chat; the group's 300/min is 5/s, the stricter.
    assert!(
        gaps(7).iter().all(|g| *g >= Duration::from_millis(100)),
        "{:?}",
        gaps(7)
    );
    assert!(
        gaps(-7).iter().all(|g| *g >= Duration::from_millis(200)),
        "{:?}",
        gaps(-7)
    );
}

/// Stands in for the SenderPool behind a jittery network: the request
/// of every seventh send arrives 90 ms late, the others after 1 ms; the
/// log holds arrival times, as Telegram sees them.
struct Jittery {
    log: Arc<Mutex<Vec<(Instant, i64, i64)>>>,
    sent: u64,
}

impl Actor for Jittery {
    type Context = Context<Self>;
}

impl Handler<SendDelivery> for Jittery {
    type Result = ();
    fn handle(&mut self, msg: SendDelivery, ctx: &mut Context<Self>) {
        self.sent += 1;
        let delay = if self.sent.is_multiple_of(7) { 90 } else { 1 };
        let log = self.log.clone();
        ctx.spawn(
            async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let chat = msg.delivery.sub.chat_id;
                log.lock()
                    .unwrap()
                    .push((Instant::now(), msg.delivery.post.channel_id, chat));
                tokio::time::sleep(Duration::from_millis(2)).await;
                msg.reply_to.do_send(SendFinished {
                    delivery: msg.delivery,
                    lane: msg.lane,
                    outcome: SendOutcome::Done,
                });
            }
            .into_actor(self),
        );
    }
}

#[actix_rt::test]
async fn late_arrivals_never_crowd_a_bots_second() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = LimiterConfig {
        per_bot_per_second: 20.0,
        per_chat_per_second: 1.0,
        ..LimiterConfig::default()
    };
    let sender = Jittery {
        log: log.clone(),
        sent: 0,
    }
    .start();
    let l = RateLimiter::new(cfg, sender.recipient(), Arc::new(AtomicUsize::new(0))).start();
    let batch: Vec<Delivery> = (0..70)
        .map(|c| delivery(1, 100 + c, DestinationKind::Private))
        .collect();
    let start = Instant::now();
    l.send(Enqueue(batch)).await.unwrap();
    l.send(Drain).await.unwrap();
    let elapsed = start.elapsed();
    let mut arrivals: Vec<Instant> = log.lock().unwrap().iter().map(|(t, _, _)| *t).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 70);
    // Evenly spaced dispatches alone would put 21 arrivals in a second
    // here (a late one followed by twenty on time).
    let densest = (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| t.duration_since(arrivals[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(densest <= 20, "{densest} arrivals in one second");
    // And the rate stays near the limit: 70 sends at 19.7/s take 3.5 s
    // and the window adds at most the late round trips (~0.5 s here);
    // the bound leaves room for a loaded CI machine.
    assert!(elapsed < Duration::from_millis(5000), "{elapsed:?}");
}

#[actix_rt::test]
async fn retry_after_pauses_exactly_that_chat() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cfg = LimiterConfig {
        per_bot_per_second: 1000.0,
        per_chat_per_second: 1000.0,
        ..LimiterConfig::default()
    };
    let l = limiter(
        cfg,
        Recorder {
            log: log.clone(),
            retry_after_once: Some(1),
        },
    );
    let start = Instant::now();
    let batch: Vec<Delivery> = (1..=4)
        .map(|c| delivery(1, c, DestinationKind::Private))
        .collect();
    l.send(Enqueue(batch)).await.unwrap();
    l.send(Drain).await.unwrap();
    let stats = l.send(GetLimiterStats).await.unwrap();
    assert_eq!(stats.retry_after, 1);
    let log = log.lock().unwrap();
    let at = |chat: i64| log.iter().find(|(_, _, c)| *c == chat).unwrap().0 - start;
    assert!(
        at(1) >= Duration::from_millis(400),
        "chat 1 retried after {:?}",
        at(1)
    );
    for chat in 2..=4 {
        assert!(
            at(chat) < Duration::from_millis(100),
            "chat {chat} waited {:?}",
            at(chat)
        );
    }
    assert_eq!(stats.lane_pauses, 0);
}
