//! Groups and channels as destinations: `/link` sent there by an admin of
//! the chat (checked with `getChatMember`) makes it a destination of that
//! user, served by the bot that got the command; our bot removed from a
//! chat deactivates it, takes its subscriptions out of the registry and
//! tells its owner.
//!
//! A channel has no sender on its posts, so `/link` in a private chat
//! gives a one-time code, and `/link <code>` posted in the channel (only
//! its admins can post) links it to the code's owner.

use std::time::Duration;

use kuryer_actors::model::DestinationKind;
use sha2::{Digest, Sha256};
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, ChatMemberUpdated, Message, UserId};

use super::BotHandler;
use super::commands::parse_command;
use super::reply::{self, echo};
use crate::command_budget::Verdict;
use crate::i18n::{Arg, Lang};
use crate::store::{LinkOutcome, StoreError};

/// How long a channel link code is valid.
pub(super) const CODE_TTL: Duration = Duration::from_secs(600);
/// Wrong codes a chat may post within [`FAILURE_WINDOW`]; past them its
/// `/link <code>` posts are refused unread (told once) until the window ends.
const MAX_FAILURES: i32 = 5;
/// The window wrong codes are counted in, from the chat's first one.
const FAILURE_WINDOW: Duration = Duration::from_secs(900);

/// A new link code: 128 random bits (the thread-local CSPRNG of `rand`,
/// ChaCha seeded from the OS), as 32 lower-case hex digits.
pub(super) fn new_code() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// What is stored of a code: its SHA-256, so the table alone links nothing.
/// `None` when `text` is no code at all (not 32 hex digits).
pub(super) fn code_hash(text: &str) -> Option<[u8; 32]> {
    let code = text.trim().to_ascii_lowercase();
    (code.len() == 32 && code.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Sha256::digest(code.as_bytes()).into())
}

/// Whether `user` is an admin (or the creator) of `chat` now, as
/// `getChatMember` says; `None` when Telegram could not be asked.
pub(super) async fn is_admin(h: &BotHandler, chat: i64, user: i64) -> Option<bool> {
    let uid = UserId(u64::try_from(user).ok()?);
    match h.bot.get_chat_member(ChatId(chat), uid).await {
        Ok(member) => Some(member.is_privileged()),
        Err(e) => {
            tracing::info!(chat_id = chat, error = %e, "getChatMember failed; admin rights not known.");
            None
        }
    }
}

/// The owner of destination `destination_id` is no longer an admin of
/// its chat: the chat stops being theirs (another admin may link it), the
/// subscriptions they routed there come back to their private chat, and
/// they are told.
pub(super) async fn drop_owner(
    h: &BotHandler,
    destination_id: i64,
    owner: (i64, Option<i64>, Lang),
    title: Option<&str>,
) -> Result<(), StoreError> {
    let (owner, owner_bot, lang) = owner;
    let dropped = h.store().drop_destination_owner(destination_id).await?;
    if let Err(e) = h.shared.pipeline.remove_destination(destination_id).await {
        tracing::warn!(destination_id, error = %e, "The registry did not answer.");
    }
    for id in dropped.moved.iter().chain(&dropped.removed) {
        h.sync(*id).await?;
    }
    tracing::info!(
        destination_id,
        moved = dropped.moved.len(),
        removed = dropped.removed.len(),
        "A destination's owner is no longer its admin; it is theirs no more."
    );
    let title = echo(title.unwrap_or("…"));
    let text = h.t(lang, "dest-admin-lost", &[("title", Arg::from(title))]);
    reply::send(h, owner_bot, owner, text, None);
    Ok(())
}

/// Chat `chat` (topic `thread`) is linked by someone else: when they are no
/// longer its admin it is taken from them. True when it was.
async fn reclaim(h: &BotHandler, (chat, thread): (i64, i32)) -> Result<bool, StoreError> {
    let Some(owner) = h.store().destination_owner((chat, thread)).await? else {
        return Ok(false);
    };
    if is_admin(h, chat, owner.owner_telegram_id).await != Some(false) {
        return Ok(false);
    }
    let lang = Lang::parse(&owner.owner_language).unwrap_or(Lang::En);
    drop_owner(
        h,
        owner.destination_id,
        (owner.owner_telegram_id, owner.owner_bot_id, lang),
        owner.title.as_deref(),
    )
    .await?;
    Ok(true)
}

/// A message in a group or supergroup: only `/link` is ours there.
pub(super) async fn on_group_message(h: &BotHandler, msg: &Message) -> Result<(), StoreError> {
    let (Some(text), Some(from)) = (msg.text(), msg.from.as_ref()) else {
        return Ok(());
    };
    let Some((command, _)) = parse_command(text) else {
        // Plain talk in a group is not for us.
        return Ok(());
    };
    if h.for_another_bot(Some(text)).await {
        return Ok(());
    }
    let uid = i64::try_from(from.id.0).unwrap_or(i64::MAX);
    let chat = msg.chat.id.0;
    if h.shared.rate.check(uid).await != Verdict::Allow {
        h.count("rate_limited");
        return Ok(());
    }
    let user = h.store().bot_user(uid).await?;
    let lang = user
        .as_ref()
        .and_then(|u| Lang::parse(&u.language))
        .unwrap_or_else(|| Lang::from_telegram(from.language_code.as_deref()));
    if command != "link" {
        h.count("group_other");
        reply::send(
            h,
            Some(h.bot_id),
            chat,
            h.t(lang, "group-only-link", &[]),
            None,
        );
        return Ok(());
    }
    h.count("link");
    let admin = match h.bot.get_chat_member(ChatId(chat), UserId(from.id.0)).await {
        Ok(member) => member.is_privileged(),
        Err(e) => {
            tracing::info!(chat_id = chat, error = %e, "getChatMember failed; /link not done.");
            reply::send(h, Some(h.bot_id), chat, h.t(lang, "error", &[]), None);
            return Ok(());
        }
    };
    if !admin {
        reply::send(
            h,
            Some(h.bot_id),
            chat,
            h.t(lang, "link-not-admin", &[]),
            None,
        );
        return Ok(());
    }
    let Some(user) = user else {
        reply::send(
            h,
            Some(h.bot_id),
            chat,
            h.t(lang, "link-start-first", &[]),
            None,
        );
        return Ok(());
    };
    let kind = if msg.chat.is_supergroup() {
        DestinationKind::Supergroup
    } else {
        DestinationKind::Group
    };
    // `/link` sent inside a forum topic links that topic only.
    let thread = msg
        .thread_id
        .filter(|_| msg.is_topic_message)
        .map_or(0, |t| t.0.0);
    let title = msg.chat.title().map(|t| {
        if thread > 0 {
            format!("{t} #{thread}")
        } else {
            t.to_owned()
        }
    });
    link(
        h,
        user.telegram_id,
        user.bot_id,
        lang,
        (chat, thread),
        kind,
        title,
    )
    .await
}

/// Links `chat` to `owner` and tells both sides.
async fn link(
    h: &BotHandler,
    owner: i64,
    owner_bot: Option<i64>,
    lang: Lang,
    (chat, thread): (i64, i32),
    kind: DestinationKind,
    title: Option<String>,
) -> Result<(), StoreError> {
    let mut outcome = h
        .store()
        .link_destination_topic(owner, (chat, thread), kind, title.as_deref(), h.bot_id)
        .await?;
    // Whoever linked it first keeps it only while they are its admin.
    if outcome == LinkOutcome::OwnedByOther && reclaim(h, (chat, thread)).await? {
        outcome = h
            .store()
            .link_destination_topic(owner, (chat, thread), kind, title.as_deref(), h.bot_id)
            .await?;
    }
    match outcome {
        LinkOutcome::OwnedByOther => {
            reply::send(
                h,
                Some(h.bot_id),
                chat,
                h.t(lang, "link-other-owner", &[]),
                None,
            );
        }
        LinkOutcome::Linked {
            destination_id,
            created,
        } => {
            h.store().clear_destination_notices(destination_id).await?;
            if !created {
                // Linked again after a loss: what was routed there delivers again.
                for s in h.store().user_subscriptions(owner).await? {
                    if s.destination_id == destination_id {
                        h.sync(s.id).await?;
                    }
                }
            }
            reply::send(
                h,
                Some(h.bot_id),
                chat,
                h.t(lang, "link-ok-chat", &[]),
                None,
            );
            let title = echo(title.as_deref().unwrap_or("…"));
            let text = h.t(lang, "link-ok-owner", &[("title", Arg::from(title))]);
            reply::send(h, owner_bot, owner, text, None);
        }
    }
    Ok(())
}

/// `/link <code>` posted in a channel links it; true when the post was a
/// `/link` (it is then no post to deliver).
pub(super) async fn on_channel_post(h: &BotHandler, msg: &Message) -> Result<bool, StoreError> {
    let Some((command, args)) = msg.text().and_then(parse_command) else {
        return Ok(false);
    };
    if command != "link" || h.for_another_bot(msg.text()).await {
        return Ok(false);
    }
    h.count("link");
    let chat = msg.chat.id.0;
    // A chat that posted too many wrong codes is not listened to for a
    // while: guessing is slowed there and costs no one else anything.
    let failures = h.store().link_failures(chat, FAILURE_WINDOW).await?;
    if failures >= MAX_FAILURES {
        h.count("link_throttled");
        if failures == MAX_FAILURES {
            let minutes = i64::try_from(FAILURE_WINDOW.as_secs() / 60).unwrap_or(i64::MAX);
            let text = h.t(Lang::En, "link-throttled", &[("minutes", minutes.into())]);
            reply::send(h, Some(h.bot_id), chat, text, None);
        }
        h.store().link_failed(chat, FAILURE_WINDOW).await?;
        return Ok(true);
    }
    let owner = match code_hash(args) {
        Some(hash) => h.store().take_link_code(&hash).await?,
        None => None,
    };
    let user = match owner {
        Some(uid) => h.store().bot_user(uid).await?,
        None => None,
    };
    if user.is_none() {
        h.store().link_failed(chat, FAILURE_WINDOW).await?;
    }
    let Some(user) = user else {
        reply::send(
            h,
            Some(h.bot_id),
            chat,
            h.t(Lang::En, "link-private", &[]),
            None,
        );
        return Ok(true);
    };
    let lang = Lang::parse(&user.language).unwrap_or(Lang::En);
    let title = msg.chat.title().map(str::to_owned);
    link(
        h,
        user.telegram_id,
        user.bot_id,
        lang,
        (chat, 0),
        DestinationKind::Channel,
        title,
    )
    .await?;
    Ok(true)
}

/// Our bot's membership changed in a chat.
pub(super) async fn on_my_chat_member(
    h: &BotHandler,
    m: &ChatMemberUpdated,
) -> Result<(), StoreError> {
    if m.chat.is_private() {
        // Blocked or unblocked by a user: the sender's 403 handling covers it.
        return Ok(());
    }
    let chat = m.chat.id.0;
    if !m.new_chat_member.is_present() {
        let Some(lost) = h.store().lose_destination_chat(chat, "removed").await? else {
            return Ok(());
        };
        if let Err(e) = h
            .shared
            .pipeline
            .remove_destination(lost.destination_id)
            .await
        {
            tracing::warn!(chat_id = chat, error = %e, "The registry did not answer.");
        }
        tracing::info!(
            chat_id = chat,
            destination_id = lost.destination_id,
            "Our bot was removed from a destination chat; deactivated."
        );
        let lang = Lang::parse(&lost.owner_language).unwrap_or(Lang::En);
        let title = echo(lost.title.as_deref().unwrap_or("…"));
        let text = h.t(lang, "dest-lost", &[("title", Arg::from(title))]);
        reply::send(h, lost.owner_bot_id, lost.owner_telegram_id, text, None);
    } else if !m.old_chat_member.is_present() && !m.chat.is_channel() {
        let lang = Lang::from_telegram(m.from.language_code.as_deref());
        reply::send(h, Some(h.bot_id), chat, h.t(lang, "link-hint", &[]), None);
    }
    Ok(())
}
