//! The channels the Bot API face plays: created and renamed by a test,
//! their admin bots (a `my_chat_member` update on every change), posts
//! published into them (a `channel_post` to every admin bot, and the post
//! hook the MTProto face listens on), and their history as a reader reads
//! it.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::json::{channel_chat_json, channel_post_json, member_json, unix_now};
use super::state::{Channel, State};
use super::{ChannelMessage, FakeTelegram, NewChannelMessage};

/// A function told of every post published on the Bot API face (its channel
/// id and the message), e.g. to mirror it onto the MTProto face.
pub type PostHook = Arc<dyn Fn(i64, &ChannelMessage) + Send + Sync>;

/// The user who promotes bots in the `my_chat_member` updates.
const OWNER_USER_ID: i64 = 100_000_001;

impl FakeTelegram {
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

    /// Makes the bot an administrator of the channel, or takes that away.
    /// An admin bot receives every later post as a `channel_post` update; the
    /// change itself arrives as a `my_chat_member` update (left →
    /// administrator, or back; source: <https://core.telegram.org/bots/api#update>,
    /// `my_chat_member` and `channel_post`). Setting the state it already
    /// has does nothing. Registers the bot if needed.
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

    /// Publishes a message in a channel and returns its id (1, 2, 3… per
    /// channel). Admin bots get a `channel_post` update (source:
    /// <https://core.telegram.org/bots/api#update>, `channel_post`: "New
    /// incoming channel post of any kind").
    ///
    /// # Panics
    ///
    /// If the channel was not created.
    pub fn post(&self, chat_id: i64, msg: NewChannelMessage) -> i32 {
        self.post_with(chat_id, msg, None)
    }

    fn post_with(&self, chat_id: i64, msg: NewChannelMessage, raw: Option<Value>) -> i32 {
        let (id, message) = self.post_locked(chat_id, msg, raw);
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

    /// Publishes a message given as its Bot API fields (`content`: all but
    /// `message_id`, `date`, `chat` and `sender_chat`, which the fake
    /// fills in) and returns its id: a shape of message the fake does not
    /// model otherwise (a new media kind, a service message, optional
    /// fields). Admin bots get it as a `channel_post`; copies and forwards
    /// of it follow [`ChannelMessage::refused`]. Its `text`, if a string,
    /// attributes a `sendMessage` to it.
    ///
    /// # Panics
    ///
    /// If the channel was not created.
    pub fn post_raw(&self, chat_id: i64, content: Map<String, Value>) -> i32 {
        let text = content
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let media_group_id = content
            .get("media_group_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let msg = NewChannelMessage {
            text,
            media_group_id,
            ..NewChannelMessage::default()
        };
        self.post_with(chat_id, msg, Some(Value::Object(content)))
    }

    /// Makes `copyMessage` and `forwardMessage` of message `id` fail
    /// ("Bad Request: message can't be copied" / "… can't be forwarded",
    /// the texts [`ChannelMessage::refused`] answers with), and
    /// `copyMessages`/`forwardMessages` skip it, though nothing in the
    /// update says so. The server answers so when TDLib refuses the
    /// message: its "Message can't be copied" / "Message can't be
    /// forwarded", given a lower-case first letter and the "Bad Request: "
    /// prefix by telegram-bot-api's `Client::fail_query_with_error`
    /// (Client.cpp), and "Messages can't be forwarded" by
    /// `TdOnForwardMessagesCallback` when none of a batch went. Which
    /// contents TDLib refuses beyond those the Bot API pages list, no
    /// source the fake follows says: a test names the message. An id not
    /// published yet is refused from its publication on (so no bot copies
    /// it first). `false`: no such channel.
    pub fn refuse_by_id(&self, chat_id: i64, id: i32) -> bool {
        let mut st = self.shared.lock();
        let Some(channel) = st.channels.get_mut(&chat_id) else {
            return false;
        };
        match usize::try_from(id - 1)
            .ok()
            .and_then(|i| channel.messages.get_mut(i))
        {
            Some(m) => m.refused_by_id = true,
            None => {
                channel.refused_ahead.insert(id);
            }
        }
        true
    }

    /// The id the channel's next message gets (`None`: no such channel).
    pub fn next_message_id(&self, chat_id: i64) -> Option<i32> {
        let st = self.shared.lock();
        let n = st.channels.get(&chat_id)?.messages.len();
        i32::try_from(n + 1).ok()
    }

    /// The channel's `Chat` JSON as updates carry it; `None` for a channel
    /// never created.
    pub fn channel_chat(&self, chat_id: i64) -> Option<Value> {
        self.shared
            .lock()
            .channels
            .get(&chat_id)
            .map(|c| c.chat.clone())
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

    fn post_locked(
        &self,
        chat_id: i64,
        msg: NewChannelMessage,
        raw: Option<Value>,
    ) -> (i32, ChannelMessage) {
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
            raw,
            refused_by_id: channel.refused_ahead.remove(&id),
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
}
