//! The edits/deletions settings of a subscription in its settings view:
//! a line of text and two rows of buttons, `e:<sub>:m|i|r` (edits: mirror,
//! ignore, repost) and `x:<sub>:m|i` (deletions: mirror, ignore).

use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::BotHandler;
use crate::i18n::Lang;
use crate::store::{DeletionsMode, EditsMode, MirrorSettings, StoreError, UserSubscription};

/// A mirror setting a button asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum MirrorAction {
    /// `e:<sub>:m|i|r`.
    Edits(i64, EditsMode),
    /// `x:<sub>:m|i`.
    Deletions(i64, DeletionsMode),
}

/// Parses `e:…` and `x:…` button data.
pub(super) fn parse(data: &str) -> Option<MirrorAction> {
    let mut it = data.split(':');
    let tag = it.next()?;
    let sub: i64 = it.next()?.parse().ok()?;
    let v = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(match (tag, v) {
        ("e", "m") => MirrorAction::Edits(sub, EditsMode::Mirror),
        ("e", "i") => MirrorAction::Edits(sub, EditsMode::Ignore),
        ("e", "r") => MirrorAction::Edits(sub, EditsMode::Repost),
        ("x", "m") => MirrorAction::Deletions(sub, DeletionsMode::Mirror),
        ("x", "i") => MirrorAction::Deletions(sub, DeletionsMode::Ignore),
        _ => return None,
    })
}

/// Stores what the button asked; false: no such subscription of `uid`.
pub(super) async fn apply(h: &BotHandler, uid: i64, a: &MirrorAction) -> Result<bool, StoreError> {
    let (sub, edits, deletions) = match a {
        MirrorAction::Edits(s, e) => (*s, Some(*e), None),
        MirrorAction::Deletions(s, d) => (*s, None, Some(*d)),
    };
    h.store()
        .set_mirror_settings(Some(uid), sub, edits, deletions)
        .await
}

/// The subscription a button names.
pub(super) fn sub_of(a: &MirrorAction) -> i64 {
    match a {
        MirrorAction::Edits(s, _) | MirrorAction::Deletions(s, _) => *s,
    }
}

/// Adds the edits/deletions line and buttons to a settings view (before
/// its last row, the way back to the list).
pub(super) async fn extend(
    h: &BotHandler,
    lang: Lang,
    s: &UserSubscription,
    text: String,
    mut keyboard: InlineKeyboardMarkup,
) -> Result<(String, InlineKeyboardMarkup), StoreError> {
    let Some(m) = h.store().mirror_settings(Some(s.user_id), s.id).await? else {
        return Ok((text, keyboard));
    };
    let (line, rows) = view(h, lang, s.id, m);
    let back = keyboard.inline_keyboard.pop();
    keyboard.inline_keyboard.extend(rows);
    keyboard.inline_keyboard.extend(back);
    Ok((format!("{text}\n{line}"), keyboard))
}

fn view(
    h: &BotHandler,
    lang: Lang,
    sub: i64,
    m: MirrorSettings,
) -> (String, Vec<Vec<InlineKeyboardButton>>) {
    let edits = h.t(lang, &format!("edits-{}", m.edits.as_str()), &[]);
    let deletions = h.t(lang, &format!("deletions-{}", m.deletions.as_str()), &[]);
    let line = h.t(
        lang,
        "mirror-settings",
        &[("edits", edits.into()), ("deletions", deletions.into())],
    );
    let mark = |on: bool, t: String| if on { format!("✅ {t}") } else { t };
    let b = |text: String, data: String| InlineKeyboardButton::callback(text, data);
    let edit_row = [
        (EditsMode::Mirror, "m", "btn-edits-mirror"),
        (EditsMode::Ignore, "i", "btn-edits-ignore"),
        (EditsMode::Repost, "r", "btn-edits-repost"),
    ]
    .into_iter()
    .map(|(mode, code, key)| {
        b(
            mark(m.edits == mode, h.t(lang, key, &[])),
            format!("e:{sub}:{code}"),
        )
    })
    .collect();
    let delete_row = [
        (DeletionsMode::Mirror, "m", "btn-deletions-mirror"),
        (DeletionsMode::Ignore, "i", "btn-deletions-ignore"),
    ]
    .into_iter()
    .map(|(mode, code, key)| {
        b(
            mark(m.deletions == mode, h.t(lang, key, &[])),
            format!("x:{sub}:{code}"),
        )
    })
    .collect();
    (line, vec![edit_row, delete_row])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_data_round_trips_and_junk_is_refused() {
        assert_eq!(
            parse("e:7:r"),
            Some(MirrorAction::Edits(7, EditsMode::Repost))
        );
        assert_eq!(
            parse("x:7:i"),
            Some(MirrorAction::Deletions(7, DeletionsMode::Ignore))
        );
        for junk in ["e:7", "e:7:z", "x:7:r", "e:a:m", "e:7:m:1", "q:7:m"] {
            assert_eq!(parse(junk), None, "{junk}");
        }
    }
}
