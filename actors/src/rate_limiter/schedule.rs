//! The RateLimiter's policy as plain data: which queued delivery may go out
//! when. Every method takes `now`; nothing here reads a clock, owns a timer
//! or sends a message, so tests feed exact instants and assert exact
//! schedules. The actor ([`super::RateLimiter`]) owns the timer and the
//! messages and calls this.
//!
//! What it keeps: the queue of deliveries not yet sent, per destination
//! chat; per bot token ("lane") a GCRA, an arrival window and its ready
//! chats in turn order (`schedule/turns.rs`: rounds in which every person
//! gets one turn, round-robin over channels within a round); per chat its
//! spacing.
//!
//! A chat has at most one send in flight, and its next send waits one chat
//! interval after the previous one *completed*: the spacing is measured where
//! Telegram measures it, whatever the network jitter, and posts reach a chat
//! in the order they were queued.
//!
//! A bot gets the same treatment for its per-second limit. Telegram counts
//! *arrivals* in a sliding second; evenly spaced dispatches can still arrive
//! squeezed (one request delayed by the scheduler, the next on time), and 30
//! sends spaced 33.8 ms apart span only 981 ms. So besides its GCRA, a lane
//! never has more than `floor(per_bot_per_second)` sends that are in flight
//! or completed within the last second. Whatever the jitter, a request
//! arrives after it was dispatched and before it completed, so no second at
//! Telegram ever sees more than that many requests of one bot. The price is
//! the round trip: a bot sends at most `limit / (1 s + round trip)`, which
//! is above the GCRA's rate while the round trip is under ~15 ms (the fake
//! Bot API) and about 3% below it at Telegram's typical 50 ms.
//!
//! A `retry_after` pauses exactly that chat (or, when many chats of one bot
//! get it at once, that bot) for exactly that long.
//!
//! The bot's replies to commands go through here too (`schedule/replies.rs`):
//! they take the bot's budget and their chat's spacing like any send, but
//! before any delivery — someone is waiting for them — and a chat's
//! deliveries wait while it has a reply to send.
//!
//! One person's sends in flight at once are capped (`schedule/people.rs`):
//! a send holds a slot of the bot's window for as long as it is in flight,
//! so a person whose destinations answer slowly would otherwise hold most
//! of the window, and everyone else's sends would wait for it.
//!
//! A group that became a supergroup ([`Schedule::move_chat`]) keeps its
//! place: its queue, its spacing and its send in flight move to the new chat
//! id, ahead of anything queued there, and a delivery still addressed to the
//! old id (fanned out before the move, or finishing) is taken as the new
//! chat's. Without it a post fanned out after the move, queued under the
//! new id with no history, overtook one still waiting in the old chat.
//!
//! A bot whose token Telegram refused (401) is halted for good: its queued
//! deliveries leave the queue at once and any later one is turned away on
//! arrival ([`Schedule::take_dropped`]), so they never count against the
//! queue's capacity and never hold up another bot. They are dropped with no
//! outcome: the database keeps owing them, and the next start (with a new
//! token) resumes them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::budget::{Budget, carries_paid, items};
use super::limits::{
    BACKLOG_RECHECK, FLOOD_CHATS_FOR_LANE_PAUSE, FLOOD_MEMORY, Limits, MAX_REPLIES_QUEUED,
    MOVED_CHAT_MEMORY, WINDOW,
};
use crate::model::Delivery;

mod leaving;
mod migration;
mod people;
mod replies;
mod turns;
use migration::retarget;
use people::People;
use turns::Turns;

/// How a send went, as far as rate limiting cares.
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// Done for good (sent, or failed for a reason retrying cannot fix).
    Done,
    /// Telegram said 429: wait exactly this long, then send it again.
    RetryAfter(Duration),
    /// A transient failure (5xx, network): try again after this backoff.
    Retry(Duration),
    /// The bot's token was refused (401): its lane halts for good.
    Revoked,
}

/// One send the schedule allows: `delivery` on bot `lane`.
#[derive(Debug)]
pub(super) struct Dispatch {
    pub(super) lane: usize,
    pub(super) delivery: Delivery,
}

/// How [`Schedule::finished`] took a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FloodWait {
    /// Only that chat waits.
    Chat,
    /// Several chats of the bot were refused within a second: the whole lane waits.
    Lane,
}

/// What the schedule has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counters {
    pub(super) dispatched: u64,
    pub(super) retry_after: u64,
    pub(super) retried: u64,
    pub(super) lane_pauses: u64,
    /// Deliveries dropped, unsent, because their bot's lane is halted.
    pub(super) dropped_halted: u64,
    /// Sends allowed here but held back by the shared limits (another
    /// instance was using the chat or the bot).
    pub(super) shared_held: u64,
}

struct Chat {
    lane: usize,
    interval: Duration,
    queue: VecDeque<Delivery>,
    /// Earliest next send.
    ready_at: Instant,
    in_flight: bool,
    /// In the timer heap or a ready list (or parked, its person at the
    /// cap of sends in flight).
    scheduled: bool,
    /// The bot's replies to send here, oldest first: they go before the
    /// queue's deliveries (`schedule/replies.rs`).
    replies: VecDeque<Delivery>,
    /// In its lane's list of chats with replies.
    urgent_listed: bool,
}

struct Lane {
    tat: Instant,
    /// Sends of this bot in flight.
    in_flight: usize,
    /// When this bot's recent sends completed, oldest first (last second only).
    completed: VecDeque<Instant>,
    paused_until: Instant,
    /// Ready chats, in turn order: by person, then by channel.
    ready: Turns,
    /// Chats with replies to send, in the order they got them: served
    /// before any turn (`schedule/replies.rs`).
    urgent: VecDeque<i64>,
    /// Each person's sends in flight, and their chats parked at the cap.
    people: People,
    /// Recent 429s: (when, chat).
    recent_429: VecDeque<(Instant, i64)>,
    /// The token was refused: nothing more is sent on this lane.
    halted: bool,
    /// When this bot last sent a reply (`schedule/replies.rs`).
    last_reply: Option<Instant>,
    /// Paid broadcast: the budget of the calls that cannot carry the flag.
    free: Option<Budget>,
}

/// The queue and the rate state of every lane and chat.
pub(super) struct Schedule {
    limits: Limits,
    lanes: Vec<Lane>,
    chats: HashMap<i64, Chat>,
    /// Chats waiting for their `ready_at`, earliest first.
    waiting: BinaryHeap<Reverse<(Instant, i64)>>,
    queued: usize,
    in_flight: usize,
    /// The lane served first by the next pass.
    next_lane: usize,
    counters: Counters,
    /// Deliveries turned away by a halted lane, for the actor to collect.
    dropped: Vec<Delivery>,
    /// Instances this one shares every limit with while the shared limits
    /// are unreachable (1: the whole limit is its own).
    share: u32,
    /// Chats that moved (group → supergroup): old id → (new id, when).
    moved: HashMap<i64, (i64, Instant)>,
    /// Chats holding `queue_per_chat` deliveries or more (kept current by
    /// [`Schedule::full_chats`]), and whether the set changed since.
    full: std::collections::HashSet<i64>,
    full_changed: bool,
}

impl Schedule {
    /// An empty schedule whose lanes may all send from `now` on.
    pub(super) fn new(limits: Limits, now: Instant) -> Self {
        let lanes = (0..limits.lanes)
            .map(|_| Lane {
                tat: now,
                in_flight: 0,
                completed: VecDeque::new(),
                paused_until: now,
                ready: Turns::default(),
                urgent: VecDeque::new(),
                people: People::default(),
                recent_429: VecDeque::new(),
                last_reply: None,
                halted: false,
                free: limits
                    .free
                    .map(|(rate, safety)| Budget::new(rate, safety, now)),
            })
            .collect();
        Self {
            limits,
            lanes,
            chats: HashMap::new(),
            waiting: BinaryHeap::new(),
            queued: 0,
            in_flight: 0,
            next_lane: 0,
            counters: Counters::default(),
            dropped: Vec::new(),
            share: 1,
            moved: HashMap::new(),
            full: std::collections::HashSet::new(),
            full_changed: false,
        }
    }

    /// Sends at `1 / share` of every limit from now on (each of `share`
    /// instances its part, while they cannot share the limits); 1 restores
    /// the whole limit.
    pub(super) fn set_share(&mut self, share: u32) {
        self.share = share.max(1);
    }

    /// Sends nothing on any lane before `until` (a quiet second when the
    /// limits stop or start being shared: what other instances sent in the
    /// last second is then out of Telegram's window whatever this one
    /// knows of it).
    pub(super) fn pause_lanes(&mut self, until: Instant) {
        for l in &mut self.lanes {
            l.paused_until = l.paused_until.max(until);
        }
    }

    /// The current share divisor.
    pub(super) fn share(&self) -> u32 {
        self.share
    }

    /// Deliveries queued, not in flight.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// Sends out, all lanes together.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(super) fn counters(&self) -> Counters {
        self.counters
    }

    /// Queues deliveries behind what their chats already hold.
    pub(super) fn enqueue(&mut self, deliveries: Vec<Delivery>, now: Instant) {
        let mut touched = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            touched.push(self.chat_of(&d));
            self.push(d, false, now);
        }
        for chat in touched {
            self.schedule(chat, now);
        }
    }

    fn push(&mut self, mut d: Delivery, front: bool, now: Instant) {
        if let Some(&(new, _)) = self.moved.get(&d.sub.chat_id) {
            d = retarget(d, new);
        }
        let chat_id = d.sub.chat_id;
        let lane = self.limits.lane_of(d.sub.bot_id);
        if self.lanes[lane].halted {
            self.counters.dropped_halted += 1;
            self.dropped.push(d);
            return;
        }
        let interval = self
            .limits
            .chat_interval(d.sub.destination_kind.is_group_like());
        let chat = self.chats.entry(chat_id).or_insert_with(|| Chat {
            lane,
            interval,
            queue: VecDeque::new(),
            ready_at: now,
            in_flight: false,
            scheduled: false,
            replies: VecDeque::new(),
            urgent_listed: false,
        });
        if d.is_reply() {
            if !front && chat.replies.len() >= MAX_REPLIES_QUEUED {
                // Dropped, not queued: its sender learns it was not sent.
                tracing::debug!(chat_id, "A chat has too many replies waiting; one dropped.");
                return;
            }
            if front {
                chat.replies.push_front(d);
            } else {
                chat.replies.push_back(d);
            }
            self.queued += 1;
            return;
        }
        if front {
            chat.queue.push_front(d);
        } else {
            chat.queue.push_back(d);
        }
        if chat.queue.len() >= self.limits.queue_per_chat && self.full.insert(chat_id) {
            self.full_changed = true;
        }
        self.queued += 1;
    }

    /// The chats that reached `queue_per_chat` queued deliveries, when that
    /// set changed since the last call (`None`: unchanged). A chat leaves it
    /// once its queue is under half the cap, so that what is then queued for
    /// it comes in runs, not one at a time.
    pub(super) fn full_chats(&mut self) -> Option<Vec<i64>> {
        let low = (self.limits.queue_per_chat / 2).max(1);
        let chats = &self.chats;
        let before = self.full.len();
        self.full
            .retain(|c| chats.get(c).is_some_and(|c| c.queue.len() >= low));
        if self.full.len() != before {
            self.full_changed = true;
        }
        if !std::mem::take(&mut self.full_changed) {
            return None;
        }
        Some(self.full.iter().copied().collect())
    }

    /// Puts a chat in the timer heap or a ready list, if it has something
    /// to send; a chat with replies in its lane's list of them instead.
    fn schedule(&mut self, chat_id: i64, now: Instant) {
        let Some(chat) = self.chats.get_mut(&chat_id) else {
            return;
        };
        if !chat.replies.is_empty() {
            if !chat.urgent_listed {
                chat.urgent_listed = true;
                self.lanes[chat.lane].urgent.push_back(chat_id);
            }
            return;
        }
        if chat.in_flight || chat.scheduled {
            return;
        }
        let Some(head) = chat.queue.front() else {
            return;
        };
        chat.scheduled = true;
        if chat.ready_at <= now {
            let (person, channel) = (head.sub.user_telegram_id, head.post.channel_id);
            self.lanes[chat.lane].ready.push(person, channel, chat_id);
        } else {
            self.waiting.push(Reverse((chat.ready_at, chat_id)));
        }
    }

    /// True when a DbWriter backlog this large holds sending back.
    pub(super) fn over_backlog(&self, db_backlog: usize) -> bool {
        db_backlog > self.limits.max_db_backlog
    }

    // The algorithm (one pass, at `now`):
    //
    // 1. Chats whose wait is over move from the timer heap to their lane's
    //    ready chats, listed under the person and the channel of the chat's
    //    oldest queued delivery.
    // 2. If the DbWriter's backlog is over its bound, send nothing and look
    //    again `BACKLOG_RECHECK` later (back-pressure from PostgreSQL).
    // 3. For each lane, starting one further each pass, while fewer than
    //    `max_in_flight` sends are out, the bot's GCRA allows a send now (its
    //    theoretical arrival time `tat` is not more than the tolerance ahead
    //    of now), the bot is not paused by a flood wait, and the bot's
    //    arrival window has room (fewer than `window_cap` sends in flight or
    //    completed within the last second): take the next ready chat in turn
    //    order and send its oldest delivery; `tat` advances by one emission
    //    interval. Turns go in rounds, one turn a round for every person
    //    with a ready chat (the subscriber), round-robin over channels within
    //    a round (`schedule/turns.rs`): one person's many busy channels and
    //    destinations take one turn a round, not one per channel, and a
    //    channel with 5,000 subscribers still does not starve one with ten.
    //    A full window whose sends are all still in flight waits for
    //    `finished`, not for a time.
    // 4. Wake at the earliest moment something can move: a lane's allowed
    //    moment, or the first chat in the timer heap.
    /// The sends allowed at `now`, in order, and when to look again (`None`:
    /// not before something is queued or finishes).
    pub(super) fn next_sends(
        &mut self,
        now: Instant,
        db_backlog: usize,
    ) -> (Vec<Dispatch>, Option<Instant>) {
        // 1. Chats whose wait is over become ready.
        while let Some(Reverse((at, chat_id))) = self.waiting.peek().copied() {
            if at > now {
                break;
            }
            self.waiting.pop();
            if let Some(c) = self.chats.get_mut(&chat_id) {
                c.scheduled = false;
            }
            self.schedule(chat_id, now);
        }
        // 2. Back-pressure from the database.
        if self.over_backlog(db_backlog) {
            return (Vec::new(), Some(now + BACKLOG_RECHECK));
        }
        // 3. Send what the limits allow, lanes in turn.
        let mut sends = Vec::new();
        let mut next_wake: Option<Instant> = None;
        let lanes = self.lanes.len();
        let lane_interval = self.limits.lane_interval * self.share;
        let window_cap = (self.limits.window_cap / self.share as usize).max(1);
        for i in 0..lanes {
            let lane_idx = (self.next_lane + i) % lanes;
            loop {
                if self.in_flight >= self.limits.max_in_flight {
                    break;
                }
                let lane = &mut self.lanes[lane_idx];
                if (lane.ready.is_empty() && lane.urgent.is_empty()) || lane.halted {
                    break;
                }
                while lane
                    .completed
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    lane.completed.pop_front();
                }
                let mut allowed_at = lane.paused_until.max(
                    lane.tat
                        .checked_sub(self.limits.tolerance)
                        .unwrap_or(lane.tat),
                );
                if lane.in_flight + lane.completed.len() >= window_cap {
                    // The window is full: room comes when its oldest
                    // completion leaves it, or when a send in flight
                    // completes (`finished`, then a new pass).
                    match lane.completed.front() {
                        Some(t) => allowed_at = allowed_at.max(*t + WINDOW),
                        None => break,
                    }
                }
                if allowed_at > now {
                    next_wake = Some(next_wake.map_or(allowed_at, |w| w.min(allowed_at)));
                    break;
                }
                // Replies first: someone is waiting for them.
                if let Some(send) = self.next_reply(lane_idx, now, lane_interval, &mut next_wake) {
                    sends.push(send);
                    continue;
                }
                if self.slot_kept_for_replies(lane_idx, now, window_cap) {
                    // Deliveries leave the window's last slot free: a
                    // reply finds it (`schedule/replies.rs`).
                    if let Some(t) = self.lanes[lane_idx].completed.front() {
                        let at = *t + WINDOW;
                        next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                    }
                    break;
                }
                let lane = &mut self.lanes[lane_idx];
                let Some(chat_id) = lane.ready.pop() else {
                    break;
                };
                let Some(chat) = self.chats.get_mut(&chat_id) else {
                    continue;
                };
                chat.scheduled = false;
                // A chat with a reply to send waits for it (its deliveries
                // come after): listed again when the reply has gone.
                if !chat.replies.is_empty() {
                    continue;
                }
                // A chat listed before its queue was emptied (halted lane,
                // dropped channels) or before it took a moved chat's send in
                // flight or later spacing ([`Schedule::move_chat`]) is not
                // sent to now: it costs the bot no turn, and goes back to
                // wait for its moment.
                if chat.in_flight || chat.ready_at > now || chat.queue.is_empty() {
                    self.schedule(chat_id, now);
                    continue;
                }
                // An album's items each take a slot of the bot's window;
                // a call that cannot carry the paid flag also one of the
                // free budget (`budget.rs`). Short of either, the chat
                // waits for it, costing the bot no turn.
                let head = chat.queue.front().expect("checked non-empty");
                let person = head.sub.user_telegram_id;
                let n = items(head);
                let lane = &mut self.lanes[lane_idx];
                // A person at the cap of sends in flight waits for one of
                // them to complete (`schedule/people.rs`), costing no turn.
                if lane.people.at_cap(person, self.limits.person_in_flight) {
                    lane.people.park(person, chat_id);
                    chat.scheduled = true;
                    continue;
                }
                let mut wait_until = None;
                let used = lane.in_flight + lane.completed.len();
                if n > 1 && used + n.min(window_cap) > window_cap {
                    let leave = used + n.min(window_cap) - window_cap;
                    wait_until = Some(match lane.completed.get(leave - 1) {
                        Some(t) => *t + WINDOW,
                        None => now + Duration::from_millis(20),
                    });
                }
                if let Some(free) = lane.free.as_mut()
                    && !carries_paid(head)
                {
                    let at = free.allowed_at(now, self.limits.tolerance, n);
                    if at > now {
                        wait_until = Some(wait_until.map_or(at, |w: Instant| w.max(at)));
                    }
                }
                if let Some(at) = wait_until {
                    chat.ready_at = chat.ready_at.max(at);
                    self.schedule(chat_id, now);
                    continue;
                }
                if let Some(free) = lane.free.as_mut()
                    && !carries_paid(head)
                {
                    free.take(now, n);
                }
                let delivery = chat.queue.pop_front().expect("checked non-empty");
                self.lanes[lane_idx].tat =
                    self.lanes[lane_idx].tat.max(now) + lane_interval * n as u32;
                let chat = self.chats.get_mut(&chat_id).expect("looked up above");
                chat.in_flight = true;
                self.lanes[lane_idx].in_flight += n;
                self.lanes[lane_idx].people.sent(person);
                self.queued -= 1;
                self.in_flight += 1;
                self.counters.dispatched += 1;
                sends.push(Dispatch {
                    lane: lane_idx,
                    delivery,
                });
            }
        }
        self.next_lane = (self.next_lane + 1) % lanes.max(1);
        // 4. Wake when something can move.
        if let Some(Reverse((at, _))) = self.waiting.peek() {
            next_wake = Some(next_wake.map_or(*at, |w| w.min(*at)));
        }
        (sends, next_wake)
    }

    /// A send of bot `lane` completed at `now` with `outcome`; a delivery to
    /// retry goes back to the head of its chat's queue. Says how a 429 was
    /// taken.
    pub(super) fn finished(
        &mut self,
        lane: usize,
        delivery: Delivery,
        outcome: SendOutcome,
        now: Instant,
    ) -> Option<FloodWait> {
        let chat_id = self.chat_of(&delivery);
        self.in_flight = self.in_flight.saturating_sub(1);
        let n = items(&delivery);
        self.person_done(lane, &delivery, now);
        if let Some(l) = self.lanes.get_mut(lane) {
            l.in_flight = l.in_flight.saturating_sub(n);
            for _ in 0..n {
                l.completed.push_back(now);
            }
            if let Some(free) = l.free.as_mut()
                && !carries_paid(&delivery)
            {
                free.done(now, n);
            }
        }
        let mut requeue = None;
        let mut flood = None;
        let interval = match self.chats.get(&chat_id) {
            Some(c) => c.interval,
            None => self
                .limits
                .chat_interval(delivery.sub.destination_kind.is_group_like()),
        } * self.share;
        let ready_at = match outcome {
            SendOutcome::Done => now + interval,
            SendOutcome::RetryAfter(wait) => {
                self.counters.retry_after += 1;
                let l = &mut self.lanes[lane];
                l.recent_429.push_back((now, chat_id));
                while l
                    .recent_429
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > FLOOD_MEMORY)
                {
                    l.recent_429.pop_front();
                }
                let mut chats: Vec<i64> = l.recent_429.iter().map(|(_, c)| *c).collect();
                chats.sort_unstable();
                chats.dedup();
                // Several chats refused within a second: the bot itself is over
                // its limit, so the whole lane waits.
                if chats.len() >= FLOOD_CHATS_FOR_LANE_PAUSE {
                    l.paused_until = l.paused_until.max(now + wait);
                    self.counters.lane_pauses += 1;
                    flood = Some(FloodWait::Lane);
                } else {
                    flood = Some(FloodWait::Chat);
                }
                requeue = Some(delivery);
                now + wait
            }
            SendOutcome::Retry(backoff) => {
                self.counters.retried += 1;
                requeue = Some(delivery);
                now + backoff.max(interval)
            }
            SendOutcome::Revoked => {
                self.halt_lane(lane);
                // `push` turns it away: the lane is halted now.
                requeue = Some(delivery);
                now + interval
            }
        };
        if let Some(d) = requeue {
            self.push(d, true, now);
        }
        if let Some(c) = self.chats.get_mut(&chat_id) {
            c.in_flight = false;
            c.ready_at = c.ready_at.max(ready_at);
        }
        self.schedule(chat_id, now);
        flood
    }

    /// A send this schedule allowed that the shared limits held back (the
    /// chat or the bot is busy at another instance): it goes back to the
    /// head of its chat's queue, not sent and not counted as sent; the chat
    /// waits `chat_wait`, the whole lane `lane_wait`.
    pub(super) fn unadmitted(
        &mut self,
        lane: usize,
        delivery: Delivery,
        chat_wait: Duration,
        lane_wait: Duration,
        now: Instant,
    ) {
        let chat_id = self.chat_of(&delivery);
        self.in_flight = self.in_flight.saturating_sub(1);
        self.counters.dispatched = self.counters.dispatched.saturating_sub(1);
        self.counters.shared_held += 1;
        let n = items(&delivery);
        self.person_done(lane, &delivery, now);
        if let Some(l) = self.lanes.get_mut(lane) {
            l.in_flight = l.in_flight.saturating_sub(n);
            if let Some(free) = l.free.as_mut()
                && !carries_paid(&delivery)
            {
                // Not sent: nothing arrived, its slots are free again.
                free.cancel(n);
            }
            if !lane_wait.is_zero() {
                l.paused_until = l.paused_until.max(now + lane_wait);
            }
        }
        self.push(delivery, true, now);
        if let Some(c) = self.chats.get_mut(&chat_id) {
            c.in_flight = false;
            c.ready_at = c.ready_at.max(now + chat_wait);
        }
        self.schedule(chat_id, now);
    }

    /// Forgets idle chats whose spacing has run out by `now`, so memory
    /// follows the active chats, not every chat ever served.
    pub(super) fn sweep(&mut self, now: Instant) {
        self.chats.retain(|_, c| {
            c.in_flight
                || c.scheduled
                || !c.queue.is_empty()
                || !c.replies.is_empty()
                || c.ready_at > now
        });
        // By then nothing addressed to the old chat is in flight or on its
        // way from a fan-out; the database has the new id.
        self.moved
            .retain(|_, (_, at)| now.duration_since(*at) < MOVED_CHAT_MEMORY);
    }

    /// Chats the schedule remembers.
    #[cfg(test)]
    fn chats_known(&self) -> usize {
        self.chats.len()
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "replies_tests.rs"]
mod replies_tests;
