//! ChannelSupervisor: starts, stops and restarts the ChannelPollers.
//!
//! Owns the map channel → running poller. actix's own `Supervisor` restarts
//! an actor that *stops*, not one that *panics* (a panic ends the actor's
//! task and nothing more), so this actor watches instead: every
//! `watch_interval` it checks each poller's address, and one whose mailbox
//! is gone died of a panic; it is started again after a backoff that grows
//! with repeated deaths. No other channel notices. A restarted poller reads
//! its high-water mark from the database, so it resumes exactly where the
//! dead one had safely got to.

use crate::telemetry::events::telegram_id;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::backoff::Backoff;
use crate::channel_poller::{ChannelPoller, PollerConfig, StopPoller, Wake};
use crate::model::ChannelRef;
use crate::ports::{Persistence, SourceFactory};
use crate::subscriber_registry::PublishPost;
use crate::telemetry::{events, registry};

/// Poll this channel (starts a poller unless one runs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartChannel(pub ChannelRef);

/// Stop polling this channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChannel(pub i64);

/// Stop polling this channel whatever it is, bot-admin channels included:
/// another instance holds its lease now (several instances).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseChannel(pub i64);

/// Push notice for a channel: poll it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WakeChannel(pub i64);

/// Stop every poller, each after its cycle in progress; answers when all have
/// stopped. No poller starts after it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

/// Counters.
#[derive(Message)]
#[rtype(result = "SupervisorStats")]
pub struct GetSupervisorStats;

/// What the supervisor sees.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct SupervisorStats {
    /// Pollers running now.
    pub running: usize,
    /// Pollers restarted after they died of a panic.
    pub restarts: u64,
}

/// The address of a running poller, for tests that need to reach one; only
/// with the `test-hooks` feature.
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Message)]
#[rtype(result = "Option<Addr<ChannelPoller>>")]
pub struct GetPoller(pub i64);

struct Entry {
    channel: ChannelRef,
    addr: Option<Addr<ChannelPoller>>,
    deaths: u32,
    last_death: Option<Instant>,
    restart_at: Option<Instant>,
}

/// The ChannelSupervisor actor.
pub struct ChannelSupervisor {
    entries: HashMap<i64, Entry>,
    factory: SourceFactory,
    persistence: Arc<dyn Persistence>,
    registry: Recipient<PublishPost>,
    cfg: PollerConfig,
    watch_interval: Duration,
    /// Delay before a dead poller is restarted, by deaths in a row.
    restart: Backoff,
    stopping: bool,
    restarts: u64,
}

impl ChannelSupervisor {
    /// A supervisor building pollers from these parts.
    pub fn new(
        factory: SourceFactory,
        persistence: Arc<dyn Persistence>,
        registry: Recipient<PublishPost>,
        cfg: PollerConfig,
    ) -> Self {
        Self {
            entries: HashMap::new(),
            factory,
            persistence,
            registry,
            cfg,
            watch_interval: Duration::from_millis(200),
            // 100 ms after the first death, doubling up to 6.4 s.
            restart: Backoff::new(Duration::from_millis(50), Duration::from_millis(50 << 7)),
            stopping: false,
            restarts: 0,
        }
    }

    fn spawn_poller(&self, channel: &ChannelRef) -> Addr<ChannelPoller> {
        ChannelPoller::new(
            channel.clone(),
            self.cfg.clone(),
            self.factory.clone(),
            self.persistence.clone(),
            self.registry.clone(),
        )
        .start()
    }

    fn watch(&mut self) {
        if self.stopping {
            return;
        }
        let now = Instant::now();
        let mut to_start = Vec::new();
        let restart = &self.restart;
        for (id, e) in &mut self.entries {
            match &e.addr {
                Some(addr) if !addr.connected() => {
                    // Deaths long apart do not add up to a long backoff.
                    if e.last_death
                        .is_some_and(|t| now.duration_since(t) > Duration::from_secs(60))
                    {
                        e.deaths = 0;
                    }
                    e.deaths += 1;
                    e.last_death = Some(now);
                    let backoff = restart.delay(e.deaths);
                    e.restart_at = Some(now + backoff);
                    e.addr = None;
                    tracing::error!(
                        channel_id = telegram_id(*id),
                        channel_key = *id,
                        deaths = e.deaths,
                        restart_in_ms = backoff.as_millis() as u64,
                        "Channel poller died (panic); restarting it."
                    );
                }
                None if e.restart_at.is_some_and(|t| t <= now) => to_start.push(*id),
                _ => {}
            }
        }
        for id in to_start {
            let channel = self.entries[&id].channel.clone();
            let addr = self.spawn_poller(&channel);
            let e = self.entries.get_mut(&id).expect("listed above");
            e.addr = Some(addr);
            e.restart_at = None;
            self.restarts += 1;
            events::poller_restarted(id, self.restarts);
        }
    }
}

impl ChannelSupervisor {
    /// `active_channels`: the channels being read. Set where the map
    /// changes, so a restart reports the loaded figure at once.
    fn gauge(&self) {
        registry::ACTIVE_CHANNELS
            .get()
            .set(self.entries.len() as f64);
    }
}

impl Actor for ChannelSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.watch_interval, |act, _| act.watch());
    }
}

impl Handler<StartChannel> for ChannelSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StartChannel, _: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let id = msg.0.channel_id;
        if let Some(e) = self.entries.get(&id)
            && let Some(addr) = e.addr.as_ref().filter(|a| a.connected())
        {
            if e.channel == msg.0 {
                return;
            }
            // The channel changed (e.g. our bot became its admin): the old
            // poller's source is wrong now, so a new poller replaces it.
            addr.do_send(StopPoller);
        }
        let addr = self.spawn_poller(&msg.0);
        self.entries.insert(
            id,
            Entry {
                channel: msg.0,
                addr: Some(addr),
                deaths: 0,
                last_death: None,
                restart_at: None,
            },
        );
        self.gauge();
    }
}

impl Handler<StopChannel> for ChannelSupervisor {
    type Result = ();

    fn handle(&mut self, msg: StopChannel, _: &mut Context<Self>) {
        // A channel our bot administers keeps its poller: its posts arrive
        // pushed whether anyone subscribes or not, and only its poller
        // reading them lets the update loop confirm them to Telegram.
        if self
            .entries
            .get(&msg.0)
            .is_some_and(|e| e.channel.bot_is_admin)
        {
            return;
        }
        if let Some(e) = self.entries.remove(&msg.0)
            && let Some(addr) = e.addr
        {
            addr.do_send(StopPoller);
        }
        self.gauge();
    }
}

impl Handler<ReleaseChannel> for ChannelSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ReleaseChannel, _: &mut Context<Self>) {
        if let Some(e) = self.entries.remove(&msg.0)
            && let Some(addr) = e.addr
        {
            addr.do_send(StopPoller);
        }
        self.gauge();
    }
}

impl Handler<WakeChannel> for ChannelSupervisor {
    type Result = ();

    fn handle(&mut self, msg: WakeChannel, _: &mut Context<Self>) {
        if let Some(addr) = self.entries.get(&msg.0).and_then(|e| e.addr.as_ref()) {
            addr.do_send(Wake);
        }
    }
}

impl Handler<StopAll> for ChannelSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopAll, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let addrs: Vec<_> = self.entries.drain().filter_map(|(_, e)| e.addr).collect();
        self.gauge();
        Box::pin(async move {
            let stops = addrs.into_iter().map(|a| async move {
                // An error means it is already gone: stopped is stopped.
                let _ = a.send(StopPoller).await;
            });
            futures_util::future::join_all(stops).await;
        })
    }
}

impl Handler<GetSupervisorStats> for ChannelSupervisor {
    type Result = SupervisorStats;

    fn handle(&mut self, _: GetSupervisorStats, _: &mut Context<Self>) -> SupervisorStats {
        SupervisorStats {
            running: self
                .entries
                .values()
                .filter(|e| e.addr.as_ref().is_some_and(|a| a.connected()))
                .count(),
            restarts: self.restarts,
        }
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<GetPoller> for ChannelSupervisor {
    type Result = Option<Addr<ChannelPoller>>;

    fn handle(&mut self, msg: GetPoller, _: &mut Context<Self>) -> Self::Result {
        self.entries.get(&msg.0).and_then(|e| e.addr.clone())
    }
}
