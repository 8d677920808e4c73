//! What the fake records (bots and their updates, channels and their
//! history, destination chats and what they received, armed faults,
//! counters) and how a sending request is validated, limited and delivered.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::json::{dest_chat_json, put_content, sent_message_json};
use super::limits::{Rules, Window, retry_secs};
use super::report::attribute;
use super::wire::{METHOD_COUNT, Method, Params, Reply, Target, invalid};
use super::{ChannelMessage, ChatKind, Fault, ReceivedMessage};

/// Longest text `sendMessage` accepts, in UTF-16 code units (Telegram's unit).
const MAX_TEXT_UTF16: usize = 4096;
/// Most message ids one `copyMessages`/`forwardMessages` request may carry.
const MAX_BATCH: usize = 100;
/// Telegram's longest media caption, in UTF-16 code units.
const MAX_CAPTION_UTF16: usize = 1024;

#[derive(Default)]
pub(super) struct State {
    pub(super) bots: HashMap<String, BotState>,
    pub(super) channels: HashMap<i64, Channel>,
    /// Lower-case channel username (no `@`) → chat id.
    pub(super) usernames: HashMap<String, i64>,
    pub(super) chats: HashMap<i64, DestChat>,
    /// Channel message text → the messages with it, for attributing
    /// `sendMessage` to a post.
    pub(super) texts: HashMap<String, Vec<(i64, i32)>>,
    pub(super) faults: HashMap<i64, ArmedFault>,
    /// Tokens revoked (as by BotFather): every request with one gets 401.
    pub(super) revoked: std::collections::HashSet<String>,
    pub(super) counters: Counters,
    next_request_id: u64,
    /// The simulated people: users, memberships, answers (`people.rs`).
    pub(super) people: super::people::People,
    /// Edits and deletions of sent messages (`mirror.rs`).
    pub(super) mirror: super::mirror::MirrorState,
    /// Forum supergroups and their topics (`forum.rs`).
    pub(super) forums: super::forum::Forums,
}

pub(super) struct ArmedFault {
    pub(super) fault: Fault,
    pub(super) remaining: Option<u32>,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests_total: u64,
    pub(super) messages_received: u64,
    pub(super) rate_limited_429: u64,
    pub(super) faults_injected: u64,
    pub(super) unauthorized_401: u64,
    pub(super) per_method: [u64; METHOD_COUNT],
    /// getUpdates calls that met another open one of the same bot (409).
    pub(super) get_updates_conflicts: u64,
    /// Send requests by client, for base URLs `…/c/<client>`.
    pub(super) sends_by_client: HashMap<String, u64>,
}

pub(super) struct BotState {
    pub(super) id: i64,
    /// The bot's `User` JSON, built once.
    pub(super) user: Value,
    /// Pending updates (id, JSON), oldest first.
    pub(super) updates: VecDeque<(u32, Value)>,
    next_update_id: u32,
    /// Wakes long polls when an update is queued.
    pub(super) notify: Arc<Notify>,
    /// getUpdates calls being answered now, and the ticket of the newest:
    /// as Telegram does, a second consumer ends the first with 409.
    pub(super) polls_open: u32,
    pub(super) poll_ticket: u64,
    window: Window,
    /// Per destination chat (Telegram's per-chat limits are per bot).
    chat_windows: HashMap<i64, Window>,
    /// The webhook URL set on the bot, if any (`getUpdates` is refused
    /// while one is set, as Telegram does).
    pub(super) webhook: Option<String>,
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
            polls_open: 0,
            poll_ticket: 0,
            window: Window::default(),
            chat_windows: HashMap::new(),
            webhook: None,
        }
    }

    pub(super) fn push_update(&mut self, kind: &str, payload: Value) {
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
    pub(super) fn confirm(&mut self, offset: i64) {
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

pub(super) struct Channel {
    /// The channel's `Chat` JSON, built once.
    pub(super) chat: Value,
    /// Message id n is at index n − 1.
    pub(super) messages: Vec<ChannelMessage>,
    /// The post (first message id) of each message, same indexing.
    pub(super) post_first: Vec<i32>,
    /// Album id → first message id.
    pub(super) albums: HashMap<String, i32>,
    /// First message id of an album → all its message ids.
    pub(super) album_parts: HashMap<i32, Vec<i32>>,
    /// Tokens of the admin bots.
    pub(super) admins: Vec<String>,
}

impl Channel {
    pub(super) fn new(chat: Value) -> Self {
        Self {
            chat,
            messages: Vec::new(),
            post_first: Vec::new(),
            albums: HashMap::new(),
            album_parts: HashMap::new(),
            admins: Vec::new(),
        }
    }

    pub(super) fn message(&self, id: i32) -> Option<&ChannelMessage> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.messages.get(index)
    }

    pub(super) fn post_of(&self, id: i32) -> i32 {
        usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.post_first.get(i))
            .copied()
            .unwrap_or(id)
    }
}

pub(super) struct DestChat {
    pub(super) kind: ChatKind,
    /// The chat's `Chat` JSON, built once.
    pub(super) chat: Value,
    pub(super) received: Vec<ReceivedMessage>,
    next_message_id: i32,
    /// Copies received per source message, for attribution.
    copies: HashMap<(i64, i32), u32>,
}

impl DestChat {
    pub(super) fn new(kind: ChatKind, chat: Value) -> Self {
        Self {
            kind,
            chat,
            received: Vec::new(),
            next_message_id: 1,
            copies: HashMap::new(),
        }
    }

    pub(super) fn next_id(&mut self) -> i32 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }
}

/// What a validated sending request will deliver.
enum Content {
    Text {
        text: String,
        entities: Vec<Value>,
        reply_markup: Option<Value>,
    },
    Messages {
        source: i64,
        ids: Vec<i32>,
        /// `copyMessage`'s `caption` and `caption_entities`, replacing the source's.
        caption: Option<(String, Vec<Value>)>,
    },
}

impl State {
    pub(super) fn ensure_bot(&mut self, token: &str) -> &mut BotState {
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
    pub(super) fn take_fault(&mut self, chat_id: i64) -> Option<Fault> {
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
    pub(super) fn send(
        &mut self,
        rules: &Rules,
        token: &str,
        method: Method,
        params: &Params,
    ) -> Reply {
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
        let thread = self.check_thread(dest, params)?;
        let now = Instant::now();
        self.check_limits(rules, token, dest, now)?;
        let paid = params.flag("allow_paid_broadcast");
        Ok(self.commit(token, method, dest, content, now, (paid, thread)))
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
        let reply_markup = params.json("reply_markup");
        Ok(Content::Text {
            text,
            entities,
            reply_markup,
        })
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
        let caption = match params.text("caption") {
            Some(c) if method == Method::CopyMessage => {
                if c.encode_utf16().count() > MAX_CAPTION_UTF16 {
                    return Err(Reply::bad_request(
                        "Bad Request: message caption is too long",
                    ));
                }
                Some((c, params.array("caption_entities")?.unwrap_or_default()))
            }
            _ => None,
        };
        Ok(Content::Messages {
            source,
            ids: vec![id],
            caption,
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
        Ok(Content::Messages {
            source,
            ids,
            caption: None,
        })
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
        (paid, thread): (bool, Option<i32>),
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
            Content::Text {
                text,
                entities,
                reply_markup,
            } => {
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
                if let Some(markup) = &reply_markup {
                    result.insert("reply_markup".to_owned(), markup.clone());
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
                    message_thread_id: thread,
                    request_id,
                    reply_markup,
                    allow_paid_broadcast: paid,
                    edits: 0,
                });
                self.counters.messages_received += 1;
                Reply::ok(Value::Object(result))
            }
            Content::Messages {
                source,
                ids,
                caption,
            } => {
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
                        text: match &caption {
                            Some((c, _)) => Some(c.clone()),
                            None => message.text.clone(),
                        },
                        entities: match &caption {
                            Some((_, e)) => e.clone(),
                            None => message.entities.clone(),
                        },
                        media_group_id: if batch {
                            message.media_group_id.clone()
                        } else {
                            None
                        },
                        received_at: now,
                        bot_id,
                        message_thread_id: thread,
                        request_id,
                        reply_markup: None,
                        allow_paid_broadcast: paid,
                        edits: 0,
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
}

pub(super) fn new_dest_chat(chat_id: i64, channels: &HashMap<i64, Channel>) -> DestChat {
    let kind = if channels.contains_key(&chat_id) {
        ChatKind::Channel
    } else {
        ChatKind::implicit(chat_id)
    };
    DestChat::new(kind, dest_chat_json(chat_id, kind, channels))
}
