//! The lease keeper: every third of `instance.lease_ttl_s`, one heartbeat
//! and what follows from it.
//!
//! 1. Renew this instance's heartbeat, but only if it has not lapsed: a
//!    lapsed heartbeat means the others may have taken its work, so
//!    everything is let go and the instance registers anew (new
//!    generations for whatever it takes again).
//! 2. Read which channels and bots the database says are ours; whatever is
//!    held locally but not there (or under another generation) was lost:
//!    its pollers stop, and its queued deliveries are dropped at the sender.
//!    The local deadline moves to the renewal's send time + TTL − margin.
//! 3. Let go, in the database, of what step 4 of the previous round gave up
//!    (one round later, so sends in flight for it have finished). A channel
//!    held here that nobody subscribes to any more (not leasable) is given
//!    up now the same way: its poller stops, and it never counts in this
//!    instance's share (reader accounts leave it after
//!    `reader.orphan_grace_s`, `reader/orphans.rs`).
//! 4. Count live instances and leasable channels; the fair share is
//!    `ceil(channels / instances)`. Below it: take free channels (no owner,
//!    or a dead one) — their owed deliveries are queued, then their pollers
//!    start. Above it: give the excess up (highest ids), pollers stopped now.
//! 5. The same for bots' getUpdates, with `ceil(bots / instances)`; a bot
//!    given up is released a whole TTL later, so the long poll it may still
//!    have open has ended before anyone else polls.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::pipeline::Pipeline;
use crate::reader::ReaderPool;
use crate::store::{Store, StoreError};

use crate::instance::{Ownership, identity};
use crate::telemetry::registry;

/// Rounds woken early (a channel no one polls yet) come at most this often.
const MIN_ROUND_GAP: Duration = Duration::from_millis(200);

/// The keeper's state between rounds.
pub struct Keeper {
    store: Store,
    ownership: Arc<Ownership>,
    pipeline: Pipeline,
    bot_ids: Vec<i64>,
    version: &'static str,
    /// Channels given up last round, released in the database this round.
    releasing: Vec<i64>,
    /// Bots given up, released in the database once the instant passed.
    releasing_bots: Vec<(i64, Instant)>,
    /// Set when shutting down: renew, never take more.
    draining: Arc<AtomicBool>,
    /// The reader accounts: how many this instance holds, and taking
    /// over free ones up to a share.
    accounts: Arc<dyn Accounts>,
    /// Take-overs started by this round (the first round waits for them
    /// before the instance says it is ready).
    taking: Vec<actix_rt::task::JoinHandle<()>>,
    /// The first round succeeded: [`Keeper::mark_started`] is under way.
    first_done: bool,
}

/// What the keeper needs of the reader pool.
pub trait Accounts: Send + Sync {
    /// Accounts held here.
    fn held(&self) -> usize;
    /// Active accounts in the database.
    fn total(&self) -> futures_util::future::BoxFuture<'_, usize>;
    /// Take free accounts while fewer than `share` are held.
    fn adopt(&self, share: usize) -> futures_util::future::BoxFuture<'_, ()>;
    /// Give one account back while more than `share` are held.
    fn give_back(&self, share: usize) -> futures_util::future::BoxFuture<'_, ()>;
}

impl Accounts for crate::reader::ReaderPool {
    fn held(&self) -> usize {
        self.live_accounts().len()
    }
    fn total(&self) -> futures_util::future::BoxFuture<'_, usize> {
        Box::pin(self.active_accounts())
    }
    fn adopt(&self, share: usize) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(ReaderPool::adopt(self, share))
    }
    fn give_back(&self, share: usize) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(self.give_back_excess(share))
    }
}

/// Why this instance could not register.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process, live, registered under the same id.
    #[error(
        "instance id {id:?} is in use by another running kuryer (host {host:?}, machine id {machine}, pid {pid}): \
         its heartbeat goes on. Give each instance its own instance.id (or leave it unset: host name and process id)."
    )]
    Collision {
        id: String,
        host: String,
        machine: String,
        pid: u32,
    },
}

/// Registers this instance before anything is taken. An instance already
/// registered under the same id that is live and not provably gone (by its
/// process, on this machine and boot) is watched for up to a TTL: if its
/// heartbeat moves, two processes share the id and this one refuses to
/// start; if it lapses, it was a predecessor (a crash, a reboot).
pub async fn register(store: &Store, ownership: &Ownership) -> Result<(), RegisterError> {
    let me = ownership.identity();
    wait_out_namesake(store, ownership).await?;
    store
        .instance_register(
            ownership.id(),
            ownership.ttl().as_secs(),
            env!("CARGO_PKG_VERSION"),
            me,
        )
        .await?;
    // A predecessor on this machine that crashed (systemd restarting us
    // after a kill, an OOM) is known dead now: waiting out its TTL would
    // leave its channels dark for `instance.lease_ttl_s` after every crash
    // of a one-instance installation. Only in this process space: a PID
    // of another machine or boot means nothing here.
    let dead: Vec<String> = store
        .registered_instances(None)
        .await?
        .into_iter()
        .filter(|r| r.id != ownership.id() && identity::judged_gone(me, &r.identity))
        .map(|r| r.id)
        .collect();
    if !dead.is_empty() {
        tracing::info!(instances = ?dead, "Instances of this machine and boot whose process is gone are dead; taking their work without waiting for their leases to lapse.");
        store.instances_mark_dead(&dead).await?;
    }
    // Counted now, so limits shared with the others are divided right
    // from the first send, before the keeper's first round.
    let (live, _) = store.lease_census().await?;
    ownership.set_live_instances(live.max(1) as usize);
    Ok(())
}

/// Returns once no other live process holds this instance's id.
async fn wait_out_namesake(store: &Store, ownership: &Ownership) -> Result<(), RegisterError> {
    let me = ownership.identity();
    let id = ownership.id();
    let Some(first) = store.registered_instances(Some(id)).await?.pop() else {
        return Ok(());
    };
    let other = &first.identity;
    if !first.live || other.incarnation == me.incarnation || identity::judged_gone(me, other) {
        return Ok(());
    }
    tracing::warn!(
        instance = id,
        other_host = %other.host_name,
        other_pid = other.pid,
        "An instance with this id has a live heartbeat; watching it for up to a TTL: a running one refuses this start, a dead one is replaced."
    );
    let collision = || RegisterError::Collision {
        id: id.to_owned(),
        host: other.host_name.clone(),
        machine: other.machine_id.clone().unwrap_or_else(|| "unknown".into()),
        pid: other.pid,
    };
    let give_up = Instant::now() + ownership.ttl() * 2 + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match store.registered_instances(Some(id)).await?.pop() {
            None => return Ok(()),
            Some(r) if !r.live => return Ok(()),
            Some(r)
                if r.heartbeat_s > first.heartbeat_s
                    || r.identity.incarnation != other.incarnation =>
            {
                return Err(collision());
            }
            Some(_) if Instant::now() > give_up => return Err(collision()),
            Some(_) => {}
        }
    }
}

impl Keeper {
    /// A keeper for `ownership`, taking channels into `pipeline` and
    /// sharing the getUpdates of `bot_ids`.
    pub fn new(
        store: Store,
        ownership: Arc<Ownership>,
        pipeline: Pipeline,
        bot_ids: Vec<i64>,
        accounts: Arc<dyn Accounts>,
    ) -> Self {
        Self {
            store,
            ownership,
            pipeline,
            bot_ids,
            version: env!("CARGO_PKG_VERSION"),
            releasing: Vec::new(),
            releasing_bots: Vec::new(),
            draining: Arc::new(AtomicBool::new(false)),
            accounts,
            taking: Vec::new(),
            first_done: false,
        }
    }

    /// Set to stop taking work (the shutdown drains what is held).
    pub fn draining(&self) -> Arc<AtomicBool> {
        self.draining.clone()
    }

    /// One round now, then one every third of the TTL, on the current
    /// arbiter, until the handle is aborted. The daemon does not wait for
    /// the first round (HTTP answers at once), but `/readyz` says not ready
    /// until the first round that succeeds has taken the first share and
    /// the pollers of what it took are started ([`Ownership::started`]):
    /// ready used to come before any channel was read, so the first posts
    /// and `active_channels` after a start raced the first round.
    pub async fn run(mut self) {
        let period = self.ownership.ttl() / 3;
        loop {
            let started = Instant::now();
            match self.round().await {
                Ok(()) if !self.first_done => self.mark_started(),
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Lease heartbeat failed; trying again (leases not renewed lapse on their own).");
                }
            }
            // Later take-overs run on their own: no one waits for them.
            self.taking.clear();
            tokio::select! {
                () = tokio::time::sleep(period.saturating_sub(started.elapsed())) => {}
                () = self.ownership.wake.notified() => {
                    // Woken for a new channel: at most five rounds a second,
                    // however many subscriptions the API adds.
                    tokio::time::sleep(MIN_ROUND_GAP.saturating_sub(started.elapsed())).await;
                }
            }
        }
    }

    /// Once the take-overs of the first share have asked for their pollers
    /// and the supervisor has handled that (a round trip through its
    /// mailbox, behind those requests), the instance is started. In the
    /// background: the keeper goes on renewing meanwhile, however long the
    /// owed deliveries of what it took take to queue.
    fn mark_started(&mut self) {
        self.first_done = true;
        let taking = std::mem::take(&mut self.taking);
        let (ownership, pipeline) = (self.ownership.clone(), self.pipeline.clone());
        actix_rt::spawn(async move {
            for t in taking {
                let _ = t.await;
            }
            let _ = pipeline.stats().await;
            ownership.set_started();
            tracing::info!(
                instance = ownership.id(),
                channels = ownership.counts().0,
                "First share of channels taken and their pollers started: ready."
            );
        });
    }

    /// A graceful stop: every lease let go and this instance's row removed,
    /// so the others take its work at their next heartbeat.
    pub async fn leave(store: &Store, ownership: &Ownership) {
        ownership.clear();
        match store.instance_leave(ownership.id()).await {
            Ok(()) => tracing::info!(
                instance = ownership.id(),
                "Leases released; the other instances take this one's work."
            ),
            Err(e) => {
                tracing::warn!(instance = ownership.id(), error = %e, "Could not release the leases; they lapse after the TTL.")
            }
        }
    }

    async fn round(&mut self) -> Result<(), StoreError> {
        let id = self.ownership.id().to_owned();
        let sent_at = Instant::now();
        let me = self.ownership.identity().clone();
        if !self.store.instance_heartbeat(&id, me.incarnation).await? {
            let lost = self.ownership.clear();
            if !lost.is_empty() {
                tracing::error!(
                    instance = %id,
                    channels = lost.len(),
                    "This instance's heartbeat lapsed (paused or cut off from PostgreSQL): its leases may be another's; letting all of them go."
                );
                self.pipeline.drop_channels(&lost);
            }
            self.releasing.clear();
            self.releasing_bots.clear();
            // Another process registered this id meanwhile (a collision
            // that started at the same moment): it keeps it; this one takes
            // nothing until that one's heartbeat lapses.
            let namesake = self.store.registered_instances(Some(&id)).await?.pop();
            if let Some(r) = namesake.filter(|r| r.live && r.identity.incarnation != me.incarnation)
            {
                tracing::error!(
                    instance = %id,
                    other_host = %r.identity.host_name,
                    other_pid = r.identity.pid,
                    "Another running kuryer registered this instance's id; this one takes no work until it stops. Give each instance its own instance.id."
                );
                return Ok(());
            }
            self.store
                .instance_register(&id, self.ownership.ttl().as_secs(), self.version, &me)
                .await?;
            return Ok(());
        }
        let owned = self.store.owned_channels(&id).await?;
        let channels: HashMap<i64, i64> =
            owned.iter().map(|o| (o.channel_id, o.generation)).collect();
        let bots: HashMap<i64, i64> = self.store.owned_bots(&id).await?.into_iter().collect();
        let (lost, lost_bots) = self.ownership.renewed(sent_at, &channels, &bots);
        if !lost.is_empty() || !lost_bots.is_empty() {
            tracing::warn!(
                instance = %id,
                channels = lost.len(),
                bots = lost_bots.len(),
                "Leases taken by another instance; stopping that work here."
            );
            self.pipeline.drop_channels(&lost);
        }
        // What the previous round gave up is let go in the database now.
        let due = std::mem::take(&mut self.releasing);
        // Held here but nobody subscribes any more: the poller stops now,
        // the lease goes next round (as for an excess), and the channel no
        // longer counts in this instance's share — else an instance holding
        // unsubscribed channels would give up subscribed ones for them.
        // Reader accounts leave such channels after `reader.orphan_grace_s`.
        let unwanted: Vec<i64> = owned
            .iter()
            .filter(|o| !o.wanted && self.ownership.owns_channel(o.channel_id))
            .map(|o| o.channel_id)
            .collect();
        if !unwanted.is_empty() {
            tracing::info!(
                instance = %id,
                channels = unwanted.len(),
                "Nobody subscribes to these channels any more: their pollers stop and their leases go."
            );
            for ch in &unwanted {
                self.ownership.remove_channel(*ch);
            }
            self.pipeline.drop_channels(&unwanted);
            self.releasing.extend(unwanted);
        }
        // Ours in the database but not held here (a claim whose answer was
        // lost): let go, or no one would ever poll them.
        let orphans: Vec<i64> = channels
            .keys()
            .filter(|c| {
                !self.ownership.owns_channel(**c) && !self.releasing.contains(c) && !due.contains(c)
            })
            .copied()
            .collect();
        if !orphans.is_empty() {
            self.store.release_channels(&id, &orphans).await?;
        }
        if !due.is_empty() {
            self.store.release_channels(&id, &due).await?;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.releasing_bots)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.releasing_bots = later;
        for (bot, _) in due {
            self.store.release_bot(&id, bot).await?;
        }
        if !self.draining.load(Ordering::Relaxed) {
            self.share(&id).await?;
        }
        let (c, b) = self.ownership.counts();
        registry::OWNED_CHANNELS.get().set(c as f64);
        registry::OWNED_BOTS.get().set(b as f64);
        let accounts = self.accounts.held();
        self.ownership.set_accounts(accounts);
        registry::OWNED_ACCOUNTS.get().set(accounts as f64);
        // Rows of instances dead for long (and holding nothing) go.
        let _ = self
            .store
            .forget_dead_instances(self.ownership.ttl().as_secs_f64() * 20.0)
            .await;
        Ok(())
    }

    /// Steps 4 and 5: take up to the fair share, give up the excess.
    async fn share(&mut self, id: &str) -> Result<(), StoreError> {
        let (live, total) = self.store.lease_census().await?;
        let live = live.max(1);
        registry::LIVE_INSTANCES.get().set(live as f64);
        self.ownership.set_live_instances(live as usize);
        let share = (total + live - 1) / live;
        let mine = self.ownership.counts().0 as i64;
        if mine < share {
            let taken = self.store.claim_channels(id, share - mine).await?;
            if !taken.is_empty() {
                tracing::info!(
                    instance = id,
                    channels = taken.len(),
                    share,
                    live_instances = live,
                    "Took channels: resuming what they owe, then polling them."
                );
                for l in &taken {
                    self.ownership
                        .add_channel(l.channel.channel_id, l.generation);
                }
                let taking = self
                    .pipeline
                    .take_over(taken.into_iter().map(|l| l.channel).collect());
                self.taking.push(taking);
            }
        } else if mine > share {
            let mut ids = self.ownership.channel_ids();
            ids.sort_unstable();
            let excess = ids.split_off(ids.len() - (mine - share) as usize);
            tracing::info!(
                instance = id,
                channels = excess.len(),
                share,
                live_instances = live,
                "Giving channels up for a new instance's share."
            );
            for ch in &excess {
                self.ownership.remove_channel(*ch);
            }
            self.pipeline.drop_channels(&excess);
            self.releasing.extend(excess);
        }
        // Reader accounts: one given back while over the share (a newcomer
        // takes it a TTL later), those free taken up to the share.
        let total_accounts = self.accounts.total().await as i64;
        if total_accounts > 0 {
            let account_share = (total_accounts + live - 1) / live;
            self.accounts.give_back(account_share as usize).await;
            self.accounts.adopt(account_share as usize).await;
        }
        if self.bot_ids.is_empty() {
            return Ok(());
        }
        let bots = self.bot_ids.len() as i64;
        let bot_share = (bots + live - 1) / live;
        let mut held = self.ownership.counts().1 as i64;
        for &bot in &self.bot_ids {
            if held >= bot_share {
                break;
            }
            let pending = self.releasing_bots.iter().any(|(b, _)| *b == bot);
            if self.ownership.bot_lease_left(bot).is_some() || pending {
                continue;
            }
            if let Some((generation, wait)) = self.store.claim_bot(id, bot).await? {
                tracing::info!(instance = id, bot_id = bot, "Took the bot's getUpdates.");
                self.ownership.add_bot(bot, generation);
                if let Some(wait) = wait {
                    // Its holder died with a long poll perhaps still open
                    // at Telegram: polling now would end that one with 409
                    // ("terminated by other getUpdates request").
                    tracing::info!(
                        instance = id,
                        bot_id = bot,
                        wait_s = wait.as_secs(),
                        "The bot's last holder died; its last long poll may still be open: polling after it surely ended."
                    );
                    self.ownership.hold_bot_polls(bot, Instant::now() + wait);
                }
                held += 1;
            }
        }
        if held > bot_share {
            let give_up = self
                .bot_ids
                .iter()
                .rev()
                .copied()
                .find(|b| self.ownership.bot_lease_left(*b).is_some());
            if let Some(bot) = give_up {
                tracing::info!(
                    instance = id,
                    bot_id = bot,
                    "Giving the bot's getUpdates up for a new instance's share."
                );
                self.ownership.remove_bot(bot);
                self.releasing_bots
                    .push((bot, Instant::now() + self.ownership.ttl()));
            }
        }
        Ok(())
    }
}
