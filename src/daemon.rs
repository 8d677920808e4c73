//! `kuryer run`: the daemon. Wires the store, the pipeline, the bot's update
//! loop and the HTTP API, then waits for its shutdown signal (a future the
//! caller passes: SIGTERM/SIGINT in `main`) and shuts down in order: update
//! loop, pollers, queued sends, last database writes, HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use kuryer_actors::model::SourceMessage;
use kuryer_actors::ports::{ChannelSource, SourceError, SourceFactory};
use tokio::sync::watch;

use crate::bot::{self, BotSettings};
use crate::config::Config;
use crate::dedup::RedisDedup;
use crate::instance::keeper::{self, Keeper};
use crate::instance::{self, Ownership};
use crate::notify::Notifier;
use crate::pipeline::{Pipeline, PipelineConfig, bot_id_of, build_bots};
use crate::preflight;
use crate::reader::{ReaderEvents, ReaderPool};
use crate::store::{Open, Store};
use crate::updates::{self, BotUpdates};

/// The reader pool's news, into the pipeline (and the channel notices,
/// through the bots).
struct PipelineEvents {
    pipeline: Pipeline,
    store: Store,
    bots: Vec<teloxide::Bot>,
    texts: Arc<bot::i18n::Texts>,
}

impl ReaderEvents for PipelineEvents {
    fn wake(&self, channel_id: i64) {
        self.pipeline.wake(channel_id);
    }
    fn resolved(&self, channel: kuryer_actors::model::ChannelRef) {
        self.pipeline.start_channel(channel);
    }
    fn protected(&self, channel_id: i64, name: &str) {
        let (store, bots, texts) = (self.store.clone(), self.bots.clone(), self.texts.clone());
        let name = name.to_owned();
        tokio::spawn(async move {
            let problem = bot::told::ChannelProblem::Protected;
            bot::told::tell_channel_problem(&store, &bots, &texts, channel_id, &name, problem)
                .await;
        });
    }
    fn settled(&self, channel_id: i64, name: &str) {
        let (store, bots, texts) = (self.store.clone(), self.bots.clone(), self.texts.clone());
        let name = name.to_owned();
        tokio::spawn(async move {
            tell_resolved(&store, &bots, &texts, channel_id, &name).await;
        });
    }
    fn changed(&self) {
        self.pipeline.mirror_wake();
    }
    fn channel_problem(&self, channel_id: i64, name: &str, problem: &'static str) {
        let (store, bots, texts) = (self.store.clone(), self.bots.clone(), self.texts.clone());
        let name = name.to_owned();
        let problem = if problem == crate::store::CHANNEL_PRIVATE {
            bot::told::ChannelProblem::Private
        } else {
            bot::told::ChannelProblem::Gone
        };
        tokio::spawn(async move {
            bot::told::tell_channel_problem(&store, &bots, &texts, channel_id, &name, problem)
                .await;
        });
    }
    fn channel_readable(&self, channel_id: i64, name: &str) {
        let (store, bots, texts) = (self.store.clone(), self.bots.clone(), self.texts.clone());
        let name = name.to_owned();
        tokio::spawn(async move {
            bot::told::channel_resumed(&store, &bots, &texts, channel_id, &name).await;
        });
    }
    fn channel_renamed(&self, channel_id: i64, old: &str, new: Option<&str>) {
        let (store, bots, texts) = (self.store.clone(), self.bots.clone(), self.texts.clone());
        let (old, new) = (old.to_owned(), new.map(str::to_owned));
        tokio::spawn(async move {
            bot::told::channel_renamed(&store, &bots, &texts, channel_id, &old, new).await;
        });
    }
}

/// Metric: notices of how a channel's look-up ended, by outcome (`sent`,
/// `failed`).
pub const RESOLVE_NOTICES_TOTAL: &str = "kuryer_bot_resolve_notices_total";

/// The bot the user started, else the first.
fn bot_of(bots: &[teloxide::Bot], bot_id: Option<i64>) -> Option<&teloxide::Bot> {
    bot_id
        .and_then(|id| bots.iter().find(|b| bot_id_of(b.token()) == id))
        .or(bots.first())
}

/// Tells each subscriber who was told "still checking" how the look-up of
/// the channel ended, once and in their language. Claimed before sending:
/// a notice that fails to send is logged and counted, not retried.
async fn tell_resolved(
    store: &Store,
    bots: &[teloxide::Bot],
    texts: &bot::i18n::Texts,
    channel_id: i64,
    name: &str,
) {
    use teloxide::prelude::Requester;
    let people = match store.claim_resolve_notices(channel_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel_id, error = %e, "Cannot claim the resolve notices; they are sent at the next start.");
            return;
        }
    };
    for n in people {
        let Some(key) = bot::resolve_notice_key(&n.status) else {
            continue;
        };
        let lang = bot::i18n::Lang::parse(&n.language).unwrap_or(bot::i18n::Lang::En);
        let text = texts.get(lang, key, &[("name", bot::i18n::Arg::S(name.to_owned()))]);
        let Some(bot) = bot_of(bots, n.bot_id) else {
            return;
        };
        match bot
            .send_message(teloxide::types::ChatId(n.user), text)
            .await
        {
            Ok(_) => metrics::counter!(RESOLVE_NOTICES_TOTAL, "outcome" => "sent").increment(1),
            Err(e) => {
                metrics::counter!(RESOLVE_NOTICES_TOTAL, "outcome" => "failed").increment(1);
                tracing::info!(channel_id, user = n.user, status = n.status, error = %e, "Could not tell a subscriber how the channel's look-up ended.");
            }
        }
    }
}

/// At start: the notices a stopped process settled but did not send.
async fn tell_owed_resolve_notices(
    store: &Store,
    bots: &[teloxide::Bot],
    texts: &bot::i18n::Texts,
) {
    match store.channels_owing_resolve_notices().await {
        Ok(channels) => {
            for (channel_id, name) in channels {
                tell_resolved(store, bots, texts, channel_id, &name).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "Cannot read the resolve notices owed."),
    }
}

/// The source of a channel our bot is not admin of, while no MTProto reader
/// exists: it says so, and the poller asks rarely.
struct NoReader;

impl ChannelSource for NoReader {
    fn fetch(
        &mut self,
        _after: i32,
        _limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        Box::pin(async {
            Err(SourceError::Gone(
                "our bot is not an admin of this channel and no MTProto reader account is configured"
                    .to_owned(),
            ))
        })
    }
}

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
    notifier.status("applying migrations");
    let store = Store::open_with(
        &cfg.database,
        Open::everything(&cfg.database),
        crate::progress::migrate_with_progress,
    )
    .await?
    .store;

    let bots = build_bots(
        &cfg.telegram.bot_tokens,
        &cfg.telegram.bot_api_url,
        Duration::from_millis(cfg.telegram.request_timeout_ms),
    )?;
    // Telegram answers for every token before anything is read or sent: a
    // revoked token is named (by bot id) now, not discovered per delivery.
    notifier.status("checking bot tokens with getMe");
    preflight::check_bots_at_start(&bots, &cfg.telegram.bot_tokens).await?;
    // Several instances share the work by lease (`instance`): this one
    // registers first, so the others count it and give up their excess.
    let ownership = Arc::new(Ownership::new(
        cfg.instance.id.clone().unwrap_or_else(instance::default_id),
        Duration::from_secs(cfg.instance.lease_ttl_s),
    ));
    keeper::register(&store, &ownership).await?;
    tracing::info!(
        instance = ownership.id(),
        lease_ttl_s = cfg.instance.lease_ttl_s,
        "Registered this instance; taking a fair share of channels and bots."
    );
    let updates = BotUpdates::new(store.clone()).with_ownership(ownership.clone());
    // Channels our bot does not administer are read by the reader accounts
    // this process leases (under this instance's id); with none, they say
    // so and are polled rarely.
    let readers = ReaderPool::start(store.clone(), &cfg, ownership.id().to_owned()).await;
    let has_readers = !readers.live_accounts().is_empty();
    let factory: SourceFactory = {
        let updates = updates.clone();
        let readers = readers.clone();
        Arc::new(move |ch| -> Box<dyn ChannelSource> {
            if ch.bot_is_admin {
                Box::new(updates.source(ch.channel_id))
            } else if has_readers {
                Box::new(readers.source(ch))
            } else {
                Box::new(NoReader)
            }
        })
    };
    // Dedup keys are namespaced by the database's own id (see `dedup`).
    let installation = store.installation_id().await?;
    let dedup = RedisDedup::new(&cfg.redis, &installation);
    if !dedup.ping().await {
        tracing::warn!(
            "Redis is not reachable at start; delivering on the database's dedup alone until it is."
        );
    }
    notifier.status("loading subscriptions and resuming deliveries");
    let pipeline_cfg = PipelineConfig::from_config(&cfg, 1.0);
    // Rate limits shared with the other instances of this installation.
    let stop_heartbeat = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shared = crate::shared_limits::start_for(
        &cfg,
        &installation,
        ownership.id(),
        &pipeline_cfg,
        stop_heartbeat.clone(),
    )
    .await;
    let pipeline = Pipeline::start_owned(
        store.clone(),
        bots.clone(),
        factory,
        Arc::new(dedup.clone()),
        pipeline_cfg,
        Some(ownership.clone()),
        shared.as_ref().map(|(s, _)| s.clone()),
    )
    .await?;
    // Backfills of channels read over MTProto read their history through
    // the same accounts (none: only what is recorded is sent).
    if has_readers {
        pipeline.set_reader(readers.clone());
    }
    let keeper = {
        let readers = readers.clone();
        Keeper::new(
            store.clone(),
            ownership.clone(),
            pipeline.clone(),
            cfg.telegram
                .bot_tokens
                .iter()
                .map(|t| bot_id_of(t.expose()))
                .collect(),
            Arc::new(readers),
        )
    };
    let draining = keeper.draining();
    let keeper = actix_rt::spawn(keeper.run());
    // Subscriptions changed through another instance reach this one's registry.
    let changes = crate::subscription_events::spawn(store.clone(), pipeline.clone());

    let texts = bot::i18n::Texts::shared();
    {
        let (store, bots, texts) = (store.clone(), bots.clone(), texts.clone());
        updates.on_rename(Box::new(move |channel_id, old, new| {
            let (store, bots, texts) = (store.clone(), bots.clone(), texts.clone());
            tokio::spawn(async move {
                bot::told::channel_renamed(&store, &bots, &texts, channel_id, &old, new).await;
            });
        }));
    }
    readers.set_events(Arc::new(PipelineEvents {
        pipeline: pipeline.clone(),
        store: store.clone(),
        bots: bots.clone(),
        texts: texts.clone(),
    }));
    {
        let (store, bots) = (store.clone(), bots.clone());
        tokio::spawn(async move { tell_owed_resolve_notices(&store, &bots, &texts).await });
    }

    let api = crate::http::bind_with(
        &cfg.http,
        store.clone(),
        Some(pipeline.clone()),
        Some(dedup.clone()),
    )?;
    let api_handle = api.server.handle();
    actix_rt::spawn(api.server);

    // One update loop per bot (a token allows one getUpdates consumer):
    // each bot answers the people who write to it.
    let handlers = bot::handlers(
        store.clone(),
        pipeline.clone(),
        cfg.telegram
            .bot_tokens
            .iter()
            .map(|t| bot_id_of(t.expose()))
            .zip(bots.iter().cloned())
            .collect(),
        BotSettings {
            max_subscriptions: i64::from(cfg.limits.max_subscriptions_per_user),
            commands_per_minute: cfg.limits.bot_commands_per_minute,
            admins: cfg.telegram.admins.clone(),
        },
    );
    for h in &handlers {
        let h = h.clone();
        actix_rt::spawn(async move { h.set_commands().await });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let update_loops: Vec<_> = bots
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
    let update_loop = futures_util::future::select_all(update_loops);
    let maintenance = {
        let store = store.clone();
        let db = cfg.database.clone();
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
                if let Err(e) = store
                    .maintain_partitions(db.partitions_ahead_days, db.retention_days)
                    .await
                {
                    tracing::warn!(error = %e, "Partition maintenance failed; trying again later.");
                }
            }
        })
    };
    tracing::info!(bots = bots.len(), "kuryer is running.");
    // Migrations ran, the registry is loaded, the update loop is started,
    // every token answered getMe, and (waited for in the background, so a
    // stop signal is heard meanwhile) the lease keeper's first round took a
    // share and started its pollers: ready, as `/readyz` says.
    let keepalive = {
        let (pipeline, ownership) = (pipeline.clone(), ownership.clone());
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
    };
    #[cfg(any(test, feature = "test-hooks"))]
    crate::notify::test_hooks_on_signals(pipeline.clone());

    // Stop on the caller's signal — or when a shared actor or the update
    // loop stopped on its own (a panic ends only that task). Nothing
    // restarts them in place: their in-memory work (queued deliveries,
    // unwritten rows) is rebuilt from the database by the start-up resume,
    // so the daemon stops in order and exits non-zero, and systemd
    // (`Restart=on-failure`) starts it again.
    let mut update_loop = Some(update_loop);
    let mut rest = Vec::new();
    let died = tokio::select! {
        reason = shutdown => {
            tracing::info!(reason, "Stopping.");
            None
        }
        actor = pipeline.first_death() => Some(actor),
        (_, _, others) = async { update_loop.as_mut().expect("set above").await } => {
            update_loop = None;
            rest = others;
            Some("update loop")
        }
    };
    if let Some(actor) = died {
        tracing::error!(
            actor,
            "A part of the pipeline stopped unexpectedly; stopping kuryer so that it is restarted."
        );
    }
    notifier.stopping();
    keepalive.abort();
    let _ = stop_tx.send(true);
    let loops = match update_loop {
        Some(all) => all.into_inner(),
        None => rest,
    };
    for handle in loops {
        let _ = handle.await;
    }
    maintenance.abort();
    // The keeper goes on renewing while the queue drains (a send needs its
    // lease), but takes nothing more; then every lease is let go at once.
    draining.store(true, std::sync::atomic::Ordering::Relaxed);
    let report = pipeline
        .shutdown(Duration::from_millis(cfg.delivery.shutdown_deadline_ms))
        .await;
    keeper.abort();
    Keeper::leave(&store, &ownership).await;
    api_handle.stop(true).await;
    changes.abort();
    stop_heartbeat.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some((_, heartbeat)) = shared {
        let _ = tokio::time::timeout(Duration::from_secs(2), heartbeat).await;
    }
    readers.close().await;
    store.close();
    if let Some(actor) = died {
        anyhow::bail!(
            "the {actor} stopped unexpectedly; exiting so that systemd restarts kuryer (undelivered posts resume from the database)"
        );
    }
    if !report.clean {
        anyhow::bail!(
            "shutdown deadline passed with {} deliveries not sent; they are resent from the database at the next start",
            report.left_queued
        );
    }
    Ok(())
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
