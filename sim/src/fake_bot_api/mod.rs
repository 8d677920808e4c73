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
//! The code: this file is the handle [`FakeTelegram`] (start, bots, chats,
//! counters, stop) and its public types (the messages in `messages`);
//! `server` runs the actix-web server thread and dispatches requests;
//! `wire` parses methods and parameters and builds the replies' envelope;
//! `limits` is Telegram's rate limits as the fake enforces them
//! ([`FakeLimits`]); `faults` the failures a test injects; `state` is what
//! the fake records; `send` how a sending request is validated, limited
//! and delivered; `channels` the channels it plays and their posts; `json`
//! builds the Bot API objects; `report` is the delivery report; `people`
//! the simulated users, and `handler_methods` the methods a bot's command
//! handler calls back on their side; `mirror` edits and deletions of sent
//! messages; `forum` forum topics.

mod access;
mod channels;
mod faults;
mod forum;
mod handler_methods;
mod json;
mod limits;
mod messages;
mod mirror;
mod people;
mod report;
mod send;
mod server;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io;
use std::sync::Arc;

use serde_json::Value;

pub use access::{BotStanding, REFUSALS};
pub use channels::PostHook;
pub use faults::Fault;
pub use limits::FakeLimits;
pub use messages::{ChannelMessage, MediaKind, NewChannelMessage, ReceivedMessage};
pub use mirror::MirrorCall;
pub use people::{CallbackAnswer, MemberStatus};
pub use report::DeliveryReport;

use json::dest_chat_json;
use server::{ServerControl, Shared};
use state::{DestChat, State};
use wire::Method;

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
        Self::start_on(limits, 0)
    }

    /// [`FakeTelegram::start`] on 127.0.0.1:`port` (0: a free port).
    pub fn start_on(limits: FakeLimits, port: u16) -> io::Result<FakeTelegram> {
        let shared = Arc::new(Shared::new(limits));
        let control = ServerControl::start(&shared, port)?;
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

    /// Every answer but getUpdates' comes `latency` after the request (the
    /// request's effect is immediate). Telegram's own answers take tens of
    /// milliseconds; at 0 a serial loop would look fast.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.shared.latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Sends of `client` (through [`FakeTelegram::client_url`]) made and
    /// not yet answered: what a process killed now never hears back about.
    pub fn sends_in_flight_by(&self, client: &str) -> u64 {
        self.shared
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client)
            .copied()
            .unwrap_or(0)
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

    /// Every request (any method, getUpdates included, answered or not)
    /// made through the base URL [`FakeTelegram::client_url`] of `client`:
    /// a test's measure of whether a process called Telegram at all in a
    /// stretch of time. Telegram itself cannot tell processes sharing one
    /// token apart; the base URL is how the test names them.
    pub fn requests_by(&self, client: &str) -> u64 {
        self.shared
            .lock()
            .counters
            .requests_by_client
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
