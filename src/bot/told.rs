//! Issue 16 item 6: a subscriber told once, in their language, that the
//! channel they follow became private, was renamed or is gone — with
//! buttons to remove the subscription (`r:<sub>:0`, the `/list` remove,
//! which then shows the list), open its settings (`s:<sub>`) and, when the
//! channel has a public name, open it. Claimed in the store before sending
//! ([`Store::claim_channel_notices`]): a notice that fails to send is
//! logged and counted, never sent twice.

use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup};

use super::i18n::{Arg, Lang, Texts};
use crate::store::{CHANNEL_GONE, CHANNEL_PRIVATE, CHANNEL_RENAMED, Store};

/// Metric: channel problem notices, by problem (`private`, `gone`,
/// `unlisted`, `renamed`) and outcome (`sent`, `failed`).
pub const CHANNEL_NOTICES_TOTAL: &str = "kuryer_bot_channel_notices_total";

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
}

impl ChannelProblem {
    /// The `problem_notices.problem` it is claimed under.
    fn claim_key(&self) -> String {
        match self {
            Self::Private => CHANNEL_PRIVATE.to_owned(),
            Self::Gone => CHANNEL_GONE.to_owned(),
            Self::Renamed(new) => format!("{CHANNEL_RENAMED}{}", new.as_deref().unwrap_or("")),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Gone => "gone",
            Self::Renamed(None) => "unlisted",
            Self::Renamed(Some(_)) => "renamed",
        }
    }

    fn text_key(&self) -> &'static str {
        match self {
            Self::Private => "told-channel-private",
            Self::Gone => "told-channel-gone",
            Self::Renamed(None) => "told-channel-unlisted",
            Self::Renamed(Some(_)) => "told-channel-renamed",
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

/// Tells every subscriber of the channel not told of this problem yet.
/// `name`: how to call the channel (`@name`, its name before a rename).
pub async fn tell_channel_problem(
    store: &Store,
    bots: &[teloxide::Bot],
    texts: &Texts,
    channel_id: i64,
    name: &str,
    problem: ChannelProblem,
) {
    let people = match store
        .claim_channel_notices(channel_id, &problem.claim_key())
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel_id, problem = problem.label(), error = %e, "Cannot claim the channel problem notices; they are claimed when the problem is seen again.");
            return;
        }
    };
    for n in people {
        let lang = Lang::parse(&n.language).unwrap_or(Lang::En);
        let mut args = vec![("name", Arg::S(name.to_owned()))];
        if let ChannelProblem::Renamed(Some(new)) = &problem {
            args.push(("new", Arg::S(new.clone())));
        }
        let text = texts.get(lang, problem.text_key(), &args);
        let bot = n
            .bot_id
            .and_then(|id| {
                bots.iter()
                    .find(|b| crate::pipeline::bot_id_of(b.token()) == id)
            })
            .or(bots.first());
        let Some(bot) = bot else {
            return;
        };
        let sent = bot
            .send_message(ChatId(n.user), text)
            .reply_markup(keyboard(texts, lang, n.subscription_id, &problem))
            .await;
        match sent {
            Ok(_) => metrics::counter!(CHANNEL_NOTICES_TOTAL, "problem" => problem.label(), "outcome" => "sent").increment(1),
            Err(e) => {
                metrics::counter!(CHANNEL_NOTICES_TOTAL, "problem" => problem.label(), "outcome" => "failed").increment(1);
                tracing::info!(channel_id, user = n.user, problem = problem.label(), error = %e, "Could not tell a subscriber about their channel's problem.");
            }
        }
    }
}

/// The channel reads again: its private/gone problems may be news again.
pub async fn channel_readable(store: &Store, channel_id: i64) {
    if let Err(e) = store.clear_channel_notices(channel_id).await {
        tracing::warn!(channel_id, error = %e, "Cannot clear the channel's problem notices.");
    }
}

/// A rename seen by the reader: stored, then told (once per new name).
pub async fn channel_renamed(
    store: &Store,
    bots: &[teloxide::Bot],
    texts: &Texts,
    channel_id: i64,
    old: &str,
    new: Option<String>,
) {
    match store.channel_renamed(channel_id, new.as_deref()).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(channel_id, error = %e, "Cannot store the channel's new name.");
        }
    }
    tell_channel_problem(
        store,
        bots,
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
    }
}
