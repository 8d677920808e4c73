//! The RateLimiter actor: owns the [`Schedule`], its timer and the callers
//! waiting on it, and turns the schedule's decisions into messages.
//!
//! Each pass ([`RateLimiter::dispatch`]) reads the clock once and the
//! DbWriter's backlog, asks the schedule for the sends allowed now, sends
//! them to the SenderPool, and sets one timer for the schedule's next
//! moment (an earlier timer is kept, a later one replaced). A pass runs
//! after every `Enqueue` and `SendFinished` and when the timer fires.
//!
//! Back-pressure: `Enqueue` is answered only while the queue is under
//! `queue_capacity`; callers beyond it wait until sends make room.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::halted::HaltedLanes;
use super::limits::{LimiterConfig, Limits, SWEEP_INTERVAL};
use super::room::QueueRoom;
use super::schedule::{FloodWait, Schedule, SendOutcome};
use super::shared::Shared;
use crate::in_flight::InFlight;
use crate::model::Delivery;
use crate::ports::SharedLimits;
use crate::telemetry::events;

/// Deliveries to send. Answered once they are queued and the queue is under
/// its capacity: awaiting the answer is how the pipeline feels back-pressure.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Vec<Delivery>);

/// One send for the SenderPool to make on bot `lane`; the outcome goes to `reply_to`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendDelivery {
    /// What to send.
    pub delivery: Delivery,
    /// The bot (index into the configured tokens) to send it with.
    pub lane: usize,
    /// Where the [`SendFinished`] goes.
    pub reply_to: Recipient<SendFinished>,
}

/// The SenderPool's answer to a [`SendDelivery`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendFinished {
    /// The delivery (handed back so nothing is lost when it must be retried).
    pub delivery: Delivery,
    /// The bot it was sent with, as in the [`SendDelivery`].
    pub lane: usize,
    /// How it went.
    pub outcome: SendOutcome,
}

/// Resolves when nothing is queued or in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// A forced shutdown: dispatch nothing more (what is queued stays unsent,
/// for the next start to resume); resolves when no send is in flight, so
/// every send made has its outcome handed to the DbWriter.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Halt;

/// Several instances: these channels' leases are gone, so their queued
/// deliveries leave the queue unsent (the new owner resumes them; they stay
/// owed in the database).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropChannels(pub Vec<i64>);

/// A group became a supergroup: what is queued for chat `old`, its spacing
/// and its send in flight move to chat `new`, ahead of anything queued
/// there, and later deliveries to `old` go to `new`'s queue. Sent before the
/// registry moves the destination, so no post fanned out after the move
/// can overtake one queued before it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MoveChat {
    /// The group's chat id.
    pub old: i64,
    /// The supergroup's chat id.
    pub new: i64,
}

/// Counters.
#[derive(Message)]
#[rtype(result = "LimiterStats")]
pub struct GetLimiterStats;

/// What the limiter has done.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct LimiterStats {
    /// Deliveries queued, not yet sent.
    pub queued: usize,
    /// Sends out now.
    pub in_flight: usize,
    /// Sends made.
    pub dispatched: u64,
    /// 429 answers (`retry_after`).
    pub retry_after: u64,
    /// Sends retried after a transient failure.
    pub retried: u64,
    /// Times a whole bot was paused by a flood wait.
    pub lane_pauses: u64,
    /// Bots halted because Telegram refused their token (401).
    pub halted_lanes: usize,
    /// Deliveries dropped unsent because their bot is halted (the database
    /// still owes them; the next start resumes them).
    pub dropped_halted: u64,
    /// Sends the local schedule allowed that the shared limits held back
    /// for a while (another instance was using the chat or the bot).
    pub shared_held: u64,
    /// This instance sends at `1 / share` of every limit (above 1 while
    /// the shared limits are unreachable and other instances are live).
    pub share: u32,
}

/// The RateLimiter actor.
pub struct RateLimiter {
    cfg: LimiterConfig,
    pub(super) schedule: Schedule,
    sender: Recipient<SendDelivery>,
    db_backlog: Arc<AtomicUsize>,
    wake: Option<(Instant, SpawnHandle)>,
    enqueue_waiters: VecDeque<oneshot::Sender<()>>,
    drain_waiters: Vec<oneshot::Sender<()>>,
    pub(super) halted: bool,
    halt_waiters: Vec<oneshot::Sender<()>>,
    /// Lanes whose token was refused, shared with the daemon.
    halted_lanes: Arc<HaltedLanes>,
    /// Where deliveries dropped by a halted lane are let go.
    in_flight: Option<Arc<InFlight>>,
    /// The limits shared with other instances, when there are any.
    pub(super) shared: Option<Shared>,
    /// The queue's size, published for the registry (see `room.rs`).
    room: Arc<QueueRoom>,
}

impl RateLimiter {
    /// A limiter sending through `sender`, pausing while `db_backlog` is too high.
    pub fn new(
        cfg: LimiterConfig,
        sender: Recipient<SendDelivery>,
        db_backlog: Arc<AtomicUsize>,
    ) -> Self {
        let schedule = Schedule::new(Limits::new(&cfg), Instant::now());
        let halted_lanes = Arc::new(HaltedLanes::new(&cfg));
        let room = Arc::new(QueueRoom::with_per_chat(
            cfg.queue_capacity,
            cfg.queue_per_chat,
        ));
        Self {
            cfg,
            schedule,
            sender,
            db_backlog,
            wake: None,
            enqueue_waiters: VecDeque::new(),
            drain_waiters: Vec::new(),
            halted: false,
            halt_waiters: Vec::new(),
            halted_lanes,
            in_flight: None,
            shared: None,
            room,
        }
    }

    /// The queue's room, for the registry to wait on before a fan-out.
    pub fn room(&self) -> Arc<QueueRoom> {
        self.room.clone()
    }

    /// Admits every send through `port` as well, while it is active (other
    /// instances send with the same bots): this schedule picks the
    /// candidates, the port has the last word.
    pub fn with_shared(mut self, port: Arc<dyn SharedLimits>) -> Self {
        self.shared = Some(Shared::new(port));
        self
    }

    /// Lets deliveries a halted lane drops go in `in_flight` (they leave
    /// this process with no outcome).
    pub fn with_in_flight(mut self, in_flight: Arc<InFlight>) -> Self {
        self.in_flight = Some(in_flight);
        self
    }

    /// The halted flags, for the daemon's readiness and stats.
    pub fn halted_lanes(&self) -> Arc<HaltedLanes> {
        self.halted_lanes.clone()
    }

    /// Lets go of what halted lanes turned away.
    pub(super) fn collect_dropped(&mut self) {
        let dropped = self.schedule.take_dropped();
        if dropped.is_empty() {
            return;
        }
        if let Some(f) = &self.in_flight {
            f.release(&dropped);
        }
        tracing::debug!(
            deliveries = dropped.len(),
            "Dropped deliveries of a halted bot; they stay owed in the database."
        );
    }

    /// One pass: sends what the schedule allows now and sets the timer for
    /// its next moment. A halted limiter sends nothing more.
    pub(super) fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if let Some(full) = self.schedule.full_chats() {
            tracing::debug!(chats = full.len(), "Chats with a full queue changed.");
            self.room.set_full(full);
        }
        if self.halted {
            self.release_waiters();
            return;
        }
        let now = Instant::now();
        self.update_share(now);
        let backlog = self.db_backlog.load(Ordering::Relaxed);
        let backpressure = self.schedule.over_backlog(backlog);
        let (sends, wake_at) = self.schedule.next_sends(now, backlog);
        let shared_active = self.shared.as_ref().is_some_and(|s| s.active(now));
        for s in sends {
            if shared_active {
                let bot_id = self.halted_lanes.bot_id_of(s.lane);
                if let Some(sh) = self.shared.as_mut() {
                    sh.want(bot_id, s);
                }
            } else {
                self.send_now(s.lane, s.delivery, ctx);
            }
        }
        self.flush_shared(ctx);
        if let Some(at) = wake_at {
            self.wake_at(ctx, at);
        }
        // Under back-pressure nothing moved: the waiters are looked at
        // again when the backlog has shrunk.
        if !backpressure {
            self.release_waiters();
        }
    }

    /// Hands one send to the SenderPool.
    pub(super) fn send_now(&mut self, lane: usize, delivery: Delivery, ctx: &mut Context<Self>) {
        self.sender.do_send(SendDelivery {
            delivery,
            lane,
            reply_to: ctx.address().recipient(),
        });
    }

    pub(super) fn wake_at(&mut self, ctx: &mut Context<Self>, at: Instant) {
        if let Some((current, handle)) = self.wake {
            if current <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.dispatch(ctx);
        });
        self.wake = Some((at, handle));
    }

    pub(super) fn release_waiters(&mut self) {
        self.room.set_queued(self.schedule.queued());
        while self.schedule.queued() < self.cfg.queue_capacity {
            match self.enqueue_waiters.pop_front() {
                Some(w) => {
                    let _ = w.send(());
                }
                None => break,
            }
        }
        if self.schedule.queued() == 0 && self.schedule.in_flight() == 0 {
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        if self.halted && self.schedule.in_flight() == 0 {
            for w in self.halt_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_INTERVAL, |act, _| act.schedule.sweep(Instant::now()));
    }
}

impl Handler<Enqueue> for RateLimiter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) -> Self::Result {
        self.schedule.enqueue(msg.0, Instant::now());
        self.collect_dropped();
        self.dispatch(ctx);
        self.room.set_queued(self.schedule.queued());
        if self.schedule.queued() < self.cfg.queue_capacity {
            Box::pin(async {})
        } else {
            let (tx, rx) = oneshot::channel();
            self.enqueue_waiters.push_back(tx);
            Box::pin(async move {
                let _ = rx.await;
            })
        }
    }
}

impl Handler<SendFinished> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: SendFinished, ctx: &mut Context<Self>) {
        let chat_id = msg.delivery.sub.chat_id;
        let wait = match msg.outcome {
            SendOutcome::RetryAfter(wait) => wait,
            _ => Default::default(),
        };
        let revoked = matches!(msg.outcome, SendOutcome::Revoked);
        if let Some(sh) = self.shared.as_mut() {
            let bot_id = self.halted_lanes.bot_id_of(msg.lane);
            sh.finished(msg.lane, bot_id, chat_id, Instant::now());
        }
        let flood = self
            .schedule
            .finished(msg.lane, msg.delivery, msg.outcome, Instant::now());
        if revoked && self.halted_lanes.halt(msg.lane) {
            events::bot_token_revoked(self.halted_lanes.bot_id_of(msg.lane), msg.lane);
        }
        self.collect_dropped();
        if let Some(scope) = flood {
            let bot_id = self.halted_lanes.bot_id_of(msg.lane);
            let scope = match scope {
                FloodWait::Lane => "bot",
                FloodWait::Chat => "chat",
            };
            events::bot_flood_wait(bot_id, chat_id, scope, wait);
        }
        self.dispatch(ctx);
    }
}

impl Handler<Drain> for RateLimiter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.release_waiters();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Halt> for RateLimiter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Halt, _: &mut Context<Self>) -> Self::Result {
        self.halted = true;
        let (tx, rx) = oneshot::channel();
        self.halt_waiters.push(tx);
        self.release_waiters();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<DropChannels> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: DropChannels, ctx: &mut Context<Self>) {
        let channels: std::collections::HashSet<i64> = msg.0.into_iter().collect();
        let dropped = self.schedule.drop_channels(&channels);
        if dropped.is_empty() {
            return;
        }
        if let Some(f) = &self.in_flight {
            f.release(&dropped);
        }
        events::queued_lease_dropped(channels.len(), dropped.len());
        self.dispatch(ctx);
    }
}

impl Handler<MoveChat> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: MoveChat, ctx: &mut Context<Self>) {
        self.schedule.move_chat(msg.old, msg.new, Instant::now());
        tracing::debug!(
            old_chat_id = msg.old,
            new_chat_id = msg.new,
            "Moved a chat's queue to its supergroup."
        );
        self.dispatch(ctx);
    }
}

impl Handler<GetLimiterStats> for RateLimiter {
    type Result = LimiterStats;

    fn handle(&mut self, _: GetLimiterStats, _: &mut Context<Self>) -> LimiterStats {
        let c = self.schedule.counters();
        LimiterStats {
            queued: self.schedule.queued(),
            in_flight: self.schedule.in_flight(),
            dispatched: c.dispatched,
            retry_after: c.retry_after,
            retried: c.retried,
            lane_pauses: c.lane_pauses,
            halted_lanes: self.halted_lanes.count(),
            dropped_halted: c.dropped_halted,
            shared_held: c.shared_held,
            share: self.schedule.share(),
        }
    }
}

#[cfg(test)]
#[path = "actor_tests.rs"]
mod tests;
