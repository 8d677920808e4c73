//! `kuryer run`: the one place that starts things. [`run`] builds the
//! daemon in one pass, each part handed what it needs when it is made (the
//! sources get the sending half of an event queue, the pipeline gets the
//! reader accounts, the faces get the pipeline), then waits for its
//! shutdown signal (a future the caller passes: SIGTERM/SIGINT in `main`)
//! and stops in the order of [`shutdown::Shutdown`]: update loops, lease
//! keeping, pollers, queued sends, last database writes, leases, HTTP,
//! reader accounts, the database.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`run`]: start-up steps, the wait, the stop list |
//! | `events.rs` | the sources' news acted on: the pipeline, subscribers told |
//! | `sources.rs` | each channel's source: the bot's inbox, a reader account, or none |
//! | `shutdown.rs` | the stop as an ordered list of (name, deadline, step) |

mod events;
mod shutdown;
mod sources;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_rt::task::JoinHandle;
use kuryer_actors::in_flight::InFlight;
use teloxide::Bot;
use tokio::sync::watch;

use crate::bot::{self, BotSettings};
use crate::command_budget::CommandBudget;
use crate::config::Config;
use crate::dedup::RedisDedup;
use crate::i18n::Texts;
use crate::instance::{self, Ownership};
use crate::keeper::{self, Keeper};
use crate::notify::Notifier;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineParts};
use crate::preflight;
use crate::reader::ReaderPool;
use crate::source_events;
use crate::store::{Open, Store};
use crate::telegram::{bot_id_of, build_bots};
use crate::updates::{self, BotUpdates};
use events::PipelineEvents;
use shutdown::Shutdown;

/// Runs the daemon until `shutdown` completes (in `main`: SIGTERM or
/// SIGINT, [`wait_for_signal`]; in tests: whatever the test decides), then
/// shuts down in order.
pub async fn run(cfg: Config, shutdown: impl Future<Output = &'static str>) -> anyhow::Result<()> {
    // Before anything records a metric: a value set before the recorder
    // exists is lost (active_channels read 0 after every restart).
    crate::telemetry::metrics_handle();
    let notifier = Notifier::from_env();
    if cfg.telegram.bot_tokens.is_empty() {
        anyhow::bail!("telegram.bot_tokens is empty: kuryer needs at least one bot token");
    }
    let store = open_store(&cfg, &notifier).await?;
    let bots = check_bots(&cfg, &notifier).await?;
    let ownership = register(&cfg, &store).await?;
    let running = start(&cfg, store, bots, ownership, notifier).await?;
    running.wait_and_stop(&cfg, shutdown).await
}

/// Creates the database if missing, applies migrations (their progress
/// shown) and prepares the partitions.
async fn open_store(cfg: &Config, notifier: &Notifier) -> anyhow::Result<Store> {
    notifier.status("applying migrations");
    let opened = Store::open_with(
        &cfg.database,
        Open::everything(&cfg.database),
        crate::store::migrate_with_progress,
    )
    .await?;
    Ok(opened.store)
}

/// The bots, after Telegram answered for every token: a revoked token is
/// named (by bot id) now, not discovered per delivery.
async fn check_bots(cfg: &Config, notifier: &Notifier) -> anyhow::Result<Vec<Bot>> {
    let bots = build_bots(
        &cfg.telegram.bot_tokens,
        &cfg.telegram.bot_api_url,
        Duration::from_millis(cfg.telegram.request_timeout_ms),
    )?;
    notifier.status("checking bot tokens with getMe");
    preflight::check_bots_at_start(&bots, &cfg.telegram.bot_tokens).await?;
    Ok(bots)
}

/// Several instances share the work by lease (`instance`): this one
/// registers first, so the others count it and give up their excess.
async fn register(cfg: &Config, store: &Store) -> anyhow::Result<Arc<Ownership>> {
    // The deliveries this process holds, shared with the pipeline.
    let retry_ambiguous = cfg.delivery.on_ambiguous == crate::config::OnAmbiguous::Retry;
    let me = instance::identity::of_this_process(&cfg.instance);
    let ownership = Arc::new(Ownership::new(
        cfg.instance
            .id
            .clone()
            .unwrap_or_else(|| instance::identity::default_id(&me)),
        me,
        Duration::from_secs(cfg.instance.lease_ttl_s),
        Arc::new(InFlight::new(retry_ambiguous)),
    ));
    keeper::register(store, &ownership).await?;
    tracing::info!(
        instance = ownership.id(),
        lease_ttl_s = cfg.instance.lease_ttl_s,
        host = %ownership.identity().host_name,
        machine_id = ownership.identity().machine_id.as_deref().unwrap_or("unknown"),
        boot_id = ownership.identity().boot_id.as_deref().unwrap_or("unknown"),
        "Registered this instance; taking a fair share of channels and bots."
    );
    Ok(ownership)
}

fn bot_ids(cfg: &Config) -> Vec<i64> {
    cfg.telegram
        .bot_tokens
        .iter()
        .map(|t| bot_id_of(t.expose()))
        .collect()
}

/// Everything started, and what the stop needs of it.
struct Running {
    store: Store,
    pipeline: Pipeline,
    readers: ReaderPool,
    ownership: Arc<Ownership>,
    notifier: Notifier,
    keepalive: JoinHandle<()>,
    update_loops: Vec<JoinHandle<()>>,
    stop_updates: watch::Sender<bool>,
    maintenance: JoinHandle<()>,
    keeper: JoinHandle<()>,
    draining: Arc<AtomicBool>,
    changes: tokio::task::JoinHandle<()>,
    api: actix_web::dev::ServerHandle,
}

/// Starts every part in one pass, each given what it needs.
async fn start(
    cfg: &Config,
    store: Store,
    bots: Vec<Bot>,
    ownership: Arc<Ownership>,
    notifier: Notifier,
) -> anyhow::Result<Running> {
    // The sources tell of pushed posts, resolved channels and renames from
    // the moment they exist; what they say before the pipeline runs waits
    // in the queue.
    let (events, inbox) = source_events::queue();
    let updates = BotUpdates::new(store.clone(), events.clone()).with_ownership(ownership.clone());
    // Channels our bot does not administer are read by the reader accounts
    // this process leases (under this instance's id); with none, they say
    // so and are polled rarely.
    let told: Arc<dyn crate::source_events::SourceEvents> = events.clone();
    let readers = ReaderPool::start(store.clone(), cfg, ownership.id().to_owned(), events).await;
    let has_readers = !readers.live_accounts().is_empty();
    sources::warn_channels_without_reader(&store).await;
    let installation = store.installation_id().await?;
    let dedup = connect_dedup(cfg, &installation).await;
    notifier.status("loading subscriptions and resuming deliveries");
    let pipeline_cfg = PipelineConfig::from_config(cfg, 1.0);
    // Rate limits shared with the other instances of this installation.
    let shared_limits = crate::shared_limits::start_for(
        cfg,
        &installation,
        ownership.id(),
        pipeline_cfg.limiter.shared_rates(),
        pipeline_cfg.sender.request_timeout + Duration::from_secs(1),
        ownership.live_instances_counter(),
    )
    .await;
    let pipeline = Pipeline::start(PipelineParts {
        ownership: Some(ownership.clone()),
        shared: shared_limits,
        reader: has_readers.then(|| readers.clone()),
        source_events: Some(told),
        ..PipelineParts::new(
            store.clone(),
            bots.clone(),
            sources::factory(updates.clone(), readers.clone()),
            Arc::new(dedup.clone()),
            pipeline_cfg,
        )
    })
    .await?;
    let texts = Texts::shared();
    let debounce = Duration::from_millis(cfg.delivery.notice_debounce_ms);
    deliver_events(inbox, &pipeline, &store, debounce, texts);
    let keeper = Keeper::new(
        store.clone(),
        ownership.clone(),
        pipeline.clone(),
        bot_ids(cfg),
        Arc::new(readers.clone()),
    );
    let draining = keeper.draining();
    let keeper = actix_rt::spawn(keeper.run());
    // Queue depths and flood waits for the status page of every instance.
    actix_rt::spawn(crate::instance_snapshot::publish(
        store.clone(),
        pipeline.clone(),
        ownership.clone(),
    ));
    // Subscriptions changed through another instance reach this one's registry.
    let changes = crate::subscription_events::spawn(store.clone(), pipeline.clone());
    let api = crate::http::bind_with(
        &cfg.http,
        store.clone(),
        Some(pipeline.clone()),
        Some(dedup.clone()),
    )?;
    let api_handle = api.server.handle();
    actix_rt::spawn(api.server);
    let (stop_updates, update_loops) =
        start_update_loops(cfg, &store, &bots, &pipeline, &updates, &installation);
    let maintenance = spawn_maintenance(cfg, store.clone());
    tracing::info!(bots = bots.len(), "kuryer is running.");
    let keepalive = spawn_keepalive(notifier, pipeline.clone(), ownership.clone());
    #[cfg(any(test, feature = "test-hooks"))]
    crate::notify::test_hooks_on_signals(pipeline.clone());
    Ok(Running {
        store,
        pipeline,
        readers,
        ownership,
        notifier,
        keepalive,
        update_loops,
        stop_updates,
        maintenance,
        keeper,
        draining,
        changes,
        api: api_handle,
    })
}

/// Dedup keys are namespaced by the database's own id (see `dedup`).
async fn connect_dedup(cfg: &Config, installation: &str) -> RedisDedup {
    let dedup = RedisDedup::new(&cfg.redis, installation);
    if !dedup.ping().await {
        tracing::warn!(
            "Redis is not reachable at start; delivering on the database's dedup alone until it is."
        );
    }
    dedup
}

/// What the sources said (and say from now on) acted on; and the look-up
/// notices a stopped process settled but did not send.
fn deliver_events(
    inbox: source_events::EventInbox,
    pipeline: &Pipeline,
    store: &Store,
    debounce: Duration,
    texts: Arc<Texts>,
) {
    actix_rt::spawn(inbox.deliver(Arc::new(PipelineEvents::new(
        pipeline.clone(),
        store.clone(),
        texts.clone(),
        debounce,
    ))));
    tokio::spawn(events::tell_owed_resolve_notices(
        store.clone(),
        pipeline.notices(),
        texts,
    ));
}

/// One update loop per bot (a token allows one getUpdates consumer): each
/// bot answers the people who write to it.
fn start_update_loops(
    cfg: &Config,
    store: &Store,
    bots: &[Bot],
    pipeline: &Pipeline,
    updates: &BotUpdates,
    installation: &str,
) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
    let handlers = bot::handlers(
        store.clone(),
        pipeline.clone(),
        bot_ids(cfg).into_iter().zip(bots.iter().cloned()).collect(),
        BotSettings {
            max_subscriptions: i64::from(cfg.limits.max_subscriptions_per_user),
            commands_per_minute: cfg.limits.bot_commands_per_minute,
            new_channels_per_day: i64::from(cfg.limits.new_channels_per_user_per_day),
            pending_names: i64::from(cfg.limits.pending_names_per_user),
            backfills_per_day: i64::from(cfg.limits.backfills_per_user_per_day),
            admins: cfg.telegram.admins.clone(),
        },
        // Each user's budget is shared with the installation's other instances.
        CommandBudget::new(
            cfg.limits.bot_commands_per_minute,
            Some((&cfg.redis, installation)),
        ),
    );
    for h in &handlers {
        let h = h.clone();
        actix_rt::spawn(async move { h.set_commands().await });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let loops = bots
        .iter()
        .zip(handlers)
        .map(|(b, handler)| {
            actix_rt::spawn(updates::run_loop(
                b.clone(),
                handler,
                store.clone(),
                pipeline.clone(),
                updates.clone(),
                Duration::from_millis(cfg.telegram.request_timeout_ms),
                stop_rx.clone(),
            ))
        })
        .collect();
    (stop_tx, loops)
}

/// Partitions made ahead and dropped past retention, every six hours; the
/// waiting dead letters read into their gauge every 15 s.
fn spawn_maintenance(cfg: &Config, store: Store) -> JoinHandle<()> {
    const PARTITIONS: Duration = Duration::from_secs(6 * 3600);
    let db = cfg.database.clone();
    actix_rt::spawn(async move {
        let mut since_partitions = Duration::ZERO;
        loop {
            if let Err(e) = crate::dead_letters::refresh_gauge(&store).await {
                tracing::debug!(error = %e, "Could not count the waiting dead letters.");
            }
            tokio::time::sleep(crate::dead_letters::GAUGE_INTERVAL).await;
            since_partitions += crate::dead_letters::GAUGE_INTERVAL;
            if since_partitions < PARTITIONS {
                continue;
            }
            since_partitions = Duration::ZERO;
            if let Err(e) = store
                .maintain_partitions(db.partitions_ahead_days, db.retention_days)
                .await
            {
                tracing::warn!(error = %e, "Partition maintenance failed; trying again later.");
            }
        }
    })
}

/// Migrations ran, the registry is loaded, the update loop is started,
/// every token answered getMe, and (waited for in the background, so a
/// stop signal is heard meanwhile) the lease keeper's first round took a
/// share and started its pollers: ready, as `/readyz` says. Then the
/// earned watchdog ping.
fn spawn_keepalive(
    notifier: Notifier,
    pipeline: Pipeline,
    ownership: Arc<Ownership>,
) -> JoinHandle<()> {
    actix_rt::spawn(async move {
        notifier.status("taking a share of channels");
        while !ownership.started() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match pipeline.stats().await {
            Ok(s) => notifier.ready(&crate::notify::status_line(&s, 0)),
            Err(_) => notifier.ready("running"),
        }
        crate::notify::keepalive(notifier, pipeline).await;
    })
}

impl Running {
    /// Waits for the caller's signal — or for a shared actor or an update
    /// loop that stopped on its own (a panic ends only that task). Nothing
    /// restarts them in place: their in-memory work (queued deliveries,
    /// unwritten rows) is rebuilt from the database by the start-up
    /// resume, so the daemon stops in order and exits non-zero, and systemd
    /// (`Restart=on-failure`) starts it again.
    async fn wait_and_stop(
        mut self,
        cfg: &Config,
        shutdown: impl Future<Output = &'static str>,
    ) -> anyhow::Result<()> {
        let mut any_loop = futures_util::future::select_all(std::mem::take(&mut self.update_loops));
        let (died, loop_ended) = tokio::select! {
            reason = shutdown => {
                tracing::info!(reason, "Stopping.");
                (None, None)
            }
            actor = self.pipeline.first_death() => (Some(actor), None),
            (_, _, others) = &mut any_loop => (Some("update loop"), Some(others)),
        };
        self.update_loops = match loop_ended {
            Some(others) => others,
            None => any_loop.into_inner(),
        };
        if let Some(actor) = died {
            tracing::error!(
                actor,
                "A part of the pipeline stopped unexpectedly; stopping kuryer so that it is restarted."
            );
        }
        let left_undone = self.stop_list(cfg).run().await;
        if let Some(actor) = died {
            anyhow::bail!(
                "the {actor} stopped unexpectedly; exiting so that systemd restarts kuryer (undelivered posts resume from the database)"
            );
        }
        match left_undone {
            Some(why) => anyhow::bail!(why),
            None => Ok(()),
        }
    }

    /// The stop, in order: nothing new comes in (update loops), then the
    /// pipeline drains while the keeper still renews the leases its sends
    /// need, then the leases are let go at once, then what serves the rest.
    fn stop_list(self, cfg: &Config) -> Shutdown {
        let request = Duration::from_millis(cfg.telegram.request_timeout_ms);
        let deadline = Duration::from_millis(cfg.delivery.shutdown_deadline_ms);
        let mut steps = Shutdown::default();
        let Running {
            store,
            pipeline,
            readers,
            ownership,
            notifier,
            keepalive,
            update_loops,
            stop_updates,
            maintenance,
            keeper,
            draining,
            changes,
            api,
        } = self;
        notifier.stopping();
        keepalive.abort();
        // A long poll ends within its request timeout.
        steps.then(
            "update loops",
            request + Duration::from_secs(5),
            async move {
                let _ = stop_updates.send(true);
                for handle in update_loops {
                    let _ = handle.await;
                }
                maintenance.abort();
                Ok(())
            },
        );
        // The pipeline keeps its own deadline (and then waits for the
        // sends in flight and the last flush); this one only bounds a hang.
        let pipeline_deadline = deadline + request + Duration::from_secs(15);
        steps.then("pipeline", pipeline_deadline, async move {
            // The keeper goes on renewing while the queue drains (a send
            // needs its lease), but takes nothing more.
            draining.store(true, Ordering::Relaxed);
            let report = pipeline.shutdown(deadline).await;
            if report.clean {
                Ok(())
            } else {
                Err(format!(
                    "shutdown deadline passed with {} deliveries not sent; they are resent from the database at the next start",
                    report.left_queued
                ))
            }
        });
        let leave_store = store.clone();
        steps.then("leases", Duration::from_secs(10), async move {
            keeper.abort();
            Keeper::leave(&leave_store, &ownership).await;
            Ok(())
        });
        steps.then("http", Duration::from_secs(10), async move {
            api.stop(true).await;
            changes.abort();
            Ok(())
        });
        steps.then(
            "reader accounts",
            request + Duration::from_secs(5),
            async move {
                readers.close().await;
                Ok(())
            },
        );
        steps.then("database", Duration::from_secs(1), async move {
            store.close();
            Ok(())
        });
        steps
    }
}

/// Completes at SIGTERM or SIGINT, naming which.
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot watch SIGTERM; only SIGINT stops kuryer.");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
