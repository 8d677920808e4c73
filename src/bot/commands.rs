//! Commands in a private chat. Every input gets a short translated reply:
//! unknown commands, malformed names, empty arguments, text that is no
//! command at all. User text is never logged.

use kuryer_actors::filters::FilterSpec;
use kuryer_actors::model::{ChannelUsername, UsernameError};
use teloxide::prelude::Requester;
use teloxide::types::{Message, MessageOrigin, Recipient};
use teloxide::{ApiError, RequestError};

use super::reply::{self, echo};
use super::{BotHandler, list};
use crate::command_budget::Verdict;
use crate::i18n::{Arg, Lang};
use crate::store::{StoreError, SubState, UserSubscription};
use crate::telemetry::events;

/// The most names one `/add` handles (each may cost a `getChat`).
const MAX_NAMES: usize = 20;

/// A command and its argument text: `/add@our_bot x y` → ("add", "x y").
pub(super) fn parse_command(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('/')?;
    let (head, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let name = head.split('@').next().unwrap_or_default();
    Some((name.to_ascii_lowercase(), args))
}

/// The bot a command names (`/add@some_bot x` → `some_bot`), if any.
pub(super) fn mention(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('/')?;
    let head = rest.split(char::is_whitespace).next().unwrap_or_default();
    head.split_once('@').map(|(_, bot)| bot)
}

pub(super) async fn on_private(h: &BotHandler, msg: &Message) -> Result<(), StoreError> {
    let Some(from) = &msg.from else {
        return Ok(());
    };
    if h.for_another_bot(msg.text()).await {
        return Ok(());
    }
    let uid = i64::try_from(from.id.0).unwrap_or(i64::MAX);
    let chat = msg.chat.id.0;
    let code = from.language_code.as_deref();
    if !within_rate(h, uid, chat, code).await {
        return Ok(());
    }
    // A post forwarded from a channel subscribes to that channel.
    if let Some(MessageOrigin::Channel { chat: origin, .. }) = msg.forward_origin() {
        return on_forward(h, uid, chat, code, origin).await;
    }
    let Some((command, args)) = msg.text().and_then(parse_command) else {
        h.count("other");
        let (_, lang) = h.user(uid, code).await?;
        reply::send(
            h,
            Some(h.bot_id),
            chat,
            h.t(lang, "not-a-command", &[]),
            None,
        );
        return Ok(());
    };
    if command == "start" {
        h.count("start");
        let lang = Lang::from_telegram(code);
        let user = h.store().start_user(uid, lang.code(), h.bot_id).await?;
        let lang = Lang::parse(&user.language).unwrap_or(lang);
        reply::send(h, Some(h.bot_id), chat, h.t(lang, "start", &[]), None);
        return Ok(());
    }
    let (_, lang) = h.user(uid, code).await?;
    if let Some(out) = command_reply(h, uid, chat, lang, &command, args).await? {
        reply::send(h, Some(h.bot_id), chat, out, None);
    }
    Ok(())
}

/// Whether the user is within the command rate; past it, the first
/// command over is told so and the rest are dropped.
async fn within_rate(h: &BotHandler, uid: i64, chat: i64, code: Option<&str>) -> bool {
    match h.shared.rate.check(uid).await {
        Verdict::Allow => true,
        Verdict::Warn => {
            h.count("rate_limited");
            let text = h.t(Lang::from_telegram(code), "rate-limited", &[]);
            reply::send(h, Some(h.bot_id), chat, text, None);
            false
        }
        Verdict::Drop => {
            h.count("rate_limited");
            false
        }
    }
}

/// A post forwarded from channel `origin`: subscribes to it by its public
/// name (a private channel has none to subscribe by).
async fn on_forward(
    h: &BotHandler,
    uid: i64,
    chat: i64,
    code: Option<&str>,
    origin: &teloxide::types::Chat,
) -> Result<(), StoreError> {
    h.count("forward");
    let (_, lang) = h.user(uid, code).await?;
    let text = match origin.username() {
        Some(name) => add(h, uid, lang, &[name.to_owned()]).await?,
        None => {
            let title = origin.title().unwrap_or("…");
            h.t(lang, "add-private", &[("input", echo(title).into())])
        }
    };
    reply::send(h, Some(h.bot_id), chat, text, None);
    Ok(())
}

/// The reply to a command other than `/start` (`None`: it replied itself).
async fn command_reply(
    h: &BotHandler,
    uid: i64,
    chat: i64,
    lang: Lang,
    command: &str,
    args: &str,
) -> Result<Option<String>, StoreError> {
    let words: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    let out = match command {
        "help" => {
            h.count("help");
            h.t(lang, "help", &[])
        }
        "add" => {
            h.count("add");
            if words.is_empty() {
                h.t(lang, "add-usage", &[])
            } else {
                match super::backfill::split_last(&words) {
                    Ok((names, n)) => {
                        let out = add(h, uid, lang, names).await?;
                        super::backfill::after_add(h, uid, lang, names, n, out).await?
                    }
                    Err(()) => h.t(lang, "add-backfill-bad", &[]),
                }
            }
        }
        "list" => {
            h.count("list");
            let (text, keyboard) = list::page(h, uid, lang, 0).await?;
            reply::send(h, Some(h.bot_id), chat, text, keyboard);
            return Ok(None);
        }
        "remove" | "pause" | "resume" => {
            h.count(match command {
                "remove" => "remove",
                "pause" => "pause",
                _ => "resume",
            });
            if words.is_empty() {
                h.t(
                    lang,
                    "name-usage",
                    &[("command", command.to_owned().into())],
                )
            } else {
                change_state(h, uid, lang, command, &words).await?
            }
        }
        "filter" => {
            h.count("filter");
            filter(h, uid, lang, &words).await?
        }
        "header" | "footer" | "replace" | "quiet" | "digest" => {
            h.count(match command {
                "header" => "header",
                "footer" => "footer",
                "replace" => "replace",
                "digest" => "digest",
                _ => "quiet",
            });
            super::send_settings::command(h, uid, lang, command, args).await?
        }
        "lang" => {
            h.count("lang");
            match words.first().and_then(|w| Lang::parse(w)) {
                Some(new) if words.len() == 1 => {
                    h.store().set_language(uid, new.code()).await?;
                    h.t(new, "lang-ok", &[])
                }
                _ => h.t(lang, "lang-usage", &[]),
            }
        }
        "link" => {
            h.count("link");
            // One live code a user: a new one replaces the old.
            let code = super::chats::new_code();
            let hash = super::chats::code_hash(&code).unwrap_or_default();
            let ttl = super::chats::CODE_TTL;
            h.store().issue_link_code(uid, &hash, ttl).await?;
            let minutes = i64::try_from(ttl.as_secs() / 60).unwrap_or(i64::MAX);
            format!(
                "{}\n{}",
                h.t(lang, "link-private", &[]),
                h.t(
                    lang,
                    "link-code",
                    &[("code", code.into()), ("minutes", minutes.into())]
                )
            )
        }
        "stats" => {
            h.count("stats");
            stats(h, uid, lang).await?
        }
        _ => {
            h.count("unknown");
            h.t(lang, "unknown-command", &[])
        }
    };
    Ok(Some(out))
}

/// What Telegram says a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Channel,
    Protected,
    NotChannel,
    NotFound,
    /// Telegram could not be asked now: subscribed, checked later.
    Unknown,
}

/// What `getChat` said of `name`; a name found to be no one is remembered
/// for a while (`BotHandler::known_missing`), and asked again only then.
async fn check(h: &BotHandler, name: &ChannelUsername) -> Checked {
    if h.known_missing(name.as_str()) {
        return Checked::NotFound;
    }
    let checked = ask(h, name).await;
    if checked == Checked::NotFound {
        h.remember_missing(name.as_str());
    }
    checked
}

async fn ask(h: &BotHandler, name: &ChannelUsername) -> Checked {
    match h
        .bot
        .get_chat(Recipient::ChannelUsername(format!("@{}", name.as_str())))
        .await
    {
        Ok(chat) if chat.is_channel() => {
            if chat.has_protected_content() {
                Checked::Protected
            } else {
                Checked::Channel
            }
        }
        Ok(_) => Checked::NotChannel,
        Err(RequestError::Api(ApiError::ChatNotFound | ApiError::UserNotFound)) => {
            Checked::NotFound
        }
        Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("not found") => {
            Checked::NotFound
        }
        Err(e) => {
            tracing::info!(error = %e, "getChat failed; subscribing unchecked.");
            Checked::Unknown
        }
    }
}

/// `/add` of `inputs`: one line a name, in one reply.
async fn add(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    inputs: &[String],
) -> Result<String, StoreError> {
    let mut lines = Vec::new();
    let existing = h.store().user_subscriptions(uid).await?;
    let mut count = i64::try_from(existing.len()).unwrap_or(i64::MAX);
    let max = h.shared.settings.max_subscriptions;
    let mut seen: Vec<ChannelUsername> = Vec::new();
    let mut checked = 0usize;
    for input in inputs.iter().take(MAX_NAMES) {
        let name = match ChannelUsername::parse(input) {
            Ok(n) => n,
            Err(UsernameError::InviteLink) => {
                lines.push(h.t(lang, "add-private", &[("input", echo(input).into())]));
                continue;
            }
            Err(_) => {
                lines.push(h.t(lang, "add-bad-name", &[("input", echo(input).into())]));
                continue;
            }
        };
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let arg = [("name", Arg::from(name.as_str()))];
        if let Some(s) = existing
            .iter()
            .find(|s| s.channel_username.as_deref() == Some(name.as_str()))
        {
            let key = if s.paused {
                "add-already-paused"
            } else {
                "add-already"
            };
            lines.push(h.t(lang, key, &arg));
            continue;
        }
        if count >= max {
            lines.push(h.t(lang, "add-quota", &[arg[0].clone(), ("max", max.into())]));
            continue;
        }
        // A new name costs kuryer a look-up and a join by a reader
        // account: a user's new channels a day and names waiting for their
        // look-up are bounded.
        let budget = h.store().add_budget(uid, name.as_str()).await?;
        let settings = &h.shared.settings;
        if budget.new_channel && budget.new_channels_today >= settings.new_channels_per_day {
            let max = ("max", Arg::from(settings.new_channels_per_day));
            lines.push(h.t(lang, "add-budget-channels", &[arg[0].clone(), max]));
            continue;
        }
        if budget.pending && budget.pending_subscriptions >= settings.pending_names {
            let max = ("max", Arg::from(settings.pending_names));
            lines.push(h.t(lang, "add-budget-pending", &[arg[0].clone(), max]));
            continue;
        }
        // Every name asked of Telegram costs a command: the command paid
        // for the first; past the user's allowance the rest go unchecked.
        let asks = !h.known_missing(name.as_str());
        if asks && checked > 0 && !h.shared.rate.take(uid).await {
            h.count("rate_limited");
            lines.push(h.t(lang, "add-rate-limited", &[]));
            break;
        }
        checked += usize::from(asks);
        match check(h, &name).await {
            Checked::Protected => {
                lines.push(h.t(lang, "add-protected", &arg));
                continue;
            }
            Checked::NotChannel => {
                lines.push(h.t(lang, "add-not-channel", &arg));
                continue;
            }
            Checked::NotFound => {
                lines.push(h.t(lang, "add-not-found", &arg));
                continue;
            }
            // Subscribed; the reply follows the channel's stored status.
            Checked::Channel | Checked::Unknown => {}
        }
        let added = h.store().add_subscription(uid, &name).await?;
        count += 1;
        h.sync(added.subscription.id).await?;
        let waits = super::waiting_key("add", added.subscription.channel_status_reason.as_deref());
        if added.created
            && added.subscription.channel_status_reason.as_deref()
                == Some(crate::store::NO_READER_ACCOUNT)
        {
            events::channels_wait_for_reader(1, &name.to_string());
        }
        let key = if added.subscription.channel_status == "pending" {
            // Told "still checking" (or why it waits): the outcome follows
            // when the resolve queue settles it, unless it settled
            // meanwhile (said here).
            match h
                .store()
                .await_resolve_notice(added.subscription.id)
                .await?
            {
                Some(status) => super::resolve_notice_key(&status).unwrap_or("add-pending"),
                None => waits.unwrap_or("add-pending"),
            }
        } else if let Some(key) = waits {
            // Nobody reads it: say why rather than "subscribed".
            key
        } else if added.subscription.channel_status == "active" {
            "add-ok"
        } else {
            // Settled long ago as not readable: say so rather than "checking".
            super::resolve_notice_key(&added.subscription.channel_status).unwrap_or("add-pending")
        };
        lines.push(h.t(lang, key, &arg));
    }
    if inputs.len() > MAX_NAMES {
        lines.push(h.t(lang, "add-too-many", &[("max", MAX_NAMES.into())]));
    }
    Ok(lines.join("\n"))
}

/// The user's subscription to the channel `input` names.
fn find<'a>(subs: &'a [UserSubscription], input: &str) -> Option<&'a UserSubscription> {
    let name = ChannelUsername::parse(input).ok()?;
    subs.iter()
        .find(|s| s.channel_username.as_deref() == Some(name.as_str()))
}

async fn change_state(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    command: &str,
    inputs: &[String],
) -> Result<String, StoreError> {
    let subs = h.store().user_subscriptions(uid).await?;
    let (state, key) = match command {
        "remove" => (SubState::Removed, "removed"),
        "pause" => (SubState::Paused, "paused"),
        _ => (SubState::Active, "resumed"),
    };
    let mut lines = Vec::new();
    for input in inputs.iter().take(MAX_NAMES) {
        let Some(sub) = find(&subs, input) else {
            lines.push(h.t(lang, "not-subscribed", &[("input", echo(input).into())]));
            continue;
        };
        h.store()
            .set_subscription_state(Some(uid), sub.id, state)
            .await?;
        h.sync(sub.id).await?;
        lines.push(h.t(lang, key, &[("name", list::name_of(sub).into())]));
    }
    Ok(lines.join("\n"))
}

/// The rules of `/filter @name …` as a [`FilterSpec`]; `None` when a rule
/// is not one.
pub(super) fn parse_rules(rules: &[String]) -> Option<FilterSpec> {
    let mut spec = FilterSpec::default();
    if rules.len() == 1 && rules[0].eq_ignore_ascii_case("off") {
        return Some(spec);
    }
    for r in rules {
        if let Some(w) = r.strip_prefix('+') {
            spec.include.push(w.to_owned());
        } else if let Some(w) = r.strip_prefix('-') {
            spec.exclude.push(w.to_owned());
        } else if let Some(re) = r.strip_prefix("re:") {
            spec.regex = Some(re.to_owned());
        } else if let Some(kinds) = r.strip_prefix("skip:") {
            spec.skip_media.extend(
                kinds
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
            );
        } else {
            return None;
        }
    }
    (!rules.is_empty()).then_some(spec)
}

async fn filter(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    words: &[String],
) -> Result<String, StoreError> {
    let Some((name, rules)) = words.split_first() else {
        return Ok(h.t(lang, "filter-usage", &[]));
    };
    let subs = h.store().user_subscriptions(uid).await?;
    let Some(sub) = find(&subs, name) else {
        return Ok(h.t(lang, "not-subscribed", &[("input", echo(name).into())]));
    };
    let Some(spec) = parse_rules(rules) else {
        return Ok(h.t(lang, "filter-usage", &[]));
    };
    if spec.compile().is_err() {
        return Ok(h.t(lang, "filter-bad", &[]));
    }
    let regex = usize::from(spec.regex.as_deref().is_some_and(|r| !r.is_empty()));
    if !h.patterns_fit(uid, sub.id, regex).await? {
        let max = kuryer_actors::transform::MAX_PATTERNS_PER_USER;
        return Ok(h.t(lang, "patterns-budget", &[("max", max.into())]));
    }
    let json = serde_json::to_value(&spec).unwrap_or_else(|_| serde_json::json!({}));
    h.store()
        .set_subscription_settings(Some(uid), sub.id, None, Some(&json))
        .await?;
    h.sync(sub.id).await?;
    let key = if spec.is_empty() {
        "filter-cleared"
    } else {
        "filter-ok"
    };
    Ok(h.t(lang, key, &[("name", list::name_of(sub).into())]))
}

async fn stats(h: &BotHandler, uid: i64, lang: Lang) -> Result<String, StoreError> {
    if !h.shared.settings.admins.contains(&uid) {
        return Ok(h.t(lang, "admins-only", &[]));
    }
    let s = h.store().bot_stats().await?;
    let p = h.shared.pipeline.stats().await.ok();
    let channels = s
        .channels
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Reader accounts by state (`new`, `active`, `logged_out`, `lost`, `frozen`), as
    // `kuryer accounts` lists them; "0" when none was ever logged in.
    let mut by_state = std::collections::BTreeMap::<String, u64>::new();
    for a in h.store().reader_accounts().await? {
        *by_state.entry(a.status).or_default() += 1;
    }
    let readers = if by_state.is_empty() {
        "0".to_owned()
    } else {
        by_state
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let n = |v: Option<u64>| Arg::from(v.map_or_else(|| "?".to_owned(), |v| v.to_string()));
    Ok(h.t(
        lang,
        "stats",
        &[
            ("users", s.users.into()),
            ("channels", channels.into()),
            ("active", s.subscriptions_active.into()),
            ("subs", s.subscriptions.into()),
            ("hour", s.sent_last_hour.into()),
            ("day", s.sent_last_day.into()),
            ("queued", n(p.as_ref().map(|p| p.queued as u64))),
            ("inflight", n(p.as_ref().map(|p| p.in_flight as u64))),
            ("throttled", n(p.as_ref().map(|p| p.retry_after))),
            ("readers", readers.into()),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_the_bot_mention() {
        assert_eq!(parse_command("/add @a  b"), Some(("add".into(), "@a  b")));
        assert_eq!(parse_command("/LIST@kuryer_bot"), Some(("list".into(), "")));
        assert_eq!(
            parse_command("/add\n@a\n@b"),
            Some(("add".into(), "@a\n@b"))
        );
        assert_eq!(parse_command("hello"), None);
    }

    #[test]
    fn filter_rules_parse() {
        let s = parse_rules(&[
            "+Ташкент".into(),
            "-ad".into(),
            "re:^\\d+$".into(),
            "skip:video,photo".into(),
        ])
        .unwrap();
        assert_eq!(s.include, vec!["Ташкент"]);
        assert_eq!(s.exclude, vec!["ad"]);
        assert_eq!(s.regex.as_deref(), Some("^\\d+$"));
        assert_eq!(s.skip_media, vec!["video", "photo"]);
        assert!(parse_rules(&["off".into()]).unwrap().is_empty());
        assert!(parse_rules(&["word".into()]).is_none());
        assert!(parse_rules(&[]).is_none());
    }
}
