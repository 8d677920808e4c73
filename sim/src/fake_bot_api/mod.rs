//! An in-process fake of the Telegram Bot API HTTP server.
//!
//! It speaks the real wire protocol (`POST /bot<token>/<method>`, a JSON
//! body, `{"ok":true,"result":…}` or `{"ok":false,"error_code":…}` back), so
//! teloxide's real [`teloxide::Bot`] runs against it unchanged, request
//! serialisation, response parsing and error mapping included. Everything it
//! accepts is recorded, so duplicates and lost messages are counted from what
//! actually arrived, not from what the daemon believes it sent.
//!
//! The fake also plays the channels: [`FakeTelegram::post`] appends a post to
//! a channel's history, which the simulated MTProto reader reads with
//! [`FakeTelegram::channel_messages_after`], and which bots that are admins
//! of the channel receive as `channel_post` updates through `getUpdates`.
//!
//! ```no_run
//! use kuryer_sim::fake_bot_api::{FakeLimits, FakeTelegram, NewChannelMessage};
//!
//! let tg = FakeTelegram::start(FakeLimits::telegram())?;
//! tg.add_bot("1001:secret");
//! tg.create_channel(-100_1, "news", "News");
//! let id = tg.post(-100_1, NewChannelMessage::text("hello"));
//! let bot = tg.bot("1001:secret"); // a teloxide::Bot talking to the fake
//! // … the daemon copies the post to chat 42 with `bot` …
//! let report = tg.report(&[(42, -100_1, id)]);
//! println!("{report}");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Methods: `getMe`, `getUpdates` (long polling, offset confirmation),
//! `sendMessage`, `copyMessage`, `copyMessages`, `forwardMessage`,
//! `forwardMessages`, and for a bot's command handler `getChat`,
//! `getChatMember`, `answerCallbackQuery`, `setMyCommands`,
//! `editMessageText`, `editMessageReplyMarkup`. Anything else answers 404
//! like Telegram. Simulated people (`people.rs`) talk to the bots: messages
//! and commands with a `language_code`, forwarded posts, button presses,
//! bots added to and removed from groups and channels. Bodies may be
//! JSON (what teloxide sends), `application/x-www-form-urlencoded`, or query
//! parameters; multipart uploads are not supported.
//!
//! Deliberate differences from Telegram, kept because they make the fake a
//! better judge:
//! - `copyMessages`/`forwardMessages` reject the whole request when one id
//!   does not exist (Telegram skips it silently); protected messages are
//!   skipped, as Telegram does.
//! - `parse_mode` is not interpreted; text length is counted on the text as
//!   sent, in UTF-16 code units as Telegram counts.
//! - [`FakeTelegram::set_down`] closes the listening socket, so requests fail
//!   at the TCP level (connection refused) rather than with a 502: teloxide
//!   sleeps 10 s after every 5xx, which would turn a short outage into a long
//!   one.
//!
//! The code: this file is the handle and the public types (the messages
//! in `messages`); `server` runs
//! the actix-web server thread and dispatches requests; `wire` parses
//! methods and parameters and builds the replies' envelope; `limits` is
//! Telegram's rate limits as the fake enforces them; `state` is what the
//! fake records and how a sending request is validated and delivered;
//! `json` builds the Bot API objects; `report` is the delivery report;
//! `people` the simulated users and the methods they make a bot call.

mod forum;
mod json;
mod limits;
mod messages;
mod mirror;
mod people;
mod report;
mod server;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use messages::{ChannelMessage, MediaKind, NewChannelMessage, ReceivedMessage};
pub use mirror::MirrorCall;
pub use people::{CallbackAnswer, MemberStatus};
pub use report::DeliveryReport;

/// A function told of every post published on the Bot API face (its channel
/// id and the message), e.g. to mirror it onto the MTProto face.
pub type PostHook = Arc<dyn Fn(i64, &ChannelMessage) + Send + Sync>;

use json::{channel_chat_json, channel_post_json, dest_chat_json, member_json, unix_now};
use server::{ServerControl, Shared};
use state::{ArmedFault, Channel, DestChat, State};
use wire::Method;

/// The user who promotes bots in the `my_chat_member` updates.
const OWNER_USER_ID: i64 = 100_000_001;

/// Rate limits the fake enforces, in Telegram's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FakeLimits {
    /// Sending requests per bot token per second.
    pub per_bot_per_second: f64,
    /// Sending requests per bot per private chat per second.
    pub per_chat_per_second: f64,
    /// Sending requests per bot per group, supergroup or channel per minute.
    pub per_group_per_minute: f64,
    /// When false nothing is limited (and no 429 is ever answered).
    pub enforce: bool,
}

impl FakeLimits {
    /// Telegram's published limits: 30 messages a second per bot, 1 a second
    /// per chat, 20 a minute per group.
    pub fn telegram() -> Self {
        Self {
            per_bot_per_second: 30.0,
            per_chat_per_second: 1.0,
            per_group_per_minute: 20.0,
            enforce: true,
        }
    }

    /// Telegram's limits multiplied by `k` (e.g. `scaled(10.0)` lets a short
    /// benchmark push ten times the real volume through the same shape).
    pub fn scaled(k: f64) -> Self {
        let t = Self::telegram();
        Self {
            per_bot_per_second: t.per_bot_per_second * k,
            per_chat_per_second: t.per_chat_per_second * k,
            per_group_per_minute: t.per_group_per_minute * k,
            enforce: true,
        }
    }

    /// No limits at all.
    pub fn off() -> Self {
        Self {
            enforce: false,
            ..Self::telegram()
        }
    }
}

impl Default for FakeLimits {
    fn default() -> Self {
        Self::telegram()
    }
}

/// A failure injected for requests whose destination (`chat_id`) is a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 403 "Forbidden: bot was blocked by the user".
    Forbidden,
    /// 400 with this description, verbatim (start it with "Bad Request: " for
    /// teloxide to recognise known errors).
    BadRequest(String),
    /// 400 "group chat was upgraded to a supergroup chat" with
    /// `parameters.migrate_to_chat_id`.
    MigrateTo(i64),
    /// 500 "Internal Server Error". Note that teloxide sleeps 10 s before
    /// returning the error of any 5xx answer.
    ServerError,
    /// 429 with `parameters.retry_after`.
    TooManyRequests {
        /// Seconds the client is told to wait.
        retry_after: u32,
    },
    /// The request is processed (and delivered) at once but answered only
    /// after this delay, like a slow network on the way back: a client that
    /// times out and retries produces a duplicate.
    Slow(Duration),
}

/// The type of a destination chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// A one-to-one chat with a user (1 message/s limit).
    Private,
    /// A basic group (group limit).
    Group,
    /// A supergroup (group limit).
    Supergroup,
    /// A channel (group limit).
    Channel,
}

impl ChatKind {
    /// What Telegram assumes from an id alone: users are positive, chats
    /// negative.
    fn implicit(chat_id: i64) -> Self {
        if chat_id > 0 {
            Self::Private
        } else {
            Self::Supergroup
        }
    }
}

/// Counters over everything the fake has answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Every HTTP request, whatever its outcome.
    pub requests_total: u64,
    /// Messages accepted into destination chats (an album of 3 counts 3).
    pub messages_received: u64,
    /// 429 answers, from the limits and from injected
    /// [`Fault::TooManyRequests`].
    pub rate_limited_429: u64,
    /// Injected faults applied (each application counts once).
    pub faults_injected: u64,
    /// 401 answers to unknown or revoked tokens.
    pub unauthorized_401: u64,
    /// getUpdates calls of a bot made while another of the same bot was
    /// open (two consumers of one token): each ended one of them with 409.
    pub get_updates_conflicts_409: u64,
    /// Requests per method name; unknown methods count under `"unknown"`.
    pub per_method: BTreeMap<&'static str, u64>,
}

/// A running fake Telegram. Clones share the same server; the server stops
/// when [`FakeTelegram::stop`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    control: Arc<ServerControl>,
}

impl FakeTelegram {
    /// Binds 127.0.0.1 on a free port and serves on a dedicated OS thread with
    /// its own actix `System`, so it never competes with the caller's runtime
    /// thread. Returns once the socket is listening.
    pub fn start(limits: FakeLimits) -> io::Result<FakeTelegram> {
        let shared = Arc::new(Shared::new(limits));
        let control = ServerControl::start(&shared)?;
        Ok(FakeTelegram {
            shared,
            control: Arc::new(control),
        })
    }

    /// The base URL to give the Bot API client, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.control.addr)
    }

    /// A base URL naming `client` (`…/c/<client>`): the same fake, but its
    /// send requests are also counted for that client ([`FakeTelegram::sends_by`]),
    /// so a test tells several processes apart.
    pub fn client_url(&self, client: &str) -> String {
        format!("http://{}/c/{client}", self.control.addr)
    }

    /// A teloxide client for `token` pointed at this fake (the token need not
    /// be registered: an unknown one gets 401, like Telegram).
    pub fn bot(&self, token: &str) -> teloxide::Bot {
        let url = url::Url::parse(&self.url()).expect("the fake's URL is a valid URL");
        teloxide::Bot::new(token).set_api_url(url)
    }

    /// Registers a bot. `token` is `"<bot id>:<secret>"`; requests with other
    /// tokens get 401. Registering twice is harmless.
    ///
    /// # Panics
    ///
    /// If the token does not start with a positive numeric bot id.
    pub fn add_bot(&self, token: &str) {
        self.shared.lock().ensure_bot(token);
    }

    /// Sets (or with `None` clears) a webhook on the bot, as `setWebhook`
    /// would: `getUpdates` answers 409 until `deleteWebhook`.
    pub fn set_webhook(&self, token: &str, url: Option<&str>) {
        let mut st = self.shared.lock();
        st.ensure_bot(token);
        if let Some(bot) = st.bots.get_mut(token) {
            bot.webhook = url.map(str::to_owned);
        }
    }

    /// Revokes a bot's token, as BotFather does: from now on every request
    /// made with it gets 401 Unauthorized (teloxide: `ApiError::InvalidToken`).
    /// What the bot already did stays recorded.
    pub fn revoke_bot(&self, token: &str) {
        self.shared.lock().revoked.insert(token.to_owned());
    }

    /// Creates a channel (a source of posts). Calling it again for the same
    /// id renames it and keeps its history.
    pub fn create_channel(&self, chat_id: i64, username: &str, title: &str) {
        let mut st = self.shared.lock();
        let username = username.trim_start_matches('@');
        let chat = channel_chat_json(chat_id, username, title);
        match st.channels.entry(chat_id) {
            Entry::Occupied(mut e) => e.get_mut().chat = chat,
            Entry::Vacant(e) => {
                e.insert(Channel::new(chat));
            }
        }
        if !username.is_empty() {
            st.usernames.insert(username.to_ascii_lowercase(), chat_id);
        }
    }

    /// Gives the channel a new public username (empty: none), as its owner
    /// would; later posts and updates carry it. The old name is free for
    /// another channel to take. Telegram tells bots nothing of a rename.
    ///
    /// # Panics
    ///
    /// If the channel was not created.
    pub fn rename_channel(&self, chat_id: i64, username: &str) {
        let mut st = self.shared.lock();
        let username = username.trim_start_matches('@');
        let channel = st
            .channels
            .get_mut(&chat_id)
            .unwrap_or_else(|| panic!("fake Telegram: rename of unknown channel {chat_id}"));
        let old = channel
            .chat
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let title = channel
            .chat
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        channel.chat = channel_chat_json(chat_id, username, &title);
        if let Some(old) = old
            && st.usernames.get(&old) == Some(&chat_id)
        {
            st.usernames.remove(&old);
        }
        if !username.is_empty() {
            st.usernames.insert(username.to_ascii_lowercase(), chat_id);
        }
    }

    /// Queues an update of any `kind` with any payload for a bot, as
    /// Telegram would send it: for updates teloxide cannot parse (a kind
    /// newer than it, a payload of the wrong shape).
    pub fn push_raw_update(&self, bot_token: &str, kind: &str, payload: Value) {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update(kind, payload);
    }

    /// Makes the bot an administrator of the channel, or takes that away.
    /// An admin bot receives every later post as a `channel_post` update; the
    /// change itself arrives as a `my_chat_member` update (left →
    /// administrator, or back). Setting the state it already has does
    /// nothing. Registers the bot if needed.
    ///
    /// # Panics
    ///
    /// If the channel was not created, or the token is malformed.
    pub fn set_admin(&self, chat_id: i64, bot_token: &str, is_admin: bool) {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        let State { bots, channels, .. } = &mut *st;
        let channel = channels
            .get_mut(&chat_id)
            .unwrap_or_else(|| panic!("fake Telegram: set_admin on unknown channel {chat_id}"));
        let was_admin = channel.admins.iter().any(|t| t == bot_token);
        if was_admin == is_admin {
            return;
        }
        if is_admin {
            channel.admins.push(bot_token.to_owned());
        } else {
            channel.admins.retain(|t| t != bot_token);
        }
        let bot = bots.get_mut(bot_token).expect("registered above");
        let update = json!({
            "chat": channel.chat,
            "from": {"id": OWNER_USER_ID, "is_bot": false, "first_name": "Channel owner"},
            "date": unix_now(),
            "old_chat_member": member_json(&bot.user, was_admin),
            "new_chat_member": member_json(&bot.user, is_admin),
        });
        bot.push_update("my_chat_member", update);
    }

    /// Declares a destination chat's type. Chats never declared are private
    /// when their id is positive and supergroups when negative (channels
    /// created with [`FakeTelegram::create_channel`] are channels).
    pub fn create_chat(&self, chat_id: i64, kind: ChatKind) {
        let mut st = self.shared.lock();
        let State {
            chats, channels, ..
        } = &mut *st;
        let json = dest_chat_json(chat_id, kind, channels);
        match chats.entry(chat_id) {
            Entry::Occupied(mut e) => {
                let chat = e.get_mut();
                chat.kind = kind;
                chat.chat = json;
            }
            Entry::Vacant(e) => {
                e.insert(DestChat::new(kind, json));
            }
        }
    }

    /// Publishes a message in a channel and returns its id (1, 2, 3… per
    /// channel). Admin bots get a `channel_post` update.
    ///
    /// # Panics
    ///
    /// If the channel was not created.
    pub fn post(&self, chat_id: i64, msg: NewChannelMessage) -> i32 {
        let (id, message) = self.post_locked(chat_id, msg);
        let hook = self
            .shared
            .post_hook
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook(chat_id, &message);
        }
        id
    }

    /// Calls `hook` with the channel and the message after every
    /// [`FakeTelegram::post`] (outside the fake's lock), replacing any
    /// earlier hook: how the MTProto face pushes a post published here.
    pub fn on_post(&self, hook: PostHook) {
        *self
            .shared
            .post_hook
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hook);
    }

    fn post_locked(&self, chat_id: i64, msg: NewChannelMessage) -> (i32, ChannelMessage) {
        let mut st = self.shared.lock();
        let State {
            channels,
            bots,
            texts,
            ..
        } = &mut *st;
        let channel = channels
            .get_mut(&chat_id)
            .unwrap_or_else(|| panic!("fake Telegram: post to unknown channel {chat_id}"));
        let id = i32::try_from(channel.messages.len() + 1).expect("fewer than 2^31 posts");
        let first = match &msg.media_group_id {
            Some(group) => {
                let first = *channel.albums.entry(group.clone()).or_insert(id);
                channel.album_parts.entry(first).or_default().push(id);
                first
            }
            None => id,
        };
        channel.post_first.push(first);
        let message = ChannelMessage {
            id,
            date: unix_now(),
            text: msg.text,
            entities: msg.entities,
            media: msg.media,
            media_group_id: msg.media_group_id,
            protected: msg.protected,
            posted_at: Instant::now(),
        };
        if let Some(text) = &message.text {
            texts.entry(text.clone()).or_default().push((chat_id, id));
        }
        if !channel.admins.is_empty() {
            let payload = channel_post_json(chat_id, &channel.chat, &message);
            for token in &channel.admins {
                if let Some(bot) = bots.get_mut(token) {
                    bot.push_update("channel_post", payload.clone());
                }
            }
        }
        channel.messages.push(message.clone());
        (id, message)
    }

    /// Up to `limit` messages of the channel with an id above `after_id`,
    /// oldest first (how the simulated MTProto reader reads a channel).
    /// Empty for an unknown channel.
    pub fn channel_messages_after(
        &self,
        chat_id: i64,
        after_id: i32,
        limit: usize,
    ) -> Vec<ChannelMessage> {
        let st = self.shared.lock();
        let Some(channel) = st.channels.get(&chat_id) else {
            return Vec::new();
        };
        let start = usize::try_from(after_id.max(0)).unwrap_or(0);
        channel
            .messages
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Injects `fault` into requests whose `chat_id` is `chat_id`: the next
    /// `times` of them, or all until [`FakeTelegram::clear_fault`] with
    /// `None`. Replaces a fault already set for the chat. `getChat` of the
    /// chat (by id or by its `@username`) takes it too.
    pub fn set_fault(&self, chat_id: i64, fault: Fault, times: Option<u32>) {
        let mut st = self.shared.lock();
        if times == Some(0) {
            st.faults.remove(&chat_id);
        } else {
            st.faults.insert(
                chat_id,
                ArmedFault {
                    fault,
                    remaining: times,
                },
            );
        }
    }

    /// Removes the chat's fault.
    pub fn clear_fault(&self, chat_id: i64) {
        self.shared.lock().faults.remove(&chat_id);
    }

    /// Takes the server down or brings it back. Down means the listening
    /// socket is closed and open connections are dropped, so every request
    /// fails at the TCP level (teloxide: `RequestError::Network`). Blocks
    /// until the change has happened (milliseconds). State is kept.
    ///
    /// # Panics
    ///
    /// When coming back up, if the port was taken by someone else meanwhile.
    pub fn set_down(&self, down: bool) {
        self.control.set_down(&self.shared, down);
    }

    /// Everything delivered to the chat, in arrival order.
    pub fn received(&self, chat_id: i64) -> Vec<ReceivedMessage> {
        self.shared
            .lock()
            .chats
            .get(&chat_id)
            .map(|c| c.received.clone())
            .unwrap_or_default()
    }

    /// The counters.
    pub fn stats(&self) -> FakeStats {
        let st = self.shared.lock();
        let c = &st.counters;
        FakeStats {
            requests_total: c.requests_total,
            messages_received: c.messages_received,
            rate_limited_429: c.rate_limited_429,
            faults_injected: c.faults_injected,
            unauthorized_401: c.unauthorized_401,
            get_updates_conflicts_409: c.get_updates_conflicts,
            per_method: Method::ALL
                .iter()
                .filter(|m| c.per_method[**m as usize] > 0)
                .map(|m| (m.name(), c.per_method[*m as usize]))
                .collect(),
        }
    }

    /// Send requests (sendMessage, copyMessage(s), forwardMessage(s)) made
    /// through the base URL [`FakeTelegram::client_url`] of `client`.
    pub fn sends_by(&self, client: &str) -> u64 {
        self.shared
            .lock()
            .counters
            .sends_by_client
            .get(client)
            .copied()
            .unwrap_or(0)
    }

    /// Compares what arrived with `expected`: (destination chat, source
    /// channel, first message id of the post). A post is one message or one
    /// album; an album may be named by any of its message ids.
    pub fn report(&self, expected: &[(i64, i64, i32)]) -> DeliveryReport {
        self.shared.lock().report(expected)
    }

    /// Stops the server (also done when the last clone is dropped). Requests
    /// afterwards fail at the TCP level; the recorded state stays readable.
    pub fn stop(&self) {
        self.control.shutdown();
    }
}

impl fmt::Debug for FakeTelegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeTelegram")
            .field("addr", &self.control.addr)
            .finish_non_exhaustive()
    }
}
