//! The Bot API methods a bot's command handler calls back on the people's
//! side: `getChat`, `getChatMember`, `answerCallbackQuery`,
//! `setMyCommands`, `editMessageText`, `editMessageReplyMarkup`. They read
//! and change what `people.rs` keeps and what the bot sent
//! (`state.rs`). Their refusals carry Telegram's descriptions (source:
//! teloxide-core 0.13 `src/errors.rs`: `ChatNotFound`,
//! `MessageTextIsEmpty`, `MessageToEditNotFound`, `EditedMessageIsTooLong`,
//! `MessageNotModified`).

use serde_json::{Value, json};

use super::json::unix_now;
use super::people::{CallbackAnswer, MemberStatus};
use super::state::State;
use super::wire::{Method, Params, Reply};

impl State {
    /// The Bot API methods of the people's side.
    pub(super) fn people_method(&mut self, token: &str, method: Method, params: &Params) -> Reply {
        let bot_id = self.bots[token].id;
        let answer = match method {
            Method::GetChat => self.get_chat(bot_id, params),
            Method::GetChatMember => self.get_chat_member(params),
            Method::AnswerCallbackQuery => self.answer_callback_query(bot_id, params),
            Method::SetMyCommands => self.set_my_commands(bot_id, params),
            Method::EditMessageText | Method::EditMessageReplyMarkup => {
                self.edit(token, bot_id, method, params)
            }
            _ => Ok(Reply::not_found()),
        };
        answer.unwrap_or_else(|reply| reply)
    }

    /// `getChat`: a channel's, group's or user's `ChatFullInfo`.
    fn get_chat(&mut self, bot_id: i64, params: &Params) -> Result<Reply, Reply> {
        let chat_id = self.chat_param(params)?;
        // A fault armed for the chat answers instead, so a test can
        // make the bot's check fail ("subscribed, checked later").
        if let Some(fault) = self.take_fault(chat_id) {
            return Err(Reply::fault(&fault));
        }
        if let Some(channel) = self.channels.get(&chat_id) {
            // Client.cpp `process_get_chat_query`: `check_chat` with read access.
            self.check_chat_access(
                chat_id,
                bot_id,
                super::ChatKind::Channel,
                super::access::Rights::Read,
            )?;
            let mut info = channel.chat.clone();
            put_full_info_fields(&mut info);
            if self.people.protected.get(&chat_id) == Some(&true) {
                info["has_protected_content"] = Value::Bool(true);
            }
            return Ok(Reply::ok(info));
        }
        let mut info = self.dest_chat_json_of(chat_id);
        if let Some((name, _)) = self.people.usernames.iter().find(|(_, id)| **id == chat_id) {
            info["username"] = Value::String(name.clone());
        }
        put_full_info_fields(&mut info);
        Ok(Reply::ok(info))
    }

    /// `getChatMember`: the rights a test set, a user in their own private
    /// chat a member, anyone else not in the chat.
    fn get_chat_member(&self, params: &Params) -> Result<Reply, Reply> {
        let chat_id = self.chat_param(params)?;
        let user_id = params
            .int("user_id")?
            .ok_or_else(|| Reply::bad_request("Bad Request: user_id is empty"))?;
        let status = if chat_id == user_id {
            MemberStatus::Member
        } else {
            self.people
                .members
                .get(&(chat_id, user_id))
                .copied()
                .unwrap_or(MemberStatus::Left)
        };
        Ok(Reply::ok(status.json(&self.user(user_id))))
    }

    /// `answerCallbackQuery`: recorded for [`FakeTelegram::callback_answers`](super::FakeTelegram::callback_answers).
    fn answer_callback_query(&mut self, bot_id: i64, params: &Params) -> Result<Reply, Reply> {
        let id = params.text("callback_query_id").unwrap_or_default();
        if id.is_empty() {
            return Err(Reply::bad_request(
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            ));
        }
        self.people.answers.push(CallbackAnswer {
            bot_id,
            callback_query_id: id,
            text: params.text("text"),
            show_alert: params.flag("show_alert"),
        });
        Ok(Reply::ok(Value::Bool(true)))
    }

    /// `setMyCommands`: the bot's command list for a language (`""`: the
    /// default list), kept for [`FakeTelegram::my_commands`](super::FakeTelegram::my_commands).
    fn set_my_commands(&mut self, bot_id: i64, params: &Params) -> Result<Reply, Reply> {
        let commands = params.json("commands").unwrap_or(Value::Null);
        if !commands.is_array() {
            return Err(Reply::bad_request("Bad Request: commands is not an array"));
        }
        let lang = params.text("language_code").unwrap_or_default();
        self.people
            .commands
            .entry(bot_id)
            .or_default()
            .insert(lang, commands);
        Ok(Reply::ok(Value::Bool(true)))
    }

    /// `chat_id`: a number, or an `@username` of a channel, group or user.
    fn chat_param(&self, params: &Params) -> Result<i64, Reply> {
        let not_found = || Reply::bad_request("Bad Request: chat not found");
        match params.text("chat_id") {
            Some(s) if s.starts_with('@') => {
                let name = s[1..].to_ascii_lowercase();
                self.usernames
                    .get(&name)
                    .or_else(|| self.people.usernames.get(&name))
                    .copied()
                    .ok_or_else(not_found)
            }
            Some(s) => s.trim().parse().map_err(|_| not_found()),
            None => Err(Reply::bad_request("Bad Request: chat_id is empty")),
        }
    }

    /// `editMessageText` / `editMessageReplyMarkup` of a message the bot
    /// sent: the record's text, entities and keyboard change and its edit
    /// count grows; an edit that changes nothing is refused as Telegram
    /// refuses it (source for the description: teloxide-core 0.13
    /// `src/errors.rs`, `MessageNotModified`).
    pub(super) fn edit(
        &mut self,
        token: &str,
        bot_id: i64,
        method: Method,
        params: &Params,
    ) -> Result<Reply, Reply> {
        let chat_id = self.chat_param(params)?;
        let message_id = params.int("message_id")?.unwrap_or(0);
        let text = params.text("text");
        if method == Method::EditMessageText && text.as_deref().is_none_or(str::is_empty) {
            return Err(Reply::bad_request("Bad Request: message text is empty"));
        }
        if text
            .as_ref()
            .is_some_and(|t| t.encode_utf16().count() > 4096)
        {
            return Err(Reply::bad_request("Bad Request: MESSAGE_TOO_LONG"));
        }
        let markup = params.json("reply_markup");
        let entities = params.array("entities")?.unwrap_or_default();
        let bot_user = self.bots[token].user.clone();
        let chat = self
            .chats
            .get_mut(&chat_id)
            .ok_or_else(|| Reply::bad_request("Bad Request: chat not found"))?;
        let chat_json = chat.chat.clone();
        let m = chat
            .received
            .iter_mut()
            .find(|m| i64::from(m.message_id) == message_id && m.bot_id == bot_id)
            .ok_or_else(|| Reply::bad_request("Bad Request: message to edit not found"))?;
        let new_text = text.or_else(|| m.text.clone());
        let new_entities = if method == Method::EditMessageText {
            entities
        } else {
            m.entities.clone()
        };
        if new_text == m.text && markup == m.reply_markup && new_entities == m.entities {
            return Err(Reply::bad_request(
                "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            ));
        }
        m.text = new_text;
        m.entities = new_entities;
        m.reply_markup = markup;
        m.edits += 1;
        let mut out = json!({
            "message_id": m.message_id,
            "from": bot_user,
            "chat": chat_json,
            "date": unix_now(),
            "edit_date": unix_now(),
            "text": m.text.clone().unwrap_or_default(),
        });
        if let Some(markup) = &m.reply_markup {
            out["reply_markup"] = markup.clone();
        }
        Ok(Reply::ok(out))
    }
}

/// The fields `ChatFullInfo` always carries beyond a `Chat`, with the values
/// of a chat that set none of them (source:
/// <https://core.telegram.org/bots/api#chatfullinfo>: `accent_color_id`,
/// `max_reaction_count` and `accepted_gift_types` are not optional).
fn put_full_info_fields(info: &mut Value) {
    info["accent_color_id"] = 0.into();
    info["max_reaction_count"] = 11.into();
    info["accepted_gift_types"] = json!({"unlimited_gifts": false,
        "limited_gifts": false, "unique_gifts": false, "premium_subscription": false});
}
