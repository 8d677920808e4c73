//! The MTProto side of the simulated world: accounts, auth keys, channels,
//! their histories and event logs (pts), memberships, and the connections
//! pushed updates go to. Every call of the face and every control call
//! reads and changes it under one mutex; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::crypto::ServerKey;
use super::flood::{EscalatingLimit, FloodLimit, FloodState};
use super::login::{PendingCode, PendingSrp, SrpVerifier};
use crate::fake_bot_api::MediaKind;

/// How many channels one account can join (Telegram's limit without Premium).
pub(crate) const MAX_JOINED_CHANNELS: usize = 500;

/// Something a connection must send to its client on its own: a pushed
/// `Updates` body (shared between every account that receives it).
#[derive(Clone, Debug)]
pub(crate) struct Push {
    pub(crate) body: Arc<Vec<u8>>,
    /// Not before this instant (a control call delays pushes).
    pub(crate) due: Option<Instant>,
}

/// A connection that receives an account's pushed updates.
pub(crate) struct PushTarget {
    pub(crate) conn_id: u64,
    pub(crate) tx: mpsc::UnboundedSender<Push>,
}

/// An auth key the fake knows.
pub(crate) struct KeyState {
    pub(crate) key: ServerKey,
    /// The data centre it was made on (valid there only).
    pub(crate) dc: i32,
    /// The account signed in on it, if any.
    pub(crate) account: Option<i64>,
    /// Revoked by the control API: every call gets `SESSION_REVOKED`.
    pub(crate) revoked: bool,
    /// The connection using it now; a second one gets `AUTH_KEY_DUPLICATED`.
    pub(crate) active_conn: Option<u64>,
    /// Seen on two connections at once: unusable for good, on every
    /// connection (`rpc::guarded`).
    pub(crate) burned: bool,
    /// Signed in with a code, waiting for the 2FA password (account id).
    pub(crate) password_pending: Option<i64>,
}

/// Per account, per method: calls, errors by name, flood bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodStats {
    /// Calls received (including those answered with an error).
    pub calls: u64,
    /// Errors sent, by error message (`FLOOD_WAIT_3`, `CHANNEL_PRIVATE`, …).
    pub errors: BTreeMap<String, u64>,
    /// Calls that arrived while a `FLOOD_WAIT` sent for this method had not
    /// yet ended (a client that obeys the wait makes none).
    pub calls_during_flood_wait: u64,
}

/// A user account of the MTProto face.
pub(crate) struct Account {
    pub(crate) id: i64,
    pub(crate) access_hash: i64,
    pub(crate) phone: String,
    pub(crate) first_name: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SrpVerifier>,
    pub(crate) pending_srp: Option<PendingSrp>,
    /// The data centre the account lives on (`auth.sendCode` elsewhere
    /// answers `PHONE_MIGRATE_X`).
    pub(crate) home_dc: i32,
    /// How `auth.sendCode` says the code went (none: the app's, 5 digits).
    pub(crate) code_type: Option<grammers_tl_types::enums::auth::SentCodeType>,
    pub(crate) joined: BTreeSet<i64>,
    pub(crate) pushes: Vec<PushTarget>,
    /// Pushes still to drop (`u32::MAX`: all, until cleared).
    pub(crate) drop_pushes: u32,
    pub(crate) push_delay: Option<Duration>,
    /// Channels with a dropped push since the last `updates.getDifference`.
    pub(crate) missed_channels: BTreeSet<i64>,
    /// `random_id` of every forward, with the message it made.
    pub(crate) forwarded: HashMap<i64, (i64, i32)>,
    pub(crate) flood: HashMap<String, FloodState>,
    pub(crate) stats: BTreeMap<String, MethodStats>,
    pub(crate) pushed: u64,
    pub(crate) dropped: u64,
    /// The account's common update box (core.telegram.org/api/updates):
    /// `date` moves with every event pushed to it (dropped ones too).
    /// Channel events carry their own pts and leave the common pts, qts and
    /// seq alone (same page: channels have their own pts); the fake has no
    /// private or secret chats, so pts stays 1, qts 0, seq 0.
    pub(crate) seq: i32,
    pub(crate) date: i32,
    /// Channels named by `updates.getDifference` answers (work a client
    /// with an old state makes the server do), counted for tests.
    pub(crate) difference_channels: u64,
    /// `messages.getHistory` pages answered, by channel id: a tally for
    /// the benchmarks, not a Telegram behaviour.
    pub(crate) history_pages: HashMap<i64, u64>,
    /// Frozen by Telegram's moderators: read-only, every other method
    /// answers `420 FROZEN_METHOD_INVALID` (`rpc.rs`, `frozen_allows`).
    pub(crate) frozen: bool,
    /// Limited for spam: `channels.joinChannel` answers `400 PEER_FLOOD`.
    pub(crate) peer_flood: bool,
}

/// A message in a channel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Msg {
    pub(crate) id: i32,
    pub(crate) date: i32,
    pub(crate) text: String,
    pub(crate) media: Option<MediaKind>,
    pub(crate) grouped_id: Option<i64>,
    pub(crate) edit_date: Option<i32>,
    /// Forwarded from (channel id, message id, original date).
    pub(crate) fwd_from: Option<(i64, i32, i32)>,
    pub(crate) noforwards: bool,
}

/// One change of a channel, numbered by pts; `date` of the channel's last
/// event is on the channel (`Channel::last_event`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EventKind {
    New(i32),
    Edit(i32),
    Delete(Vec<i32>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    /// The channel's pts after this event.
    pub(crate) pts: i32,
    pub(crate) pts_count: i32,
    pub(crate) kind: EventKind,
}

/// A broadcast channel.
pub(crate) struct Channel {
    pub(crate) id: i64,
    /// Secret from which each account's access hash is derived
    /// ([`Channel::access_hash`]); no account holds it.
    pub(crate) hash_seed: i64,
    pub(crate) title: String,
    pub(crate) username: Option<String>,
    pub(crate) protected: bool,
    pub(crate) date: i32,
    pub(crate) messages: BTreeMap<i32, Msg>,
    pub(crate) next_id: i32,
    pub(crate) pts: i32,
    pub(crate) events: Vec<Event>,
    pub(crate) members: BTreeSet<i64>,
    pub(crate) admins: BTreeSet<i64>,
    pub(crate) albums: HashMap<String, i64>,
    /// Deleted by its owner: nobody, members included, may read it.
    pub(crate) deleted: bool,
    /// When its last event happened (`updates.getDifference` names the
    /// member channels changed since the client's `date`).
    pub(crate) last_event: i32,
    /// `messages.getHistory` counts deleted ids against the limit: a page
    /// may hold fewer messages than asked while more exist (`rpc/channels.rs`,
    /// `get_history`). Chosen by the test.
    pub(crate) short_pages: bool,
    /// Its events are no longer pushed to anyone; they are still in its
    /// log for `updates.getChannelDifference` and the history
    /// (`updates.rs`, `push_event`). Chosen by the test.
    pub(crate) silent: bool,
}

impl Channel {
    /// The access hash `account` knows the channel by. Telegram gives each
    /// account its own: "access_hash … is specific to the user/bot that
    /// fetched it; it cannot be reused by other users/bots"
    /// (core.telegram.org/api/peers, "Access hash"); Telethon's FAQ says the
    /// same of entities cached by another session. Another account's hash
    /// is answered `CHANNEL_INVALID` (`rpc.rs`, `channel_by_id`).
    /// `None` (no account: the control API) gets the seed, valid for nobody.
    pub(crate) fn access_hash(&self, account: Option<i64>) -> i64 {
        let Some(account) = account else {
            return self.hash_seed;
        };
        // SplitMix64 of (seed, account): stable, different per account.
        let mut z = (self.hash_seed as u64)
            .wrapping_add((account as u64).rotate_left(17))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as i64
    }

    pub(crate) fn is_public(&self) -> bool {
        self.username.is_some()
    }

    /// Whether `account` may read it: public, or a member; a deleted
    /// channel, nobody.
    pub(crate) fn visible_to(&self, account: i64) -> bool {
        !self.deleted
            && (self.is_public()
                || self.members.contains(&account)
                || self.admins.contains(&account))
    }

    /// The `grouped_id` of the album named `group` (the Bot API face's
    /// `media_group_id`), made on its first message.
    pub(crate) fn album_id(&mut self, group: &str) -> i64 {
        let next = self.id.wrapping_mul(1_000_000) + i64::from(self.next_id);
        *self.albums.entry(group.to_owned()).or_insert(next)
    }

    /// Appends an event and returns it.
    pub(crate) fn log(&mut self, pts_count: i32, kind: EventKind) -> Event {
        self.pts += pts_count;
        self.last_event = super::updates::now_i32();
        let event = Event {
            pts: self.pts,
            pts_count,
            kind,
        };
        self.events.push(event.clone());
        event
    }
}

/// Settings of the face that a test may change at run time.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) flood_limits: HashMap<String, FloodLimit>,
    /// Limits whose waits grow with each one earned (`flood.rs`).
    pub(crate) escalating_limits: HashMap<String, EscalatingLimit>,
    /// `getChannelDifference` past this many events (or the client's
    /// `limit`, the smaller) answers `channelDifferenceTooLong`.
    pub(crate) channel_difference_limit: usize,
    pub(crate) code_ttl: Duration,
}

/// The whole MTProto-side state.
pub(crate) struct World {
    pub(crate) accounts: HashMap<i64, Account>,
    pub(crate) phones: HashMap<String, i64>,
    pub(crate) keys: HashMap<i64, KeyState>,
    /// Auth keys made by the key exchange.
    pub(crate) keys_made: u64,
    pub(crate) channels: HashMap<i64, Channel>,
    pub(crate) usernames: HashMap<String, i64>,
    pub(crate) codes: HashMap<String, PendingCode>,
    pub(crate) settings: Settings,
    /// Calls made on keys with no account, per method.
    pub(crate) anonymous_stats: BTreeMap<String, MethodStats>,
    /// Which connections call each account (`holders.rs`).
    pub(crate) holders: super::holders::Holders,
    pub(crate) next_user_id: i64,
    pub(crate) next_channel_id: i64,
    pub(crate) next_conn_id: u64,
    /// Connections closed for a malformed frame, unknown key or garbage.
    pub(crate) rejected_connections: u64,
    pub(crate) bot_api: Option<crate::fake_bot_api::FakeTelegram>,
}

impl World {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            accounts: HashMap::new(),
            phones: HashMap::new(),
            keys: HashMap::new(),
            keys_made: 0,
            channels: HashMap::new(),
            usernames: HashMap::new(),
            codes: HashMap::new(),
            settings,
            anonymous_stats: BTreeMap::new(),
            holders: super::holders::Holders::default(),
            next_user_id: 7_000_000_001,
            next_channel_id: 1_700_000_001,
            next_conn_id: 1,
            rejected_connections: 0,
            bot_api: None,
        }
    }

    pub(crate) fn stats_of(&mut self, account: Option<i64>) -> &mut BTreeMap<String, MethodStats> {
        match account.and_then(|id| self.accounts.get_mut(&id)) {
            Some(acc) => &mut acc.stats,
            None => &mut self.anonymous_stats,
        }
    }

    /// Counts a call of `method` and, when it failed, its error.
    pub(crate) fn count(&mut self, account: Option<i64>, method: &str, error: Option<&str>) {
        let stats = self.stats_of(account).entry(method.to_owned()).or_default();
        stats.calls += 1;
        if let Some(e) = error {
            *stats.errors.entry(e.to_owned()).or_default() += 1;
        }
    }
}

/// Pushes one `Updates` body to an account's connections, or drops it.
pub(crate) fn push_to(acc: &mut Account, channel: Option<i64>, body: &Arc<Vec<u8>>) {
    if acc.drop_pushes > 0 {
        if acc.drop_pushes != u32::MAX {
            acc.drop_pushes -= 1;
        }
        acc.dropped += 1;
        if let Some(c) = channel {
            acc.missed_channels.insert(c);
        }
        return;
    }
    let due = acc.push_delay.map(|d| Instant::now() + d);
    acc.pushes.retain(|t| {
        t.tx.send(Push {
            body: Arc::clone(body),
            due,
        })
        .is_ok()
    });
    if !acc.pushes.is_empty() {
        acc.pushed += 1;
    } else if let Some(c) = channel {
        // Nobody connected: the account learns of it by getDifference.
        acc.missed_channels.insert(c);
    }
}

/// A bounded memory of recent message ids, for duplicate detection.
#[derive(Default)]
pub(crate) struct RecentIds {
    order: VecDeque<i64>,
    set: std::collections::HashSet<i64>,
}

impl RecentIds {
    const CAP: usize = 4096;

    /// Remembers `id`; false when it was already there.
    pub(crate) fn insert(&mut self, id: i64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}
