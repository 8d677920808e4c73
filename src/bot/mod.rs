//! The bot people talk to: commands in a private chat (`/start`, `/help`,
//! `/add`, `/list`, `/remove`, `/pause`, `/resume`, `/filter`, `/lang`,
//! admins' `/stats`), `/link` in a group, inline buttons under `/list`,
//! and our bot being added to or removed from chats.
//!
//! It runs inside the update loop (`updates/intake.rs`: a token allows one
//! `getUpdates` consumer), one loop per bot token: each bot answers the
//! people who write to it. An update is confirmed once its effect is
//! durable; for a command that is its database change — a handler returns
//! `Err` only when the database failed, and the loop retries the update.
//! The reply is best effort on top: a network failure is retried a few
//! times (`reply.rs`), anything else is logged (never the text) and
//! counted, and the update is confirmed all the same.
//!
//! Files: `commands` (private-chat commands), `list` (`/list`, its
//! pages, buttons and the settings view), `chats` (`/link`, our bot joining
//! or leaving chats), `reply` (sending, retries; the per-user command budget is
//! `crate::command_budget`),
//! texts from `locales/` are `crate::i18n`.

/// `/add @name last N`: history on subscribe.
mod backfill;
/// Subscribers told once when their channel became private, was renamed or is gone.
pub mod channel_notices;
/// Groups and channels: `/link`, the bot added or removed.
mod chats;
/// Private-chat commands.
mod commands;
/// `/list`: pages, buttons, settings, callbacks.
mod list;
/// Edits/deletions settings in the settings view.
mod mirror_settings;
/// Replies with retries.
mod reply;
/// `/header`, `/footer`, `/replace`, `/quiet`: the per-subscription extras.
mod send_settings;

use std::sync::Arc;
use std::time::Duration;

use teloxide::Bot;
use teloxide::payloads::SetMyCommandsSetters;
use teloxide::prelude::Requester;
use teloxide::types::{BotCommand, CallbackQuery, ChatMemberUpdated, Message};

use crate::command_budget::CommandBudget;
use crate::i18n::{Arg, Lang, Texts};
use crate::pipeline::Pipeline;
use crate::store::{BotUser, Store, StoreError};

/// The bot's settings, from `[limits]` and `[telegram]`.
#[derive(Debug, Clone)]
pub struct BotSettings {
    /// `limits.max_subscriptions_per_user`.
    pub max_subscriptions: i64,
    /// `limits.bot_commands_per_minute`: a user's commands and button
    /// presses a minute (bursts of up to a third of it, at least 10).
    pub commands_per_minute: u32,
    /// `limits.new_channels_per_user_per_day`.
    pub new_channels_per_day: i64,
    /// `limits.pending_names_per_user`.
    pub pending_names: i64,
    /// `limits.backfills_per_user_per_day`.
    pub backfills_per_day: i64,
    /// `telegram.admins`: who may use `/stats`.
    pub admins: Vec<i64>,
}

/// What every bot's handler shares.
struct Shared {
    store: Store,
    pipeline: Pipeline,
    texts: Arc<Texts>,
    settings: BotSettings,
    /// Each user's command budget, shared with the other instances.
    rate: CommandBudget,
    /// Names `getChat` found to be no one, and when: not asked again for
    /// [`MISSING_TTL`] (a made-up name sent again costs no call).
    missing: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a name `getChat` did not find is answered "not found" from memory.
const MISSING_TTL: Duration = Duration::from_secs(600);
/// The most such names remembered (the oldest half forgotten past it).
const MISSING_MAX: usize = 100_000;

/// The handler of one bot's updates. Clones share everything.
#[derive(Clone)]
pub struct BotHandler {
    shared: Arc<Shared>,
    /// This bot's id and client: it answers what it received.
    bot_id: i64,
    bot: Bot,
    /// This bot's username (`getMe`, asked once): a command naming
    /// another bot (`/link@other_bot`) is not ours.
    username: Arc<tokio::sync::OnceCell<String>>,
}

/// Handlers for every bot, sharing one command budget (`rate`, made for
/// `settings.commands_per_minute`) and one set of texts.
pub fn handlers(
    store: Store,
    pipeline: Pipeline,
    bots: Vec<(i64, Bot)>,
    settings: BotSettings,
    rate: CommandBudget,
) -> Vec<BotHandler> {
    let shared = Arc::new(Shared {
        store,
        pipeline,
        texts: Texts::shared(),
        settings,
        rate,
        missing: std::sync::Mutex::default(),
    });
    bots.into_iter()
        .map(|(bot_id, bot)| BotHandler {
            shared: shared.clone(),
            bot_id,
            bot,
            username: Arc::default(),
        })
        .collect()
}

/// The commands shown in Telegram's menu, by their text key.
const MENU: [(&str, &str); 10] = [
    ("start", "cmd-start"),
    ("help", "cmd-help"),
    ("add", "cmd-add"),
    ("list", "cmd-list"),
    ("remove", "cmd-remove"),
    ("pause", "cmd-pause"),
    ("resume", "cmd-resume"),
    ("filter", "cmd-filter"),
    ("lang", "cmd-lang"),
    ("link", "cmd-link"),
];

impl BotHandler {
    /// This bot's id.
    pub fn bot_id(&self) -> i64 {
        self.bot_id
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    fn t(&self, lang: Lang, key: &str, args: &[(&str, Arg)]) -> String {
        self.shared.texts.get(lang, key, args)
    }

    /// `setMyCommands` in each language (English also as the default list).
    /// Failures are logged: the menu is a convenience, commands work without.
    pub async fn set_commands(&self) {
        for lang in Lang::ALL {
            let commands: Vec<BotCommand> = MENU
                .iter()
                .map(|(c, key)| BotCommand::new(*c, self.t(lang, key, &[])))
                .collect();
            let mut calls = vec![
                self.bot
                    .set_my_commands(commands.clone())
                    .language_code(lang.code()),
            ];
            if lang == Lang::En {
                calls.push(self.bot.set_my_commands(commands));
            }
            for call in calls {
                if let Err(e) = call.await {
                    tracing::warn!(bot_id = self.bot_id, lang = lang.code(), error = %e, "setMyCommands failed; the command menu may be out of date.");
                }
            }
        }
    }

    /// A message to the bot: a command in a private chat, `/link` in a group.
    pub async fn on_message(&self, msg: &Message) -> Result<(), StoreError> {
        if msg.chat.is_private() {
            commands::on_private(self, msg).await
        } else if msg.chat.is_group() || msg.chat.is_supergroup() {
            chats::on_group_message(self, msg).await
        } else {
            Ok(())
        }
    }

    /// A post in a channel our bot is in: `/link` there makes it a
    /// destination. True when it was that (and is no post to deliver).
    pub async fn on_channel_post(&self, msg: &Message) -> Result<bool, StoreError> {
        chats::on_channel_post(self, msg).await
    }

    /// An inline button pressed.
    pub async fn on_callback(&self, q: &CallbackQuery) -> Result<(), StoreError> {
        list::on_callback(self, q).await
    }

    /// Our bot added to or removed from a chat.
    pub async fn on_my_chat_member(&self, m: &ChatMemberUpdated) -> Result<(), StoreError> {
        chats::on_my_chat_member(self, m).await
    }

    /// The user's record and language; registers them (as `/start` would)
    /// when they talk to the bot for the first time.
    async fn user(&self, tg_id: i64, code: Option<&str>) -> Result<(BotUser, Lang), StoreError> {
        let user = match self.store().bot_user(tg_id).await? {
            Some(u) if u.bot_id.is_some() => u,
            _ => {
                self.store()
                    .start_user(tg_id, Lang::from_telegram(code).code(), self.bot_id)
                    .await?
            }
        };
        let lang = Lang::parse(&user.language).unwrap_or(Lang::En);
        Ok((user, lang))
    }

    /// Makes the registry agree with the database about one subscription,
    /// at once: in the index when active, out of it otherwise.
    async fn sync(&self, subscription_id: i64) -> Result<(), StoreError> {
        use crate::pipeline::PipelineError;
        match self
            .shared
            .pipeline
            .sync_subscription(self.store(), subscription_id)
            .await
        {
            Ok(()) => Ok(()),
            // The database failed: the command's reply says try again.
            Err(PipelineError::Store(e)) => Err(e),
            Err(e) => {
                tracing::warn!(subscription_id, error = %e, "Could not bring a subscription change to the registry.");
                Ok(())
            }
        }
    }

    /// Wakes the copies worker (a backfill was asked for).
    fn mirror_wake(&self) {
        self.shared.pipeline.mirror_wake();
    }

    /// Whether `user`'s subscriptions may compile `adding` regular
    /// expressions more in `subscription_id` (its own current ones are
    /// replaced, so they do not count): the per-user budget of compiled
    /// patterns. Adding none always fits.
    async fn patterns_fit(
        &self,
        user: i64,
        subscription_id: i64,
        adding: usize,
    ) -> Result<bool, StoreError> {
        if adding == 0 {
            return Ok(true);
        }
        let others = self.store().user_patterns(user, subscription_id).await?;
        Ok(others + adding <= kuryer_actors::transform::MAX_PATTERNS_PER_USER)
    }

    /// Whether `text` is a command addressed to another bot (`/cmd@other`):
    /// in a group every bot sees it, and only the one it names answers.
    /// Our own name is asked once (`getMe`); while that fails, a command is
    /// taken as ours.
    async fn for_another_bot(&self, text: Option<&str>) -> bool {
        let Some(named) = text.and_then(commands::mention) else {
            return false;
        };
        let me = self
            .username
            .get_or_try_init(|| async {
                let me = self.bot.get_me().await?;
                Ok::<_, teloxide::RequestError>(me.user.username.clone().unwrap_or_default())
            })
            .await;
        match me {
            Ok(me) => !named.eq_ignore_ascii_case(me),
            Err(e) => {
                tracing::warn!(bot_id = self.bot_id, error = %e, "getMe failed; taking a command naming a bot as ours.");
                false
            }
        }
    }

    /// Whether `getChat` found no one by `name` within [`MISSING_TTL`].
    fn known_missing(&self, name: &str) -> bool {
        let missing = self
            .shared
            .missing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        missing
            .get(name)
            .is_some_and(|at| at.elapsed() < MISSING_TTL)
    }

    /// Remembers that `getChat` found no one by `name`.
    fn remember_missing(&self, name: &str) {
        let mut missing = self
            .shared
            .missing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if missing.len() >= MISSING_MAX {
            missing.retain(|_, at| at.elapsed() < MISSING_TTL / 2);
        }
        missing.insert(name.to_owned(), std::time::Instant::now());
    }

    fn count(&self, command: &'static str) {
        crate::telemetry::events::bot_command(command);
    }
}

/// Waits before a reply is retried.
const REPLY_RETRY: Duration = Duration::from_millis(300);

/// The text key telling how the look-up of a channel added by name ended,
/// by its stored status; `None` while it is still pending. The "why not"
/// texts say the subscription stays (listed as not available, delivering
/// nothing) and `/remove` drops it: as `/list` shows it.
/// The text of a channel that waits for something not coming soon (a
/// reader account none exists of, look-ups spent for the day, a flood
/// wait), by its `channel_status_reason`: `add-…` for `/add`'s answer,
/// `status-…` for `/list`'s; `None` for any other reason.
pub(crate) fn waiting_key(place: &str, reason: Option<&str>) -> Option<&'static str> {
    Some(match (place, reason?) {
        ("add", "no_reader_account") => "add-waits-reader",
        ("add", "budget_exhausted_today") => "add-waits-budget",
        ("add", "flood_wait") => "add-waits-flood",
        ("status", "no_reader_account") => "status-waits-reader",
        ("status", "budget_exhausted_today") => "status-waits-budget",
        ("status", "flood_wait") => "status-waits-flood",
        _ => return None,
    })
}

pub(crate) fn resolve_notice_key(status: &str) -> Option<&'static str> {
    match status {
        "active" => Some("resolve-ready"),
        "invalid" => Some("resolve-invalid"),
        "private" => Some("resolve-private"),
        "not_a_channel" => Some("resolve-not-channel"),
        _ => None,
    }
}
