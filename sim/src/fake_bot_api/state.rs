//! What the fake records: bots and their updates, channels and their
//! history, destination chats and what they received, armed faults,
//! counters, and the state of the simulated people, mirrored messages and
//! forums. How a sending request is delivered into it is `send.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::faults::ArmedFault;
use super::json::dest_chat_json;
use super::limits::Window;
use super::wire::METHOD_COUNT;
use super::{ChannelMessage, ChatKind, ReceivedMessage};

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
    /// Fields `getMe` leaves out ([`FakeTelegram::omit_get_me_field`](super::FakeTelegram::omit_get_me_field)).
    pub(super) get_me_omits: Vec<String>,
    /// The bot's standing by (chat, bot id), as a test set it (`access.rs`).
    pub(super) standing: HashMap<(i64, i64), super::access::BotStanding>,
    /// Tokens revoked (as by BotFather): every request with one gets 401.
    pub(super) revoked: std::collections::HashSet<String>,
    pub(super) counters: Counters,
    pub(super) next_request_id: u64,
    /// The simulated people: users, memberships, answers (`people.rs`).
    pub(super) people: super::people::People,
    /// Edits and deletions of sent messages (`mirror.rs`).
    pub(super) mirror: super::mirror::MirrorState,
    /// Forum supergroups and their topics (`forum.rs`).
    pub(super) forums: super::forum::Forums,
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
    /// Every request by client (any method, getUpdates included), for
    /// base URLs `…/c/<client>`.
    pub(super) requests_by_client: HashMap<String, u64>,
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
    pub(super) window: Window,
    /// All its messages, paid or not, against the paid broadcast limit.
    pub(super) paid_window: Window,
    /// Per destination chat (Telegram's per-chat limits are per bot).
    pub(super) chat_windows: HashMap<i64, Window>,
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
            paid_window: Window::default(),
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
    /// Ids not published yet to refuse by id once they are
    /// (`FakeTelegram::refuse_by_id` before the post).
    pub(super) refused_ahead: std::collections::HashSet<i32>,
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
            refused_ahead: std::collections::HashSet::new(),
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
    pub(super) copies: HashMap<(i64, i32), u32>,
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
}

pub(super) fn new_dest_chat(chat_id: i64, channels: &HashMap<i64, Channel>) -> DestChat {
    let kind = if channels.contains_key(&chat_id) {
        ChatKind::Channel
    } else {
        ChatKind::implicit(chat_id)
    };
    DestChat::new(kind, dest_chat_json(chat_id, kind, channels))
}
