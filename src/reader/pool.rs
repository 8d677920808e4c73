//! The account pool: every signed-in account this process holds a lease
//! on, the channels assigned to each (balanced, at most
//! `reader.max_channels_per_account` joined), the pushed posts waiting for
//! their poller, and what happens when an account is lost.
//!
//! - **Leases**: an account is used only under its lease in PostgreSQL
//!   (`take_lease` / `renew_lease` every third of `reader.lease_ttl_s`,
//!   with a generation). A lease that cannot be renewed (another process
//!   took it after it ran out) drops the account here at once.
//! - **Assignment**: a channel is given, when first read, to the live
//!   account with the fewest channels; it stays there (the database
//!   remembers) while that account lives. Each account joins its channels
//!   one at a time, `reader.join_interval_ms` apart, up to the maximum; the
//!   rest are polled with getHistory every `reader.poll_interval_s`.
//! - **Moving towards a newcomer**: an instance holding more than its
//!   share of the accounts gives one back a keeper round, disconnected
//!   first; the newcomer takes it one TTL after (`give_back_excess`).
//! - **Push buffers**: a joined channel's pushed posts wait for its poller
//!   in a buffer of at most `reader.max_buffered_per_channel`; past it the
//!   buffer is dropped and the next read goes to the history from the
//!   mark. A channel with no poller running here buffers nothing, and its
//!   buffer is dropped when its last poller stops or it changes account:
//!   whoever reads it next reads the history, so nothing is lost.
//! - **Lost accounts** (session revoked, deauthorised, banned, key used
//!   elsewhere): ERROR in the log, the account marked `lost`, its channels
//!   handed to the others; each is caught up from its high-water mark.

use kuryer_actors::telemetry::events::telegram_id;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use grammers_client::tl;
use kuryer_actors::model::SourceMessage;
use tokio::time::Instant;

use super::change_queue::{Change, ChangeQueue};
use super::client::AccountClient;
use super::crypto::SessionCipher;
use super::mapping;
use super::session::PgSession;
use crate::config::Config;
use crate::source_events::SourceEvents;
use crate::store::{ReaderChannel, Store};
use crate::telemetry::events;

pub(super) struct Live {
    pub(super) client: Arc<AccountClient>,
    generation: i64,
    /// Channels it may join at most (lowered on CHANNELS_TOO_MUCH).
    pub(super) capacity: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One channel as the pool reads it.
pub(super) struct ChanState {
    pub(super) info: ReaderChannel,
    pub(super) account: Option<String>,
    pub(super) joined: bool,
    /// Joining failed for good (private, banned): polled instead.
    pub(super) join_failed: bool,
    /// Pushed messages not yet read by the poller.
    pub(super) buffer: BTreeMap<i32, SourceMessage>,
    /// Every message up to this id has been seen (history or contiguous pushes).
    pub(super) verified: i32,
    /// When the history was last read.
    pub(super) last_history: Option<Instant>,
    /// Joins so far: a history read that overlapped a join does not count
    /// as read (posts between its answer and the join were never pushed).
    pub(super) joins: u64,
    /// Each account's own access hash of the channel (`hashes.rs`).
    pub(super) hashes: HashMap<String, i64>,
    /// The channel row's one hash was refused: it is nobody's guess any more.
    pub(super) guess_refused: bool,
    /// Resolving it again found its name gone or another channel's.
    pub(super) hash_lost: bool,
    /// How it posts: a silence long for it is read sooner (`quiet.rs`).
    pub(super) pace: super::quiet::Pace,
    /// Nobody subscribes to it any more: not joined (`orphans.rs`).
    pub(super) unwanted: bool,
    /// Silent this long, it is read again (`quiet::verify_every`): set at
    /// each history read from the channels its account reads then.
    pub(super) verify_every: Duration,
}

pub(super) struct Inner {
    pub(super) store: Store,
    pub(super) cfg: crate::config::ReaderConfig,
    pub(super) api_id: i32,
    /// Where media posts are forwarded for the bot to copy.
    pub(super) relay: Option<super::relay::Relay>,
    pub(super) holder: String,
    pub(super) accounts: Mutex<BTreeMap<String, Live>>,
    pub(super) channels: Mutex<HashMap<i64, ChanState>>,
    pub(super) by_bare: Mutex<HashMap<i64, i64>>,
    /// Pollers (sources) alive per channel: pushes of a channel not here
    /// are not buffered.
    pub(super) pollers: Mutex<HashMap<i64, usize>>,
    pub(super) events: Arc<dyn SourceEvents>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Edits and deletions on their way to `post_events`.
    pub(super) changes: ChangeQueue,
    /// Accounts whose session Telegram ended since the start.
    lost: AtomicUsize,
    /// (account, channel) → name: channels an account must resolve again
    /// to get its own access hash (`hashes.rs`).
    pub(super) rehash: Mutex<BTreeMap<(String, i64), String>>,
    /// Each account's look-ups and joins for the day (`budget.rs`).
    pub(super) budgets: super::budget::Budgets,
    /// Active accounts existed at the start (held here or elsewhere): this
    /// instance's channels are read through the pool even while it holds
    /// none yet (another instance's may come to it).
    accounts_exist: std::sync::atomic::AtomicBool,
}

/// The reader accounts of this process.
#[derive(Clone)]
pub struct ReaderPool(pub(super) Arc<Inner>);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReaderPool {
    /// Takes the lease of every active account it can and connects them.
    /// An account another process holds is skipped (logged); with no
    /// session key, none is used (logged at ERROR when accounts exist).
    /// `events` hears of pushed posts, resolved channels and channel
    /// problems from the start (the daemon queues them until its pipeline
    /// runs).
    pub async fn start(
        store: Store,
        cfg: &Config,
        holder: String,
        events: Arc<dyn SourceEvents>,
    ) -> Self {
        let store_for_changes = store.clone();
        let inner = Arc::new(Inner {
            store: store.clone(),
            cfg: cfg.reader.clone(),
            api_id: cfg.telegram.api_id,
            relay: cfg
                .telegram
                .relay_chat_id
                .map(|chat_id| super::relay::Relay {
                    chat_id,
                    bare_id: crate::store::bare_channel_id(chat_id),
                    access_hash: cfg.reader.relay_access_hash,
                }),
            holder,
            accounts: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(HashMap::new()),
            by_bare: Mutex::new(HashMap::new()),
            pollers: Mutex::new(HashMap::new()),
            events,
            background: Mutex::new(Vec::new()),
            changes: ChangeQueue::new(super::change_queue::CAP),
            lost: AtomicUsize::new(0),
            rehash: Mutex::new(BTreeMap::new()),
            budgets: super::budget::Budgets::new(&cfg.reader),
            accounts_exist: std::sync::atomic::AtomicBool::new(false),
        });
        let pool = Self(inner);
        // Edits and deletions are stored by one task, in order, retrying
        // while the database is away; each one stored wakes the mirror.
        let weak = Arc::downgrade(&pool.0);
        let writer = pool.0.changes.run(
            super::change_queue::backoff(),
            move |c: &Change| {
                let (c, store) = (c.clone(), store_for_changes.clone());
                async move { c.store(&store).await }
            },
            move || {
                if let Some(p) = weak.upgrade() {
                    p.changed();
                }
            },
        );
        lock(&pool.0.background).push(tokio::spawn(writer));
        // The queue runs whatever the accounts: it waits while there are none.
        let resolver = tokio::spawn(super::resolver::run(Arc::downgrade(&pool.0)));
        lock(&pool.0.background).push(resolver);
        let names: Vec<String> = match store.reader_accounts().await {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.status == "active")
                .map(|r| r.name)
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "Cannot list reader accounts; reading no channels over MTProto.");
                return pool;
            }
        };
        if names.is_empty() {
            return pool;
        }
        let cipher = match SessionCipher::new(cfg.reader.session_key.as_ref()) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(error = %e, "Reader accounts exist but their sessions cannot be opened.");
                return pool;
            }
        };
        pool.0.accounts_exist.store(true, Ordering::Relaxed);
        for name in names {
            pool.add_account(&cipher, &name).await;
        }
        pool
    }

    /// Whether channels our bot does not administer are read through this
    /// pool: it holds an account, or active accounts existed at the start
    /// (held by another instance now; one may come here later). Asked
    /// when each poller starts.
    pub fn may_read(&self) -> bool {
        self.0.accounts_exist.load(Ordering::Relaxed) || !lock(&self.0.accounts).is_empty()
    }

    async fn add_account(&self, cipher: &Arc<SessionCipher>, name: &str) {
        let ttl = Duration::from_secs(self.0.cfg.lease_ttl_s);
        let taken_at = Instant::now();
        let generation = match self.0.store.take_lease(name, &self.0.holder, ttl).await {
            Ok(Some(g)) => g,
            Ok(None) => {
                tracing::warn!(
                    account = name,
                    "Reader account is leased by another kuryer process; not using it."
                );
                return;
            }
            Err(e) => {
                tracing::error!(account = name, error = %e, "Cannot take the reader account's lease.");
                return;
            }
        };
        let session = match PgSession::load(self.0.store.clone(), Arc::clone(cipher), name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(account = name, error = %e, "Cannot open the reader account's session.");
                return;
            }
        };
        let connected = AccountClient::connect(
            session,
            self.0.api_id,
            self.0.cfg.updates_capacity,
            self.0.cfg.history_per_second,
        );
        let client = connected.account;
        let deadline = super::lease::deadline(taken_at, ttl);
        if Instant::now() >= deadline {
            tracing::warn!(
                account = name,
                "Taking the reader lease took too long to trust it; not using the account now."
            );
            return;
        }
        client.set_usable_until(deadline);
        self.0.know_relay(&client).await;
        let tasks = vec![
            tokio::spawn(super::stream::update_loop(
                Arc::downgrade(&self.0),
                Arc::clone(&client),
                connected.updates,
            )),
            tokio::spawn(super::lease::heartbeat(
                Arc::downgrade(&self.0),
                name.to_owned(),
                generation,
                deadline,
            )),
            tokio::spawn(super::joiner::run(Arc::downgrade(&self.0), name.to_owned())),
            tokio::spawn(super::orphans::run(
                Arc::downgrade(&self.0),
                name.to_owned(),
            )),
        ];
        tracing::info!(account = name, generation, "Reader account connected.");
        lock(&self.0.accounts).insert(
            name.to_owned(),
            Live {
                client,
                generation,
                capacity: self.0.cfg.max_channels_per_account as usize,
                tasks,
            },
        );
        self.0.count_accounts();
        self.0.wake_unread();
    }

    /// Several instances: takes the leases of active accounts no live
    /// instance holds (by the `instances` heartbeats; their lease ran out
    /// a TTL ago, see `Store::lease_free`) while this instance holds fewer
    /// than `share`: those of instances that died, and those a holder over
    /// its share gave back ([`ReaderPool::give_back_excess`]).
    pub async fn adopt(&self, share: usize) {
        if lock(&self.0.accounts).len() >= share {
            return;
        }
        let names: Vec<String> = match self.0.store.reader_accounts().await {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.status == "active")
                .map(|r| r.name)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot list reader accounts to take over.");
                return;
            }
        };
        let Ok(cipher) = SessionCipher::new(self.0.cfg.session_key.as_ref()) else {
            return;
        };
        // Accounts logged in after this process started: from now on its
        // channels are read through the pool even while it holds none (a
        // poller started while it holds none would otherwise be given no
        // reader for good).
        if !names.is_empty() {
            self.0.accounts_exist.store(true, Ordering::Relaxed);
        }
        let cipher = Arc::new(cipher);
        for name in names {
            if lock(&self.0.accounts).len() >= share {
                break;
            }
            if lock(&self.0.accounts).contains_key(&name) {
                continue;
            }
            let ttl = Duration::from_secs(self.0.cfg.lease_ttl_s);
            let free = self.0.store.lease_free(&name, &self.0.holder, ttl).await;
            if free.unwrap_or(false) {
                tracing::info!(account = %name, "Taking over a reader account whose holder stopped renewing.");
                self.add_account(&cipher, &name).await;
            }
        }
    }

    /// Several instances: while this instance holds more than `share`
    /// accounts (a newcomer holds fewer), gives one back — the one with the
    /// fewest channels here, the cheapest to move. The holder stops first:
    /// its calls refused from now on, its tasks ended, its update state
    /// stored and the connection closed; only then is the lease released,
    /// with its expiry set to now, so the taker still waits one TTL before
    /// it connects (`Store::lease_free`, `Store::take_lease`): a call of
    /// this process already on its way is long answered by then, and the
    /// session is never used from two places. One account a round: the
    /// others move at the next rounds, if the share still says so.
    pub async fn give_back_excess(&self, share: usize) {
        let name = {
            let accounts = lock(&self.0.accounts);
            if accounts.len() <= share {
                return;
            }
            let ch = lock(&self.0.channels);
            let load = |a: &str| {
                ch.values()
                    .filter(|s| s.account.as_deref() == Some(a))
                    .count()
            };
            let Some(name) = accounts
                .keys()
                .min_by_key(|a| (load(a), (*a).clone()))
                .cloned()
            else {
                return;
            };
            name
        };
        let Some(live) = lock(&self.0.accounts).remove(&name) else {
            return;
        };
        live.client.set_usable_until(Instant::now());
        for t in &live.tasks {
            t.abort();
        }
        self.0.count_accounts();
        self.0.release_channels(&name);
        live.client.close().await;
        match self
            .0
            .store
            .hand_over_lease(&name, &self.0.holder, live.generation)
            .await
        {
            Ok(()) => tracing::info!(
                account = %name,
                share,
                "Reader account given back for a newer instance's share: disconnected; another may take it one lease TTL from now."
            ),
            Err(e) => tracing::warn!(
                account = %name,
                error = %e,
                "Could not hand the reader lease over; it runs out by itself (disconnected here already)."
            ),
        }
    }

    /// Active reader accounts in the database.
    pub async fn active_accounts(&self) -> usize {
        self.0
            .store
            .reader_accounts()
            .await
            .map(|rows| rows.iter().filter(|r| r.status == "active").count())
            .unwrap_or(0)
    }

    /// Names of the accounts in use.
    pub fn live_accounts(&self) -> Vec<String> {
        lock(&self.0.accounts).keys().cloned().collect()
    }

    /// Pushed posts waiting in `channel_id`'s buffer (for the operator's
    /// checks and the tests: bounded by `reader.max_buffered_per_channel`).
    pub fn buffered_posts(&self, channel_id: i64) -> usize {
        lock(&self.0.channels)
            .get(&channel_id)
            .map_or(0, |st| st.buffer.len())
    }

    /// Gives every lease back and disconnects (at shutdown).
    pub async fn close(&self) {
        for t in std::mem::take(&mut *lock(&self.0.background)) {
            t.abort();
        }
        let live: Vec<(String, Live)> = std::mem::take(&mut *lock(&self.0.accounts))
            .into_iter()
            .collect();
        for (name, l) in live {
            for t in &l.tasks {
                t.abort();
            }
            l.client.close().await;
            if let Err(e) = self
                .0
                .store
                .release_lease(&name, &self.0.holder, l.generation)
                .await
            {
                tracing::warn!(account = name, error = %e, "Could not release the lease; it runs out by itself.");
            }
        }
    }
}

/// Forgets a channel's pushed posts: its next read goes to the history
/// from the mark, which holds every one of them.
pub(super) fn drop_buffer(st: &mut ChanState) {
    st.buffer = BTreeMap::new();
    st.last_history = None;
}

impl Inner {
    /// A poller (source) of the channel starts here.
    pub(super) fn poller_started(&self, channel_id: i64) {
        *lock(&self.pollers).entry(channel_id).or_default() += 1;
    }

    /// A poller of the channel stopped; the last one takes the buffer with it.
    pub(super) fn poller_stopped(&self, channel_id: i64) {
        let last = {
            let mut pollers = lock(&self.pollers);
            match pollers.get_mut(&channel_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    pollers.remove(&channel_id);
                    true
                }
                None => false,
            }
        };
        if last && let Some(st) = lock(&self.channels).get_mut(&channel_id) {
            drop_buffer(st);
        }
    }

    pub(super) fn live_names(&self) -> Vec<String> {
        lock(&self.accounts).keys().cloned().collect()
    }

    pub(super) fn client(&self, account: &str) -> Option<Arc<AccountClient>> {
        lock(&self.accounts)
            .get(account)
            .map(|l| Arc::clone(&l.client))
    }

    /// A pushed post: into its channel's buffer, and its poller woken.
    /// With no poller here the post is not kept; over the cap the buffer
    /// is dropped: either way the next read goes to the history.
    pub(super) fn pushed(&self, bare_id: i64, message: &tl::enums::Message) {
        let Some(channel_id) = lock(&self.by_bare).get(&bare_id).copied() else {
            return;
        };
        let polled = lock(&self.pollers).contains_key(&channel_id);
        let cap = self.cfg.max_buffered_per_channel.max(1);
        let woke = {
            let mut ch = lock(&self.channels);
            let Some(st) = ch.get_mut(&channel_id) else {
                return;
            };
            match mapping::source_message(message, st.info.protected) {
                Some(m) => {
                    let new = m.id > st.verified && !st.buffer.contains_key(&m.id);
                    if new {
                        st.pace.saw(1, Instant::now());
                    }
                    if !polled {
                        drop_buffer(st);
                        false
                    } else if new && st.buffer.len() >= cap {
                        tracing::info!(
                            channel_id = telegram_id(channel_id),
                            channel_key = channel_id,
                            buffered = st.buffer.len(),
                            "A channel's pushed posts passed the buffer's cap; dropped, its history is read instead."
                        );
                        drop_buffer(st);
                        true
                    } else {
                        st.buffer.insert(m.id, m);
                        true
                    }
                }
                None => {
                    // A service message still takes an id: not a gap.
                    if let tl::enums::Message::Service(s) = message
                        && s.id == st.verified + 1
                    {
                        st.verified = s.id;
                    }
                    false
                }
            }
        };
        if woke {
            events::reader_post_pushed(channel_id);
            self.events.wake(channel_id);
        }
    }

    /// The account's session was ended by Telegram, or Telegram froze it
    /// (`FROZEN_METHOD_INVALID`, told at ERROR where the call failed): ERROR,
    /// marked lost (or frozen), its channels handed to the others.
    pub(super) async fn lost(self: &Arc<Self>, account: &str, reason: &str) {
        let Some(live) = lock(&self.accounts).remove(account) else {
            return;
        };
        let status = if reason == super::client::FROZEN {
            "frozen"
        } else {
            events::reader_account_lost(account, reason);
            "lost"
        };
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.count_accounts();
        if let Err(e) = self
            .store
            .end_reader_session(account, status, Some(reason))
            .await
        {
            tracing::error!(account, error = %e, "Cannot record the lost reader account.");
        }
        self.release_channels(account);
        // Nothing more on this session, not even grammers' pings: a key
        // Telegram burned is never used again.
        live.client.disconnect();
        for t in &live.tasks {
            t.abort();
        }
    }

    /// The lease went to another process, or was not renewed in time
    /// (`expired`): stop using the account here, disconnected.
    pub(super) async fn lease_lost(self: &Arc<Self>, account: &str, expired: bool) {
        let Some(live) = lock(&self.accounts).remove(account) else {
            return;
        };
        if expired {
            tracing::error!(
                account,
                "Reader account's lease was not renewed in time (PostgreSQL unreachable or this process paused): disconnecting before it runs out, so no one else's use of the session meets this one's."
            );
        } else {
            tracing::error!(
                account,
                "Reader account's lease was taken by another process; this one stops using it."
            );
        }
        self.count_accounts();
        self.release_channels(account);
        live.client.disconnect();
        for t in &live.tasks {
            t.abort();
        }
    }

    /// `kuryer_reader_accounts{state}`: the accounts this process runs,
    /// split by whether a flood wait runs, and those Telegram ended. Set
    /// where the set of accounts changes and at each heartbeat (a flood
    /// wait ends on its own).
    pub(super) fn count_accounts(&self) {
        let (waiting, running) = {
            let accounts = lock(&self.accounts);
            let waiting = accounts.values().filter(|l| l.client.waiting()).count();
            (waiting, accounts.len())
        };
        let gauge = &crate::telemetry::registry::READER_ACCOUNTS;
        gauge.at(["active".into()]).set((running - waiting) as f64);
        gauge.at(["flood_wait".into()]).set(waiting as f64);
        gauge
            .at(["broken".into()])
            .set(self.lost.load(Ordering::Relaxed) as f64);
    }

    /// Wakes the pollers of channels polled here that have no live
    /// account: each was told "no reader account is available" and would
    /// try again only after that error's retry (30 s), so an account taken
    /// over from a dead holder, a lease TTL after it ran out, would read
    /// them half a minute late. Woken, each is assigned an account now.
    fn wake_unread(&self) {
        let live = self.live_names();
        let polled: Vec<i64> = lock(&self.pollers).keys().copied().collect();
        let waiting: Vec<i64> = {
            let ch = lock(&self.channels);
            polled
                .into_iter()
                .filter(|id| {
                    ch.get(id).is_some_and(|s| {
                        s.account
                            .as_ref()
                            .is_none_or(|a| !live.iter().any(|l| l == a))
                    })
                })
                .collect()
        };
        for id in waiting {
            self.events.wake(id);
        }
    }

    /// Channels of a departed account: unassigned, to be caught up from
    /// their marks by whichever account takes them.
    fn release_channels(&self, account: &str) {
        let moved: Vec<i64> = {
            let mut ch = lock(&self.channels);
            ch.iter_mut()
                .filter(|(_, s)| s.account.as_deref() == Some(account))
                .map(|(id, s)| {
                    s.account = None;
                    s.joined = false;
                    s.verified = 0;
                    drop_buffer(s);
                    *id
                })
                .collect()
        };
        for id in moved {
            self.events.wake(id);
        }
    }
}
