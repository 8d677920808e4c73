//! How a sending request (sendMessage, copyMessage(s), forwardMessage(s))
//! is validated, held to the rate limits, and delivered: recorded in the
//! destination chat and answered as Telegram answers it.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::access::{self, Rights};
use super::json::{put_content, sent_message_json};
use super::limits::{Rules, retry_secs};
use super::report::attribute;
use super::state::{Channel, DestChat, State, new_dest_chat};
use super::wire::{Method, Params, Reply, Target, invalid};
use super::{ChatKind, Fault, ReceivedMessage};

/// Longest text `sendMessage` accepts, in UTF-16 code units (Telegram's
/// unit). Source: <https://core.telegram.org/bots/api#sendmessage> (`text`,
/// "1-4096 characters after entities parsing").
const MAX_TEXT_UTF16: usize = 4096;
/// Most message ids one `copyMessages`/`forwardMessages` request may carry.
/// Source: <https://core.telegram.org/bots/api#copymessages> (`message_ids`,
/// "1-100 identifiers … in a strictly increasing order").
const MAX_BATCH: usize = 100;
/// Telegram's longest media caption, in UTF-16 code units. Source:
/// <https://core.telegram.org/bots/api#copymessage> (`caption`, "0-1024
/// characters after entities parsing").
const MAX_CAPTION_UTF16: usize = 1024;

/// What a validated sending request will deliver.
enum Content {
    Text(TextContent),
    Messages(MessagesContent),
}

/// `sendMessage`'s text.
struct TextContent {
    text: String,
    entities: Vec<Value>,
    reply_markup: Option<Value>,
}

/// The channel messages a copy or forward delivers.
struct MessagesContent {
    source: i64,
    ids: Vec<i32>,
    /// `copyMessage`'s `caption` and `caption_entities`, replacing the source's.
    caption: Option<(String, Vec<Value>)>,
}

/// What every message one request delivers records of the request.
struct Delivery<'a> {
    method: Method,
    bot_id: i64,
    /// The sending bot's `User` JSON (the `from` of what it sent).
    bot_user: &'a Value,
    received_at: Instant,
    thread: Option<i32>,
    request_id: u64,
    paid: bool,
}

impl State {
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
        let bot_id = self.bots[token].id;
        let kind = self.kind_of(dest);
        // The order of checks is Client.cpp's (see `access.rs`): the single
        // copy/forward reads its source before looking at the destination,
        // the batch methods check the destination first.
        let content = match method {
            Method::SendMessage => {
                let content = self.validate_text(params)?;
                self.check_chat_access(dest, bot_id, kind, Rights::Write)?;
                content
            }
            Method::CopyMessage | Method::ForwardMessage => {
                let content = self.validate_single(params, method, bot_id)?;
                self.check_chat_access(dest, bot_id, kind, Rights::Write)?;
                content
            }
            _ => {
                self.check_chat_access(dest, bot_id, kind, Rights::Write)?;
                self.validate_batch(params, method, bot_id)?
            }
        };
        let thread = self.check_thread(dest, params)?;
        self.check_user(dest, bot_id, kind)?;
        let now = Instant::now();
        // Client.cpp reads `allow_paid_broadcast` in `do_send_message`
        // (sendMessage, copyMessage, forwardMessage); copyMessages and
        // forwardMessages pass `false` to `get_message_send_options`
        // whatever the request says. The Bot API documents the flag for
        // sendMessage and copyMessage only.
        let paid = params.flag("allow_paid_broadcast") && !method.is_batch();
        // Each item of an album (copyMessages/forwardMessages) counts
        // against the bot's limits: Client.cpp counts each item of a batch
        // against its per-chat guard (`process_copy_messages_query`), and
        // public reports of albums drawing 429 far under 30 requests a
        // second say the same: tdlib/telegram-bot-api#505 (an album of 4
        // refused with 429 while single photos pass), yagop/
        // node-telegram-bot-api#1148 (albums of 9, 3 s apart, 429),
        // rubenlagus/TelegramBots#1520 (429 named per item: "failed to send
        // message #1"). None gives a number; each item as one message is
        // the fake's reading. Per chat a request counts once here: no
        // source says how Telegram's per-chat limit weighs an album's items.
        let items = match &content {
            Content::Messages(m) if method.is_batch() => m.ids.len().max(1),
            _ => 1,
        };
        self.check_limits(rules, token, dest, now, (paid, items))?;
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
        Ok(Content::Text(TextContent {
            text,
            entities,
            reply_markup,
        }))
    }

    fn not_found(method: Method) -> Reply {
        Reply::bad_request(if method.is_forward() {
            "Bad Request: message to forward not found"
        } else {
            "Bad Request: message to copy not found"
        })
    }

    /// The source channel of a copy or forward.
    /// Client.cpp `check_message(s)` on `from_chat_id`: the chat (an
    /// unknown one is "chat not found", `TdOnCheckChatCallback`), the bot's
    /// access to it, then its messages.
    fn source_channel(
        &self,
        params: &Params,
        method: Method,
        bot_id: i64,
    ) -> Result<(i64, &Channel), Reply> {
        let source = match params.target("from_chat_id")? {
            Some(target) => self
                .resolve(target)
                .ok_or_else(|| Reply::bad_request(access::CHAT_NOT_FOUND))?,
            // Client.cpp `get_required_string_arg`, worded by `fail_query_with_error`.
            None => {
                return Err(Reply::bad_request(
                    "Bad Request: parameter \"from_chat_id\" is required",
                ));
            }
        };
        // A chat the fake does not play is one Telegram does not know.
        let channel = self
            .channels
            .get(&source)
            .ok_or_else(|| Reply::bad_request(access::CHAT_NOT_FOUND))?;
        self.check_source_access(source, bot_id, method)?;
        Ok((source, channel))
    }

    fn validate_single(
        &self,
        params: &Params,
        method: Method,
        bot_id: i64,
    ) -> Result<Content, Reply> {
        let (source, channel) = self.source_channel(params, method, bot_id)?;
        let id = params
            .int("message_id")?
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| Self::not_found(method))?;
        let message = channel.message(id).ok_or_else(|| Self::not_found(method))?;
        if message.refused(method.is_forward()) {
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
        Ok(Content::Messages(MessagesContent {
            source,
            ids: vec![id],
            caption,
        }))
    }

    fn validate_batch(
        &self,
        params: &Params,
        method: Method,
        bot_id: i64,
    ) -> Result<Content, Reply> {
        let (source, channel) = self.source_channel(params, method, bot_id)?;
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
            // Telegram skips what it may not copy rather than failing
            // (source: https://core.telegram.org/bots/api#copymessages, "If
            // some of the specified messages can't be found or copied, they
            // are skipped").
            if !message.refused(method.is_forward()) {
                ids.push(id);
            }
        }
        Ok(Content::Messages(MessagesContent {
            source,
            ids,
            caption: None,
        }))
    }

    /// Checks the bot and chat windows; when all allow, takes a slot in each.
    ///
    /// `items` messages take slots of the bot's windows (an album's items,
    /// see `deliver`); per chat a request counts once.
    ///
    /// Paid broadcast: a paid request counts against the paid limit only
    /// ("ignoring broadcasting limits"); an unpaid one against both the free
    /// limit and the paid one, which bounds all of a bot's messages. How
    /// Telegram mixes the two no source says.
    fn check_limits(
        &mut self,
        rules: &Rules,
        token: &str,
        dest: i64,
        now: Instant,
        (paid, items): (bool, usize),
    ) -> Result<(), Reply> {
        let chat_rule = if self.kind_of(dest) == ChatKind::Private {
            rules.private
        } else {
            rules.group
        };
        let bot = self.bots.get_mut(token).expect("authorised bot");
        let free_rule = if paid { None } else { rules.bot };
        let mut wait = free_rule.and_then(|rule| bot.window.wait_n(rule, now, items));
        if let Some(rule) = rules.paid {
            wait = wait.max(bot.paid_window.wait_n(rule, now, items));
        }
        if let Some(rule) = chat_rule {
            let chat_wait = bot.chat_windows.entry(dest).or_default().wait(rule, now);
            wait = wait.max(chat_wait);
        }
        if let Some(wait) = wait {
            self.counters.rate_limited_429 += 1;
            return Err(Reply::too_many(retry_secs(wait)));
        }
        if free_rule.is_some() {
            bot.window.record_n(now, items);
        }
        if rules.paid.is_some() {
            bot.paid_window.record_n(now, items);
        }
        if chat_rule.is_some()
            && let Some(window) = bot.chat_windows.get_mut(&dest)
        {
            window.record(now);
        }
        Ok(())
    }

    /// Records what the request delivered, one received message per
    /// message sent (each carrying the request's id), and answers it.
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
        let delivery = Delivery {
            method,
            bot_id: bot.id,
            bot_user: &bot.user,
            received_at: now,
            thread,
            request_id,
            paid,
        };
        let chat = self
            .chats
            .entry(dest)
            .or_insert_with(|| new_dest_chat(dest, &self.channels));
        let (result, delivered) = match content {
            Content::Text(text) => (delivery.text(chat, &self.texts, text), 1),
            Content::Messages(messages) => {
                let count = messages.ids.len() as u64;
                let channel = &self.channels[&messages.source];
                (delivery.messages(chat, channel, messages), count)
            }
        };
        self.counters.messages_received += delivered;
        Reply::ok(result)
    }
}

impl Delivery<'_> {
    /// A received message of this request, its content left empty for the
    /// caller to fill in.
    fn received(&self, message_id: i32) -> ReceivedMessage {
        ReceivedMessage {
            message_id,
            method: self.method.name(),
            source: None,
            text: None,
            entities: Vec::new(),
            media_group_id: None,
            received_at: self.received_at,
            bot_id: self.bot_id,
            message_thread_id: self.thread,
            request_id: self.request_id,
            reply_markup: None,
            allow_paid_broadcast: self.paid,
            edits: 0,
        }
    }

    /// `sendMessage`: the text, attributed to the channel post it repeats
    /// (if any); answers the sent `Message` (source:
    /// <https://core.telegram.org/bots/api#sendmessage>).
    fn text(
        &self,
        chat: &mut DestChat,
        texts: &HashMap<String, Vec<(i64, i32)>>,
        content: TextContent,
    ) -> Value {
        let TextContent {
            text,
            entities,
            reply_markup,
        } = content;
        let source = attribute(texts, &chat.copies, &text);
        if let Some(source) = source {
            *chat.copies.entry(source).or_default() += 1;
        }
        let message_id = chat.next_id();
        let mut result = sent_message_json(message_id, chat, self.bot_user);
        result.insert("text".to_owned(), Value::String(text.clone()));
        if !entities.is_empty() {
            result.insert("entities".to_owned(), Value::Array(entities.clone()));
        }
        if let Some(markup) = &reply_markup {
            result.insert("reply_markup".to_owned(), markup.clone());
        }
        chat.received.push(ReceivedMessage {
            source,
            text: Some(text),
            entities,
            reply_markup,
            ..self.received(message_id)
        });
        Value::Object(result)
    }

    /// A copy or forward of channel messages. Answers as Telegram does:
    /// `forwardMessage` the sent `Message` with its `forward_origin`,
    /// `copyMessage` a `MessageId`, the batch methods an array of them; the
    /// batch methods keep an album's grouping (sources:
    /// <https://core.telegram.org/bots/api#forwardmessage>, #copymessage,
    /// #forwardmessages, #copymessages).
    fn messages(&self, chat: &mut DestChat, channel: &Channel, content: MessagesContent) -> Value {
        let MessagesContent {
            source,
            ids,
            caption,
        } = content;
        let batch = self.method.is_batch();
        let mut result_ids = Vec::with_capacity(ids.len());
        let mut forwarded = None;
        for id in ids {
            let message = channel.message(id).expect("validated");
            let message_id = chat.next_id();
            *chat.copies.entry((source, id)).or_default() += 1;
            if self.method == Method::ForwardMessage {
                let mut m = sent_message_json(message_id, chat, self.bot_user);
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
            let (text, entities) = match &caption {
                Some((c, e)) => (Some(c.clone()), e.clone()),
                None => (message.text.clone(), message.entities.clone()),
            };
            chat.received.push(ReceivedMessage {
                source: Some((source, id)),
                text,
                entities,
                media_group_id: if batch {
                    message.media_group_id.clone()
                } else {
                    None
                },
                ..self.received(message_id)
            });
        }
        match self.method {
            Method::ForwardMessage => forwarded.unwrap_or(Value::Null),
            Method::CopyMessage => result_ids.pop().unwrap_or(Value::Null),
            _ => Value::Array(result_ids),
        }
    }
}
