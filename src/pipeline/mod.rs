//! Wiring of the actor pipeline: start-up (registry load, pollers), and the
//! ordered shutdown. The store's adapter of the actors' `Persistence` port is
//! in `store/persistence.rs`.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the running pipeline's handle: take-overs, subscription changes, stats, the ordered shutdown |
//! | `config.rs` | its settings from the daemon's configuration |
//! | `start.rs` | starting it: actors, registry load, resume, workers |
//! | `notices.rs` | messages of kuryer's own (channel notices, digests) sent through the limiter |

mod config;
mod notices;
mod start;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use kuryer_actors::channel_supervisor::{
    ChannelSupervisor, GetSupervisorStats, ReleaseChannel, StopAll, StopChannel, WakeChannel,
};
use kuryer_actors::db_writer::{DbWriter, Flush, GetDbWriterStats};
use kuryer_actors::in_flight::InFlight;
use kuryer_actors::model::ChannelRef;
use kuryer_actors::rate_limiter::{
    Drain, DropChannels, Enqueue, GetLimiterStats, Halt, HaltedLanes, RateLimiter,
};
use kuryer_actors::sender_pool::SenderPool;
use kuryer_actors::subscriber_registry::{
    AddSubscription, GetRegistryStats, LoadSubscriptions, RemoveDestination, RemoveSubscription,
    RetainSubscriptions, SubscriberRegistry,
};

use crate::instance::Ownership;
use crate::owed::{Owed, PollerGate};
use crate::store::{Store, StoreError};

pub use config::{PipelineConfig, limiter_config};
pub use notices::{Notice, NoticeError, Notices};
pub use start::PipelineParts;

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an actor is gone: {0}")]
    Mailbox(#[from] MailboxError),
}

/// What the shutdown managed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShutdownReport {
    /// Every step finished before the deadline.
    pub clean: bool,
    /// Deliveries still queued or in flight when it ended.
    pub left_queued: usize,
    pub elapsed: Duration,
}

/// Live counters of the pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineStats {
    pub channels_polled: usize,
    pub poller_restarts: u64,
    pub subscriptions: usize,
    pub posts_published: u64,
    pub deliveries_made: u64,
    pub queued: usize,
    pub in_flight: usize,
    pub dispatched: u64,
    pub retry_after: u64,
    pub rows_written: u64,
    pub rows_dropped: u64,
    /// Delivery rows waiting for the DbWriter.
    pub db_backlog: usize,
    /// Bots halted because Telegram refused their token (401): `/readyz`
    /// is degraded while this is above zero.
    pub halted_bots: usize,
    /// Deliveries this process holds (queued, being sent, outcome not yet
    /// committed).
    pub held_deliveries: usize,
    /// Pollers still held back by the start-up resume.
    pub resuming_channels: usize,
}

/// The running pipeline: addresses of its actors.
#[derive(Clone)]
pub struct Pipeline {
    supervisor: Addr<ChannelSupervisor>,
    registry: Addr<SubscriberRegistry>,
    limiter: Addr<RateLimiter>,
    writer: Addr<DbWriter>,
    sender: Addr<SenderPool>,
    /// How long the registry's initial load took.
    pub registry_load: Duration,
    /// How long a forced shutdown waits for the sends in flight: the
    /// longest a request can take, and a second for its outcome to travel.
    halt_wait: Duration,
    /// Pollers held back until their owed deliveries are queued.
    gate: Arc<PollerGate>,
    /// Bots whose token was refused.
    halted: Arc<HaltedLanes>,
    /// Deliveries this process holds.
    in_flight: Arc<InFlight>,
    /// Stops the sweep at shutdown.
    stop_sweep: Arc<AtomicBool>,
    /// The resume's and sweep's settings: a channel taken over is resumed
    /// the same way.
    owed: Owed,
    /// Several instances: what this one holds (`None`: everything).
    ownership: Option<Arc<Ownership>>,
    /// Wakes the copies worker (edits, deletions, backfills queued).
    mirror: Arc<tokio::sync::Notify>,
}

impl Pipeline {
    /// The channel supervisor, for tests that ask it directly.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn supervisor(&self) -> &Addr<ChannelSupervisor> {
        &self.supervisor
    }

    /// The subscriber registry, for tests that ask it directly.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn registry(&self) -> &Addr<SubscriberRegistry> {
        &self.registry
    }

    /// Fans a recorded post out as its poller would (a replayed dead
    /// letter); false when the registry is gone.
    pub async fn publish(&self, post: Arc<kuryer_actors::model::Post>) -> bool {
        self.registry
            .send(kuryer_actors::subscriber_registry::PublishPost(post))
            .await
            .is_ok()
    }

    /// A post whose deliveries were made owed again (a replayed dead
    /// letter): the next sweep reads it, though this process handled it.
    pub fn owe_again(&self, channel_id: i64, first_id: i32) {
        self.in_flight.unmark_handled((channel_id, first_id));
    }

    /// The rate limiter, for tests that ask it directly.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn limiter(&self) -> &Addr<RateLimiter> {
        &self.limiter
    }

    /// Hands a bot's reply to a command ([`Delivery::reply`]) to the
    /// limiter, which sends it ahead of the deliveries: never waits (the
    /// update loop calls it), so the queue's back-pressure does not apply.
    ///
    /// [`Delivery::reply`]: kuryer_actors::model::Delivery::reply
    pub fn reply(&self, reply: kuryer_actors::model::Delivery) {
        self.limiter.do_send(Enqueue(vec![reply]));
    }

    /// The door for messages of kuryer's own (notices, digests): through
    /// the limiter, like every delivery.
    pub fn notices(&self) -> Notices {
        Notices::new(self.limiter.clone())
    }

    /// The sender pool, for tests that stop it.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn sender(&self) -> &Addr<SenderPool> {
        &self.sender
    }

    /// The DbWriter, for tests that stop it.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn writer(&self) -> &Addr<DbWriter> {
        &self.writer
    }

    /// Channels this instance just took the lease of: what they owe is
    /// queued, then their pollers start.
    pub fn take_over(&self, channels: Vec<ChannelRef>) -> actix_rt::task::JoinHandle<()> {
        self.owed
            .take_over(self.supervisor.clone(), self.gate.clone(), channels)
    }

    /// Channels whose lease this instance lost or gave up: their pollers
    /// stop (queued deliveries of theirs are dropped at the sender).
    pub fn drop_channels(&self, channels: &[i64]) {
        self.gate.forget(channels);
        for id in channels {
            self.supervisor.do_send(ReleaseChannel(*id));
        }
        self.limiter.do_send(DropChannels(channels.to_vec()));
    }

    /// What this instance owns, with several instances.
    pub fn ownership(&self) -> Option<&Arc<Ownership>> {
        self.ownership.as_ref()
    }

    /// Whether this instance reads `channel_id` (always, with one
    /// instance). When not, the keeper is asked for a round now: the
    /// channel may be new and no one's yet.
    fn reads(&self, channel_id: i64) -> bool {
        match &self.ownership {
            None => true,
            Some(o) if o.owns_channel(channel_id) => true,
            Some(o) => {
                o.want_claim();
                false
            }
        }
    }

    /// The shared actors by name, and whether each is running. An actor
    /// that stopped (a panic in a handler ends only that actor's task) takes
    /// its queued work with it: nothing restarts it in place, the daemon
    /// stops instead (see `daemon::run`).
    pub fn actors(&self) -> [(&'static str, bool); 5] {
        [
            ("supervisor", self.supervisor.connected()),
            ("registry", self.registry.connected()),
            ("limiter", self.limiter.connected()),
            ("sender", self.sender.connected()),
            ("writer", self.writer.connected()),
        ]
    }

    /// Completes with the name of the first shared actor found stopped
    /// (looked at twice a second).
    pub async fn first_death(&self) -> &'static str {
        loop {
            if let Some((name, _)) = self.actors().into_iter().find(|(_, alive)| !alive) {
                return name;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A subscription became active: index it and make sure its channel is
    /// polled. `Ok` once the registry has it, so posts from then on reach
    /// the subscriber; an error means the caller must not say it is live.
    pub async fn subscription_added(
        &self,
        store: &Store,
        subscription_id: i64,
    ) -> Result<(), PipelineError> {
        // Inactive (paused, destination gone): nothing for the registry.
        let Some(sub) = store.active_subscription(subscription_id).await? else {
            return Ok(());
        };
        self.registry.send(AddSubscription(sub)).await?;
        if let Some(ch) = store.channel_of_subscription(subscription_id).await?
            && self.reads(ch.channel_id)
        {
            // Through the resume's gate: a channel still owed deliveries
            // starts polling once they are queued.
            self.gate.start(&self.supervisor, ch);
        }
        Ok(())
    }

    /// Makes the registry agree with the database about one subscription
    /// the bot or the API just changed, at once: indexed when active (its
    /// channel polled), out of the index otherwise (paused, removed, its
    /// destination inactive). `Ok` once the registry has taken the change.
    pub async fn sync_subscription(
        &self,
        store: &Store,
        subscription_id: i64,
    ) -> Result<(), PipelineError> {
        if store.active_subscription(subscription_id).await?.is_some() {
            self.subscription_added(store, subscription_id).await
        } else {
            self.registry
                .send(RemoveSubscription { subscription_id })
                .await?;
            Ok(())
        }
    }

    /// Reloads the whole registry from the database (after the change feed
    /// was lost, so no change is missed): every active subscription is
    /// indexed again, every other one leaves, and every active channel is
    /// polled. Answers (indexed, removed).
    pub async fn resync(
        &self,
        store: &Store,
        chunk: usize,
    ) -> Result<(usize, usize), PipelineError> {
        let mut seen = std::collections::HashSet::new();
        let mut stream = store.stream_active_subscriptions(chunk);
        while let Some(part) = stream.next_chunk().await {
            let part = part?;
            seen.extend(part.iter().map(|s| s.subscription_id));
            self.registry.send(LoadSubscriptions(part)).await?;
        }
        let indexed = seen.len();
        let removed = self.registry.send(RetainSubscriptions(seen)).await?;
        for ch in store.active_channels().await? {
            // With several instances only this one's channels are polled
            // here; a channel no one holds yet wakes the keeper.
            if self.reads(ch.channel_id) {
                self.gate.start(&self.supervisor, ch);
            }
        }
        Ok((indexed, removed))
    }

    /// Starts polling a channel (e.g. one our bot was just made admin of).
    pub fn start_channel(&self, channel: ChannelRef) {
        if !self.reads(channel.channel_id) {
            // Another instance's, or no one's yet: a keeper takes it.
            return;
        }
        self.gate.start(&self.supervisor, channel);
    }

    /// A destination is gone: its subscriptions leave the registry, and
    /// channels left with no subscriber stop being polled.
    pub async fn remove_destination(&self, destination_id: i64) -> Result<(), MailboxError> {
        let removed = self
            .registry
            .send(RemoveDestination(destination_id))
            .await?;
        for channel in removed.emptied {
            self.supervisor.do_send(StopChannel(channel));
        }
        Ok(())
    }

    /// Ids of the bots halted because Telegram refused their token (never
    /// the token), for `/readyz` and the operator.
    pub fn halted_bot_ids(&self) -> Vec<i64> {
        self.halted.bot_ids()
    }

    /// Edits, deletions or a backfill were queued: the copies worker looks now.
    pub fn mirror_wake(&self) {
        self.mirror.notify_one();
    }

    /// Push notice: poll this channel now.
    pub fn wake(&self, channel_id: i64) {
        self.supervisor.do_send(WakeChannel(channel_id));
    }

    /// Counters from every actor.
    pub async fn stats(&self) -> Result<PipelineStats, MailboxError> {
        let sup = self.supervisor.send(GetSupervisorStats).await?;
        let reg = self.registry.send(GetRegistryStats).await?;
        let lim = self.limiter.send(GetLimiterStats).await?;
        let wr = self.writer.send(GetDbWriterStats).await?;
        Ok(PipelineStats {
            channels_polled: sup.running,
            poller_restarts: sup.restarts,
            subscriptions: reg.subscriptions,
            posts_published: reg.posts_published,
            deliveries_made: reg.deliveries_made,
            queued: lim.queued,
            in_flight: lim.in_flight,
            dispatched: lim.dispatched,
            retry_after: lim.retry_after,
            rows_written: wr.written,
            rows_dropped: wr.dropped,
            db_backlog: wr.backlog,
            halted_bots: lim.halted_lanes,
            held_deliveries: self.in_flight.held(),
            resuming_channels: self.gate.held(),
        })
    }

    /// Ordered shutdown within `deadline`: stop the pollers (each finishes its
    /// cycle, so a post is either recorded and queued or not read at all),
    /// drain the limiter (every queued delivery sent or failed), then flush
    /// the DbWriter. Past the deadline it stops waiting and says what was
    /// left; a post recorded but not delivered stays in `posts` for the next
    /// start to resume.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let started = Instant::now();
        self.stop_sweep.store(true, Ordering::Relaxed);
        let left = |started: Instant| deadline.saturating_sub(started.elapsed());
        let mut clean = true;
        tracing::info!(
            deadline_s = deadline.as_secs_f64(),
            "Shutting down: stopping pollers."
        );
        if tokio::time::timeout(left(started), self.supervisor.send(StopAll))
            .await
            .is_err()
        {
            clean = false;
        }
        tracing::info!("Draining queued deliveries.");
        if tokio::time::timeout(left(started), self.limiter.send(Drain))
            .await
            .is_err()
        {
            clean = false;
        }
        if !clean {
            // Past the deadline: send nothing more (queued deliveries have
            // no outcome and are resumed, once, at the next start), but let
            // the sends already made finish (a request times out at
            // `telegram.request_timeout_ms`), so each outcome is recorded and
            // none is sent again after the restart. With the defaults (30 s
            // deadline, 15 s requests, 5 s flush) the stop takes at most
            // ~51 s; the unit's TimeoutStopSec is 60 s.
            tracing::warn!(
                "Shutdown deadline passed; halting the sends, waiting for those in flight."
            );
            let _ = tokio::time::timeout(self.halt_wait, self.limiter.send(Halt)).await;
        }
        tracing::info!("Flushing delivery records.");
        // The flush gets at least a few seconds even past the deadline:
        // what was sent must be recorded.
        let flush_time = left(started).max(Duration::from_secs(5));
        if tokio::time::timeout(flush_time, self.writer.send(Flush))
            .await
            .is_err()
        {
            clean = false;
        }
        let left_queued = match self.limiter.send(GetLimiterStats).await {
            Ok(s) => s.queued + s.in_flight,
            Err(_) => 0,
        };
        let report = ShutdownReport {
            clean,
            left_queued,
            elapsed: started.elapsed(),
        };
        if clean {
            tracing::info!(
                elapsed_ms = report.elapsed.as_millis() as u64,
                "Shutdown complete."
            );
        } else {
            tracing::warn!(
                left_queued,
                elapsed_ms = report.elapsed.as_millis() as u64,
                "Shutdown deadline passed; forcing it."
            );
        }
        report
    }
}
