//! A subscriber told once, in their language, that the
//! channel they follow became private, was deleted, protects its content,
//! was renamed, or no longer has our bot as its admin — with buttons to
//! remove the subscription (`r:<sub>:0`, the `/list` remove, which then
//! shows the list), open its settings (`s:<sub>`) and, when the channel has
//! a new public name, open it. A channel that cannot be read pauses its
//! subscriptions (stored, [`Store::pause_channel`]); when it reads again
//! those told get one "resumed" notice ([`Store::resume_channel`]).
//! Claimed in the store before sending: a notice that fails to send is
//! logged and counted, never sent twice. Sent through the rate limiter
//! (`pipeline/notices.rs`), like every delivery.

use kuryer_actors::model::{DestinationKind, NoticeTarget};
use kuryer_actors::telemetry::events::telegram_id;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use crate::i18n::{Arg, Lang, Texts};
use crate::pipeline::{Notice, Notices};
use crate::store::{
    CHANNEL_BOT_REMOVED, CHANNEL_GONE, CHANNEL_PRIVATE, CHANNEL_PROTECTED, CHANNEL_RENAMED,
    ChannelNotice, Store,
};

/// What happened to the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelProblem {
    /// `CHANNEL_PRIVATE`: it cannot be read.
    Private,
    /// Deleted or its id no longer valid.
    Gone,
    /// Its public name moved to `Some(new)`, or was dropped (`None`: it
    /// became private while we still read it).
    Renamed(Option<String>),
    /// It protects its content: posts are sent as links.
    Protected,
    /// Our bot, through which its posts come, is no longer its admin.
    BotRemoved,
}

impl ChannelProblem {
    /// The `problem_notices.problem` it is claimed under.
    fn claim_key(&self) -> String {
        match self {
            Self::Private => CHANNEL_PRIVATE.to_owned(),
            Self::Gone => CHANNEL_GONE.to_owned(),
            Self::Renamed(new) => format!("{CHANNEL_RENAMED}{}", new.as_deref().unwrap_or("")),
            Self::Protected => CHANNEL_PROTECTED.to_owned(),
            Self::BotRemoved => CHANNEL_BOT_REMOVED.to_owned(),
        }
    }

    /// Whether it pauses the channel's subscriptions (nothing can be read).
    fn pauses(&self) -> bool {
        matches!(self, Self::Private | Self::Gone | Self::BotRemoved)
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Gone => "gone",
            Self::Renamed(None) => "unlisted",
            Self::Renamed(Some(_)) => "renamed",
            Self::Protected => "protected",
            Self::BotRemoved => "bot-removed",
        }
    }

    fn text_key(&self) -> &'static str {
        match self {
            Self::Private => "told-channel-private",
            Self::Gone => "told-channel-gone",
            Self::Renamed(None) => "told-channel-unlisted",
            Self::Renamed(Some(_)) => "told-channel-renamed",
            Self::Protected => "protected-channel",
            Self::BotRemoved => "told-channel-bot-removed",
        }
    }
}

/// The notice's buttons for one subscription.
pub fn keyboard(
    texts: &Texts,
    lang: Lang,
    subscription_id: i64,
    problem: &ChannelProblem,
) -> InlineKeyboardMarkup {
    let mut rows = vec![vec![
        InlineKeyboardButton::callback(
            texts.get(lang, "told-remove", &[]),
            format!("r:{subscription_id}:0"),
        ),
        InlineKeyboardButton::callback(
            texts.get(lang, "told-settings", &[]),
            format!("s:{subscription_id}"),
        ),
    ]];
    if let ChannelProblem::Renamed(Some(new)) = problem
        && let Ok(url) = url::Url::parse(&format!("https://t.me/{new}"))
    {
        rows.push(vec![InlineKeyboardButton::url(
            texts.get(lang, "told-open", &[]),
            url,
        )]);
    }
    InlineKeyboardMarkup::new(rows)
}

/// The "resumed" notice's button: the subscription's settings.
pub fn resumed_keyboard(texts: &Texts, lang: Lang, subscription_id: i64) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(vec![vec![InlineKeyboardButton::callback(
        texts.get(lang, "told-settings", &[]),
        format!("s:{subscription_id}"),
    )]])
}

/// Sends each claimed notice through the limiter, by the bot its owner
/// started (else the first): `make` gives its text and buttons in the
/// owner's language. All are queued at once; the limiter spaces them
/// within the bot's and each chat's limits.
async fn send_notices(
    notices: &Notices,
    channel_id: i64,
    label: &'static str,
    people: Vec<ChannelNotice>,
    make: impl Fn(Lang, i64) -> (String, InlineKeyboardMarkup),
) {
    let users: Vec<i64> = people.iter().map(|n| n.user).collect();
    let batch: Vec<Notice> = people
        .into_iter()
        .map(|n| {
            let lang = Lang::parse(&n.language).unwrap_or(Lang::En);
            let (text, buttons) = make(lang, n.subscription_id);
            Notice {
                to: NoticeTarget {
                    channel_id,
                    subscription_id: n.subscription_id,
                    chat_id: n.user,
                    kind: DestinationKind::Private,
                    bot_id: n.bot_id,
                    thread_id: None,
                },
                text,
                buttons: Some(buttons),
            }
        })
        .collect();
    for (user, sent) in users.into_iter().zip(notices.send_all(batch).await) {
        let result = sent
            .as_ref()
            .map(|_| ())
            .map_err(|e| e as &dyn std::fmt::Display);
        crate::telemetry::events::channel_notice(channel_id, user, label, result);
    }
}

/// Tells every subscriber of the channel not told of this problem yet; a
/// problem that stops reading pauses the channel's subscriptions first.
/// `name`: how to call the channel (`@name`, its name before a rename).
pub async fn tell_channel_problem(
    store: &Store,
    notices: &Notices,
    texts: &Texts,
    channel_id: i64,
    name: &str,
    problem: ChannelProblem,
) {
    let key = problem.claim_key();
    let claimed = if problem.pauses() {
        store.pause_channel(channel_id, &key).await
    } else {
        store.claim_channel_notices(channel_id, &key).await
    };
    let people = match claimed {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, problem = problem.label(), error = %e, "Cannot claim the channel problem notices; they are claimed when the problem is seen again.");
            return;
        }
    };
    send_notices(notices, channel_id, problem.label(), people, |lang, sub| {
        let mut args = vec![("name", Arg::S(name.to_owned()))];
        if let ChannelProblem::Renamed(Some(new)) = &problem {
            args.push(("new", Arg::S(new.clone())));
        }
        (
            texts.get(lang, problem.text_key(), &args),
            keyboard(texts, lang, sub, &problem),
        )
    })
    .await;
}

/// The channel's posts come again (read by the reader, or our bot is its
/// admin again): the pause is lifted and each subscriber told of it gets
/// one "resumed" notice.
pub async fn channel_resumed(
    store: &Store,
    notices: &Notices,
    texts: &Texts,
    channel_id: i64,
    name: &str,
) {
    let people = match store.resume_channel(channel_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot lift the channel's pause; lifted at its next good read.");
            return;
        }
    };
    if !people.is_empty() {
        tracing::info!(
            channel_id = telegram_id(channel_id),
            channel_key = channel_id,
            told = people.len(),
            "The channel can be read again; its paused subscriptions resumed."
        );
    }
    send_notices(notices, channel_id, "resumed", people, |lang, sub| {
        (
            texts.get(
                lang,
                "told-channel-resumed",
                &[("name", Arg::S(name.to_owned()))],
            ),
            resumed_keyboard(texts, lang, sub),
        )
    })
    .await;
}

/// A rename seen by the reader: stored, then told (once per new name).
pub async fn channel_renamed(
    store: &Store,
    notices: &Notices,
    texts: &Texts,
    channel_id: i64,
    old: &str,
    new: Option<String>,
) {
    match store.channel_renamed(channel_id, new.as_deref()).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot store the channel's new name.");
        }
    }
    tell_channel_problem(
        store,
        notices,
        texts,
        channel_id,
        old,
        ChannelProblem::Renamed(new),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_keys_differ_by_problem_and_new_name() {
        assert_eq!(ChannelProblem::Private.claim_key(), "channel-private");
        assert_eq!(ChannelProblem::Gone.claim_key(), "channel-gone");
        assert_eq!(
            ChannelProblem::Renamed(Some("news_b".into())).claim_key(),
            "channel-renamed:news_b"
        );
        assert_eq!(
            ChannelProblem::Renamed(None).claim_key(),
            "channel-renamed:"
        );
        assert_eq!(ChannelProblem::Protected.claim_key(), "channel-protected");
        assert_eq!(
            ChannelProblem::BotRemoved.claim_key(),
            "channel-bot-removed"
        );
        assert!(ChannelProblem::BotRemoved.pauses() && !ChannelProblem::Protected.pauses());
    }
}
