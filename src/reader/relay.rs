//! Media through the relay channel (`telegram.relay_chat_id`): a bot cannot
//! copy from a channel it is not in, so the reader account forwards each
//! media post into a private channel where the bot is admin, and the bot
//! copies from there.
//!
//! One `messages.forwardMessages` per read carries every media message of
//! it (an album's parts together, so it stays one album in the relay). Each
//! message's `random_id` is derived from (channel, message id): a read
//! repeated after a crash or a lost answer asks for the same forward again,
//! and Telegram answers with the copies it already made instead of making
//! new ones.

use std::collections::HashMap;
use std::time::Duration;

use grammers_client::tl;
use kuryer_actors::model::{RelayCopy, SourceMessage};
use kuryer_actors::ports::SourceError;

use super::client::{AccountClient, CallError};

const METHOD: &str = "messages.forwardMessages";

/// The relay channel as reader accounts address it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Relay {
    /// Its Bot API chat id (what the bot copies from).
    pub(super) chat_id: i64,
    /// Its bare channel id.
    pub(super) bare_id: i64,
    /// The configured access hash, for sessions that have not cached it.
    pub(super) access_hash: Option<i64>,
}

/// What forwarding decided.
pub(super) enum Outcome {
    /// The messages, media ones carrying their relay copy where forwarded.
    Done(Vec<SourceMessage>),
    /// Not now: the read is repeated (the forward is idempotent).
    Retry(SourceError),
    /// Telegram ended the account's session.
    Lost(String),
}

/// The `random_id` of forwarding message `id` of channel `bare_id`: the
/// same on every attempt, different for every message (SplitMix64).
pub(super) fn random_id(bare_id: i64, id: i32) -> i64 {
    let mut z = (bare_id as u64)
        .rotate_left(32)
        .wrapping_add(id as u32 as u64)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let r = (z ^ (z >> 31)) as i64;
    if r == 0 { 1 } else { r }
}

/// Forwards the copyable media messages of `messages` into the relay.
/// Messages Telegram refuses to forward stay without a relay copy (the
/// caller sends them as text with a link).
pub(super) async fn forward(
    client: &AccountClient,
    relay: Relay,
    from: (i64, i64),
    mut messages: Vec<SourceMessage>,
) -> Outcome {
    let ids: Vec<i32> = messages
        .iter()
        .filter(|m| m.media.is_some() && m.copyable)
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        return Outcome::Done(messages);
    }
    let Some(relay_hash) = client
        .session()
        .channel_access_hash(relay.bare_id)
        .or(relay.access_hash)
    else {
        tracing::error!(
            account = client.name(),
            relay_chat_id = relay.chat_id,
            "The reader account does not know the relay channel's access hash (set reader.relay_access_hash); media go out as text with a link."
        );
        return Outcome::Done(messages);
    };
    let random_ids: Vec<i64> = ids.iter().map(|&id| random_id(from.0, id)).collect();
    let request = forward_request(from, (relay.bare_id, relay_hash), &ids, &random_ids);
    let answer = match client.call(METHOD, &request).await {
        Ok(a) => a,
        Err(CallError::FloodWait { wait, .. }) => {
            return Outcome::Retry(SourceError::Transient {
                message: "flood wait on messages.forwardMessages".to_owned(),
                retry_after: Some(wait),
            });
        }
        Err(CallError::Lost(reason)) => return Outcome::Lost(reason),
        Err(e @ CallError::Network { .. }) => {
            return Outcome::Retry(SourceError::Transient {
                message: e.to_string(),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        Err(e) => {
            tracing::warn!(
                account = client.name(),
                channel_bare_id = from.0,
                error = %e,
                "Forwarding into the relay channel failed; these media go out as text with a link."
            );
            return Outcome::Done(messages);
        }
    };
    attach_copies(&mut messages, &answer, relay.chat_id, &ids, &random_ids);
    Outcome::Done(messages)
}

/// `messages.forwardMessages` of `ids` from channel `from` into the relay
/// `to` (bare id, access hash), silently, with the given `random_ids`.
fn forward_request(
    from: (i64, i64),
    to: (i64, i64),
    ids: &[i32],
    random_ids: &[i64],
) -> tl::functions::messages::ForwardMessages {
    tl::functions::messages::ForwardMessages {
        silent: true,
        background: false,
        with_my_score: false,
        drop_author: false,
        drop_media_captions: false,
        noforwards: false,
        allow_paid_floodskip: false,
        from_ephemeral: false,
        from_peer: tl::types::InputPeerChannel {
            channel_id: from.0,
            access_hash: from.1,
        }
        .into(),
        id: ids.to_vec(),
        random_id: random_ids.to_vec(),
        to_peer: tl::types::InputPeerChannel {
            channel_id: to.0,
            access_hash: to.1,
        }
        .into(),
        top_msg_id: None,
        reply_to: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        video_timestamp: None,
        allow_paid_stars: None,
        suggested_post: None,
    }
}

/// Gives each forwarded message its copy in the relay (`relay_chat_id`),
/// matched by `random_id` in Telegram's answer.
fn attach_copies(
    messages: &mut [SourceMessage],
    answer: &tl::enums::Updates,
    relay_chat_id: i64,
    ids: &[i32],
    random_ids: &[i64],
) {
    let by_random: HashMap<i64, i32> = updates_of(answer)
        .iter()
        .filter_map(|u| match u {
            tl::enums::Update::MessageId(m) => Some((m.random_id, m.id)),
            _ => None,
        })
        .collect();
    let copies: HashMap<i32, i32> = ids
        .iter()
        .zip(random_ids)
        .filter_map(|(&id, rid)| by_random.get(rid).map(|&copy| (id, copy)))
        .collect();
    for m in messages.iter_mut() {
        if let Some(&message_id) = copies.get(&m.id) {
            m.relay = Some(RelayCopy {
                chat_id: relay_chat_id,
                message_id,
            });
        }
    }
    // An album is relayed whole or not at all: a part without its copy
    // would split it.
    let mut incomplete: Vec<String> = Vec::new();
    for m in messages.iter() {
        if m.media.is_some()
            && m.copyable
            && m.relay.is_none()
            && let Some(g) = &m.media_group_id
        {
            incomplete.push(g.clone());
        }
    }
    for m in messages.iter_mut() {
        if m.media_group_id
            .as_ref()
            .is_some_and(|g| incomplete.contains(g))
        {
            m.relay = None;
        }
    }
}

fn updates_of(u: &tl::enums::Updates) -> &[tl::enums::Update] {
    match u {
        tl::enums::Updates::Updates(u) => &u.updates,
        tl::enums::Updates::Combined(u) => &u.updates,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::random_id;

    #[test]
    fn random_ids_are_stable_and_distinct() {
        assert_eq!(random_id(7, 1), random_id(7, 1));
        assert_ne!(random_id(7, 1), random_id(7, 2));
        assert_ne!(random_id(7, 1), random_id(8, 1));
        assert_ne!(random_id(7, 1), 0);
    }
}
