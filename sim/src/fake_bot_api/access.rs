//! The bot's standing in a chat and the refusals that follow from it, in
//! the words, HTTP codes and order of tdlib/telegram-bot-api
//! (`telegram-bot-api/Client.cpp`, commit 01a3679c, May 2026): a test sets
//! a standing ([`FakeTelegram::set_standing`]) and every request that
//! reads or writes the chat meets it as the real server would.
//!
//! Order of checks, per method (Client.cpp):
//! - `copyMessage`, `forwardMessage` (`process_copy_message_query`,
//!   `process_forward_message_query`): `check_message` on `from_chat_id`
//!   (read access) first, then `do_send_message` → `check_reply_parameters`
//!   → `check_message_topic` → `check_chat` on `chat_id` (write access).
//!   The source is refused before the destination is looked at.
//! - `copyMessages`, `forwardMessages` (`process_copy_messages_query`,
//!   `process_forward_messages_query`): `check_reply_parameters` on
//!   `chat_id` first, then `check_messages` on `from_chat_id`: the
//!   destination is refused first.
//! - `sendMessage`: the destination only.
//!
//! The texts a private user's state draws (blocked, never started, a bot)
//! are not in Client.cpp: they are TDLib's errors for `sendMessage`, worded
//! by `Client::fail_query_with_error` (403, first letter lowered,
//! "Forbidden: " prefixed; `USER_IS_BLOCKED` is mapped there by name).
//! Where they fall against the rate limits no source says: the fake
//! answers them before counting the request.

use serde_json::Value;

use super::state::State;
use super::wire::{Method, Reply};
use super::{ChatKind, FakeTelegram};

/// The bot's standing in one chat, as a test sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BotStanding {
    /// Banned from a group, supergroup or channel ("kicked").
    Kicked,
    /// Not a member of a group, supergroup or channel (left, or removed
    /// without a ban).
    Left,
    /// A basic group that was deleted.
    GroupDeleted,
    /// A private chat whose user blocked the bot.
    Blocked,
    /// A private chat whose user's account was deleted.
    Deactivated,
    /// A private chat whose user never started the bot.
    NotStarted,
    /// A private chat with another bot.
    OtherBot,
}

/// Every refusal text the fake answers for the sending methods, with its
/// HTTP code and where it comes from: the list the error-handling table in
/// ARCHITECTURE.md is checked against.
pub const REFUSALS: &[(u16, &str, &str)] = &[
    (
        400,
        CHAT_NOT_FOUND,
        "Client.cpp TdOnCheckChatCallback::on_result (default_message \"chat not found\")",
    ),
    (
        403,
        USER_DEACTIVATED,
        "Client.cpp check_chat_access (Private, deleted user, write)",
    ),
    (
        403,
        GROUP_DELETED,
        "Client.cpp check_chat_access (Group, inactive, not upgraded)",
    ),
    (
        403,
        KICKED_GROUP,
        "Client.cpp check_chat_access (Group, kicked)",
    ),
    (
        403,
        LEFT_GROUP,
        "Client.cpp check_chat_access (Group, left)",
    ),
    (
        403,
        KICKED_SUPERGROUP,
        "Client.cpp check_chat_access (Supergroup, banned)",
    ),
    (
        403,
        KICKED_CHANNEL,
        "Client.cpp check_chat_access (channel, banned)",
    ),
    (
        403,
        LEFT_SUPERGROUP,
        "Client.cpp check_chat_access (Supergroup, not a member)",
    ),
    (
        403,
        LEFT_CHANNEL,
        "Client.cpp check_chat_access (channel, not a member)",
    ),
    (
        400,
        COPY_NOT_FOUND,
        "Client.cpp check_message / have_message_access (\"message to copy\")",
    ),
    (
        400,
        FORWARD_NOT_FOUND,
        "Client.cpp check_message / have_message_access (\"message to forward\")",
    ),
    (
        403,
        BLOCKED,
        "Client.cpp fail_query_with_error (USER_IS_BLOCKED)",
    ),
    (
        403,
        CANT_INITIATE,
        "TDLib's error through Client.cpp fail_query_with_error (403)",
    ),
    (
        403,
        CANT_SEND_TO_BOTS,
        "TDLib's error through Client.cpp fail_query_with_error (403)",
    ),
];

/// "Bad Request: chat not found".
pub(super) const CHAT_NOT_FOUND: &str = "Bad Request: chat not found";
/// "Forbidden: user is deactivated".
pub(super) const USER_DEACTIVATED: &str = "Forbidden: user is deactivated";
/// "Forbidden: the group chat was deleted".
pub(super) const GROUP_DELETED: &str = "Forbidden: the group chat was deleted";
/// "Forbidden: bot was kicked from the group chat".
pub(super) const KICKED_GROUP: &str = "Forbidden: bot was kicked from the group chat";
/// "Forbidden: bot is not a member of the group chat".
pub(super) const LEFT_GROUP: &str = "Forbidden: bot is not a member of the group chat";
/// "Forbidden: bot was kicked from the supergroup chat".
pub(super) const KICKED_SUPERGROUP: &str = "Forbidden: bot was kicked from the supergroup chat";
/// "Forbidden: bot was kicked from the channel chat".
pub(super) const KICKED_CHANNEL: &str = "Forbidden: bot was kicked from the channel chat";
/// "Forbidden: bot is not a member of the supergroup chat".
pub(super) const LEFT_SUPERGROUP: &str = "Forbidden: bot is not a member of the supergroup chat";
/// "Forbidden: bot is not a member of the channel chat".
pub(super) const LEFT_CHANNEL: &str = "Forbidden: bot is not a member of the channel chat";
/// "Bad Request: message to copy not found".
pub(super) const COPY_NOT_FOUND: &str = "Bad Request: message to copy not found";
/// "Bad Request: message to forward not found".
pub(super) const FORWARD_NOT_FOUND: &str = "Bad Request: message to forward not found";
/// "Forbidden: bot was blocked by the user".
pub(super) const BLOCKED: &str = "Forbidden: bot was blocked by the user";
/// "Forbidden: bot can't initiate conversation with a user".
pub(super) const CANT_INITIATE: &str = "Forbidden: bot can't initiate conversation with a user";
/// "Forbidden: bot can't send messages to bots".
pub(super) const CANT_SEND_TO_BOTS: &str = "Forbidden: bot can't send messages to bots";

/// What a request needs of a chat (Client.cpp `AccessRights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rights {
    Read,
    Write,
}

impl FakeTelegram {
    /// Sets (or with `None` clears) the bot's standing in a chat: a source
    /// channel it was removed from, a destination it was kicked from, a
    /// user who blocked it. Requests then get the refusal Client.cpp gives
    /// (see the module doc). Registers the bot if needed.
    pub fn set_standing(&self, chat_id: i64, bot_token: &str, standing: Option<BotStanding>) {
        let mut st = self.shared.lock();
        let bot_id = st.ensure_bot(bot_token).id;
        match standing {
            Some(s) => st.standing.insert((chat_id, bot_id), s),
            None => st.standing.remove(&(chat_id, bot_id)),
        };
    }
}

impl State {
    fn is_public(&self, chat_id: i64) -> bool {
        self.channels
            .get(&chat_id)
            .and_then(|c| c.chat.get("username"))
            .and_then(Value::as_str)
            .is_some_and(|u| !u.is_empty())
    }

    /// Client.cpp `check_chat_access`: the refusal of a chat the bot has
    /// lost, for the rights the request needs.
    pub(super) fn check_chat_access(
        &self,
        chat_id: i64,
        bot_id: i64,
        kind: ChatKind,
        rights: Rights,
    ) -> Result<(), Reply> {
        let Some(standing) = self.standing.get(&(chat_id, bot_id)).copied() else {
            return Ok(());
        };
        let write = rights == Rights::Write;
        let refuse = |text: &str| Err(Reply::error(403, text, None));
        match (kind, standing) {
            (ChatKind::Private, BotStanding::Deactivated) if write => refuse(USER_DEACTIVATED),
            (ChatKind::Group, BotStanding::GroupDeleted) if write => refuse(GROUP_DELETED),
            (ChatKind::Group, BotStanding::Kicked) if write => refuse(KICKED_GROUP),
            (ChatKind::Group, BotStanding::Left) if write => refuse(LEFT_GROUP),
            // Banned: refused whatever the rights.
            (ChatKind::Supergroup, BotStanding::Kicked) => refuse(KICKED_SUPERGROUP),
            (ChatKind::Channel, BotStanding::Kicked) => refuse(KICKED_CHANNEL),
            // Not a member: a public chat is refused only for writing
            // (`need_more_access_rights = is_public ? need_edit_access :
            // need_read_access`).
            (ChatKind::Supergroup, BotStanding::Left) if write || !self.is_public(chat_id) => {
                refuse(LEFT_SUPERGROUP)
            }
            (ChatKind::Channel, BotStanding::Left) if write || !self.is_public(chat_id) => {
                refuse(LEFT_CHANNEL)
            }
            _ => Ok(()),
        }
    }

    /// Client.cpp `check_message`/`check_messages` on `from_chat_id`: the
    /// chat's access for reading, then `have_message_access` (a supergroup
    /// or channel the bot is not a member of has no messages for it:
    /// "message to copy/forward not found").
    pub(super) fn check_source_access(
        &self,
        source: i64,
        bot_id: i64,
        method: Method,
    ) -> Result<(), Reply> {
        self.check_chat_access(source, bot_id, ChatKind::Channel, Rights::Read)?;
        if matches!(
            self.standing.get(&(source, bot_id)),
            Some(BotStanding::Left)
        ) {
            return Err(Reply::bad_request(if method.is_forward() {
                FORWARD_NOT_FOUND
            } else {
                COPY_NOT_FOUND
            }));
        }
        Ok(())
    }

    /// What TDLib answers when the message goes out to a private user who
    /// blocked the bot, never started it, or is a bot (see the module doc).
    pub(super) fn check_user(
        &self,
        chat_id: i64,
        bot_id: i64,
        kind: ChatKind,
    ) -> Result<(), Reply> {
        if kind != ChatKind::Private {
            return Ok(());
        }
        let refuse = |text: &str| Err(Reply::error(403, text, None));
        match self.standing.get(&(chat_id, bot_id)) {
            Some(BotStanding::Blocked) => refuse(BLOCKED),
            Some(BotStanding::NotStarted) => refuse(CANT_INITIATE),
            Some(BotStanding::OtherBot) => refuse(CANT_SEND_TO_BOTS),
            _ => Ok(()),
        }
    }
}
