//! The commands of the per-subscription extras: `/header`,
//! `/footer`, `/replace` (text transforms) and `/quiet` (quiet hours).
//! Each validates as the HTTP API does (`TransformSpec::compile`,
//! `QuietSpec::compile`), stores through `Store::set_subscription_extra`
//! and brings the change to the registry (`BotHandler::sync`).

use kuryer_actors::digest::{DigestError, DigestSpec};
use kuryer_actors::model::{ChannelUsername, DeliveryMode};
use kuryer_actors::quiet::{QuietError, QuietSpec};
use kuryer_actors::transform::{MAX_PATTERNS_PER_USER, Replacement, TransformSpec};

use super::reply::echo;
use super::{BotHandler, list};
use crate::i18n::Lang;
use crate::store::{Extra, StoreError, UserSubscription};

/// The first word when it names a channel, and the rest.
fn split_name(args: &str) -> (Option<&str>, &str) {
    let args = args.trim();
    let (first, rest) = match args.find(char::is_whitespace) {
        Some(i) => (&args[..i], args[i..].trim()),
        None => (args, ""),
    };
    if !first.is_empty() && ChannelUsername::parse(first).is_ok() {
        (Some(first), rest)
    } else {
        (None, args)
    }
}

fn find<'a>(subs: &'a [UserSubscription], input: &str) -> Option<&'a UserSubscription> {
    let name = ChannelUsername::parse(input).ok()?;
    subs.iter()
        .find(|s| s.channel_username.as_deref() == Some(name.as_str()))
}

/// `/replace` rule text: `old => new`, `re:pattern => new`.
fn parse_rule(rule: &str) -> Option<Replacement> {
    let (from, to) = rule.split_once("=>")?;
    let from = from.trim();
    let to = to.trim();
    let (from, regex) = match from.strip_prefix("re:") {
        Some(p) => (p, true),
        None => (from, false),
    };
    (!from.is_empty()).then(|| Replacement {
        from: from.to_owned(),
        to: to.to_owned(),
        regex,
    })
}

/// Handles one of the extras' commands; the reply text.
pub(super) async fn command(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    command: &str,
    args: &str,
) -> Result<String, StoreError> {
    let usage = |key: &str| h.t(lang, key, &[]);
    let (name, rest) = split_name(args);
    if command == "quiet" {
        return quiet(h, uid, lang, name, rest).await;
    }
    if command == "digest" {
        return digest(h, uid, lang, name, rest).await;
    }
    let usage_key = match command {
        "header" => "header-usage",
        "footer" => "footer-usage",
        _ => "replace-usage",
    };
    let (Some(name), false) = (name, rest.is_empty()) else {
        return Ok(usage(usage_key));
    };
    let subs = h.store().user_subscriptions(uid).await?;
    let Some(sub) = find(&subs, name) else {
        return Ok(h.t(lang, "not-subscribed", &[("input", echo(name).into())]));
    };
    let stored = h
        .store()
        .subscription_extra(Some(uid), sub.id, Extra::Transform)
        .await?;
    let mut spec: TransformSpec = stored
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let off = rest.eq_ignore_ascii_case("off");
    match command {
        "header" => spec.header = (!off).then(|| rest.to_owned()),
        "footer" => spec.footer = (!off).then(|| rest.to_owned()),
        _ if off => spec.replace.clear(),
        _ => match parse_rule(rest) {
            Some(r) => spec.replace.push(r),
            None => return Ok(usage(usage_key)),
        },
    }
    let Ok(compiled) = spec.compile() else {
        return Ok(h.t(lang, "transform-bad", &[]));
    };
    if !h.patterns_fit(uid, sub.id, compiled.regex_rules()).await? {
        return Ok(h.t(
            lang,
            "patterns-budget",
            &[("max", MAX_PATTERNS_PER_USER.into())],
        ));
    }
    let value = (!spec.is_empty())
        .then(|| serde_json::to_value(&spec).ok())
        .flatten();
    h.store()
        .set_subscription_extra(Some(uid), Some(sub.id), Extra::Transform, value.as_ref())
        .await?;
    h.sync(sub.id).await?;
    let key = if value.is_some() {
        "transform-saved"
    } else {
        "transform-cleared"
    };
    let mut out = h.t(lang, key, &[("name", list::name_of(sub).into())]);
    if sub.mode == DeliveryMode::Forward && value.is_some() {
        out.push('\n');
        out.push_str(&h.t(lang, "transform-forward", &[]));
    }
    Ok(out)
}

async fn quiet(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    name: Option<&str>,
    rest: &str,
) -> Result<String, StoreError> {
    let spec = if rest.eq_ignore_ascii_case("off") {
        None
    } else {
        match QuietSpec::parse_args(rest) {
            Ok(s) => Some(s),
            Err(QuietError::Zone(tz)) => {
                return Ok(h.t(lang, "quiet-bad-zone", &[("tz", echo(&tz).into())]));
            }
            Err(_) => return Ok(h.t(lang, "quiet-usage", &[])),
        }
    };
    let value = spec.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let (target, label) = match name {
        Some(name) => {
            let subs = h.store().user_subscriptions(uid).await?;
            let Some(sub) = find(&subs, name) else {
                return Ok(h.t(lang, "not-subscribed", &[("input", echo(name).into())]));
            };
            (Some(sub.id), list::name_of(sub))
        }
        None => (None, String::new()),
    };
    let changed = h
        .store()
        .set_subscription_extra(Some(uid), target, Extra::Quiet, value.as_ref())
        .await?;
    for id in &changed {
        h.sync(*id).await?;
    }
    let count = changed.len();
    Ok(match (&spec, name) {
        (Some(s), Some(_)) => h.t(
            lang,
            "quiet-ok",
            &[
                ("name", label.into()),
                ("from", s.from.clone().into()),
                ("to", s.to.clone().into()),
                ("tz", s.tz.clone().into()),
            ],
        ),
        (Some(s), None) => h.t(
            lang,
            "quiet-ok-all",
            &[
                ("count", count.into()),
                ("from", s.from.clone().into()),
                ("to", s.to.clone().into()),
                ("tz", s.tz.clone().into()),
            ],
        ),
        (None, Some(_)) => h.t(lang, "quiet-off", &[("name", label.into())]),
        (None, None) => h.t(lang, "quiet-off-all", &[("count", count.into())]),
    })
}

/// `/digest daily 09:00 Asia/Tashkent`, `/digest hourly`, `/digest off`,
/// for one subscription (`/digest @channel …`) or all.
async fn digest(
    h: &BotHandler,
    uid: i64,
    lang: Lang,
    name: Option<&str>,
    rest: &str,
) -> Result<String, StoreError> {
    let spec = if rest.eq_ignore_ascii_case("off") {
        None
    } else {
        match DigestSpec::parse_args(rest) {
            Ok(s) => Some(s),
            Err(DigestError::Zone(tz)) => {
                return Ok(h.t(lang, "quiet-bad-zone", &[("tz", echo(&tz).into())]));
            }
            Err(_) => return Ok(h.t(lang, "digest-usage", &[])),
        }
    };
    let value = spec.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let (target, label) = match name {
        Some(name) => {
            let subs = h.store().user_subscriptions(uid).await?;
            let Some(sub) = find(&subs, name) else {
                return Ok(h.t(lang, "not-subscribed", &[("input", echo(name).into())]));
            };
            (Some(sub.id), format!("@{}", list::name_of(sub)))
        }
        None => (None, String::new()),
    };
    let changed = h
        .store()
        .set_subscription_extra(Some(uid), target, Extra::Digest, value.as_ref())
        .await?;
    for id in &changed {
        h.sync(*id).await?;
    }
    let who = if name.is_some() {
        label
    } else {
        h.t(lang, "digest-all", &[("count", changed.len().into())])
    };
    Ok(match &spec {
        Some(DigestSpec::Daily { at, tz }) => h.t(
            lang,
            "digest-ok-daily",
            &[
                ("who", who.into()),
                ("at", at.clone().into()),
                ("tz", tz.clone().into()),
            ],
        ),
        Some(DigestSpec::Hourly) => h.t(lang, "digest-ok-hourly", &[("who", who.into())]),
        Some(DigestSpec::Closing) | None => h.t(lang, "digest-off", &[("who", who.into())]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rules_parse() {
        assert_eq!(
            split_name("@news hello  world"),
            (Some("@news"), "hello  world")
        );
        assert_eq!(
            split_name("23:00-07:00 Asia/Tashkent"),
            (None, "23:00-07:00 Asia/Tashkent")
        );
        assert_eq!(split_name("off"), (None, "off"));
        let r = parse_rule("re:(\\d+) so'm => $1 UZS").unwrap();
        assert!(r.regex);
        assert_eq!((r.from.as_str(), r.to.as_str()), ("(\\d+) so'm", "$1 UZS"));
        let r = parse_rule("reklama =>").unwrap();
        assert_eq!(
            (r.from.as_str(), r.to.as_str(), r.regex),
            ("reklama", "", false)
        );
        assert!(parse_rule("no arrow").is_none());
        assert!(parse_rule(" => x").is_none());
    }
}
