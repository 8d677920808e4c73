//! The simulated people: users who talk to a bot (messages and commands
//! with their `language_code`, forwarded posts, button presses), groups and
//! channels a bot is added to or removed from with their members' rights,
//! and what they know (languages, memberships, public usernames, the
//! commands bots set, the callback answers bots made). The Bot API methods
//! a bot's command handler calls back on their side are in
//! `handler_methods.rs`.
//!
//! Everything a bot sends to a chat is recorded in that chat's
//! [`ReceivedMessage`](super::ReceivedMessage)s (text, entities, keyboard,
//! edits); every `answerCallbackQuery` in [`FakeTelegram::callback_answers`].

use std::collections::HashMap;

use serde_json::{Value, json};

use super::json::{dest_chat_json, unix_now};
use super::state::{State, new_dest_chat};
use super::{ChatKind, FakeTelegram};

/// A member's rights in a chat, as `getChatMember` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    /// Created the chat.
    Creator,
    /// An administrator.
    Administrator,
    /// An ordinary member.
    Member,
    /// Not (or no longer) in the chat.
    Left,
}

impl MemberStatus {
    pub(super) fn json(self, user: &Value) -> Value {
        match self {
            Self::Creator => json!({"user": user, "status": "creator", "is_anonymous": false}),
            Self::Administrator => json!({
                "user": user,
                "status": "administrator",
                "can_be_edited": false,
                "is_anonymous": false,
                "can_manage_chat": true,
                "can_change_info": true,
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
            }),
            Self::Member => json!({"user": user, "status": "member"}),
            Self::Left => json!({"user": user, "status": "left"}),
        }
    }
}

/// One `answerCallbackQuery` a bot made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// The bot that answered.
    pub bot_id: i64,
    /// The query's id, as [`FakeTelegram::press`] returned it.
    pub callback_query_id: String,
    /// The notification text, if any.
    pub text: Option<String>,
    /// Shown as an alert rather than a toast.
    pub show_alert: bool,
}

#[derive(Default)]
pub(super) struct People {
    /// User id → `language_code` they last spoke with.
    pub(super) languages: HashMap<i64, String>,
    /// (chat, user) → rights; users not listed have left.
    pub(super) members: HashMap<(i64, i64), MemberStatus>,
    /// Public usernames of groups and users (channels' are the fake's own).
    pub(super) usernames: HashMap<String, i64>,
    /// Channels whose content is protected.
    pub(super) protected: HashMap<i64, bool>,
    pub(super) answers: Vec<CallbackAnswer>,
    /// Bot id → language code ("" = default) → commands JSON.
    pub(super) commands: HashMap<i64, HashMap<String, Value>>,
    pub(super) next_callback: u64,
}

fn user_json(user_id: i64, language: Option<&str>) -> Value {
    let mut u = json!({"id": user_id, "is_bot": false, "first_name": format!("User {user_id}")});
    if let Some(l) = language {
        u["language_code"] = Value::String(l.to_owned());
    }
    u
}

impl State {
    pub(super) fn dest_chat_json_of(&mut self, chat_id: i64) -> Value {
        let chat = self
            .chats
            .entry(chat_id)
            .or_insert_with(|| new_dest_chat(chat_id, &self.channels));
        chat.chat.clone()
    }

    pub(super) fn user(&self, user_id: i64) -> Value {
        user_json(
            user_id,
            self.people.languages.get(&user_id).map(String::as_str),
        )
    }

    /// A message from `user` in `chat`, taking the chat's next message id.
    pub(super) fn incoming(&mut self, chat_id: i64, user_id: i64, text: &str) -> (i32, Value) {
        let chat_json = self.dest_chat_json_of(chat_id);
        let chat = self.chats.get_mut(&chat_id).expect("made above");
        let message_id = chat.next_id();
        let mut m = json!({
            "message_id": message_id,
            "from": user_json(user_id, self.people.languages.get(&user_id).map(String::as_str)),
            "chat": chat_json,
            "date": unix_now(),
            "text": text,
        });
        if text.starts_with('/') {
            let len = text
                .split_whitespace()
                .next()
                .map_or(0, |c| c.encode_utf16().count());
            m["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
        }
        (message_id, m)
    }
}

impl FakeTelegram {
    /// `user` sends `text` to the bot in their private chat, with their app
    /// in `language` (Telegram's `language_code`; `None`: not shared).
    /// Returns the message's id in that chat.
    pub fn user_says(&self, bot_token: &str, user: i64, text: &str, language: Option<&str>) -> i32 {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        match language {
            Some(l) => st.people.languages.insert(user, l.to_owned()),
            None => st.people.languages.remove(&user),
        };
        if !st.chats.contains_key(&user) {
            let json = dest_chat_json(user, ChatKind::Private, &st.channels);
            st.chats
                .insert(user, super::state::DestChat::new(ChatKind::Private, json));
        }
        let (id, m) = st.incoming(user, user, text);
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("message", m);
        id
    }

    /// `user` sends `text` in a group or supergroup `chat` where the bot is.
    pub fn user_says_in(&self, bot_token: &str, chat: i64, user: i64, text: &str) -> i32 {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        let (id, m) = st.incoming(chat, user, text);
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("message", m);
        id
    }

    /// An admin posts `text` in a destination channel `chat` (created with
    /// [`FakeTelegram::create_chat`] as [`ChatKind::Channel`]): the bot, an
    /// admin there, gets it as a `channel_post` with no sender.
    pub fn channel_admin_says(&self, bot_token: &str, chat: i64, text: &str) -> i32 {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        let chat_json = st.dest_chat_json_of(chat);
        let id = st.chats.get_mut(&chat).expect("made above").next_id();
        let m = json!({"message_id": id, "sender_chat": chat_json, "chat": chat_json,
                       "date": unix_now(), "text": text});
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("channel_post", m);
        id
    }

    /// `user` forwards message `message_id` of `channel` to the bot.
    ///
    /// # Panics
    ///
    /// If the channel or the message does not exist.
    pub fn user_forwards(&self, bot_token: &str, user: i64, channel: i64, message_id: i32) -> i32 {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        let (chat, text, date) = {
            let ch = st.channels.get(&channel).expect("known channel");
            let msg = ch.message(message_id).expect("known message");
            (
                ch.chat.clone(),
                msg.text.clone().unwrap_or_default(),
                msg.date,
            )
        };
        let (id, mut m) = st.incoming(user, user, &text);
        m["forward_origin"] =
            json!({"type": "channel", "chat": chat, "message_id": message_id, "date": date});
        if let Some(o) = m.as_object_mut() {
            o.remove("entities");
        }
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("message", m);
        id
    }

    /// `user` presses the inline button carrying `data` under message
    /// `message_id` the bot sent to `chat`. Returns the callback query's id.
    /// A message that is not there (never sent) arrives as inaccessible.
    pub fn press(
        &self,
        bot_token: &str,
        user: i64,
        chat: i64,
        message_id: i32,
        data: &str,
    ) -> String {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        st.people.next_callback += 1;
        let id = format!("cb{}", st.people.next_callback);
        let bot_user = st.bots[bot_token].user.clone();
        let chat_json = st.dest_chat_json_of(chat);
        let message = st
            .chats
            .get(&chat)
            .and_then(|c| c.received.iter().find(|m| m.message_id == message_id))
            .map_or_else(
                || json!({"chat": chat_json, "message_id": message_id, "date": 0}),
                |m| {
                    let mut out = json!({"message_id": message_id, "from": bot_user,
                        "chat": chat_json, "date": unix_now(),
                        "text": m.text.clone().unwrap_or_default()});
                    if let Some(k) = &m.reply_markup {
                        out["reply_markup"] = k.clone();
                    }
                    out
                },
            );
        let q = json!({"id": id, "from": st.user(user), "message": message,
                       "chat_instance": format!("ci{chat}"), "data": data});
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("callback_query", q);
        id
    }

    /// `by` adds the bot to group, supergroup or channel `chat` (declared as
    /// `kind`), as an administrator or a plain member; the bot gets a
    /// `my_chat_member` update. `by` becomes the chat's creator.
    pub fn add_bot_to_chat(
        &self,
        bot_token: &str,
        chat: i64,
        kind: ChatKind,
        by: i64,
        bot_is_admin: bool,
    ) {
        self.create_chat(chat, kind);
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        st.people
            .members
            .entry((chat, by))
            .or_insert(MemberStatus::Creator);
        let bot = st.bots[bot_token].user.clone();
        let new = if bot_is_admin {
            MemberStatus::Administrator
        } else {
            MemberStatus::Member
        };
        let update = json!({"chat": st.dest_chat_json_of(chat), "from": st.user(by),
            "date": unix_now(), "old_chat_member": MemberStatus::Left.json(&bot),
            "new_chat_member": new.json(&bot)});
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("my_chat_member", update);
    }

    /// `by` removes the bot from `chat` (it gets `my_chat_member`: kicked).
    pub fn remove_bot_from_chat(&self, bot_token: &str, chat: i64, by: i64) {
        let mut st = self.shared.lock();
        st.ensure_bot(bot_token);
        let bot = st.bots[bot_token].user.clone();
        let update = json!({"chat": st.dest_chat_json_of(chat), "from": st.user(by),
            "date": unix_now(), "old_chat_member": MemberStatus::Member.json(&bot),
            "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0}});
        st.bots
            .get_mut(bot_token)
            .expect("registered above")
            .push_update("my_chat_member", update);
    }

    /// Sets `user`'s rights in `chat`, as `getChatMember` will report them.
    pub fn set_member(&self, chat: i64, user: i64, status: MemberStatus) {
        self.shared
            .lock()
            .people
            .members
            .insert((chat, user), status);
    }

    /// Gives a group or user a public `@username` (for `getChat`).
    pub fn set_public_username(&self, chat: i64, username: &str) {
        self.shared
            .lock()
            .people
            .usernames
            .insert(username.trim_start_matches('@').to_ascii_lowercase(), chat);
    }

    /// Marks a channel's content protected (`getChat` reports it).
    pub fn set_channel_protected(&self, channel: i64, protected: bool) {
        self.shared
            .lock()
            .people
            .protected
            .insert(channel, protected);
    }

    /// Every `answerCallbackQuery`, in order.
    pub fn callback_answers(&self) -> Vec<CallbackAnswer> {
        self.shared.lock().people.answers.clone()
    }

    /// The commands a bot set with `setMyCommands` for `language` (`""`:
    /// the default list), as JSON.
    pub fn my_commands(&self, bot_token: &str, language: &str) -> Option<Value> {
        let st = self.shared.lock();
        let id = st.bots.get(bot_token)?.id;
        st.people.commands.get(&id)?.get(language).cloned()
    }

    /// Updates queued for the bot and not yet confirmed.
    pub fn pending_updates(&self, bot_token: &str) -> usize {
        self.shared
            .lock()
            .bots
            .get(bot_token)
            .map_or(0, |b| b.updates.len())
    }
}

#[cfg(test)]
mod tests {
    use teloxide::payloads::{
        AnswerCallbackQuerySetters, EditMessageTextSetters, GetUpdatesSetters, SendMessageSetters,
    };
    use teloxide::prelude::Requester;
    use teloxide::types::{
        ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId, Recipient, UpdateKind,
        UserId,
    };

    use super::super::{ChatKind, FakeLimits, FakeTelegram, NewChannelMessage};
    use super::MemberStatus;

    const TOKEN: &str = "77:peopleSECRETpeopleSECRET";

    /// Every people's update parses in teloxide, and every method the
    /// bot calls back answers what teloxide reads.
    #[tokio::test]
    async fn people_speak_the_wire_protocol_teloxide_reads() {
        let tg = FakeTelegram::start(FakeLimits::off()).unwrap();
        tg.add_bot(TOKEN);
        tg.create_channel(-1_005, "news_one", "News");
        let post = tg.post(-1_005, NewChannelMessage::text("hello"));
        let bot = tg.bot(TOKEN);
        tg.user_says(TOKEN, 501, "/start", Some("uz"));
        tg.user_forwards(TOKEN, 501, -1_005, post);
        tg.add_bot_to_chat(TOKEN, -600, ChatKind::Supergroup, 501, false);
        tg.user_says_in(TOKEN, -600, 502, "/link");
        tg.remove_bot_from_chat(TOKEN, -600, 501);
        let updates = bot.get_updates().await.unwrap();
        assert_eq!(updates.len(), 5);
        let UpdateKind::Message(m) = &updates[0].kind else {
            panic!("{:?}", updates[0].kind)
        };
        assert_eq!(m.text(), Some("/start"));
        assert_eq!(
            m.from.as_ref().unwrap().language_code.as_deref(),
            Some("uz")
        );
        let UpdateKind::Message(f) = &updates[1].kind else {
            panic!()
        };
        assert!(f.forward_origin().is_some());
        assert!(matches!(updates[2].kind, UpdateKind::MyChatMember(_)));
        let UpdateKind::MyChatMember(gone) = &updates[4].kind else {
            panic!()
        };
        assert!(gone.new_chat_member.is_banned());

        // A keyboard is recorded, a press arrives with its message, an edit
        // changes the record; an identical edit is refused like Telegram's.
        let keyboard = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("x", "d:1")]]);
        let sent = bot
            .send_message(ChatId(501), "pick")
            .reply_markup(keyboard.clone())
            .await
            .unwrap();
        let cb = tg.press(TOKEN, 501, 501, sent.id.0, "d:1");
        tg.press(TOKEN, 501, 501, 9999, "stale");
        let offset = updates.last().unwrap().id.0 as i32 + 1;
        let presses = bot.get_updates().offset(offset).await.unwrap();
        let UpdateKind::CallbackQuery(q) = &presses[0].kind else {
            panic!()
        };
        assert_eq!(q.id.0, cb);
        assert_eq!(q.data.as_deref(), Some("d:1"));
        assert!(q.regular_message().is_some());
        let UpdateKind::CallbackQuery(stale) = &presses[1].kind else {
            panic!()
        };
        assert!(stale.regular_message().is_none());
        bot.answer_callback_query(q.id.clone())
            .text("ok")
            .await
            .unwrap();
        assert_eq!(tg.callback_answers()[0].text.as_deref(), Some("ok"));
        bot.edit_message_text(ChatId(501), sent.id, "picked")
            .reply_markup(keyboard.clone())
            .await
            .unwrap();
        let rec = &tg.received(501)[0];
        assert_eq!((rec.text.as_deref(), rec.edits), (Some("picked"), 1));
        assert!(rec.reply_markup.is_some());
        let same = bot
            .edit_message_text(ChatId(501), sent.id, "picked")
            .reply_markup(keyboard)
            .await;
        assert!(
            matches!(
                same,
                Err(teloxide::RequestError::Api(
                    teloxide::ApiError::MessageNotModified
                ))
            ),
            "{same:?}"
        );
        assert!(
            bot.edit_message_text(ChatId(501), MessageId(77), "x")
                .await
                .is_err()
        );

        // getChat and getChatMember.
        let full = bot
            .get_chat(Recipient::ChannelUsername("@news_one".into()))
            .await
            .unwrap();
        assert!(full.is_channel());
        assert!(
            bot.get_chat(Recipient::ChannelUsername("@nobody_here".into()))
                .await
                .is_err()
        );
        tg.set_public_username(-600, "a_group");
        let group = bot
            .get_chat(Recipient::ChannelUsername("@a_group".into()))
            .await
            .unwrap();
        assert!(!group.is_channel());
        let creator = bot
            .get_chat_member(ChatId(-600), UserId(501))
            .await
            .unwrap();
        assert!(creator.is_owner());
        let other = bot
            .get_chat_member(ChatId(-600), UserId(502))
            .await
            .unwrap();
        assert!(!other.is_privileged());
        tg.set_member(-600, 502, MemberStatus::Administrator);
        let admin = bot
            .get_chat_member(ChatId(-600), UserId(502))
            .await
            .unwrap();
        assert!(admin.is_administrator());
        bot.set_my_commands([teloxide::types::BotCommand::new("start", "go")])
            .await
            .unwrap();
        assert!(tg.my_commands(TOKEN, "").is_some());
    }
}
