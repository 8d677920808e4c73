//! The limits shared with other instances (several `kuryer run` sending
//! with the same bots, to destinations that receive posts from channels
//! owned by different instances).
//!
//! The local [`Schedule`](super::schedule) stays the fast path: it picks
//! the sends its own view allows, then one call of the
//! [`SharedLimits`] port admits the whole batch of candidates of a round
//! (one Redis round trip a round, not one a message). A call is in flight
//! at a time; what the schedule allows meanwhile waits for the next call,
//! so under load each call carries many candidates. Completions are
//! reported in the next call too, so another instance's next send to the
//! same chat is spaced from this send's completion, as the local schedule
//! spaces its own.
//!
//! A held-back candidate returns to the head of its chat's queue and waits
//! what the port said (its chat, or its whole bot). When the port is
//! unreachable the instance sends at `1 / live instances` of every limit
//! (the fallback share) and says so in the log, once per change; when it
//! returns the share holds [`REJOIN`] longer, so an instance that noticed
//! first never sends at the full limit beside one still on its share. Each
//! change begins with a quiet second on every bot: what the others sent in
//! the last second is then out of Telegram's window, whatever this
//! instance (or a Redis that restarted empty) knows of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::RateLimiter;
use super::limits::WINDOW;
use super::schedule::Dispatch;
use crate::ports::{Admission, SendSlot, SharedLimits, SharedLimitsError, SlotDone};

/// After a failed call, the fallback share holds at least this long even if
/// the port claims to be reachable, so a flapping store cannot make every
/// round wait for a timeout.
const FALLBACK_AFTER_ERROR: Duration = Duration::from_secs(2);

/// After the shared store returns, the fallback share holds this much
/// longer (while admissions already go through the store): the other
/// instances notice the return up to a probe (a second) and
/// [`FALLBACK_AFTER_ERROR`] later, and until they do they send on their
/// share alone, unseen by the store.
const REJOIN: Duration = Duration::from_secs(5);

/// A candidate waiting for its admission.
pub(super) struct Candidate {
    dispatch: Dispatch,
    slot: SendSlot,
}

/// The actor's state of the shared limits.
pub(super) struct Shared {
    port: Arc<dyn SharedLimits>,
    /// Candidates for the next call.
    want: Vec<Candidate>,
    /// Completions for the next call: (bot, chat, ticket, when).
    done: Vec<(i64, i64, u64, Instant)>,
    /// A call is in flight.
    awaiting: bool,
    next_ticket: u64,
    /// The ticket of each admitted send in flight, by (lane, chat).
    tickets: HashMap<(usize, i64), u64>,
    /// No call before this instant: the last one failed.
    fallback_until: Option<Instant>,
    /// Whether the last pass ran on the fallback share.
    in_fallback: bool,
    /// The fallback share holds until then after the store returned.
    rejoin_until: Option<Instant>,
}

impl Shared {
    pub(super) fn new(port: Arc<dyn SharedLimits>) -> Self {
        Self {
            port,
            want: Vec::new(),
            done: Vec::new(),
            awaiting: false,
            next_ticket: 1,
            tickets: HashMap::new(),
            fallback_until: None,
            in_fallback: false,
            rejoin_until: None,
        }
    }

    /// Whether sends go through the port now.
    pub(super) fn active(&self, now: Instant) -> bool {
        !self.fallback(now) && self.port.active()
    }

    fn fallback(&self, now: Instant) -> bool {
        !self.port.reachable() || self.fallback_until.is_some_and(|t| t > now)
    }

    /// Queues a candidate of bot `bot_id` for the next call.
    pub(super) fn want(&mut self, bot_id: i64, dispatch: Dispatch) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let slot = SendSlot {
            bot_id,
            chat_id: dispatch.delivery.sub.chat_id,
            group_like: dispatch.delivery.sub.destination_kind.is_group_like(),
            ticket,
            // The same count as the local budget's (an album's items).
            items: u32::try_from(super::budget::items(&dispatch.delivery)).unwrap_or(u32::MAX),
        };
        self.want.push(Candidate { dispatch, slot });
    }

    /// A send completed: reported in the next call, if it was admitted there.
    pub(super) fn finished(&mut self, lane: usize, bot_id: i64, chat_id: i64, now: Instant) {
        if let Some(ticket) = self.tickets.remove(&(lane, chat_id)) {
            self.done.push((bot_id, chat_id, ticket, now));
        }
    }
}

impl RateLimiter {
    /// Puts the schedule on the fallback share while the shared limits are
    /// unreachable, back on the whole limit when they return; logs each change.
    pub(super) fn update_share(&mut self, now: Instant) {
        let Some(sh) = self.shared.as_mut() else {
            return;
        };
        let fallback = sh.fallback(now);
        if !fallback && sh.in_fallback {
            sh.rejoin_until = Some(now + REJOIN);
        }
        let rejoining = sh.rejoin_until.is_some_and(|t| t > now);
        let share = if fallback || rejoining {
            u32::try_from(sh.port.live_instances().max(1)).unwrap_or(u32::MAX)
        } else {
            1
        };
        if fallback != sh.in_fallback {
            sh.in_fallback = fallback;
            // Neither this instance nor the shared store knows all that
            // was sent in the last second (the store may have restarted
            // empty): a quiet second lets Telegram's windows empty first.
            self.schedule.pause_lanes(now + WINDOW);
            if fallback {
                tracing::error!(
                    live_instances = share,
                    share = %format!("1/{share}"),
                    "Shared rate limits unreachable (Redis): this instance now sends at its \
                     share of every limit, 1/{share} of each bot's rate, until they are back."
                );
            } else {
                tracing::info!("Shared rate limits reachable again: sending at the full limits.");
            }
        }
        if share != self.schedule.share() {
            self.schedule.set_share(share);
        }
    }

    /// Sends the waiting candidates and completions in one call, unless a
    /// call is in flight (its answer sends the next).
    pub(super) fn flush_shared(&mut self, ctx: &mut Context<Self>) {
        let Some(sh) = self.shared.as_mut() else {
            return;
        };
        if sh.awaiting || (sh.want.is_empty() && sh.done.is_empty()) {
            return;
        }
        let now = Instant::now();
        let want = std::mem::take(&mut sh.want);
        let done: Vec<SlotDone> = sh
            .done
            .drain(..)
            .map(|(bot_id, chat_id, ticket, at)| SlotDone {
                bot_id,
                chat_id,
                ticket,
                ago: now.saturating_duration_since(at),
            })
            .collect();
        let slots = want.iter().map(|c| c.slot).collect();
        sh.awaiting = true;
        let call = sh.port.admit(slots, done);
        ctx.spawn(
            call.into_actor(self)
                .map(move |answer, act, ctx| act.admitted(want, answer, ctx)),
        );
    }

    /// The port's answer: sends what it admitted, puts back what it held.
    fn admitted(
        &mut self,
        want: Vec<Candidate>,
        answer: Result<Vec<Admission>, SharedLimitsError>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let answers = match answer {
            Ok(a) if a.len() == want.len() => Some(a),
            Ok(a) => {
                tracing::error!(
                    asked = want.len(),
                    answered = a.len(),
                    "Shared rate limits answered the wrong number of sends; holding them back."
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, candidates = want.len(), "Shared rate limits call failed; the sends go back to the queue.");
                None
            }
        };
        if let Some(sh) = self.shared.as_mut() {
            sh.awaiting = false;
            if answers.is_none() {
                sh.fallback_until = Some(now + FALLBACK_AFTER_ERROR);
            }
        }
        for (i, c) in want.into_iter().enumerate() {
            let Dispatch { lane, delivery } = c.dispatch;
            let admission = match &answers {
                // A halted limiter sends nothing more.
                Some(_) if self.halted => None,
                Some(a) => Some(a[i]),
                None => None,
            };
            match admission {
                Some(Admission::Admitted) => {
                    if let Some(sh) = self.shared.as_mut() {
                        sh.tickets
                            .insert((lane, delivery.sub.chat_id), c.slot.ticket);
                    }
                    self.send_now(lane, delivery, ctx);
                }
                Some(Admission::ChatWait(wait)) => {
                    self.schedule
                        .unadmitted(lane, delivery, wait, Duration::ZERO, now)
                }
                Some(Admission::BotWait(wait)) => {
                    self.schedule
                        .unadmitted(lane, delivery, Duration::ZERO, wait, now)
                }
                None => {
                    self.schedule
                        .unadmitted(lane, delivery, Duration::ZERO, Duration::ZERO, now)
                }
            }
        }
        self.collect_dropped();
        if self.halted {
            self.release_waiters();
        } else {
            self.dispatch(ctx);
        }
    }
}
