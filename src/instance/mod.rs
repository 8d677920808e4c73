//! Several `kuryer run` instances over one PostgreSQL and one Redis: who
//! owns which work. Channels (their reading, fan-out, resume and sweep),
//! reader accounts and each bot token's `getUpdates` consumer are leased to
//! one instance at a time (`store/leases.rs`, migration 0009).
//!
//! - [`Ownership`]: what this instance holds now, and until when it surely
//!   holds it — a deadline on the monotonic clock, set at each renewal to
//!   the moment the renewal was *sent* + TTL − a margin. The database counts
//!   the TTL from its own `now()` at the renewal, which is later, so the
//!   local deadline always passes first: a process that was paused (SIGSTOP,
//!   a frozen VM) wakes up with the deadline behind it and sends nothing
//!   until a renewal proves the leases are still its own.
//! - `crate::keeper`: the heartbeat loop: renew, see what was lost, take a
//!   fair share (`ceil(channels / live instances)`), let the excess go. It
//!   sits above the pipeline it hands channels to; this module below it.
//!
//! Fencing: every take bumps the lease's generation, and recording a post
//! (with its high-water mark) checks the generation in the same statement
//! (`Store::record_post_fenced`), so a stale owner records nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kuryer_actors::in_flight::InFlight;
use kuryer_actors::model::Delivery;
use kuryer_actors::ports::LeaseGuard;

use crate::store::InstanceIdentity;

pub mod identity;

/// `kuryer instances`: one line an instance, live ones first.
pub fn instances_table(rows: &[crate::store::InstanceRow]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no instances (none has run `kuryer run` against this database lately)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<32} {:<6} {:>8} {:>8} {:>4}  {:<20} {:<12} {:<8} {:<20} heartbeat",
        "instance",
        "state",
        "channels",
        "accounts",
        "bots",
        "host",
        "machine",
        "version",
        "started"
    );
    let now = chrono::Utc::now();
    for r in rows {
        let ago = (now - r.heartbeat_at).num_milliseconds().max(0) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{:<32} {:<6} {:>8} {:>8} {:>4}  {:<20} {:<12} {:<8} {:<20} {:.1} s ago (TTL {} s)",
            r.id,
            if r.live { "live" } else { "dead" },
            r.channels,
            r.accounts,
            r.bots,
            r.host_name.as_deref().unwrap_or("-"),
            machine_short(r.machine_id.as_deref()),
            r.version,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            ago,
            r.lease_ttl_s
        );
    }
    out
}

/// The first 12 characters of a machine id: enough to tell a few hosts
/// apart, as `git` shortens a hash.
fn machine_short(id: Option<&str>) -> &str {
    match id {
        Some(id) => id.get(..12).unwrap_or(id),
        None => "-",
    }
}

#[derive(Default)]
struct Held {
    /// Channel id → lease generation.
    channels: HashMap<i64, i64>,
    /// Bot id → lease generation.
    bots: HashMap<i64, i64>,
    /// Bot id → no getUpdates before then (taken from a holder that died
    /// with a long poll perhaps still open).
    polls_from: HashMap<i64, Instant>,
    /// Until when every lease above is surely ours (monotonic clock).
    valid_until: Option<Instant>,
}

/// What this instance owns, shared by the keeper (writes), the sender's
/// lease guard, the persistence adapter (generations) and the update loops.
pub struct Ownership {
    id: String,
    /// Where this process runs, as registered.
    identity: InstanceIdentity,
    ttl: Duration,
    held: Mutex<Held>,
    /// The deliveries this process holds: the pipeline's (it takes them
    /// from here), where one dropped for a lost lease is let go.
    in_flight: Arc<InFlight>,
    /// Reader accounts this instance holds (the reader pool keeps their
    /// leases; counted here for `/readyz`).
    accounts: AtomicUsize,
    /// Live instances by the `instances` heartbeats (this one included),
    /// counted by the keeper each round: the shared limits' share.
    live_instances: Arc<AtomicUsize>,
    /// Wakes the keeper for a round now: a channel appeared that no one
    /// polls yet (a bot made admin, a first subscriber).
    pub(crate) wake: tokio::sync::Notify,
    /// The keeper's first round has taken this instance's first share and
    /// the pollers of what it took are started: until then `/readyz` says
    /// not ready (nothing is read yet).
    started: std::sync::atomic::AtomicBool,
}

impl Ownership {
    /// Nothing owned yet, for instance `id` with leases of `ttl`; the
    /// pipeline built with it holds its deliveries in `in_flight`.
    pub fn new(
        id: String,
        identity: InstanceIdentity,
        ttl: Duration,
        in_flight: Arc<InFlight>,
    ) -> Self {
        Self {
            id,
            identity,
            ttl,
            held: Mutex::default(),
            in_flight,
            accounts: AtomicUsize::new(0),
            live_instances: Arc::new(AtomicUsize::new(1)),
            wake: tokio::sync::Notify::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True once the first share is taken and its pollers started.
    pub fn started(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set_started(&self) {
        self.started
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where this process runs.
    pub fn identity(&self) -> &InstanceIdentity {
        &self.identity
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How much earlier than the TTL this process stops trusting a lease:
    /// a sixth of it (room for a slow renewal answer), at least 200 ms.
    pub fn margin(&self) -> Duration {
        (self.ttl / 6).max(Duration::from_millis(200))
    }

    /// The deliveries this process holds.
    pub fn in_flight(&self) -> &Arc<InFlight> {
        &self.in_flight
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn valid(h: &Held) -> bool {
        h.valid_until.is_some_and(|t| Instant::now() < t)
    }

    /// The generation of `channel_id`'s lease while surely held.
    pub fn channel_generation(&self, channel_id: i64) -> Option<i64> {
        let h = self.held();
        if Self::valid(&h) {
            h.channels.get(&channel_id).copied()
        } else {
            None
        }
    }

    /// Whether this instance holds `channel_id` (surely or not: the keeper
    /// has not let it go). Used to decide what to start, not what to send.
    pub fn owns_channel(&self, channel_id: i64) -> bool {
        self.held().channels.contains_key(&channel_id)
    }

    /// How long this instance surely holds bot `bot_id`'s getUpdates.
    pub fn bot_lease_left(&self, bot_id: i64) -> Option<Duration> {
        let h = self.held();
        if !h.bots.contains_key(&bot_id) {
            return None;
        }
        h.valid_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// A channel no instance may hold yet wants polling: the keeper runs a
    /// round now instead of at its next heartbeat, so a new channel is
    /// read at once, as with one process.
    pub fn want_claim(&self) {
        self.wake.notify_one();
    }

    /// Reader accounts held now.
    pub fn accounts(&self) -> usize {
        self.accounts.load(Ordering::Relaxed)
    }

    /// The count of live instances, shared with whoever divides a limit.
    pub fn live_instances_counter(&self) -> Arc<AtomicUsize> {
        self.live_instances.clone()
    }

    pub(crate) fn set_live_instances(&self, n: usize) {
        self.live_instances.store(n.max(1), Ordering::Relaxed);
    }

    pub(crate) fn set_accounts(&self, n: usize) {
        self.accounts.store(n, Ordering::Relaxed);
    }

    /// Whether the leases held are surely held now (renewed in time).
    pub fn leases_valid(&self) -> bool {
        Self::valid(&self.held())
    }

    /// Channels and bots held now.
    pub fn counts(&self) -> (usize, usize) {
        let h = self.held();
        (h.channels.len(), h.bots.len())
    }

    /// Channel ids held now.
    pub fn channel_ids(&self) -> Vec<i64> {
        self.held().channels.keys().copied().collect()
    }

    /// A renewal sent at `sent_at` succeeded and the database still lists
    /// `channels` and `bots` (with generations) as ours: everything held
    /// locally that is not among them (or has another generation) is lost
    /// and returned; the deadline moves on.
    pub(crate) fn renewed(
        &self,
        sent_at: Instant,
        channels: &HashMap<i64, i64>,
        bots: &HashMap<i64, i64>,
    ) -> (Vec<i64>, Vec<i64>) {
        let mut h = self.held();
        let lost_channels: Vec<i64> = h
            .channels
            .iter()
            .filter(|(id, g)| channels.get(id) != Some(g))
            .map(|(id, _)| *id)
            .collect();
        for id in &lost_channels {
            h.channels.remove(id);
        }
        let lost_bots: Vec<i64> = h
            .bots
            .iter()
            .filter(|(id, g)| bots.get(id) != Some(g))
            .map(|(id, _)| *id)
            .collect();
        for id in &lost_bots {
            h.bots.remove(id);
            h.polls_from.remove(id);
        }
        h.valid_until = Some(sent_at + self.ttl.saturating_sub(self.margin()));
        (lost_channels, lost_bots)
    }

    /// Everything let go at once (the heartbeat lapsed, or shutting down).
    pub(crate) fn clear(&self) -> Vec<i64> {
        let mut h = self.held();
        h.valid_until = None;
        h.bots.clear();
        h.polls_from.clear();
        h.channels.drain().map(|(id, _)| id).collect()
    }

    pub(crate) fn add_channel(&self, channel_id: i64, generation: i64) {
        self.held().channels.insert(channel_id, generation);
    }

    pub(crate) fn remove_channel(&self, channel_id: i64) {
        self.held().channels.remove(&channel_id);
    }

    pub(crate) fn add_bot(&self, bot_id: i64, generation: i64) {
        self.held().bots.insert(bot_id, generation);
    }

    pub(crate) fn remove_bot(&self, bot_id: i64) {
        let mut h = self.held();
        h.bots.remove(&bot_id);
        h.polls_from.remove(&bot_id);
    }

    /// No getUpdates of bot `bot_id` before `from`.
    pub(crate) fn hold_bot_polls(&self, bot_id: i64, from: Instant) {
        self.held().polls_from.insert(bot_id, from);
    }

    /// Whether getUpdates of bot `bot_id` must still wait (for the last
    /// long poll of a holder that died to end).
    pub fn bot_polls_held(&self, bot_id: i64) -> bool {
        let mut h = self.held();
        match h.polls_from.get(&bot_id) {
            Some(t) if *t > Instant::now() => true,
            Some(_) => {
                h.polls_from.remove(&bot_id);
                false
            }
            None => false,
        }
    }
}

impl LeaseGuard for Ownership {
    fn holds(&self, channel_id: i64) -> bool {
        self.channel_generation(channel_id).is_some()
    }

    fn dropped(&self, delivery: &Delivery) {
        self.in_flight.release(std::iter::once(delivery));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_trusted_only_until_ttl_minus_margin_after_the_renewal_was_sent() {
        let o = Ownership::new(
            "a".into(),
            identity::of_this_process(&crate::config::InstanceConfig::default()),
            Duration::from_secs(3),
            Arc::new(InFlight::new(false)),
        );
        o.add_channel(7, 1);
        assert!(!o.holds(7), "not renewed yet");
        let sent = Instant::now();
        let (lost, _) = o.renewed(sent, &HashMap::from([(7, 1)]), &HashMap::new());
        assert!(lost.is_empty());
        assert!(o.holds(7));
        assert_eq!(o.margin(), Duration::from_millis(500));
        // A renewal sent long ago (the process was paused since) is over.
        let (lost, _) = o.renewed(
            Instant::now() - Duration::from_secs(3),
            &HashMap::from([(7, 1)]),
            &HashMap::new(),
        );
        assert!(lost.is_empty());
        assert!(!o.holds(7));
    }

    #[test]
    fn a_channel_taken_by_another_generation_is_lost() {
        let o = Ownership::new(
            "a".into(),
            identity::of_this_process(&crate::config::InstanceConfig::default()),
            Duration::from_secs(30),
            Arc::new(InFlight::new(false)),
        );
        o.add_channel(7, 1);
        o.add_channel(8, 4);
        o.add_bot(42, 2);
        let (lost, lost_bots) = o.renewed(
            Instant::now(),
            &HashMap::from([(7, 2), (8, 4)]),
            &HashMap::new(),
        );
        assert_eq!(lost, vec![7]);
        assert_eq!(lost_bots, vec![42]);
        assert!(!o.holds(7) && o.holds(8));
        assert_eq!(o.channel_generation(8), Some(4));
        assert!(o.bot_lease_left(42).is_none());
    }
}
