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
//! `forwardMessages`. Anything else answers 404 like Telegram. Bodies may be
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

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

/// Longest text `sendMessage` accepts, in UTF-16 code units (Telegram's unit).
const MAX_TEXT_UTF16: usize = 4096;
/// Most message ids one `copyMessages`/`forwardMessages` request may carry.
const MAX_BATCH: usize = 100;
/// Cap on a `getUpdates` long poll, like Telegram's own.
const MAX_POLL_TIMEOUT_SECS: u64 = 50;
/// Longer than reqwest's 90 s idle-pool timeout, so the client always closes
/// an idle connection first: a server-side close racing a new request would
/// show up in the daemon as a spurious network error.
const KEEP_ALIVE: Duration = Duration::from_secs(300);
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

/// The media of a channel post.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A photo.
    Photo,
    /// A video.
    Video,
    /// A file.
    Document,
}

/// A post to publish in a channel with [`FakeTelegram::post`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewChannelMessage {
    /// The text, or the caption of a media message.
    pub text: Option<String>,
    /// Bot API `MessageEntity` JSON objects for the text or caption.
    pub entities: Vec<Value>,
    /// The media, if any.
    pub media: Option<MediaKind>,
    /// Messages sharing this id form one album (one post).
    pub media_group_id: Option<String>,
    /// Protected content: cannot be copied or forwarded.
    pub protected: bool,
}

impl NewChannelMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// A media message with an optional caption.
    pub fn media(kind: MediaKind, caption: Option<&str>) -> Self {
        Self {
            text: caption.map(str::to_owned),
            media: Some(kind),
            ..Self::default()
        }
    }

    /// The same message with these entities.
    pub fn with_entities(mut self, entities: Vec<Value>) -> Self {
        self.entities = entities;
        self
    }

    /// The same message as a part of the album `group`.
    pub fn in_album(mut self, group: impl Into<String>) -> Self {
        self.media_group_id = Some(group.into());
        self
    }

    /// The same message with protected content.
    pub fn protected(mut self) -> Self {
        self.protected = true;
        self
    }
}

/// A message in a channel's history.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelMessage {
    /// Message id in the channel: 1, 2, 3…
    pub id: i32,
    /// Unix seconds.
    pub date: i64,
    /// Text or caption.
    pub text: Option<String>,
    /// Bot API `MessageEntity` JSON objects.
    pub entities: Vec<Value>,
    /// The media, if any.
    pub media: Option<MediaKind>,
    /// Album id, if the message is part of one.
    pub media_group_id: Option<String>,
    /// Protected content.
    pub protected: bool,
    /// When [`FakeTelegram::post`] published it (the start of latency).
    pub posted_at: Instant,
}

/// A message the fake accepted into a destination chat.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// Its id in the destination chat (1, 2, 3… per chat).
    pub message_id: i32,
    /// The Bot API method that delivered it, e.g. `"copyMessages"`.
    pub method: &'static str,
    /// The channel message it came from: given for copies and forwards, and
    /// for `sendMessage` when its text equals a channel message's text.
    pub source: Option<(i64, i32)>,
    /// Text or caption.
    pub text: Option<String>,
    /// Entities as sent (`sendMessage`) or as copied from the source.
    pub entities: Vec<Value>,
    /// The source's album id, for messages that came in a
    /// `copyMessages`/`forwardMessages` request (single copies leave the
    /// album, as on Telegram).
    pub media_group_id: Option<String>,
    /// When the fake accepted it.
    pub received_at: Instant,
    /// The bot that sent it.
    pub bot_id: i64,
    /// The HTTP request that delivered it: the parts of one `copyMessages`
    /// share it. Unique across the fake.
    pub request_id: u64,
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
    /// 401 answers to unknown tokens.
    pub unauthorized_401: u64,
    /// Requests per method name; unknown methods count under `"unknown"`.
    pub per_method: BTreeMap<&'static str, u64>,
}

/// What was delivered, compared with what should have been. Every count but
/// `unexpected` is about the expected posts only, so a report can be asked
/// about a subset of chats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryReport {
    /// Distinct expected posts.
    pub expected: u64,
    /// Expected posts that arrived at least once.
    pub delivered: u64,
    /// Extra copies of an expected post in its chat (a post sent three times
    /// counts 2; an album counts by its most repeated part).
    pub duplicates: u64,
    /// Expected posts that never arrived.
    pub lost: u64,
    /// Distinct posts that arrived in a chat where they were not expected,
    /// plus messages that could not be attributed to any channel post.
    pub unexpected: u64,
    /// Expected posts that arrived, per (destination chat, source channel),
    /// after a post with a higher id had already arrived (first copies
    /// compared).
    pub out_of_order: u64,
    /// Expected albums of which no single request carried every part that
    /// arrived.
    pub albums_split: u64,
    /// Parts of delivered albums that never arrived (protected parts, which
    /// cannot be copied, are not counted).
    pub album_parts_missing: u64,
    /// Latency from [`FakeTelegram::post`] to the first copy, median.
    pub latency_p50_ms: f64,
    /// Latency, 99th percentile.
    pub latency_p99_ms: f64,
    /// Latency, maximum.
    pub latency_max_ms: f64,
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} delivered {} lost {} duplicates {} unexpected {} out_of_order {} \
             albums_split {} album_parts_missing {} latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            self.expected,
            self.delivered,
            self.lost,
            self.duplicates,
            self.unexpected,
            self.out_of_order,
            self.albums_split,
            self.album_parts_missing,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms
        )
    }
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
        let (event_tx, event_rx) = mpsc::channel();
        let (command_tx, command_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-telegram".to_owned())
            .spawn(move || server_thread(&thread_shared, &event_tx, &command_rx))?;
        let (handle, addr) = match event_rx.recv() {
            Ok(Event::Started(Ok(started))) => started,
            Ok(Event::Started(Err(e))) => {
                drop(command_tx);
                let _ = thread.join();
                return Err(e);
            }
            _ => {
                return Err(io::Error::other(
                    "the fake Telegram server thread ended before listening",
                ));
            }
        };
        tracing::debug!(%addr, "Fake Telegram Bot API listening.");
        Ok(FakeTelegram {
            shared,
            control: Arc::new(ServerControl {
                addr,
                inner: Mutex::new(ControlInner {
                    handle: Some(handle),
                    commands: command_tx,
                    events: event_rx,
                    thread: Some(thread),
                    stopped: false,
                }),
            }),
        })
    }

    /// The base URL to give the Bot API client, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.control.addr)
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
        channel.messages.push(message);
        id
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
    /// `None`. Replaces a fault already set for the chat.
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
            per_method: Method::ALL
                .iter()
                .filter(|m| c.per_method[**m as usize] > 0)
                .map(|m| (m.name(), c.per_method[*m as usize]))
                .collect(),
        }
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

// ---------------------------------------------------------------------------
// Server lifecycle

/// Owns the server thread; dropping the last `FakeTelegram` drops this.
struct ServerControl {
    addr: SocketAddr,
    inner: Mutex<ControlInner>,
}

struct ControlInner {
    /// `Some` while serving.
    handle: Option<ServerHandle>,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    stopped: bool,
}

enum Command {
    Up,
    Quit,
}

enum Event {
    Started(io::Result<(ServerHandle, SocketAddr)>),
    Stopped,
}

impl ServerControl {
    fn lock(&self) -> MutexGuard<'_, ControlInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_down(&self, shared: &Shared, down: bool) {
        let mut c = self.lock();
        if c.stopped {
            return;
        }
        if down {
            // Covers the connections a stopping worker still serves.
            shared.down.store(true, Ordering::SeqCst);
            c.stop_server();
            return;
        }
        if c.handle.is_none() {
            let _ = c.commands.send(Command::Up);
            match c.events.recv() {
                Ok(Event::Started(Ok((handle, _)))) => c.handle = Some(handle),
                Ok(Event::Started(Err(e))) => {
                    panic!("fake Telegram: cannot listen on {} again: {e}", self.addr)
                }
                _ => panic!("fake Telegram: the server thread is gone"),
            }
        }
        shared.down.store(false, Ordering::SeqCst);
    }

    fn shutdown(&self) {
        let mut c = self.lock();
        if c.stopped {
            return;
        }
        c.stopped = true;
        c.stop_server();
        let _ = c.commands.send(Command::Quit);
        if let Some(thread) = c.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ControlInner {
    /// Stops serving (not gracefully: open connections are dropped, which is
    /// the point of "down") and waits until the socket is closed.
    fn stop_server(&mut self) {
        if let Some(handle) = self.handle.take() {
            // `stop` sends its command at once; the returned future only
            // waits for completion, which the Stopped event reports instead.
            drop(handle.stop(false));
            while let Ok(event) = self.events.recv() {
                if matches!(event, Event::Stopped) {
                    break;
                }
            }
        }
    }
}

impl Drop for ServerControl {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn server_thread(
    shared: &Arc<Shared>,
    events: &mpsc::Sender<Event>,
    commands: &mpsc::Receiver<Command>,
) {
    let system = actix_rt::System::new();
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 0));
    loop {
        let served = system.block_on(async {
            match build_server(shared, addr) {
                Ok((server, bound)) => {
                    // Later restarts (after `set_down`) reuse the same port.
                    addr = bound;
                    let _ = events.send(Event::Started(Ok((server.handle(), bound))));
                    let _ = server.await;
                    true
                }
                Err(e) => {
                    let _ = events.send(Event::Started(Err(e)));
                    false
                }
            }
        });
        if served {
            let _ = events.send(Event::Stopped);
        }
        match commands.recv() {
            Ok(Command::Up) => {}
            Ok(Command::Quit) | Err(_) => break,
        }
    }
}

fn build_server(shared: &Arc<Shared>, addr: SocketAddr) -> io::Result<(Server, SocketAddr)> {
    let data = web::Data::from(Arc::clone(shared));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(handle))
    })
    .workers(workers)
    .backlog(4096)
    .keep_alive(KEEP_ALIVE)
    // The fake must not take over Ctrl-C from the demo or the test harness.
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("no address bound"))?;
    Ok((server.run(), bound))
}

// ---------------------------------------------------------------------------
// Request handling

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    if shared.down.load(Ordering::SeqCst) {
        return broken_response();
    }
    let reply = shared.serve(&req, &body).await;
    if let Some(delay) = reply.delay {
        actix_rt::time::sleep(delay).await;
    }
    // Serialising a `Value` cannot fail.
    let body = serde_json::to_vec(&reply.body).unwrap_or_default();
    HttpResponse::build(reply.status)
        .content_type("application/json")
        .body(body)
}

/// A response whose body fails after the head, so the connection is cut
/// mid-answer: the client sees a network error, as if the server were
/// unreachable, and not a 5xx (after which teloxide would sleep 10 s).
fn broken_response() -> HttpResponse {
    let body = futures_util::stream::once(async {
        Err::<web::Bytes, io::Error>(io::Error::other("the fake Telegram is down"))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(body)
}

/// The Bot API methods the fake knows; the discriminant indexes counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    GetMe,
    GetUpdates,
    SendMessage,
    CopyMessage,
    CopyMessages,
    ForwardMessage,
    ForwardMessages,
    Unknown,
}

const METHOD_COUNT: usize = 8;

impl Method {
    const ALL: [Method; METHOD_COUNT] = [
        Method::GetMe,
        Method::GetUpdates,
        Method::SendMessage,
        Method::CopyMessage,
        Method::CopyMessages,
        Method::ForwardMessage,
        Method::ForwardMessages,
        Method::Unknown,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::GetMe => "getMe",
            Method::GetUpdates => "getUpdates",
            Method::SendMessage => "sendMessage",
            Method::CopyMessage => "copyMessage",
            Method::CopyMessages => "copyMessages",
            Method::ForwardMessage => "forwardMessage",
            Method::ForwardMessages => "forwardMessages",
            Method::Unknown => "unknown",
        }
    }

    /// Telegram matches method names case-insensitively.
    fn parse(name: &str) -> Method {
        Method::ALL[..METHOD_COUNT - 1]
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(name))
            .unwrap_or(Method::Unknown)
    }

    fn is_forward(self) -> bool {
        matches!(self, Method::ForwardMessage | Method::ForwardMessages)
    }

    fn is_batch(self) -> bool {
        matches!(self, Method::CopyMessages | Method::ForwardMessages)
    }
}

/// An HTTP answer in the Bot API's envelope.
#[derive(Clone, Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
    /// Answer only after this long ([`Fault::Slow`]).
    delay: Option<Duration>,
}

impl Reply {
    fn ok(result: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: json!({"ok": true, "result": result}),
            delay: None,
        }
    }

    fn error(code: u16, description: &str, parameters: Option<Value>) -> Self {
        let mut body = json!({"ok": false, "error_code": code, "description": description});
        if let Some(p) = parameters {
            body["parameters"] = p;
        }
        Self {
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
            delay: None,
        }
    }

    fn bad_request(description: &str) -> Self {
        Self::error(400, description, None)
    }

    fn not_found() -> Self {
        Self::error(404, "Not Found", None)
    }

    fn too_many(retry_after: u32) -> Self {
        Self::error(
            429,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(json!({"retry_after": retry_after})),
        )
    }

    fn fault(fault: &Fault) -> Self {
        match fault {
            Fault::Forbidden => Self::error(403, "Forbidden: bot was blocked by the user", None),
            Fault::BadRequest(description) => Self::bad_request(description),
            Fault::MigrateTo(to) => Self::error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                Some(json!({"migrate_to_chat_id": to})),
            ),
            Fault::ServerError => Self::error(500, "Internal Server Error", None),
            Fault::TooManyRequests { retry_after } => Self::too_many(*retry_after),
            // Handled by the caller: it is not an error.
            Fault::Slow(_) => Self::error(500, "Internal Server Error", None),
        }
    }
}

/// `/bot<token>/<method>` → (token, method).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (token, method) = path.strip_prefix("/bot")?.split_once('/')?;
    (!token.is_empty() && !method.is_empty() && !method.contains('/')).then_some((token, method))
}

/// A `chat_id`/`from_chat_id` value: an id or `@username`.
enum Target {
    Id(i64),
    Username(String),
}

/// Request parameters from the query string and the body, whatever its
/// encoding. Form and query values are strings (arrays JSON-encoded inside),
/// so the accessors accept both shapes.
struct Params(Map<String, Value>);

impl Params {
    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, Reply> {
        let mut map = Map::new();
        if !req.query_string().is_empty() {
            parse_form(req.query_string(), &mut map)?;
        }
        if !body.is_empty() {
            let content_type = req.content_type();
            if content_type.starts_with("multipart/") {
                return Err(Reply::bad_request(
                    "Bad Request: multipart/form-data is not supported by the fake",
                ));
            }
            if content_type == "application/x-www-form-urlencoded" {
                let text = std::str::from_utf8(body)
                    .map_err(|_| Reply::bad_request("Bad Request: body is not UTF-8"))?;
                parse_form(text, &mut map)?;
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(object)) => map.extend(object),
                    _ => {
                        return Err(Reply::bad_request(
                            "Bad Request: can't parse request body as a JSON object",
                        ));
                    }
                }
            }
        }
        Ok(Params(map))
    }

    fn int(&self, key: &str) -> Result<Option<i64>, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| invalid(key)),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid(key)),
            Some(_) => Err(invalid(key)),
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn target(&self, key: &str) -> Result<Option<Target>, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(|id| Some(Target::Id(id)))
                .ok_or_else(|| invalid(key)),
            Some(Value::String(s)) => match s.strip_prefix('@') {
                Some(name) => Ok(Some(Target::Username(name.to_ascii_lowercase()))),
                None => s
                    .trim()
                    .parse()
                    .map(|id| Some(Target::Id(id)))
                    .map_err(|_| Reply::bad_request("Bad Request: chat not found")),
            },
            Some(_) => Err(invalid(key)),
        }
    }

    /// A JSON array, or a string holding one (form encoding).
    fn array(&self, key: &str) -> Result<Option<Vec<Value>>, Reply> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| invalid(key)),
            Some(_) => Err(invalid(key)),
        }
    }
}

fn invalid(key: &str) -> Reply {
    Reply::bad_request(&format!("Bad Request: invalid parameter {key}"))
}

fn parse_form(text: &str, map: &mut Map<String, Value>) -> Result<(), Reply> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(text)
        .map_err(|_| Reply::bad_request("Bad Request: can't parse parameters"))?;
    for (key, value) in pairs.into_inner() {
        map.insert(key, Value::String(value));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// State

/// Everything the HTTP workers and the `FakeTelegram` handles share.
struct Shared {
    rules: Rules,
    state: Mutex<State>,
    /// Set by `set_down(true)`: a request a stopping worker still reads gets
    /// its connection broken instead of an answer.
    down: AtomicBool,
}

impl Shared {
    fn new(limits: FakeLimits) -> Self {
        Self {
            rules: Rules::new(&limits),
            state: Mutex::new(State::default()),
            down: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not turn every later request into a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn serve(&self, req: &HttpRequest, body: &[u8]) -> Reply {
        let path = split_path(req.path());
        let method = path.map_or(Method::Unknown, |(_, m)| Method::parse(m));
        let params = Params::parse(req, body);
        let (token, params) = {
            let mut st = self.lock();
            st.counters.requests_total += 1;
            st.counters.per_method[method as usize] += 1;
            let Some((token, _)) = path else {
                return Reply::not_found();
            };
            let Some(bot) = st.bots.get(token) else {
                st.counters.unauthorized_401 += 1;
                return Reply::error(401, "Unauthorized", None);
            };
            let params = match params {
                Ok(p) => p,
                Err(reply) => return reply,
            };
            match method {
                Method::Unknown => return Reply::not_found(),
                Method::GetMe => return Reply::ok(me_json(&bot.user)),
                // Long polling waits outside the lock.
                Method::GetUpdates => (token, params),
                _ => return st.send(&self.rules, token, method, &params),
            }
        };
        self.get_updates(token, &params)
            .await
            .unwrap_or_else(|reply| reply)
    }

    async fn get_updates(&self, token: &str, params: &Params) -> Result<Reply, Reply> {
        let offset = params.int("offset")?.unwrap_or(0);
        let limit = params.int("limit")?.unwrap_or(100).clamp(1, 100);
        let limit = usize::try_from(limit).unwrap_or(100);
        let timeout = params.int("timeout")?.unwrap_or(0);
        let timeout = u64::try_from(timeout)
            .unwrap_or(0)
            .min(MAX_POLL_TIMEOUT_SECS);
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let notify = match self.lock().bots.get(token) {
            Some(bot) => Arc::clone(&bot.notify),
            None => return Err(Reply::error(401, "Unauthorized", None)),
        };
        loop {
            // Registered before looking at the queue, so an update pushed in
            // between still wakes us.
            let mut notified = std::pin::pin!(notify.notified());
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                let bot = st.bots.get_mut(token).expect("bots are never removed");
                bot.confirm(offset);
                if !bot.updates.is_empty() || Instant::now() >= deadline {
                    let updates = bot
                        .updates
                        .iter()
                        .take(limit)
                        .map(|(_, u)| u.clone())
                        .collect();
                    return Ok(Reply::ok(Value::Array(updates)));
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(remaining, notified).await;
        }
    }
}

/// A rate limit: at most `count` requests in any window of `window`.
#[derive(Clone, Copy, Debug)]
struct Rule {
    count: usize,
    window: Duration,
}

impl Rule {
    /// `rate` requests per `window`, as an integer count over a window scaled
    /// so that count/window is exactly the rate (0.5/s → 1 per 2 s, 1.5/s →
    /// 1 per 0.667 s, 30/s → 30 per 1 s). A rate that is not a positive
    /// number means no limit.
    fn new(rate: f64, window: Duration) -> Option<Self> {
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        let count = rate.floor().max(1.0);
        Some(Self {
            count: count as usize,
            window: window.mul_f64(count / rate),
        })
    }
}

/// The limits in force; `None` where nothing is enforced.
#[derive(Clone, Copy, Debug)]
struct Rules {
    bot: Option<Rule>,
    private: Option<Rule>,
    group: Option<Rule>,
}

impl Rules {
    fn new(limits: &FakeLimits) -> Self {
        if !limits.enforce {
            return Self {
                bot: None,
                private: None,
                group: None,
            };
        }
        let second = Duration::from_secs(1);
        Self {
            bot: Rule::new(limits.per_bot_per_second, second),
            private: Rule::new(limits.per_chat_per_second, second),
            group: Rule::new(limits.per_group_per_minute, Duration::from_secs(60)),
        }
    }
}

/// The instants of accepted requests still inside a sliding window.
#[derive(Default)]
struct Window(VecDeque<Instant>);

impl Window {
    /// How long until one more request fits, or `None` if it fits now. The
    /// window is (now − window, now]: a request exactly one window after an
    /// earlier one no longer sees it.
    fn wait(&mut self, rule: Rule, now: Instant) -> Option<Duration> {
        while let Some(&t) = self.0.front() {
            if now.saturating_duration_since(t) >= rule.window {
                self.0.pop_front();
            } else {
                break;
            }
        }
        if self.0.len() < rule.count {
            return None;
        }
        let oldest = self.0[self.0.len() - rule.count];
        Some(
            rule.window
                .saturating_sub(now.saturating_duration_since(oldest)),
        )
    }

    fn record(&mut self, now: Instant) {
        self.0.push_back(now);
    }
}

/// Whole seconds to wait, rounded up, at least 1 (Telegram never says 0).
fn retry_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct State {
    bots: HashMap<String, BotState>,
    channels: HashMap<i64, Channel>,
    /// Lower-case channel username (no `@`) → chat id.
    usernames: HashMap<String, i64>,
    chats: HashMap<i64, DestChat>,
    /// Channel message text → the messages with it, for attributing
    /// `sendMessage` to a post.
    texts: HashMap<String, Vec<(i64, i32)>>,
    faults: HashMap<i64, ArmedFault>,
    counters: Counters,
    next_request_id: u64,
}

struct ArmedFault {
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Default)]
struct Counters {
    requests_total: u64,
    messages_received: u64,
    rate_limited_429: u64,
    faults_injected: u64,
    unauthorized_401: u64,
    per_method: [u64; METHOD_COUNT],
}

struct BotState {
    id: i64,
    /// The bot's `User` JSON, built once.
    user: Value,
    /// Pending updates (id, JSON), oldest first.
    updates: VecDeque<(u32, Value)>,
    next_update_id: u32,
    /// Wakes long polls when an update is queued.
    notify: Arc<Notify>,
    window: Window,
    /// Per destination chat (Telegram's per-chat limits are per bot).
    chat_windows: HashMap<i64, Window>,
}

impl BotState {
    fn new(id: i64) -> Self {
        Self {
            id,
            user: json!({
                "id": id,
                "is_bot": true,
                "first_name": format!("Fake bot {id}"),
                "username": format!("fake{id}_bot"),
            }),
            updates: VecDeque::new(),
            next_update_id: 1,
            notify: Arc::new(Notify::new()),
            window: Window::default(),
            chat_windows: HashMap::new(),
        }
    }

    fn push_update(&mut self, kind: &str, payload: Value) {
        let id = self.next_update_id;
        self.next_update_id += 1;
        let mut update = Map::with_capacity(2);
        update.insert("update_id".to_owned(), id.into());
        update.insert(kind.to_owned(), payload);
        self.updates.push_back((id, Value::Object(update)));
        self.notify.notify_waiters();
    }

    /// Drops confirmed updates: ids below a positive offset; with a negative
    /// offset all but the last −offset, as Telegram does.
    fn confirm(&mut self, offset: i64) {
        if offset > 0 {
            while self
                .updates
                .front()
                .is_some_and(|(id, _)| i64::from(*id) < offset)
            {
                self.updates.pop_front();
            }
        } else if offset < 0 {
            let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
            while self.updates.len() > keep {
                self.updates.pop_front();
            }
        }
    }
}

struct Channel {
    /// The channel's `Chat` JSON, built once.
    chat: Value,
    /// Message id n is at index n − 1.
    messages: Vec<ChannelMessage>,
    /// The post (first message id) of each message, same indexing.
    post_first: Vec<i32>,
    /// Album id → first message id.
    albums: HashMap<String, i32>,
    /// First message id of an album → all its message ids.
    album_parts: HashMap<i32, Vec<i32>>,
    /// Tokens of the admin bots.
    admins: Vec<String>,
}

impl Channel {
    fn new(chat: Value) -> Self {
        Self {
            chat,
            messages: Vec::new(),
            post_first: Vec::new(),
            albums: HashMap::new(),
            album_parts: HashMap::new(),
            admins: Vec::new(),
        }
    }

    fn message(&self, id: i32) -> Option<&ChannelMessage> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.messages.get(index)
    }

    fn post_of(&self, id: i32) -> i32 {
        usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.post_first.get(i))
            .copied()
            .unwrap_or(id)
    }
}

struct DestChat {
    kind: ChatKind,
    /// The chat's `Chat` JSON, built once.
    chat: Value,
    received: Vec<ReceivedMessage>,
    next_message_id: i32,
    /// Copies received per source message, for attribution.
    copies: HashMap<(i64, i32), u32>,
}

impl DestChat {
    fn new(kind: ChatKind, chat: Value) -> Self {
        Self {
            kind,
            chat,
            received: Vec::new(),
            next_message_id: 1,
            copies: HashMap::new(),
        }
    }

    fn next_id(&mut self) -> i32 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }
}

/// What a validated sending request will deliver.
enum Content {
    Text { text: String, entities: Vec<Value> },
    Messages { source: i64, ids: Vec<i32> },
}

impl State {
    fn ensure_bot(&mut self, token: &str) -> &mut BotState {
        if !self.bots.contains_key(token) {
            let id = token
                .split_once(':')
                .and_then(|(id, _)| id.parse::<i64>().ok())
                .filter(|id| *id > 0)
                .unwrap_or_else(|| {
                    panic!("fake Telegram: a bot token is \"<bot id>:<secret>\" with a numeric id")
                });
            self.bots.insert(token.to_owned(), BotState::new(id));
        }
        self.bots.get_mut(token).expect("inserted above")
    }

    fn kind_of(&self, chat_id: i64) -> ChatKind {
        match self.chats.get(&chat_id) {
            Some(chat) => chat.kind,
            None if self.channels.contains_key(&chat_id) => ChatKind::Channel,
            None => ChatKind::implicit(chat_id),
        }
    }

    fn resolve(&self, target: Target) -> Option<i64> {
        match target {
            Target::Id(id) => Some(id),
            Target::Username(name) => self.usernames.get(&name).copied(),
        }
    }

    /// Consumes one application of the chat's fault, if any.
    fn take_fault(&mut self, chat_id: i64) -> Option<Fault> {
        let Entry::Occupied(mut entry) = self.faults.entry(chat_id) else {
            return None;
        };
        let armed = entry.get_mut();
        let fault = armed.fault.clone();
        if let Some(n) = armed.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                entry.remove();
            }
        }
        self.counters.faults_injected += 1;
        if matches!(fault, Fault::TooManyRequests { .. }) {
            self.counters.rate_limited_429 += 1;
        }
        Some(fault)
    }

    /// sendMessage, copyMessage(s), forwardMessage(s): fault, validation,
    /// limits, then delivery. Nothing is recorded unless all pass.
    fn send(&mut self, rules: &Rules, token: &str, method: Method, params: &Params) -> Reply {
        let dest = match params.target("chat_id") {
            Ok(Some(target)) => match self.resolve(target) {
                Some(id) => id,
                None => return Reply::bad_request("Bad Request: chat not found"),
            },
            Ok(None) => return Reply::bad_request("Bad Request: chat_id is empty"),
            Err(reply) => return reply,
        };
        let delay = match self.take_fault(dest) {
            Some(Fault::Slow(delay)) => Some(delay),
            Some(fault) => return Reply::fault(&fault),
            None => None,
        };
        let mut reply = self
            .deliver(rules, token, method, params, dest)
            .unwrap_or_else(|reply| reply);
        reply.delay = delay;
        reply
    }

    fn deliver(
        &mut self,
        rules: &Rules,
        token: &str,
        method: Method,
        params: &Params,
        dest: i64,
    ) -> Result<Reply, Reply> {
        let content = match method {
            Method::SendMessage => self.validate_text(params)?,
            Method::CopyMessage | Method::ForwardMessage => self.validate_single(params, method)?,
            _ => self.validate_batch(params, method)?,
        };
        let now = Instant::now();
        self.check_limits(rules, token, dest, now)?;
        Ok(self.commit(token, method, dest, content, now))
    }

    fn validate_text(&self, params: &Params) -> Result<Content, Reply> {
        let text = params.text("text").unwrap_or_default();
        if text.is_empty() {
            return Err(Reply::bad_request("Bad Request: message text is empty"));
        }
        if text.encode_utf16().count() > MAX_TEXT_UTF16 {
            return Err(Reply::bad_request("Bad Request: message is too long"));
        }
        let entities = params.array("entities")?.unwrap_or_default();
        Ok(Content::Text { text, entities })
    }

    fn not_found(method: Method) -> Reply {
        Reply::bad_request(if method.is_forward() {
            "Bad Request: message to forward not found"
        } else {
            "Bad Request: message to copy not found"
        })
    }

    /// The source channel of a copy or forward.
    fn source_channel(&self, params: &Params, method: Method) -> Result<(i64, &Channel), Reply> {
        let source = params
            .target("from_chat_id")?
            .and_then(|t| self.resolve(t))
            .ok_or_else(|| Self::not_found(method))?;
        let channel = self
            .channels
            .get(&source)
            .ok_or_else(|| Self::not_found(method))?;
        Ok((source, channel))
    }

    fn validate_single(&self, params: &Params, method: Method) -> Result<Content, Reply> {
        let (source, channel) = self.source_channel(params, method)?;
        let id = params
            .int("message_id")?
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| Self::not_found(method))?;
        let message = channel.message(id).ok_or_else(|| Self::not_found(method))?;
        if message.protected {
            return Err(Reply::bad_request(if method.is_forward() {
                "Bad Request: message can't be forwarded"
            } else {
                "Bad Request: message can't be copied"
            }));
        }
        Ok(Content::Messages {
            source,
            ids: vec![id],
        })
    }

    fn validate_batch(&self, params: &Params, method: Method) -> Result<Content, Reply> {
        let (source, channel) = self.source_channel(params, method)?;
        let raw = params.array("message_ids")?.unwrap_or_default();
        if raw.is_empty() {
            return Err(Reply::bad_request(
                "Bad Request: message identifiers are not specified",
            ));
        }
        if raw.len() > MAX_BATCH {
            return Err(Reply::bad_request("Bad Request: too many messages"));
        }
        let mut ids = Vec::with_capacity(raw.len());
        let mut previous = 0;
        for value in &raw {
            let id = value
                .as_i64()
                .and_then(|id| i32::try_from(id).ok())
                .ok_or_else(|| invalid("message_ids"))?;
            if id <= previous {
                return Err(Reply::bad_request(
                    "Bad Request: message identifiers must be in strictly increasing order",
                ));
            }
            previous = id;
            let message = channel.message(id).ok_or_else(|| Self::not_found(method))?;
            // Telegram skips what it may not copy rather than failing.
            if !message.protected {
                ids.push(id);
            }
        }
        Ok(Content::Messages { source, ids })
    }

    /// Checks the bot and chat windows; when both allow, takes a slot in each.
    fn check_limits(
        &mut self,
        rules: &Rules,
        token: &str,
        dest: i64,
        now: Instant,
    ) -> Result<(), Reply> {
        let chat_rule = if self.kind_of(dest) == ChatKind::Private {
            rules.private
        } else {
            rules.group
        };
        let bot = self.bots.get_mut(token).expect("authorised bot");
        let mut wait = rules.bot.and_then(|rule| bot.window.wait(rule, now));
        if let Some(rule) = chat_rule {
            let chat_wait = bot.chat_windows.entry(dest).or_default().wait(rule, now);
            wait = wait.max(chat_wait);
        }
        if let Some(wait) = wait {
            self.counters.rate_limited_429 += 1;
            return Err(Reply::too_many(retry_secs(wait)));
        }
        if rules.bot.is_some() {
            bot.window.record(now);
        }
        if chat_rule.is_some()
            && let Some(window) = bot.chat_windows.get_mut(&dest)
        {
            window.record(now);
        }
        Ok(())
    }

    fn commit(
        &mut self,
        token: &str,
        method: Method,
        dest: i64,
        content: Content,
        now: Instant,
    ) -> Reply {
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let bot = &self.bots[token];
        let bot_id = bot.id;
        let chat = self
            .chats
            .entry(dest)
            .or_insert_with(|| new_dest_chat(dest, &self.channels));
        match content {
            Content::Text { text, entities } => {
                let source = attribute(&self.texts, &chat.copies, &text);
                if let Some(source) = source {
                    *chat.copies.entry(source).or_default() += 1;
                }
                let message_id = chat.next_id();
                let mut result = sent_message_json(message_id, chat, &bot.user);
                result.insert("text".to_owned(), Value::String(text.clone()));
                if !entities.is_empty() {
                    result.insert("entities".to_owned(), Value::Array(entities.clone()));
                }
                chat.received.push(ReceivedMessage {
                    message_id,
                    method: method.name(),
                    source,
                    text: Some(text),
                    entities,
                    media_group_id: None,
                    received_at: now,
                    bot_id,
                    request_id,
                });
                self.counters.messages_received += 1;
                Reply::ok(Value::Object(result))
            }
            Content::Messages { source, ids } => {
                let channel = &self.channels[&source];
                let batch = method.is_batch();
                let mut result_ids = Vec::with_capacity(ids.len());
                let mut forwarded = None;
                for id in ids {
                    let message = channel.message(id).expect("validated");
                    let message_id = chat.next_id();
                    *chat.copies.entry((source, id)).or_default() += 1;
                    if method == Method::ForwardMessage {
                        let mut m = sent_message_json(message_id, chat, &bot.user);
                        m.insert(
                            "forward_origin".to_owned(),
                            json!({
                                "type": "channel",
                                "chat": channel.chat,
                                "message_id": id,
                                "date": message.date,
                            }),
                        );
                        put_content(&mut m, source, message, false);
                        forwarded = Some(Value::Object(m));
                    } else {
                        result_ids.push(json!({ "message_id": message_id }));
                    }
                    chat.received.push(ReceivedMessage {
                        message_id,
                        method: method.name(),
                        source: Some((source, id)),
                        text: message.text.clone(),
                        entities: message.entities.clone(),
                        media_group_id: if batch {
                            message.media_group_id.clone()
                        } else {
                            None
                        },
                        received_at: now,
                        bot_id,
                        request_id,
                    });
                    self.counters.messages_received += 1;
                }
                let result = match method {
                    Method::ForwardMessage => forwarded.unwrap_or(Value::Null),
                    Method::CopyMessage => result_ids.pop().unwrap_or(Value::Null),
                    _ => Value::Array(result_ids),
                };
                Reply::ok(result)
            }
        }
    }

    fn report(&self, expected: &[(i64, i64, i32)]) -> DeliveryReport {
        /// What arrived of one post in one chat.
        struct Seen {
            first_at: Instant,
            /// Copies per message id of the post.
            copies: HashMap<i32, u32>,
            /// Parts per request.
            per_request: HashMap<u64, u32>,
        }

        let post_of = |source: i64, id: i32| {
            self.channels
                .get(&source)
                .map_or(id, |channel| channel.post_of(id))
        };
        let expected: HashSet<(i64, i64, i32)> = expected
            .iter()
            .map(|&(dest, source, id)| (dest, source, post_of(source, id)))
            .collect();

        let mut seen: HashMap<(i64, i64, i32), Seen> = HashMap::new();
        let mut unexpected: HashSet<(i64, i64, i32)> = HashSet::new();
        let mut highest: HashMap<(i64, i64), i32> = HashMap::new();
        let mut report = DeliveryReport {
            expected: expected.len() as u64,
            ..DeliveryReport::default()
        };
        for (&dest, chat) in &self.chats {
            for r in &chat.received {
                let Some((source, id)) = r.source else {
                    report.unexpected += 1;
                    continue;
                };
                let key = (dest, source, post_of(source, id));
                if !expected.contains(&key) {
                    unexpected.insert(key);
                    continue;
                }
                let s = match seen.entry(key) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let high = highest.entry((dest, source)).or_insert(key.2);
                        if key.2 < *high {
                            report.out_of_order += 1;
                        } else {
                            *high = key.2;
                        }
                        e.insert(Seen {
                            first_at: r.received_at,
                            copies: HashMap::new(),
                            per_request: HashMap::new(),
                        })
                    }
                };
                *s.copies.entry(id).or_default() += 1;
                *s.per_request.entry(r.request_id).or_default() += 1;
            }
        }
        report.unexpected += unexpected.len() as u64;
        report.delivered = seen.len() as u64;

        let mut latencies = Vec::with_capacity(seen.len());
        for (&(_, source, post), s) in &seen {
            let copies = s.copies.values().copied().max().unwrap_or(1);
            report.duplicates += u64::from(copies - 1);
            let Some(channel) = self.channels.get(&source) else {
                continue;
            };
            if let Some(parts) = channel.album_parts.get(&post) {
                let distinct = s.copies.len();
                let together = s.per_request.values().copied().max().unwrap_or(0);
                if parts.len() > 1 && (together as usize) < distinct {
                    report.albums_split += 1;
                }
                let missing = parts
                    .iter()
                    .filter(|id| channel.message(**id).is_some_and(|m| !m.protected))
                    .filter(|id| !s.copies.contains_key(id))
                    .count();
                report.album_parts_missing += missing as u64;
            }
            if let Some(message) = channel.message(post) {
                let latency = s.first_at.saturating_duration_since(message.posted_at);
                latencies.push(latency.as_secs_f64() * 1000.0);
            }
        }
        report.lost = report.expected - report.delivered;
        latencies.sort_by(f64::total_cmp);
        report.latency_p50_ms = percentile(&latencies, 0.50);
        report.latency_p99_ms = percentile(&latencies, 0.99);
        report.latency_max_ms = latencies.last().copied().unwrap_or(0.0);
        report
    }
}

/// Nearest-rank percentile of sorted values; 0 when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The channel message a `sendMessage` text came from: among the channel
/// messages with exactly this text, the newest one this chat has not received
/// yet, else the newest.
fn attribute(
    texts: &HashMap<String, Vec<(i64, i32)>>,
    copies: &HashMap<(i64, i32), u32>,
    text: &str,
) -> Option<(i64, i32)> {
    let candidates = texts.get(text)?;
    candidates
        .iter()
        .rev()
        .find(|c| !copies.contains_key(c))
        .or_else(|| candidates.last())
        .copied()
}

fn new_dest_chat(chat_id: i64, channels: &HashMap<i64, Channel>) -> DestChat {
    let kind = if channels.contains_key(&chat_id) {
        ChatKind::Channel
    } else {
        ChatKind::implicit(chat_id)
    };
    DestChat::new(kind, dest_chat_json(chat_id, kind, channels))
}

// ---------------------------------------------------------------------------
// Wire JSON (shapes checked against teloxide-core 0.13's types by the tests)

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn me_json(user: &Value) -> Value {
    let mut me = user.clone();
    for flag in [
        "can_join_groups",
        "can_read_all_group_messages",
        "supports_inline_queries",
        "can_connect_to_business",
        "has_main_web_app",
    ] {
        me[flag] = Value::Bool(false);
    }
    me
}

fn channel_chat_json(chat_id: i64, username: &str, title: &str) -> Value {
    let mut chat = json!({"id": chat_id, "type": "channel", "title": title});
    if !username.is_empty() {
        chat["username"] = Value::String(username.to_owned());
    }
    chat
}

fn dest_chat_json(chat_id: i64, kind: ChatKind, channels: &HashMap<i64, Channel>) -> Value {
    match kind {
        ChatKind::Private => {
            json!({"id": chat_id, "type": "private", "first_name": format!("User {chat_id}")})
        }
        ChatKind::Group => {
            json!({"id": chat_id, "type": "group", "title": format!("Group {chat_id}")})
        }
        ChatKind::Supergroup => {
            json!({"id": chat_id, "type": "supergroup", "title": format!("Supergroup {chat_id}")})
        }
        ChatKind::Channel => match channels.get(&chat_id) {
            Some(channel) => channel.chat.clone(),
            None => {
                json!({"id": chat_id, "type": "channel", "title": format!("Channel {chat_id}")})
            }
        },
    }
}

/// A `ChatMember` of the bot: an administrator who may post, or gone.
fn member_json(user: &Value, admin: bool) -> Value {
    if admin {
        json!({
            "user": user,
            "status": "administrator",
            "can_be_edited": false,
            "is_anonymous": false,
            "can_manage_chat": true,
            "can_change_info": false,
            "can_post_messages": true,
            "can_edit_messages": true,
            "can_delete_messages": true,
            "can_post_stories": false,
            "can_edit_stories": false,
            "can_delete_stories": false,
            "can_manage_video_chats": false,
            "can_invite_users": true,
            "can_restrict_members": false,
            "can_promote_members": false,
        })
    } else {
        json!({"user": user, "status": "left"})
    }
}

/// The envelope of a message the bot sent: in a channel it is signed by the
/// channel (`sender_chat`), elsewhere by the bot (`from`).
fn sent_message_json(message_id: i32, chat: &DestChat, bot_user: &Value) -> Map<String, Value> {
    let mut m = Map::with_capacity(8);
    m.insert("message_id".to_owned(), message_id.into());
    if chat.kind == ChatKind::Channel {
        m.insert("sender_chat".to_owned(), chat.chat.clone());
    } else {
        m.insert("from".to_owned(), bot_user.clone());
    }
    m.insert("date".to_owned(), unix_now().into());
    m.insert("chat".to_owned(), chat.chat.clone());
    m
}

fn channel_post_json(chat_id: i64, chat: &Value, message: &ChannelMessage) -> Value {
    let mut m = Map::with_capacity(10);
    m.insert("message_id".to_owned(), message.id.into());
    m.insert("sender_chat".to_owned(), chat.clone());
    m.insert("date".to_owned(), message.date.into());
    m.insert("chat".to_owned(), chat.clone());
    put_content(&mut m, chat_id, message, true);
    if message.protected {
        m.insert("has_protected_content".to_owned(), Value::Bool(true));
    }
    Value::Object(m)
}

/// Text and entities, or media with caption and caption entities.
fn put_content(m: &mut Map<String, Value>, chat_id: i64, message: &ChannelMessage, album: bool) {
    let entities = (!message.entities.is_empty()).then(|| Value::Array(message.entities.clone()));
    let Some(kind) = message.media else {
        let text = message.text.clone().unwrap_or_default();
        m.insert("text".to_owned(), Value::String(text));
        if let Some(entities) = entities {
            m.insert("entities".to_owned(), entities);
        }
        return;
    };
    let id = message.id;
    let file_id = format!("fake-{chat_id}-{id}");
    let unique_id = format!("u{chat_id}_{id}");
    let (key, media) = match kind {
        MediaKind::Photo => (
            "photo",
            json!([{"file_id": file_id, "file_unique_id": unique_id, "file_size": 51_200,
                    "width": 1280, "height": 720}]),
        ),
        MediaKind::Video => (
            "video",
            json!({"file_id": file_id, "file_unique_id": unique_id, "file_size": 1_048_576,
                   "width": 1280, "height": 720, "duration": 10, "mime_type": "video/mp4"}),
        ),
        MediaKind::Document => (
            "document",
            json!({"file_id": file_id, "file_unique_id": unique_id, "file_size": 2048,
                   "file_name": format!("file{id}.bin"), "mime_type": "application/octet-stream"}),
        ),
    };
    m.insert(key.to_owned(), media);
    if let Some(caption) = &message.text {
        m.insert("caption".to_owned(), Value::String(caption.clone()));
        if let Some(entities) = entities {
            m.insert("caption_entities".to_owned(), entities);
        }
    }
    if album && let Some(group) = &message.media_group_id {
        m.insert("media_group_id".to_owned(), Value::String(group.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_is_exact_for_fractional_rates() {
        let r = Rule::new(1.0, Duration::from_secs(1)).unwrap();
        assert_eq!((r.count, r.window), (1, Duration::from_secs(1)));
        let r = Rule::new(20.0, Duration::from_secs(60)).unwrap();
        assert_eq!((r.count, r.window), (20, Duration::from_secs(60)));
        let r = Rule::new(0.5, Duration::from_secs(1)).unwrap();
        assert_eq!((r.count, r.window), (1, Duration::from_secs(2)));
        assert!(Rule::new(0.0, Duration::from_secs(1)).is_none());
        assert!(Rule::new(f64::NAN, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn window_frees_exactly_one_window_later() {
        let rule = Rule::new(2.0, Duration::from_secs(1)).unwrap();
        let mut w = Window::default();
        let t0 = Instant::now();
        assert_eq!(w.wait(rule, t0), None);
        w.record(t0);
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(w.wait(rule, t1), None);
        w.record(t1);
        let t2 = t0 + Duration::from_millis(999);
        assert_eq!(w.wait(rule, t2), Some(Duration::from_millis(1)));
        // (now − 1 s, now]: the send at t0 is out of the window at t0 + 1 s.
        assert_eq!(w.wait(rule, t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_secs(Duration::from_secs(60)), 60);
    }

    #[test]
    fn path_split() {
        assert_eq!(split_path("/bot1:a/getMe"), Some(("1:a", "getMe")));
        assert_eq!(split_path("/bot/getMe"), None);
        assert_eq!(split_path("/x1:a/getMe"), None);
        assert_eq!(split_path("/bot1:a/getMe/x"), None);
        assert_eq!(Method::parse("COPYMESSAGES"), Method::CopyMessages);
        assert_eq!(Method::parse("sendPhoto"), Method::Unknown);
    }

    #[tokio::test]
    async fn a_request_caught_while_going_down_fails_at_the_network_level() {
        use teloxide::requests::Requester;

        let tg = FakeTelegram::start(FakeLimits::off()).unwrap();
        tg.add_bot("7:x");
        let bot = tg.bot("7:x");
        bot.get_me().await.expect("up");
        // What a stopping worker does with a request it still reads.
        tg.shared.down.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let err = bot.get_me().await.unwrap_err();
        assert!(matches!(err, teloxide::RequestError::Network(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "no 5xx delay");
        tg.shared.down.store(false, Ordering::SeqCst);
        bot.get_me().await.expect("up again");
    }

    #[test]
    fn percentile_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 0.5) - 2.0).abs() < f64::EPSILON);
        assert!((percentile(&v, 0.99) - 4.0).abs() < f64::EPSILON);
        assert!(percentile(&[], 0.5).abs() < f64::EPSILON);
    }
}
