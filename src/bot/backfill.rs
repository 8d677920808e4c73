//! `/add @name last N`: after subscribing, the last N posts of the channel
//! (1–50) are sent, oldest first, by the copies worker (read from the
//! channel's history by a reader account when fewer are recorded:
//! `src/backfill.rs`). A subscription has one backfill at a time, and a
//! user `limits.backfills_per_user_per_day` a day.

use kuryer_actors::model::ChannelUsername;

use super::BotHandler;
use crate::i18n::{Arg, Lang};
use crate::store::{BackfillAsked, StoreError};

/// Most posts a backfill sends.
pub(super) const MAX_BACKFILL: i32 = 50;

/// Splits a trailing `last N` off the words: `Ok((names, None))` without
/// one, `Err(())` when N is not 1–50.
pub(super) fn split_last(words: &[String]) -> Result<(&[String], Option<i32>), ()> {
    match words {
        [names @ .., last, n] if last.eq_ignore_ascii_case("last") && !names.is_empty() => {
            match n.parse::<i32>() {
                Ok(n) if (1..=MAX_BACKFILL).contains(&n) => Ok((names, Some(n))),
                _ => Err(()),
            }
        }
        [.., last] if last.eq_ignore_ascii_case("last") => Err(()),
        _ => Ok((words, None)),
    }
}

/// Asks for the backfill of each named channel the user is subscribed to
/// now (new or already), and adds a line a channel to the reply.
pub(super) async fn after_add(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    names: &[String],
    n: Option<i32>,
    mut out: String,
) -> Result<String, StoreError> {
    let Some(n) = n else { return Ok(out) };
    let subs = h.store().user_subscriptions(uid).await?;
    let mut asked = false;
    for input in names {
        let Ok(name) = ChannelUsername::parse(input) else {
            continue;
        };
        let Some(s) = subs
            .iter()
            .find(|s| s.channel_username.as_deref() == Some(name.as_str()) && s.active)
        else {
            continue;
        };
        let max = h.shared.settings.backfills_per_day;
        let key = match h.store().request_backfill(s.id, n, Some(max)).await? {
            BackfillAsked::Asked(_) => {
                asked = true;
                "add-backfill"
            }
            BackfillAsked::AlreadyOpen => "add-backfill-open",
            BackfillAsked::OverBudget => "add-backfill-budget",
            BackfillAsked::NoSubscription => continue,
        };
        out.push('\n');
        out.push_str(&h.t(
            lang,
            key,
            &[
                ("count", Arg::from(i64::from(n))),
                ("name", Arg::from(name.as_str())),
                ("max", Arg::from(max)),
            ],
        ));
    }
    if asked {
        h.mirror_wake();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn last_n_is_split_off_and_checked() {
        let words = w("@news last 10");
        assert_eq!(split_last(&words), Ok((&words[..1], Some(10))));
        let words = w("@news @more");
        assert_eq!(split_last(&words), Ok((&words[..], None)));
        assert_eq!(split_last(&w("@news last 51")), Err(()));
        assert_eq!(split_last(&w("@news last 0")), Err(()));
        assert_eq!(split_last(&w("@news last x")), Err(()));
        assert_eq!(split_last(&w("@news last")), Err(()));
    }
}
