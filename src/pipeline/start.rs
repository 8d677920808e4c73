//! Starting the pipeline: the actors connected to each other, the
//! registry loaded, the resume of owed deliveries, the mirror and digest
//! workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use actix::prelude::*;
use kuryer_actors::backoff::Backoff;
use kuryer_actors::channel_supervisor::ChannelSupervisor;
use kuryer_actors::db_writer::DbWriter;
use kuryer_actors::in_flight::InFlight;
use kuryer_actors::ports::{Dedup, Persistence, SharedLimits, SourceFactory};
use kuryer_actors::rate_limiter::{HaltedLanes, RateLimiter};
use kuryer_actors::sender_pool::SenderPool;
use kuryer_actors::subscriber_registry::{LoadSubscriptions, SubscriberRegistry};
use teloxide::Bot;

use super::{Pipeline, PipelineConfig, PipelineError};
use crate::destination_events::DestinationHandler;
use crate::instance::Ownership;
use crate::owed::{Owed, PollerGate, SettlingStore};
use crate::reader::ReaderPool;
use crate::source_events::SourceEvents;
use crate::store::Store;

/// What a pipeline is built from.
pub struct PipelineParts {
    pub store: Store,
    /// One per token, in the configured order.
    pub bots: Vec<Bot>,
    /// Each channel's source: the bot's inbox or a reader account.
    pub factory: SourceFactory,
    pub dedup: Arc<dyn Dedup>,
    pub cfg: PipelineConfig,
    /// One of several instances: what this one holds (`None`: everything).
    /// No channel is then polled until `ownership` holds its lease (the
    /// lease keeper hands channels over with [`Pipeline::take_over`]),
    /// posts are recorded under the lease's generation, and a send is made
    /// only while its channel's lease is surely held.
    pub ownership: Option<Arc<Ownership>>,
    /// Rate limits shared with other instances: the limiter admits every
    /// send through them.
    pub shared: Option<Arc<dyn SharedLimits>>,
    /// The reader accounts: a backfill of a channel read over MTProto reads
    /// its history through them when too little is recorded (`None`: only
    /// what is recorded is sent).
    pub reader: Option<ReaderPool>,
    /// Told when a bot-admin channel's posts can no longer be read by the
    /// bot (a copy refused on the channel's side) and when they can again,
    /// as the sources tell it (`None`: only logged).
    pub source_events: Option<Arc<dyn SourceEvents>>,
}

impl PipelineParts {
    /// One instance, no shared limits, no reader accounts.
    pub fn new(
        store: Store,
        bots: Vec<Bot>,
        factory: SourceFactory,
        dedup: Arc<dyn Dedup>,
        cfg: PipelineConfig,
    ) -> Self {
        Self {
            store,
            bots,
            factory,
            dedup,
            cfg,
            ownership: None,
            shared: None,
            reader: None,
            source_events: None,
        }
    }
}

/// The actors, started and connected, before the registry is loaded.
struct Actors {
    registry: Addr<SubscriberRegistry>,
    /// The supervisor's context, run once the registry is loaded.
    supervisor: Context<ChannelSupervisor>,
    limiter: Addr<RateLimiter>,
    writer: Addr<DbWriter>,
    sender: Addr<SenderPool>,
    persistence: Arc<dyn Persistence>,
    halted: Arc<HaltedLanes>,
    in_flight: Arc<InFlight>,
    holds: Arc<kuryer_actors::quiet::QuietHolds>,
    room: Arc<kuryer_actors::rate_limiter::QueueRoom>,
}

impl Pipeline {
    /// Starts the actors on the current actix arbiter, loads the registry
    /// from the database (streaming), starts the resume of owed deliveries
    /// and, with one instance, a poller per active channel; then the mirror
    /// and digest workers.
    pub async fn start(parts: PipelineParts) -> Result<Self, PipelineError> {
        let PipelineParts {
            store,
            bots,
            factory,
            dedup,
            cfg,
            ownership,
            shared,
            reader,
            source_events,
        } = parts;
        if bots.is_empty() {
            return Err(PipelineError::Config(
                "telegram.bot_tokens is empty: at least one bot token is needed".into(),
            ));
        }
        let halt_wait = cfg.sender.request_timeout + Duration::from_secs(1);
        let a = start_actors(&store, bots, dedup, &cfg, &ownership, shared, source_events);
        let registry_load = load_registry(&store, &a.registry, cfg.load_chunk).await?;
        let supervisor = a.supervisor.run(ChannelSupervisor::new(
            factory,
            a.persistence.clone(),
            a.registry.clone().recipient(),
            cfg.poller,
        ));

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
            limiter: a.limiter.clone(),
            in_flight: a.in_flight.clone(),
            halted: a.halted.clone(),
            chunk: cfg.load_chunk,
            window: cfg.resume_window,
            sweep_interval: cfg.sweep_interval,
            retry_ambiguous: cfg.sender.retry_ambiguous,
            stop: stop_sweep.clone(),
            ownership: ownership.clone(),
            holds: a.holds.clone(),
            room: a.room.clone(),
        };
        owed.clone()
            .spawn(supervisor.clone(), gate.clone(), channels);
        let mirror = Arc::new(tokio::sync::Notify::new());
        let workers = Workers {
            store: &store,
            limiter: &a.limiter,
            in_flight: &a.in_flight,
            stop: &stop_sweep,
            ownership: &ownership,
        };
        workers.spawn_mirror(mirror.clone(), cfg.resume_window, reader);
        workers.spawn_digest(cfg.sweep_interval);
        Ok(Self {
            supervisor,
            registry: a.registry,
            limiter: a.limiter,
            writer: a.writer,
            sender: a.sender,
            registry_load,
            halt_wait,
            gate,
            halted: a.halted,
            in_flight: a.in_flight,
            stop_sweep,
            owed,
            ownership,
            mirror,
        })
    }
}

/// Starts the shared actors, each connected to the next.
fn start_actors(
    store: &Store,
    bots: Vec<Bot>,
    dedup: Arc<dyn Dedup>,
    cfg: &PipelineConfig,
    ownership: &Option<Arc<Ownership>>,
    shared: Option<Arc<dyn SharedLimits>>,
    source_events: Option<Arc<dyn SourceEvents>>,
) -> Actors {
    // With several instances the ownership made it (the lease guard lets
    // go there of what it drops).
    let in_flight = match ownership {
        Some(o) => o.in_flight().clone(),
        None => Arc::new(InFlight::new(cfg.sender.retry_ambiguous)),
    };
    let persistence: Arc<dyn Persistence> = Arc::new(
        SettlingStore::new(store.clone(), in_flight.clone()).with_ownership(ownership.clone()),
    );
    // Subscriptions holding posts for their quiet hours (`quiet.rs`).
    let holds = Arc::new(kuryer_actors::quiet::QuietHolds::new());
    let backlog = Arc::new(AtomicUsize::new(0));
    let writer = DbWriter::new(persistence.clone(), cfg.writer.clone(), backlog.clone()).start();
    // The sender tells the destination handler of lost chats, and the
    // handler takes them out of the registry, the supervisor and the
    // limiter, which are built after the sender: their addresses exist
    // first (what is sent to them waits in their mailboxes).
    let registry_ctx = Context::<SubscriberRegistry>::new();
    let supervisor_ctx = Context::<ChannelSupervisor>::new();
    let limiter_ctx = Context::<RateLimiter>::new();
    let destinations = DestinationHandler::new(
        store.clone(),
        &bots,
        registry_ctx.address(),
        supervisor_ctx.address(),
        limiter_ctx.address(),
    )
    .with_source_events(source_events);
    let sender = SenderPool::new(
        bots,
        writer.clone().recipient(),
        dedup.clone(),
        Arc::new(destinations),
        cfg.sender.clone(),
    );
    let shaper = sender.shaper();
    let sender = match ownership {
        Some(o) => sender.with_lease_guard(o.clone()),
        None => sender,
    }
    .start();
    let mut limiter = RateLimiter::new(cfg.limiter.clone(), sender.clone().recipient(), backlog)
        .with_in_flight(in_flight.clone());
    if let Some(shared) = shared {
        limiter = limiter.with_shared(shared);
    }
    let halted = limiter.halted_lanes();
    let room = limiter.room();
    let limiter = limiter_ctx.run(limiter);
    let registry = registry_ctx.run(
        SubscriberRegistry::new(limiter.clone().recipient(), dedup, in_flight.clone())
            .with_quiet_holds(holds.clone())
            .with_room(room.clone())
            .with_shaper(shaper),
    );
    Actors {
        registry,
        supervisor: supervisor_ctx,
        limiter,
        writer,
        sender,
        persistence,
        halted,
        in_flight,
        holds,
        room,
    }
}

/// Loads every active subscription into the registry, streaming; answers
/// how long it took.
async fn load_registry(
    store: &Store,
    registry: &Addr<SubscriberRegistry>,
    chunk: usize,
) -> Result<Duration, PipelineError> {
    let started = Instant::now();
    let mut stream = store.stream_active_subscriptions(chunk);
    let mut loaded = 0usize;
    while let Some(part) = stream.next_chunk().await {
        let part = part?;
        loaded += part.len();
        registry.send(LoadSubscriptions(part)).await?;
    }
    let elapsed = started.elapsed();
    tracing::info!(
        subscriptions = loaded,
        elapsed_ms = elapsed.as_millis() as u64,
        "Subscriber registry loaded."
    );
    Ok(elapsed)
}

/// What the pipeline's background workers share.
struct Workers<'a> {
    store: &'a Store,
    limiter: &'a Addr<RateLimiter>,
    in_flight: &'a Arc<InFlight>,
    stop: &'a Arc<AtomicBool>,
    ownership: &'a Option<Arc<Ownership>>,
}

impl Workers<'_> {
    /// The copies worker (edits, deletions, backfills), supervised: a panic
    /// in one pass must not stop mirroring until a restart. What it applied
    /// is in the database, so a new worker goes on from there.
    fn spawn_mirror(
        &self,
        wake: Arc<tokio::sync::Notify>,
        window: Duration,
        reader: Option<ReaderPool>,
    ) {
        let (store, limiter, in_flight) = (
            self.store.clone(),
            self.limiter.clone(),
            self.in_flight.clone(),
        );
        let (stop, ownership) = (self.stop.clone(), self.ownership.clone());
        actix_rt::spawn(kuryer_actors::supervise::supervise(
            "mirror",
            Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            move || {
                crate::copies::CopiesWorker::new(
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

    /// The digest worker, supervised too: a digest in the middle of a run
    /// is finished by the next worker from its `digest_runs` row. Digests
    /// are sent through the limiter (`digest.rs`).
    fn spawn_digest(&self, every: Duration) {
        let limiter = self.limiter.clone();
        let (store, stop, ownership) = (
            self.store.clone(),
            self.stop.clone(),
            self.ownership.clone(),
        );
        actix_rt::spawn(kuryer_actors::supervise::supervise(
            "digest",
            Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            move || {
                crate::digest::DigestWorker::new(
                    store.clone(),
                    limiter.clone(),
                    every,
                    stop.clone(),
                    ownership.clone(),
                )
                .run()
            },
        ));
    }
}
