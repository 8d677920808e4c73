//! Forum supergroups and their topics: a message sent with a
//! `message_thread_id` lands in that topic; a topic that does not exist
//! (never created, or deleted) answers Telegram's real error, `400 Bad
//! Request: message thread not found`. The people's side can write in a
//! topic (`is_topic_message`, `message_thread_id`), as `/link` sent there.

use std::collections::HashMap;

use serde_json::Value;

use super::state::State;
use super::wire::{Params, Reply};
use super::{ChatKind, FakeTelegram};

/// Forums by chat id: topic id → open.
#[derive(Default)]
pub(super) struct Forums {
    topics: HashMap<i64, HashMap<i32, bool>>,
}

impl State {
    /// The topic a send names, checked: `None` without one; the error
    /// Telegram gives when the topic of a forum is gone.
    pub(super) fn check_thread(&self, dest: i64, params: &Params) -> Result<Option<i32>, Reply> {
        let Some(thread) = params.int("message_thread_id")? else {
            return Ok(None);
        };
        let thread = i32::try_from(thread).unwrap_or(0);
        if let Some(topics) = self.forums.topics.get(&dest)
            && topics.get(&thread) != Some(&true)
        {
            return Err(Reply::bad_request("Bad Request: message thread not found"));
        }
        Ok(Some(thread))
    }
}

impl FakeTelegram {
    /// Makes `chat_id` a forum supergroup (`is_forum` in its chat JSON).
    pub fn create_forum(&self, chat_id: i64) {
        self.create_chat(chat_id, ChatKind::Supergroup);
        let mut st = self.shared.lock();
        if let Some(chat) = st.chats.get_mut(&chat_id) {
            chat.chat["is_forum"] = Value::Bool(true);
        }
        st.forums.topics.entry(chat_id).or_default();
    }

    /// Opens a topic in a forum; returns its `message_thread_id` (the id
    /// of its service message, as on Telegram).
    pub fn create_topic(&self, chat_id: i64) -> i32 {
        let mut st = self.shared.lock();
        let id = st.chats.get_mut(&chat_id).expect("a forum").next_id();
        st.forums
            .topics
            .entry(chat_id)
            .or_default()
            .insert(id, true);
        id
    }

    /// Deletes a topic: later sends to it fail with "message thread not found".
    pub fn delete_topic(&self, chat_id: i64, thread: i32) {
        let mut st = self.shared.lock();
        if let Some(t) = st.forums.topics.get_mut(&chat_id) {
            t.insert(thread, false);
        }
    }

    /// `user` writes `text` in topic `thread` of forum `chat`; returns the
    /// message id.
    pub fn user_says_in_topic(
        &self,
        bot_token: &str,
        chat: i64,
        thread: i32,
        user: i64,
        text: &str,
    ) -> i32 {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        let (id, mut m) = st.incoming(chat, user, text);
        m["message_thread_id"] = thread.into();
        m["is_topic_message"] = Value::Bool(true);
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("message", m);
        id
    }
}
