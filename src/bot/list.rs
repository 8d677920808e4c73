//! `/list`: a page of subscriptions with a row of buttons each (pause or
//! resume, remove, settings), pages of [`PAGE`] so no message nears
//! Telegram's 4,096 characters; the settings view of one subscription
//! (copy or forward, where it goes); and what each button does.
//!
//! Callback data (at most 64 bytes): `p:<sub>:<page>` pause, `u:…` resume,
//! `r:…` remove, `s:<sub>` settings, `l:<page>` a page, `m:<sub>:c|f` mode,
//! `d:<sub>:<destination>` route. A button of an old message that names a
//! subscription the user no longer has (or someone else's) is "stale".

use kuryer_actors::filters::FilterSpec;
use kuryer_actors::model::{DeliveryMode, DestinationKind};
use teloxide::types::{
    CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, MaybeInaccessibleMessage,
};

use super::BotHandler;
use super::reply::{self, echo};
use crate::command_budget::Verdict;
use crate::i18n::{Arg, Lang};
use crate::store::{DestinationView, RouteOutcome, StoreError, SubState, UserSubscription};

/// Subscriptions a page: 8 rows of at most ~120 characters.
pub(super) const PAGE: usize = 8;

/// `@name`, or the title of a channel known only by id.
pub(super) fn name_of(s: &UserSubscription) -> String {
    s.channel_username
        .clone()
        .or_else(|| s.channel_title.clone())
        .map_or_else(|| format!("#{}", s.id), |n| echo(&n))
}

fn dest_name(h: &BotHandler, lang: Lang, kind: DestinationKind, title: Option<&str>) -> String {
    match (kind, title) {
        (DestinationKind::Private, _) => h.t(lang, "dest-private", &[]),
        (_, Some(t)) => format!("\u{201c}{}\u{201d}", echo(t)),
        (_, None) => h.t(lang, "dest-private", &[]),
    }
}

/// The status text of a subscription paused because its channel cannot
/// be read.
fn channel_paused_key(why: &str) -> &'static str {
    match why {
        crate::store::CHANNEL_PRIVATE => "status-channel-private",
        crate::store::CHANNEL_GONE => "status-channel-gone",
        _ => "status-channel-bot-removed",
    }
}

fn status(h: &BotHandler, lang: Lang, s: &UserSubscription) -> String {
    let key = if s.paused {
        "status-paused"
    } else if let Some(p) = &s.channel_paused {
        channel_paused_key(&p.why)
    } else if !s.active {
        "status-dest-off"
    } else if let Some(key) = super::waiting_key("status", s.channel_status_reason.as_deref()) {
        key
    } else {
        match s.channel_status.as_str() {
            "active" => "status-active",
            "pending" => "status-pending",
            _ => "status-broken",
        }
    };
    h.t(lang, key, &[])
}

fn button(text: String, data: String) -> InlineKeyboardButton {
    InlineKeyboardButton::callback(text, data)
}

/// The text and keyboard of page `page` (0-based, clamped) of the list.
pub(super) async fn page(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    page: usize,
) -> Result<(String, Option<InlineKeyboardMarkup>), StoreError> {
    let subs = h.store().user_subscriptions(uid).await?;
    if subs.is_empty() {
        return Ok((h.t(lang, "list-empty", &[]), None));
    }
    let pages = subs.len().div_ceil(PAGE);
    let page = page.min(pages - 1);
    let mut lines = vec![h.t(
        lang,
        "list-header",
        &[
            ("count", subs.len().into()),
            ("page", (page + 1).into()),
            ("pages", pages.into()),
        ],
    )];
    let mut rows = Vec::new();
    for (i, s) in subs.iter().enumerate().skip(page * PAGE).take(PAGE) {
        let n = i + 1;
        lines.push(format!(
            "{n}. @{} — {} → {}",
            name_of(s),
            status(h, lang, s),
            dest_name(h, lang, s.destination_kind, s.destination_title.as_deref())
        ));
        let nn = [("n", Arg::from(n))];
        let toggle = if s.paused {
            button(h.t(lang, "btn-resume", &nn), format!("u:{}:{page}", s.id))
        } else {
            button(h.t(lang, "btn-pause", &nn), format!("p:{}:{page}", s.id))
        };
        rows.push(vec![
            toggle,
            button(h.t(lang, "btn-remove", &nn), format!("r:{}:{page}", s.id)),
            button(h.t(lang, "btn-settings", &nn), format!("s:{}", s.id)),
        ]);
    }
    let mut nav = Vec::new();
    if page > 0 {
        nav.push(button(
            h.t(lang, "btn-prev", &[]),
            format!("l:{}", page - 1),
        ));
    }
    if page + 1 < pages {
        nav.push(button(
            h.t(lang, "btn-next", &[]),
            format!("l:{}", page + 1),
        ));
    }
    if !nav.is_empty() {
        rows.push(nav);
    }
    Ok((lines.join("\n"), Some(InlineKeyboardMarkup::new(rows))))
}

/// The settings view of one subscription.
fn settings(
    h: &BotHandler,
    lang: Lang,
    s: &UserSubscription,
    dests: &[DestinationView],
) -> (String, InlineKeyboardMarkup) {
    let spec: FilterSpec = serde_json::from_value(s.filters.clone()).unwrap_or_default();
    let filters = if spec.is_empty() {
        h.t(lang, "filters-none", &[])
    } else {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(spec.include.iter().map(|w| format!("+{w}")));
        parts.extend(spec.exclude.iter().map(|w| format!("-{w}")));
        parts.extend(spec.regex.iter().map(|r| format!("re:{r}")));
        if !spec.skip_media.is_empty() {
            parts.push(format!("skip:{}", spec.skip_media.join(",")));
        }
        echo(&parts.join(" "))
    };
    let mode = match s.mode {
        DeliveryMode::Copy => h.t(lang, "mode-copy", &[]),
        DeliveryMode::Forward => h.t(lang, "mode-forward", &[]),
    };
    let text = h.t(
        lang,
        "settings",
        &[
            ("name", name_of(s).into()),
            ("mode", mode.into()),
            (
                "dest",
                dest_name(h, lang, s.destination_kind, s.destination_title.as_deref()).into(),
            ),
            ("filters", filters.into()),
        ],
    );
    let text = match &s.channel_paused {
        Some(p) => {
            let why = h.t(lang, channel_paused_key(&p.why), &[]);
            let since = p.since.format("%Y-%m-%d %H:%M").to_string();
            let paused = h.t(
                lang,
                "settings-channel-paused",
                &[("why", why.into()), ("since", since.into())],
            );
            format!("{text}\n{paused}")
        }
        None => text,
    };
    let mark = |on: bool, t: String| if on { format!("✅ {t}") } else { t };
    let mut rows = vec![vec![
        button(
            mark(s.mode == DeliveryMode::Copy, h.t(lang, "btn-copy", &[])),
            format!("m:{}:c", s.id),
        ),
        button(
            mark(
                s.mode == DeliveryMode::Forward,
                h.t(lang, "btn-forward", &[]),
            ),
            format!("m:{}:f", s.id),
        ),
    ]];
    // One row a destination (a user has few; Telegram allows 100 buttons).
    for d in dests.iter().filter(|d| d.active).take(20) {
        rows.push(vec![button(
            mark(
                d.id == s.destination_id,
                dest_name(h, lang, d.kind, d.title.as_deref()),
            ),
            format!("d:{}:{}", s.id, d.id),
        )]);
    }
    rows.push(vec![button(h.t(lang, "btn-list", &[]), "l:0".to_owned())]);
    (text, InlineKeyboardMarkup::new(rows))
}

/// What a button's data asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    State(i64, SubState, usize),
    Settings(i64),
    Page(usize),
    Mode(i64, DeliveryMode),
    Route(i64, i64),
}

fn parse(data: &str) -> Option<Action> {
    let mut it = data.split(':');
    let tag = it.next()?;
    let a: i64 = it.next()?.parse().ok()?;
    let b = it.next();
    let page = || b.and_then(|p| p.parse::<usize>().ok());
    Some(match tag {
        "p" => Action::State(a, SubState::Paused, page()?),
        "u" => Action::State(a, SubState::Active, page()?),
        "r" => Action::State(a, SubState::Removed, page()?),
        "s" => Action::Settings(a),
        "l" => Action::Page(usize::try_from(a).ok()?),
        "m" => Action::Mode(
            a,
            match b? {
                "c" => DeliveryMode::Copy,
                "f" => DeliveryMode::Forward,
                _ => return None,
            },
        ),
        "d" => Action::Route(a, b?.parse().ok()?),
        _ => return None,
    })
}

pub(super) async fn on_callback(h: &BotHandler, q: &CallbackQuery) -> Result<(), StoreError> {
    let uid = i64::try_from(q.from.id.0).unwrap_or(i64::MAX);
    let code = q.from.language_code.as_deref();
    match h.shared.rate.check(uid).await {
        Verdict::Allow => {}
        Verdict::Warn | Verdict::Drop => {
            h.count("rate_limited");
            let text = h.t(Lang::from_telegram(code), "rate-limited", &[]);
            reply::answer(&h.bot, &q.id, Some(text), false).await;
            return Ok(());
        }
    }
    h.count("button");
    let (_, lang) = h.user(uid, code).await?;
    let stale = || h.t(lang, "stale", &[]);
    // Buttons live only under the bot's messages in the user's own chat.
    let message = match &q.message {
        Some(MaybeInaccessibleMessage::Regular(m)) if m.chat.id.0 == uid => m.as_ref(),
        _ => {
            reply::answer(&h.bot, &q.id, Some(stale()), true).await;
            return Ok(());
        }
    };
    if let Some(a) = q.data.as_deref().and_then(super::mirror_settings::parse) {
        let (chat, mid) = (message.chat.id.0, message.id);
        let sub = super::mirror_settings::sub_of(&a);
        if !super::mirror_settings::apply(h, uid, &a).await? {
            reply::answer(&h.bot, &q.id, Some(stale()), true).await;
            return Ok(());
        }
        settings_again(h, q, uid, lang, sub, chat, mid, h.t(lang, "done", &[])).await?;
        return Ok(());
    }
    let Some(action) = q.data.as_deref().and_then(parse) else {
        reply::answer(&h.bot, &q.id, Some(stale()), true).await;
        return Ok(());
    };
    let (chat, mid) = (message.chat.id.0, message.id);
    if !on_action(h, q, uid, lang, (chat, mid), action).await? {
        reply::answer(&h.bot, &q.id, Some(stale()), true).await;
    }
    Ok(())
}

/// Does what a button of the list or the settings view asks; false when
/// what it names is gone (a stale button).
async fn on_action(
    h: &BotHandler,
    q: &CallbackQuery,
    uid: i64,
    lang: Lang,
    (chat, mid): (i64, teloxide::types::MessageId),
    action: Action,
) -> Result<bool, StoreError> {
    match action {
        Action::Page(p) => {
            let (text, keyboard) = page(h, uid, lang, p).await?;
            reply::answer(&h.bot, &q.id, None, false).await;
            reply::edit(&h.bot, chat, mid, text, keyboard).await;
        }
        Action::State(sub, state, p) => {
            let Some(s) = h.store().user_subscription(Some(uid), sub).await? else {
                return Ok(false);
            };
            h.store()
                .set_subscription_state(Some(uid), sub, state)
                .await?;
            h.sync(sub).await?;
            let key = match state {
                SubState::Active => "resumed",
                SubState::Paused => "paused",
                SubState::Removed => "removed",
            };
            let toast = h.t(lang, key, &[("name", name_of(&s).into())]);
            reply::answer(&h.bot, &q.id, Some(toast), false).await;
            let (text, keyboard) = page(h, uid, lang, p).await?;
            reply::edit(&h.bot, chat, mid, text, keyboard).await;
        }
        Action::Settings(sub) => {
            let Some(s) = h.store().user_subscription(Some(uid), sub).await? else {
                return Ok(false);
            };
            let dests = h.store().destinations_of(uid).await?;
            let (text, keyboard) = settings(h, lang, &s, &dests);
            let (text, keyboard) =
                super::mirror_settings::extend(h, lang, &s, text, keyboard).await?;
            reply::answer(&h.bot, &q.id, None, false).await;
            reply::edit(&h.bot, chat, mid, text, Some(keyboard)).await;
        }
        Action::Mode(sub, mode) => {
            if !h
                .store()
                .set_subscription_settings(Some(uid), sub, Some(mode), None)
                .await?
            {
                return Ok(false);
            }
            h.sync(sub).await?;
            settings_again(h, q, uid, lang, sub, chat, mid, h.t(lang, "done", &[])).await?;
        }
        Action::Route(sub, dest) => {
            // A group or channel is routed to only while its owner is
            // still its admin; one who lost that loses the chat.
            let target = h.store().destinations_of(uid).await?;
            let target = target.iter().find(|d| d.id == dest);
            if let Some(d) = target.filter(|d| d.kind != DestinationKind::Private) {
                match super::chats::is_admin(h, d.chat_id, uid).await {
                    Some(true) => {}
                    Some(false) => {
                        let owner = (uid, h.store().bot_user(uid).await?.and_then(|u| u.bot_id));
                        super::chats::drop_owner(
                            h,
                            d.id,
                            (owner.0, owner.1, lang),
                            d.title.as_deref(),
                        )
                        .await?;
                        let toast = h.t(lang, "route-not-admin", &[]);
                        settings_again(h, q, uid, lang, sub, chat, mid, toast).await?;
                        return Ok(true);
                    }
                    None => {
                        reply::answer(&h.bot, &q.id, Some(h.t(lang, "error", &[])), false).await;
                        return Ok(true);
                    }
                }
            }
            match h.store().route_subscription(Some(uid), sub, dest).await? {
                RouteOutcome::NotFound => {
                    return Ok(false);
                }
                RouteOutcome::Moved | RouteOutcome::Unchanged => {}
            }
            h.sync(sub).await?;
            let Some(s) = h.store().user_subscription(Some(uid), sub).await? else {
                return Ok(false);
            };
            let dest = dest_name(h, lang, s.destination_kind, s.destination_title.as_deref());
            let toast = h.t(
                lang,
                "routed",
                &[("name", name_of(&s).into()), ("dest", dest.into())],
            );
            settings_again(h, q, uid, lang, sub, chat, mid, toast).await?;
        }
    }
    Ok(true)
}

/// Answers with `toast` and redraws the settings view.
#[allow(clippy::too_many_arguments)]
async fn settings_again(
    h: &BotHandler,
    q: &CallbackQuery,
    uid: i64,
    lang: Lang,
    sub: i64,
    chat: i64,
    mid: teloxide::types::MessageId,
    toast: String,
) -> Result<(), StoreError> {
    reply::answer(&h.bot, &q.id, Some(toast), false).await;
    if let Some(s) = h.store().user_subscription(Some(uid), sub).await? {
        let dests = h.store().destinations_of(uid).await?;
        let (text, keyboard) = settings(h, lang, &s, &dests);
        let (text, keyboard) = super::mirror_settings::extend(h, lang, &s, text, keyboard).await?;
        reply::edit(&h.bot, chat, mid, text, Some(keyboard)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_data_round_trips_and_junk_is_refused() {
        assert_eq!(
            parse("p:12:3"),
            Some(Action::State(12, SubState::Paused, 3))
        );
        assert_eq!(
            parse("r:12:0"),
            Some(Action::State(12, SubState::Removed, 0))
        );
        assert_eq!(parse("s:12"), Some(Action::Settings(12)));
        assert_eq!(parse("l:2"), Some(Action::Page(2)));
        assert_eq!(parse("m:5:f"), Some(Action::Mode(5, DeliveryMode::Forward)));
        assert_eq!(parse("d:5:9"), Some(Action::Route(5, 9)));
        for junk in [
            "",
            "x:1",
            "p:1",
            "m:1:z",
            "d:1",
            "l:-1",
            "p:a:b",
            "'; DROP TABLE users; --",
        ] {
            assert_eq!(parse(junk), None, "{junk}");
        }
        // Telegram's 64-byte limit holds for the largest ids.
        assert!(format!("d:{}:{}", i64::MAX, i64::MAX).len() <= 64);
    }
}
