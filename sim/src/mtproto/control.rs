//! The control API of the MTProto face, for tests, the demo and benchmarks:
//! a handle whose methods create accounts, keys and channels, publish, edit
//! and delete posts, change channels, revoke sessions, set flood limits,
//! drop or delay pushes, and read what each account called.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grammers_session::SessionData;
use grammers_session::types::DcOption;
use grammers_tl_types::{self as tl, Serializable};
use tokio::sync::watch;

use super::connection::{self, Shared};
use super::crypto::ServerKey;
use super::flood::FloodLimit;
use super::login::SrpVerifier;
use super::objects::{self, THIS_DC};
use super::rpc::{normalize_phone, username_valid};
use super::updates::{bot_api_chat_id, mirroring, now_i32, updates_body};
use super::world::{Account, Channel, KeyState, MethodStats, Settings, World, push_to};
use crate::fake_bot_api::{FakeTelegram, NewChannelMessage};

/// How the face starts.
#[derive(Clone, Debug)]
pub struct MtprotoConfig {
    /// Flood limits by method name (`contacts.resolveUsername`, …). None by
    /// default: tests set the ones they exercise.
    pub flood_limits: BTreeMap<String, FloodLimit>,
    /// `updates.getChannelDifference` over more events than this (or the
    /// client's `limit`, the smaller) answers `channelDifferenceTooLong`.
    pub channel_difference_limit: usize,
    /// A login code older than this gets `PHONE_CODE_EXPIRED`.
    pub code_ttl: Duration,
}

impl Default for MtprotoConfig {
    fn default() -> Self {
        Self {
            flood_limits: BTreeMap::new(),
            channel_difference_limit: 100,
            code_ttl: Duration::from_secs(300),
        }
    }
}

impl MtprotoConfig {
    /// Telegram-like limits: `contacts.resolveUsername` 5 a minute,
    /// `channels.joinChannel` 5 a minute, `messages.getHistory` 3 a second.
    pub fn telegram_like() -> Self {
        let mut c = Self::default();
        for (m, n, per) in [
            ("contacts.resolveUsername", 5, 60),
            ("channels.joinChannel", 5, 60),
            ("messages.getHistory", 3, 1),
        ] {
            c.flood_limits.insert(
                m.to_owned(),
                FloodLimit {
                    max_calls: n,
                    per: Duration::from_secs(per),
                },
            );
        }
        c
    }
}

/// An account to create.
#[derive(Clone, Debug, Default)]
pub struct AccountSpec {
    /// Phone number (digits, `+` allowed).
    pub phone: String,
    /// First name.
    pub first_name: String,
    /// Public username, if any.
    pub username: Option<String>,
    /// The 2FA password, if any (checked server-side by SRP).
    pub password: Option<String>,
}

/// A channel to create.
#[derive(Clone, Debug, Default)]
pub struct ChannelSpec {
    /// Title.
    pub title: String,
    /// Public username; `None` makes a private channel.
    pub username: Option<String>,
    /// Protected content (`noforwards`).
    pub protected: bool,
}

/// A channel's id and access hash, as a client needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRef {
    /// The bare channel id (the Bot API id is `-100` followed by it).
    pub id: i64,
    /// Its access hash.
    pub access_hash: i64,
}

impl ChannelRef {
    /// The channel's id on the Bot API face.
    pub fn bot_api_chat_id(self) -> i64 {
        bot_api_chat_id(self.id)
    }
}

/// Why the control API refused a request (the checks a caller from outside
/// the process cannot make beforehand; the panicking methods assume them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The phone number has no digits.
    #[error("phone number {0:?} has no digits")]
    PhoneInvalid(String),
    /// Another account has this phone number.
    #[error("phone {0} already has an account")]
    PhoneTaken(String),
    /// Not a username Telegram would accept (5–32 of `a-z0-9_`, starting
    /// with a letter, not ending with `_`).
    #[error("{0:?} is not a valid username")]
    UsernameInvalid(String),
    /// A channel already has this username.
    #[error("username {0} is taken")]
    UsernameTaken(String),
}

/// What an account called and received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountStats {
    /// Calls and errors per method name.
    pub methods: BTreeMap<String, MethodStats>,
    /// Updates pushed to it.
    pub pushed: u64,
    /// Updates dropped by [`MtprotoFake::drop_pushes`].
    pub dropped: u64,
}

impl AccountStats {
    /// Calls of `method`.
    pub fn calls(&self, method: &str) -> u64 {
        self.methods.get(method).map_or(0, |m| m.calls)
    }

    /// Errors `error` sent for `method`.
    pub fn errors(&self, method: &str, error: &str) -> u64 {
        self.methods
            .get(method)
            .and_then(|m| m.errors.get(error))
            .copied()
            .unwrap_or(0)
    }
}

/// A running MTProto face: a fake data centre on 127.0.0.1, served by its
/// own thread and Tokio runtime. Dropping the last handle stops it.
pub struct MtprotoFake {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl MtprotoFake {
    /// Starts the face with `config` on a free port of 127.0.0.1.
    pub fn start(config: MtprotoConfig) -> io::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let settings = Settings {
            flood_limits: config.flood_limits.into_iter().collect(),
            channel_difference_limit: config.channel_difference_limit.max(1),
            code_ttl: config.code_ttl,
        };
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(settings)),
            addr,
        });
        let (stop, stop_rx) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-mtproto")
            .enable_all()
            .build()?;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-mtproto".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => connection::serve(listener, thread_shared, stop_rx).await,
                        Err(e) => tracing::error!(error = %e, "MTProto fake: cannot listen"),
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        tracing::debug!(%addr, "Fake Telegram MTProto face listening.");
        Ok(Self {
            shared,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.shared.world()
    }

    /// The address grammers connects to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Mirrors the world onto the Bot API face: channels created from now on
    /// exist there too (same id, `-100…`), every post published here is
    /// published there (a `channel_post` to admin bots), and a message an
    /// account forwards into a channel shows up there as a `channel_post`.
    ///
    /// The other way round, a post published with [`FakeTelegram::post`] in
    /// a channel this face knows is appended here and pushed to its members.
    /// Message ids stay equal on both faces as long as posts to one channel
    /// are not published from both faces at the same instant.
    pub fn attach_bot_api(&self, fake: FakeTelegram) {
        let weak = Arc::downgrade(&self.shared);
        fake.on_post(Arc::new(move |chat_id, message| {
            if mirroring() {
                return;
            }
            if let Some(shared) = weak.upgrade() {
                shared.world().mirror_from_bot_api(chat_id, message);
            }
        }));
        self.world().bot_api = Some(fake);
    }

    /// Creates an account; returns its user id.
    ///
    /// # Panics
    ///
    /// If the phone number is already taken or has no digits.
    pub fn create_account(&self, spec: AccountSpec) -> i64 {
        self.try_create_account(spec)
            .unwrap_or_else(|e| panic!("MTProto fake: {e}"))
    }

    /// Creates an account, or says why not; returns its user id.
    pub fn try_create_account(&self, spec: AccountSpec) -> Result<i64, ControlError> {
        let phone = normalize_phone(&spec.phone);
        if phone.is_empty() {
            return Err(ControlError::PhoneInvalid(spec.phone));
        }
        if self.world().phones.contains_key(&phone) {
            return Err(ControlError::PhoneTaken(phone));
        }
        // The verifier costs 100,000 PBKDF2 rounds: computed outside the lock.
        let password = spec.password.as_deref().map(|p| SrpVerifier::new(p, None));
        let mut w = self.world();
        // Checked again: another caller may have taken it meanwhile.
        if w.phones.contains_key(&phone) {
            return Err(ControlError::PhoneTaken(phone));
        }
        let id = w.next_user_id;
        w.next_user_id += 1;
        w.phones.insert(phone.clone(), id);
        w.accounts.insert(
            id,
            Account {
                id,
                access_hash: rand::random(),
                phone,
                first_name: if spec.first_name.is_empty() {
                    format!("Reader {id}")
                } else {
                    spec.first_name
                },
                username: spec.username,
                password,
                pending_srp: None,
                joined: Default::default(),
                pushes: Vec::new(),
                drop_pushes: 0,
                push_delay: None,
                missed_channels: Default::default(),
                forwarded: Default::default(),
                flood: Default::default(),
                stats: Default::default(),
                pushed: 0,
                dropped: 0,
            },
        );
        Ok(id)
    }

    /// Whether an account with this user id exists.
    pub fn has_account(&self, account: i64) -> bool {
        self.world().accounts.contains_key(&account)
    }

    /// A new auth key the fake knows, signed in to `account` (or to nobody,
    /// for a login test).
    pub fn issue_auth_key(&self, account: Option<i64>) -> [u8; 256] {
        let mut data = [0u8; 256];
        rand::fill(&mut data[..]);
        let key = ServerKey::new(data);
        self.world().keys.insert(
            key.id,
            KeyState {
                key,
                account,
                revoked: false,
                active_conn: None,
                password_pending: None,
            },
        );
        data
    }

    /// The account signed in on `auth_key`, if any.
    pub fn key_account(&self, auth_key: &[u8; 256]) -> Option<i64> {
        let id = super::crypto::key_id(auth_key);
        self.world().keys.get(&id).and_then(|k| k.account)
    }

    /// The DC option of this fake holding `auth_key` (so grammers skips the
    /// key exchange).
    pub fn dc_option(&self, auth_key: [u8; 256]) -> DcOption {
        let (ipv4, ipv6) = match self.addr() {
            SocketAddr::V4(v4) => (
                v4,
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
            ),
            SocketAddr::V6(v6) => (SocketAddrV4::new([127, 0, 0, 1].into(), v6.port()), v6),
        };
        DcOption {
            id: THIS_DC,
            ipv4,
            ipv6,
            auth_key: Some(auth_key),
        }
    }

    /// A grammers session whose home DC is this fake, holding `auth_key`.
    pub fn session_data(&self, auth_key: [u8; 256]) -> SessionData {
        let mut data = SessionData {
            home_dc: THIS_DC,
            ..SessionData::default()
        };
        let option = self.dc_option(auth_key);
        data.dc_options.insert(option.id, option);
        data
    }

    /// Creates a broadcast channel. A username another channel has moves
    /// to this one (tests that need the check use
    /// [`MtprotoFake::try_create_channel`]).
    pub fn create_channel(&self, spec: ChannelSpec) -> ChannelRef {
        let mut w = self.world();
        Self::insert_channel(&mut w, spec)
    }

    /// Creates a broadcast channel, or says why not (a username invalid or
    /// taken).
    pub fn try_create_channel(&self, spec: ChannelSpec) -> Result<ChannelRef, ControlError> {
        let mut w = self.world();
        if let Some(u) = &spec.username {
            let u = u.trim_start_matches('@');
            if !username_valid(u) {
                return Err(ControlError::UsernameInvalid(u.to_owned()));
            }
            if w.usernames.contains_key(&u.to_ascii_lowercase()) {
                return Err(ControlError::UsernameTaken(u.to_owned()));
            }
        }
        Ok(Self::insert_channel(&mut w, spec))
    }

    /// The channel with this bare id, if it exists.
    pub fn channel(&self, id: i64) -> Option<ChannelRef> {
        self.world().channels.get(&id).map(|c| ChannelRef {
            id,
            access_hash: c.access_hash,
        })
    }

    fn insert_channel(w: &mut World, spec: ChannelSpec) -> ChannelRef {
        let id = w.next_channel_id;
        w.next_channel_id += 1;
        let access_hash = rand::random();
        let username = spec.username.map(|u| u.trim_start_matches('@').to_owned());
        if let Some(u) = &username {
            w.usernames.insert(u.to_ascii_lowercase(), id);
        }
        if let Some(bot_api) = &w.bot_api {
            bot_api.create_channel(
                bot_api_chat_id(id),
                username.as_deref().unwrap_or(""),
                &spec.title,
            );
        }
        w.channels.insert(
            id,
            Channel {
                id,
                access_hash,
                title: spec.title,
                username,
                protected: spec.protected,
                date: now_i32(),
                messages: BTreeMap::new(),
                next_id: 1,
                pts: 1,
                events: Vec::new(),
                members: Default::default(),
                admins: Default::default(),
                albums: Default::default(),
                deleted: false,
            },
        );
        ChannelRef { id, access_hash }
    }

    fn with_channel<T>(&self, channel: ChannelRef, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = self.world();
        assert!(
            w.channels.contains_key(&channel.id),
            "MTProto fake: unknown channel {}",
            channel.id
        );
        f(&mut w)
    }

    /// Makes `account` a member (the way into a private channel).
    pub fn add_member(&self, channel: ChannelRef, account: i64) {
        self.with_channel(channel, |w| {
            w.channels
                .get_mut(&channel.id)
                .expect("checked")
                .members
                .insert(account);
            if let Some(a) = w.accounts.get_mut(&account) {
                a.joined.insert(channel.id);
            }
        });
    }

    /// Makes `account` an administrator (it may forward into the channel).
    pub fn set_admin(&self, channel: ChannelRef, account: i64) {
        self.with_channel(channel, |w| {
            w.channels
                .get_mut(&channel.id)
                .expect("checked")
                .admins
                .insert(account);
        });
    }

    /// Publishes a post; returns its message id. Members get it pushed.
    pub fn publish(&self, channel: ChannelRef, post: NewChannelMessage) -> i32 {
        self.with_channel(channel, |w| w.publish(channel.id, post).expect("checked"))
    }

    /// Publishes a text post.
    pub fn publish_text(&self, channel: ChannelRef, text: &str) -> i32 {
        self.publish(channel, NewChannelMessage::text(text))
    }

    /// Moves the date of every message of the channel `by` into the past,
    /// as if they had been published that much earlier (a channel's past,
    /// for tests of what a first read counts as new).
    pub fn backdate(&self, channel: ChannelRef, by: Duration) {
        let by = i32::try_from(by.as_secs()).unwrap_or(i32::MAX);
        self.with_channel(channel, |w| {
            if let Some(ch) = w.channels.get_mut(&channel.id) {
                for m in ch.messages.values_mut() {
                    m.date = m.date.saturating_sub(by);
                }
            }
        });
    }

    /// Edits a post's text; false when there is no such message.
    pub fn edit(&self, channel: ChannelRef, id: i32, text: &str) -> bool {
        self.with_channel(channel, |w| w.edit(channel.id, id, text))
    }

    /// Deletes posts; returns how many existed.
    pub fn delete(&self, channel: ChannelRef, ids: &[i32]) -> usize {
        self.with_channel(channel, |w| w.delete(channel.id, ids))
    }

    /// Renames a channel.
    pub fn rename(&self, channel: ChannelRef, title: &str) {
        self.with_channel(channel, |w| {
            title.clone_into(&mut w.channels.get_mut(&channel.id).expect("checked").title);
        });
    }

    /// Makes a channel private: its username is freed; non-members get
    /// `CHANNEL_PRIVATE`.
    pub fn make_private(&self, channel: ChannelRef) {
        self.with_channel(channel, |w| {
            if let Some(u) = w
                .channels
                .get_mut(&channel.id)
                .expect("checked")
                .username
                .take()
            {
                w.usernames.remove(&u.to_ascii_lowercase());
            }
        });
    }

    /// Deletes a channel, as its owner can: its username is freed and every
    /// call about it — history, joins, differences, members' too — gets
    /// `CHANNEL_PRIVATE`. That is what Telegram answers for a deleted
    /// channel (a client that deleted one sees `CHANNEL_PRIVATE` on
    /// `messages.getPeerDialogs`, zhukov/webogram#1417), not
    /// `CHANNEL_INVALID`, which is for an id or access hash that never
    /// matched; a reader that was a member is how "deleted" is told apart
    /// from "made private".
    pub fn delete_channel(&self, channel: ChannelRef) {
        self.with_channel(channel, |w| {
            let ch = w.channels.get_mut(&channel.id).expect("checked");
            ch.deleted = true;
            if let Some(u) = ch.username.take() {
                w.usernames.remove(&u.to_ascii_lowercase());
            }
        });
    }

    /// Moves a channel to a new public username (a rename of its `@name`):
    /// the old name is freed and resolves to nothing.
    pub fn set_username(&self, channel: ChannelRef, username: &str) {
        self.with_channel(channel, |w| {
            let ch = w.channels.get_mut(&channel.id).expect("checked");
            let old = ch.username.replace(username.to_owned());
            if let Some(u) = old {
                w.usernames.remove(&u.to_ascii_lowercase());
            }
            w.usernames
                .insert(username.to_ascii_lowercase(), channel.id);
        });
    }

    /// The channel's current pts.
    pub fn channel_pts(&self, channel: ChannelRef) -> i32 {
        self.with_channel(channel, |w| w.channels[&channel.id].pts)
    }

    /// Revokes the session of `auth_key`: every later call gets
    /// `SESSION_REVOKED`. False when the fake does not know the key.
    pub fn revoke_session(&self, auth_key: &[u8; 256]) -> bool {
        let id = super::crypto::key_id(auth_key);
        match self.world().keys.get_mut(&id) {
            Some(k) => {
                k.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Sets (or with `None` removes) the per-account flood limit of `method`.
    pub fn set_flood_limit(&self, method: &str, limit: Option<FloodLimit>) {
        let mut w = self.world();
        match limit {
            Some(l) => w.settings.flood_limits.insert(method.to_owned(), l),
            None => w.settings.flood_limits.remove(method),
        };
    }

    /// Drops the account's next `count` pushes (`None`: all, until called
    /// again with `Some(0)`). Dropped channels are remembered for
    /// `updates.getDifference`.
    pub fn drop_pushes(&self, account: i64, count: Option<u32>) {
        if let Some(a) = self.world().accounts.get_mut(&account) {
            a.drop_pushes = count.unwrap_or(u32::MAX);
        }
    }

    /// Delays every push to the account by `delay` (`None`: no delay).
    pub fn delay_pushes(&self, account: i64, delay: Option<Duration>) {
        if let Some(a) = self.world().accounts.get_mut(&account) {
            a.push_delay = delay;
        }
    }

    /// Pushes `updateChannelTooLong` for `channel`: the client must call
    /// `updates.getChannelDifference`.
    pub fn push_channel_too_long(&self, account: i64, channel: ChannelRef) {
        let mut w = self.world();
        let Some(ch) = w.channels.get(&channel.id) else {
            return;
        };
        let update = tl::types::UpdateChannelTooLong {
            channel_id: channel.id,
            pts: None,
        }
        .into();
        let body = Arc::new(
            updates_body(vec![update], vec![objects::channel(ch, Some(account))]).to_bytes(),
        );
        if let Some(a) = w.accounts.get_mut(&account) {
            push_to(a, None, &body);
        }
    }

    /// Pushes `updatesTooLong`: the client must call `updates.getDifference`
    /// (which names the channels whose pushes it missed).
    pub fn push_updates_too_long(&self, account: i64) {
        let body = Arc::new(tl::enums::Updates::TooLong.to_bytes());
        if let Some(a) = self.world().accounts.get_mut(&account) {
            push_to(a, None, &body);
        }
    }

    /// The login code last sent to `phone`, as the user would read it.
    pub fn login_code(&self, phone: &str) -> Option<String> {
        self.world()
            .codes
            .get(&normalize_phone(phone))
            .map(|c| c.code.clone())
    }

    /// What `account` called and received.
    pub fn stats(&self, account: i64) -> AccountStats {
        let w = self.world();
        w.accounts
            .get(&account)
            .map(|a| AccountStats {
                methods: a.stats.clone(),
                pushed: a.pushed,
                dropped: a.dropped,
            })
            .unwrap_or_default()
    }

    /// Calls made on auth keys with no account signed in.
    pub fn anonymous_stats(&self) -> BTreeMap<String, MethodStats> {
        self.world().anonymous_stats.clone()
    }

    /// Connections closed for a malformed frame, an unknown key or garbage.
    pub fn rejected_connections(&self) -> u64 {
        self.world().rejected_connections
    }

    /// Stops serving (connections are closed). Idempotent.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for MtprotoFake {
    fn drop(&mut self) {
        self.stop();
    }
}
