//! Deliveries the database owes — recorded posts whose deliveries have no
//! outcome — and how the running daemon pays them: the start-up resume and
//! the periodic sweep, both streaming into the rate limiter under its
//! back-pressure, and the persistence adapter that tells the pipeline's
//! [`InFlight`] set which outcomes are committed.
//!
//! **Resume** (once, at start, in the background: `Pipeline::start` never
//! waits for it nor fails on it). The channels with an owed delivery are
//! listed first (one cheap query); every other poller starts at once. The
//! owed deliveries then stream in channel order, oldest post first, into
//! the limiter; a held-back channel's poller starts as soon as all its owed
//! deliveries are queued, so they stay ahead of its newer posts in every
//! chat. An error is logged and the resume tried again (what it already
//! queued is held, so it is not queued twice); after [`RESUME_ATTEMPTS`] it
//! starts the held-back pollers anyway and leaves the rest to the sweep.
//!
//! **Sweep** (every `delivery.sweep_interval_s`): recorded posts of the
//! resume window, at least one interval old, that this process has not
//! *handled* (see `kuryer_actors::in_flight`), and their owed deliveries that
//! are not held: a post whose recording committed though its answer was lost
//! (the poller gave up, the mark had moved) is delivered within an interval
//! or two, with no restart.
//!
//! **Full destinations**: a destination chat holding
//! `delivery.queue_per_destination` deliveries in the limiter is *full*
//! (`QueueRoom::chat_full`) until it drains to half of that. Its further
//! deliveries are held exactly as quiet hours hold them (below), and a pass
//! queues at most that many for one chat; when a full chat drains, a sweep
//! runs early (at most one a second), so a backlog keeps flowing at the
//! chat's own rate while the queue holds only a bounded part of it.
//!
//! **Quiet hours** (`kuryer_actors::quiet`): an owed delivery of a
//! subscription in its quiet hours is held like a halted bot's — not
//! queued, its post left unhandled — and noted in [`QuietHolds`], so the
//! registry holds that subscription's new posts too; once the hours end,
//! the next sweep queues the backlog in order and only then lets new posts
//! through. Both passes read posts up to [`MAX_HOLD`] older than the resume
//! window for subscriptions with quiet hours, and keep those whose hours
//! ended within the window: a held post is due when its hours end, so it
//! never expires out of the window while held.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use kuryer_actors::backoff::Backoff;
use kuryer_actors::channel_supervisor::ChannelSupervisor;
use kuryer_actors::in_flight::{InFlight, PostKey};
use kuryer_actors::model::{ChannelRef, Delivery};
use kuryer_actors::quiet::{Quiet, QuietHolds};
use kuryer_actors::rate_limiter::{Enqueue, HaltedLanes, QueueRoom, RateLimiter};

use crate::instance::Ownership;
use crate::store::{PendingQuery, Store, StoreError};
use crate::telemetry::events;

mod gate;
mod settling;

pub use gate::PollerGate;
pub use settling::SettlingStore;

/// Tries of the start-up resume before the held-back pollers start anyway.
pub const RESUME_ATTEMPTS: u32 = 5;

/// The longest a post can be held by quiet hours (a span is under a day).
pub const MAX_HOLD: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The least time between two sweeps started early (a full destination
/// drained).
const EARLY_SWEEP_GAP: Duration = Duration::from_secs(1);

/// Posts a sweep reads the owed deliveries of in one cursor.
const SWEEP_POSTS_PER_QUERY: usize = 1000;

/// What the resume and the sweep work with.
#[derive(Clone)]
pub struct Owed {
    /// The database.
    pub store: Store,
    /// Where owed deliveries go.
    pub limiter: Addr<RateLimiter>,
    /// What this process holds.
    pub in_flight: Arc<InFlight>,
    /// Bots whose token was refused: their deliveries stay owed.
    pub halted: Arc<HaltedLanes>,
    /// Rows a fetch.
    pub chunk: usize,
    /// The resume window (zero: neither resume nor sweep).
    pub window: Duration,
    /// How often the sweep runs, and how old a post must be for it.
    pub sweep_interval: Duration,
    /// An `ambiguous` outcome counts as none.
    pub retry_ambiguous: bool,
    /// Set by the shutdown: no sweep queues anything after it.
    pub stop: Arc<AtomicBool>,
    /// Several instances: only the channels leased to this one are resumed
    /// and swept (their take-over resumes them, not the start-up).
    pub ownership: Option<Arc<Ownership>>,
    /// Subscriptions holding posts for their quiet hours, shared with the registry.
    pub holds: Arc<QuietHolds>,
    /// The limiter's queue: which destinations' queues are full.
    pub room: Arc<QueueRoom>,
}

/// Why one pass over owed deliveries stopped.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the rate limiter is gone")]
    LimiterGone,
}

impl Owed {
    /// Runs the start-up resume, then the sweep every interval, on the
    /// current arbiter. `channels`: the pollers to start (held back per
    /// channel while the resume runs).
    pub fn spawn(
        self,
        supervisor: Addr<ChannelSupervisor>,
        gate: Arc<PollerGate>,
        channels: Vec<ChannelRef>,
    ) {
        actix_rt::spawn(async move {
            let resumed = Arc::new(AtomicBool::new(false));
            gate::watch_resume(gate.clone(), resumed.clone());
            self.resume(&supervisor, &gate, channels).await;
            resumed.store(true, Ordering::Relaxed);
            if self.window.is_zero() {
                return;
            }
            let mut tick = tokio::time::interval(self.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    // A destination whose queue was full has room: what is
                    // held for it is queued now, not a whole interval later
                    // (at most one such early sweep a second).
                    () = self.room.chat_drained() => {
                        tokio::time::sleep_until(last + EARLY_SWEEP_GAP).await;
                    }
                }
                last = tokio::time::Instant::now();
                if self.stop.load(Ordering::Relaxed) || !self.limiter.connected() {
                    return;
                }
                if let Err(e) = self.sweep().await {
                    tracing::warn!(error = %e, "Sweep for undelivered posts failed; trying again next interval.");
                }
            }
        });
    }

    /// Channels this instance just took (several instances): their owed
    /// deliveries are queued first, then their pollers start, as at a
    /// start-up resume. On an error the pollers start anyway and the sweep
    /// delivers the rest. The handle completes once their pollers are
    /// asked to start.
    pub fn take_over(
        &self,
        supervisor: Addr<ChannelSupervisor>,
        gate: Arc<PollerGate>,
        channels: Vec<ChannelRef>,
    ) -> actix_rt::task::JoinHandle<()> {
        let this = self.clone();
        actix_rt::spawn(async move {
            let ids: Vec<i64> = channels.iter().map(|c| c.channel_id).collect();
            gate.hold(channels);
            if !this.window.is_zero() {
                let since = this.since();
                match this.store.recent_post_ids_of(&ids, since).await {
                    Ok(posts) => {
                        let mut queued = 0;
                        for batch in posts.chunks(SWEEP_POSTS_PER_QUERY) {
                            let q = PendingQuery {
                                since,
                                posts: Some(batch.to_vec()),
                                retry_ambiguous: this.retry_ambiguous,
                            };
                            match this.pass(q, None).await {
                                Ok((n, _)) => queued += n,
                                Err((n, e)) => {
                                    queued += n;
                                    tracing::warn!(error = %e, "Resuming a taken channel's deliveries failed; the sweep delivers the rest.");
                                    break;
                                }
                            }
                        }
                        if queued > 0 {
                            events::taken_over_resumed(ids.len(), queued);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Cannot list a taken channel's posts; the sweep delivers what they owe.");
                    }
                }
            }
            let owned = |id: i64| this.ownership.as_ref().is_none_or(|o| o.owns_channel(id));
            gate.release_ids(&supervisor, &ids, owned);
        })
    }

    fn since(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() - chrono::Duration::from_std(self.window).unwrap_or_default()
    }

    async fn resume(
        &self,
        supervisor: &Addr<ChannelSupervisor>,
        gate: &PollerGate,
        channels: Vec<ChannelRef>,
    ) {
        if self.window.is_zero() || self.ownership.is_some() {
            for ch in channels {
                gate.start(supervisor, ch);
            }
            return;
        }
        let since = self.since();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(16));
        // Which channels wait for their owed deliveries; every other
        // channel's poller starts now.
        let mut pending = None;
        for attempt in 1..=RESUME_ATTEMPTS {
            match self
                .store
                .channels_with_pending(since, self.retry_ambiguous)
                .await
            {
                Ok(p) => {
                    pending = Some(p.into_iter().collect::<HashSet<i64>>());
                    break;
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "Cannot list channels with deliveries to resume; trying again.");
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
            }
        }
        let Some(pending) = pending else {
            tracing::error!(
                "Cannot read the deliveries to resume; starting every poller. The periodic sweep delivers them later, possibly after newer posts of their channels."
            );
            for ch in channels {
                gate.start(supervisor, ch);
            }
            return;
        };
        let (held, free): (Vec<_>, Vec<_>) = channels
            .into_iter()
            .partition(|ch| pending.contains(&ch.channel_id));
        tracing::info!(
            channels_resuming = held.len(),
            channels_starting = free.len(),
            "Resuming deliveries recorded but not sent; starting the other pollers."
        );
        gate.hold(held);
        for ch in free {
            gate.start(supervisor, ch);
        }
        let started = std::time::Instant::now();
        let mut queued = 0u64;
        for attempt in 1..=RESUME_ATTEMPTS {
            let q = PendingQuery {
                since,
                posts: None,
                retry_ambiguous: self.retry_ambiguous,
            };
            match self.pass(q, Some((supervisor, gate))).await {
                Ok((n, _)) => {
                    queued += n;
                    events::resume_done(queued, started.elapsed());
                    gate.release(supervisor, None);
                    return;
                }
                Err((n, e)) => {
                    queued += n;
                    tracing::warn!(attempt, queued, error = %e, "Resume interrupted; trying again (what is queued stays queued).");
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
            }
        }
        events::resume_gave_up(queued);
        gate.release(supervisor, None);
    }

    /// One periodic sweep: owed deliveries of recent posts not handled.
    async fn sweep(&self) -> Result<(), StoreError> {
        let since = self.since();
        // A held backlog to release is read up to now: the registry holds
        // that subscription's new posts until the release has read them all.
        let until = if self.holds.holding() > 0 {
            chrono::Utc::now()
        } else {
            chrono::Utc::now() - chrono::Duration::from_std(self.sweep_interval).unwrap_or_default()
        };
        self.in_flight.forget_handled_before(since - MAX_HOLD);
        let posts: Vec<_> = self
            .store
            .recent_posts(since - MAX_HOLD, until)
            .await?
            .into_iter()
            .filter(|p| !self.in_flight.is_handled((p.channel_id, p.message_id)))
            .filter(|p| {
                self.ownership
                    .as_ref()
                    .is_none_or(|o| o.owns_channel(p.channel_id))
            })
            .collect();
        let mut swept = 0;
        for batch in posts.chunks(SWEEP_POSTS_PER_QUERY) {
            let q = PendingQuery {
                since,
                posts: Some(batch.iter().map(|p| p.id).collect()),
                retry_ambiguous: self.retry_ambiguous,
            };
            match self.pass(q, None).await {
                Ok((n, skipped)) => {
                    swept += n;
                    // Every owed delivery of these posts is held or was
                    // committed, or the pass saw none: nothing left to find
                    // (a halted bot's deliveries keep their post unhandled).
                    self.in_flight.mark_handled(
                        batch
                            .iter()
                            .map(|p| ((p.channel_id, p.message_id), p.detected_at))
                            .filter(|(k, _)| !skipped.contains(k)),
                    );
                }
                Err((n, PassError::Store(e))) => {
                    if swept + n > 0 {
                        events::swept(swept + n, false);
                    }
                    return Err(e);
                }
                Err((_, PassError::LimiterGone)) => return Ok(()),
            }
        }
        if swept > 0 {
            events::swept(swept, true);
        }
        Ok(())
    }

    /// Streams the owed deliveries `q` selects into the limiter: each one
    /// claimed first (what is held is skipped), a halted bot's left owed.
    /// With a gate, releases each held channel once the stream is past it.
    /// Returns how many were queued (also with an error) and the posts with
    /// deliveries left owed (a halted bot's); marks the others it read handled.
    async fn pass(
        &self,
        q: PendingQuery,
        gate: Option<(&Addr<ChannelSupervisor>, &PollerGate)>,
    ) -> Result<(u64, HashSet<PostKey>), (u64, PassError)> {
        let mark = self.in_flight.begin_sweep();
        let mut stream = self.store.stream_pending_deliveries(q, self.chunk);
        let mut queued = 0u64;
        let mut handled: Vec<(PostKey, chrono::DateTime<chrono::Utc>)> = Vec::new();
        let mut skipped_posts: HashSet<PostKey> = HashSet::new();
        // Quiet hours by subscription, compiled once a pass; the newest
        // post each subscription had queued (for releasing its hold).
        let mut quiet: std::collections::HashMap<i64, Option<Quiet>> = Default::default();
        let mut queued_upto: std::collections::HashMap<i64, i32> = Default::default();
        let mut full_held: HashSet<i64> = HashSet::new();
        let mut to_chat: std::collections::HashMap<i64, usize> = Default::default();
        let now = chrono::Utc::now();
        let result = loop {
            let chunk = match stream.next_chunk().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(PassError::Store(e)),
                Some(Ok(c)) => c,
            };
            let last_channel = chunk.last().map(|d| d.post.channel_id);
            let (live, halted): (Vec<Delivery>, Vec<Delivery>) = chunk
                .into_iter()
                .partition(|d| !self.halted.is_halted_for(d.sub.bot_id));
            skipped_posts.extend(halted.iter().map(post_key));
            // Held for quiet hours or for a destination whose queue is
            // full (or that this pass gave a queue's worth already): owed,
            // its post left unhandled, and the subscription holding so its
            // newer posts wait behind it (within this pass too: once held,
            // its later posts here are held).
            let (live, held): (Vec<Delivery>, Vec<Delivery>) = live.into_iter().partition(|d| {
                let id = d.sub.subscription_id;
                if full_held.contains(&id) {
                    return false;
                }
                let given = to_chat.entry(d.sub.chat_id).or_insert(0);
                if *given >= self.room.per_chat() || self.room.chat_full(d.sub.chat_id) {
                    full_held.insert(id);
                    return false;
                }
                *given += 1;
                quiet
                    .entry(id)
                    .or_insert_with(|| Quiet::from_stored(d.sub.quiet.as_deref()))
                    .as_ref()
                    .is_none_or(|q| q.quiet_until(now).is_none())
            });
            for d in &held {
                self.holds
                    .hold(d.sub.subscription_id, d.post.message_ids[0]);
            }
            skipped_posts.extend(held.iter().map(post_key));
            for d in &live {
                let e = queued_upto.entry(d.sub.subscription_id).or_insert(0);
                *e = (*e).max(d.post.message_ids[0]);
            }
            for d in &live {
                let k = post_key(d);
                if handled.last().map(|(h, _)| *h) != Some(k) {
                    handled.push((k, d.post.detected_at));
                }
            }
            let claimed = self.in_flight.claim_swept(&mark, live);
            let n = claimed.len() as u64;
            if n > 0 {
                // Counted by the caller (resumed or swept). Answered once they are queued and the queue is under its
                // capacity: the back-pressure that bounds memory.
                if self.limiter.send(Enqueue(claimed)).await.is_err() {
                    break Err(PassError::LimiterGone);
                }
                queued += n;
            }
            // Ordered by channel: every channel below the last one of this
            // chunk has all its owed deliveries queued.
            if let (Some((supervisor, gate)), Some(last)) = (gate, last_channel) {
                gate.release(supervisor, Some(last));
            }
        };
        self.in_flight.end_sweep(mark);
        if result.is_ok() {
            // Everything owed up to these posts is queued, ahead of any newer post.
            for (sub, upto) in queued_upto {
                if self.holds.is_holding(sub) && self.holds.try_release(sub, upto) {
                    tracing::info!(
                        subscription_id = sub,
                        "Quiet hours over; the held posts are queued."
                    );
                }
            }
            self.in_flight.mark_handled(
                handled
                    .into_iter()
                    .filter(|(k, _)| !skipped_posts.contains(k)),
            );
        }
        result
            .map(|()| (queued, skipped_posts))
            .map_err(|e| (queued, e))
    }
}

fn post_key(d: &Delivery) -> PostKey {
    (d.post.channel_id, d.post.message_ids[0])
}
