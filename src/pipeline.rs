//! Wiring of the actor pipeline: start-up (registry load, pollers), and the
//! ordered shutdown. The store's adapter of the actors' `Persistence` port is
//! in `store/persistence.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use kuryer_actors::backoff::Backoff;
use kuryer_actors::channel_poller::PollerConfig;
use kuryer_actors::channel_supervisor::{
    ChannelSupervisor, GetSupervisorStats, ReleaseChannel, StopAll, WakeChannel,
};
use kuryer_actors::db_writer::{DbWriter, DbWriterConfig, Flush, GetDbWriterStats};
use kuryer_actors::in_flight::InFlight;
use kuryer_actors::model::ChannelRef;
use kuryer_actors::ports::{Dedup, Persistence, SharedLimits, SourceFactory};
use kuryer_actors::rate_limiter::{
    Drain, DropChannels, GetLimiterStats, Halt, HaltedLanes, LimiterConfig, RateLimiter,
};
use kuryer_actors::sender_pool::{SenderConfig, SenderPool};
use kuryer_actors::subscriber_registry::{
    AddSubscription, GetRegistryStats, LoadSubscriptions, RemoveSubscription, RetainSubscriptions,
    SubscriberRegistry,
};
use teloxide::Bot;

use crate::config::{Config, LimitsConfig, OnAmbiguous};
use crate::destinations::DestinationHandler;
use crate::instance::Ownership;
use crate::owed::{Owed, PollerGate, SettlingStore};
use crate::secret::Secret;
use crate::store::{Store, StoreError};

/// Settings of the whole pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub limiter: LimiterConfig,
    pub poller: PollerConfig,
    pub writer: DbWriterConfig,
    pub sender: SenderConfig,
    /// Rows a chunk of the registry's streaming load.
    pub load_chunk: usize,
    /// Resume deliveries of posts detected this long ago or less (zero: off,
    /// and no sweep either).
    pub resume_window: Duration,
    /// How often the sweep looks for owed deliveries nothing is sending.
    pub sweep_interval: Duration,
}

impl PipelineConfig {
    /// From the daemon's configuration; `scale` multiplies Telegram's limits.
    pub fn from_config(cfg: &Config, scale: f64) -> Self {
        let d = &cfg.delivery;
        let mut limiter = limiter_config(&cfg.limits, cfg.telegram.bot_tokens.len().max(1), scale);
        limiter.bot_ids = cfg
            .telegram
            .bot_tokens
            .iter()
            .map(|t| bot_id_of(t.expose()))
            .collect();
        limiter.max_in_flight = d.max_in_flight;
        limiter.queue_capacity = d.queue_capacity;
        limiter.max_db_backlog = d.max_db_backlog;
        Self {
            limiter,
            poller: PollerConfig {
                min_interval: Duration::from_millis(d.poll_min_interval_ms),
                max_interval: Duration::from_millis(d.poll_max_interval_ms),
                ..PollerConfig::default()
            },
            writer: DbWriterConfig {
                batch_size: d.db_batch_size,
                flush_interval: Duration::from_millis(d.db_flush_interval_ms),
                writes_in_flight: d.db_writes_in_flight,
                ..DbWriterConfig::default()
            },
            sender: SenderConfig {
                retry_ambiguous: d.on_ambiguous == OnAmbiguous::Retry,
                max_failures: d.max_failures,
                request_timeout: Duration::from_millis(cfg.telegram.request_timeout_ms),
                allow_paid_broadcast: cfg.limits.allow_paid_broadcast,
            },
            load_chunk: 5000,
            resume_window: Duration::from_secs(d.resume_window_s),
            sweep_interval: Duration::from_secs(d.sweep_interval_s),
        }
    }
}

/// The limiter's settings from `[limits]`, each rate multiplied by `scale`.
pub fn limiter_config(limits: &LimitsConfig, bots: usize, scale: f64) -> LimiterConfig {
    let per_bot = if limits.allow_paid_broadcast {
        limits.paid_per_bot_per_second
    } else {
        limits.per_bot_per_second
    };
    LimiterConfig {
        per_bot_per_second: per_bot * scale,
        per_chat_per_second: limits.per_chat_per_second * scale,
        per_group_per_minute: limits.per_group_per_minute * scale,
        bots,
        ..LimiterConfig::default()
    }
}

/// The bot id in a token (`<bot id>:<secret>`); 0 when it has none.
pub fn bot_id_of(token: &str) -> i64 {
    token
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(0)
}

/// teloxide bots for the configured tokens, sharing one HTTP client (one
/// connection pool) and honouring `bot_api_url`.
pub fn build_bots(
    tokens: &[Secret],
    api_url: &str,
    timeout: Duration,
) -> Result<Vec<Bot>, PipelineError> {
    let url = reqwest::Url::parse(api_url)
        .map_err(|e| PipelineError::Config(format!("telegram.bot_api_url: {e}")))?;
    let client = teloxide::net::default_reqwest_settings()
        .timeout(timeout)
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| PipelineError::Config(format!("HTTP client: {e}")))?;
    Ok(tokens
        .iter()
        .map(|t| Bot::with_client(t.expose(), client.clone()).set_api_url(url.clone()))
        .collect())
}

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
    pub supervisor: Addr<ChannelSupervisor>,
    pub registry: Addr<SubscriberRegistry>,
    pub limiter: Addr<RateLimiter>,
    pub writer: Addr<DbWriter>,
    pub sender: Addr<SenderPool>,
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
    /// Wakes the mirror worker (edits, deletions, backfills queued).
    mirror: Arc<tokio::sync::Notify>,
    /// The reader accounts, for backfills' history reads (set by the daemon).
    reader: Arc<std::sync::OnceLock<crate::reader::ReaderPool>>,
}

impl Pipeline {
    /// Starts the actors on the current actix arbiter, loads the registry
    /// from the database (streaming) and starts a poller per active channel.
    pub async fn start(
        store: Store,
        bots: Vec<Bot>,
        factory: SourceFactory,
        dedup: Arc<dyn Dedup>,
        cfg: PipelineConfig,
    ) -> Result<Self, PipelineError> {
        Self::start_owned(store, bots, factory, dedup, cfg, None, None).await
    }

    /// [`Pipeline::start`] whose limiter also admits every send through
    /// `shared` (rate limits shared with other instances), when given.
    pub async fn start_with(
        store: Store,
        bots: Vec<Bot>,
        factory: SourceFactory,
        dedup: Arc<dyn Dedup>,
        cfg: PipelineConfig,
        shared: Option<Arc<dyn SharedLimits>>,
    ) -> Result<Self, PipelineError> {
        Self::start_owned(store, bots, factory, dedup, cfg, None, shared).await
    }

    /// [`Pipeline::start`] for one of several instances: no channel is
    /// polled until `ownership` holds its lease (the lease keeper hands
    /// channels over with [`Pipeline::take_over`]), posts are recorded
    /// under the lease's generation, and a send is made only while its
    /// channel's lease is surely held; with `shared`, the limiter admits
    /// every send through the rate limits shared with other instances.
    pub async fn start_owned(
        store: Store,
        bots: Vec<Bot>,
        factory: SourceFactory,
        dedup: Arc<dyn Dedup>,
        cfg: PipelineConfig,
        ownership: Option<Arc<Ownership>>,
        shared: Option<Arc<dyn SharedLimits>>,
    ) -> Result<Self, PipelineError> {
        if bots.is_empty() {
            return Err(PipelineError::Config(
                "telegram.bot_tokens is empty: at least one bot token is needed".into(),
            ));
        }
        let halt_wait = cfg.sender.request_timeout + Duration::from_secs(1);
        let in_flight = Arc::new(InFlight::new(cfg.sender.retry_ambiguous));
        if let Some(o) = &ownership {
            o.set_in_flight(in_flight.clone());
        }
        let persistence: Arc<dyn Persistence> = Arc::new(
            SettlingStore::new(store.clone(), in_flight.clone()).with_ownership(ownership.clone()),
        );
        // Subscriptions holding posts for their quiet hours (`quiet.rs`).
        let holds = Arc::new(kuryer_actors::quiet::QuietHolds::new());
        let backlog = Arc::new(AtomicUsize::new(0));
        let writer = DbWriter::new(persistence.clone(), cfg.writer, backlog.clone()).start();
        let destinations = DestinationHandler::new(store.clone(), &bots);
        // Digests are sent straight through the bots (`digest.rs`).
        let digest_bots = bots.clone();
        let sender = SenderPool::new(
            bots,
            writer.clone().recipient(),
            dedup.clone(),
            Arc::new(destinations.clone()),
            cfg.sender.clone(),
        );
        let sender = match &ownership {
            Some(o) => sender.with_lease_guard(o.clone()),
            None => sender,
        }
        .start();
        let mut limiter = RateLimiter::new(cfg.limiter, sender.clone().recipient(), backlog)
            .with_in_flight(in_flight.clone());
        if let Some(shared) = shared {
            limiter = limiter.with_shared(shared);
        }
        let halted = limiter.halted_lanes();
        let room = limiter.room();
        let limiter = limiter.start();
        let registry =
            SubscriberRegistry::new(limiter.clone().recipient(), dedup, in_flight.clone())
                .with_quiet_holds(holds.clone())
                .with_room(room)
                .start();

        let started = Instant::now();
        let mut stream = store.stream_active_subscriptions(cfg.load_chunk);
        let mut loaded = 0usize;
        while let Some(chunk) = stream.next_chunk().await {
            let chunk = chunk?;
            loaded += chunk.len();
            registry.send(LoadSubscriptions(chunk)).await?;
        }
        let registry_load = started.elapsed();
        tracing::info!(
            subscriptions = loaded,
            elapsed_ms = registry_load.as_millis() as u64,
            "Subscriber registry loaded."
        );

        let supervisor = ChannelSupervisor::new(
            factory,
            persistence,
            registry.clone().recipient(),
            cfg.poller,
        )
        .start();
        destinations.connect(registry.clone(), supervisor.clone(), limiter.clone());

        // Deliveries of recorded posts that have no outcome yet (a crash, a
        // forced shutdown) are resumed in the background, streaming; each
        // channel's poller starts once its owed deliveries are queued, so
        // they keep their place before newer posts (`owed.rs`).
        // Several instances: the lease keeper hands channels over.
        let channels = if ownership.is_some() {
            Vec::new()
        } else {
            store.active_channels().await?
        };
        tracing::info!(channels = channels.len(), "Starting channel pollers.");
        let gate = Arc::new(PollerGate::default());
        let stop_sweep = Arc::new(AtomicBool::new(false));
        let owed = Owed {
            store: store.clone(),
            limiter: limiter.clone(),
            in_flight: in_flight.clone(),
            halted: halted.clone(),
            chunk: cfg.load_chunk,
            window: cfg.resume_window,
            sweep_interval: cfg.sweep_interval,
            retry_ambiguous: cfg.sender.retry_ambiguous,
            stop: stop_sweep.clone(),
            ownership: ownership.clone(),
            holds,
        };
        owed.clone()
            .spawn(supervisor.clone(), gate.clone(), channels);
        let mirror = Arc::new(tokio::sync::Notify::new());
        let reader = Arc::new(std::sync::OnceLock::new());
        {
            // Supervised: a panic in one pass must not stop mirroring until
            // a restart. What it applied is in the database, so a new worker
            // goes on from there.
            let (store, limiter, in_flight) = (store.clone(), limiter.clone(), in_flight.clone());
            let (wake, stop, ownership) = (mirror.clone(), stop_sweep.clone(), ownership.clone());
            let window = cfg.resume_window;
            let reader = reader.clone();
            actix_rt::spawn(kuryer_actors::supervise::supervise(
                "mirror",
                Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
                move || {
                    crate::mirror::MirrorWorker::new(
                        store.clone(),
                        limiter.clone(),
                        in_flight.clone(),
                        window,
                        wake.clone(),
                        stop.clone(),
                        ownership.clone(),
                        reader.clone(),
                    )
                    .run()
                },
            ));
        }
        {
            // Supervised too: a digest in the middle of a run is finished by
            // the next worker from its `digest_runs` row.
            let (store, stop, ownership) = (store.clone(), stop_sweep.clone(), ownership.clone());
            let every = cfg.sweep_interval;
            actix_rt::spawn(kuryer_actors::supervise::supervise(
                "digest",
                Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
                move || {
                    crate::digest::DigestWorker::new(
                        store.clone(),
                        &digest_bots,
                        every,
                        stop.clone(),
                        ownership.clone(),
                    )
                    .run()
                },
            ));
        }
        Ok(Self {
            supervisor,
            registry,
            limiter,
            writer,
            sender,
            registry_load,
            halt_wait,
            gate,
            halted,
            in_flight,
            stop_sweep,
            owed,
            ownership,
            mirror,
            reader,
        })
    }

    /// The reader accounts that read channels over MTProto: a backfill of
    /// such a channel reads its history when too little is recorded.
    pub fn set_reader(&self, pool: crate::reader::ReaderPool) {
        let _ = self.reader.set(pool);
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

    /// Ids of the bots halted because Telegram refused their token (never
    /// the token), for `/readyz` and the operator.
    pub fn halted_bot_ids(&self) -> Vec<i64> {
        self.halted.bot_ids()
    }

    /// Edits, deletions or a backfill were queued: the mirror worker looks now.
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
