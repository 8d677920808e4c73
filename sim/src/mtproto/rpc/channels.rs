//! Reading and changing channels: `messages.getHistory`,
//! `channels.joinChannel` / `leaveChannel`, and `messages.forwardMessages`
//! with its `random_id` rule.

use grammers_tl_types::{self as tl, Serializable};

use super::{Reply, account_of, channel_messages, channel_of, channel_of_peer, err, visible};
use crate::fake_bot_api::NewChannelMessage;
use crate::mtproto::objects;
use crate::mtproto::updates::{self, now_i32};
use crate::mtproto::world::{EventKind, MAX_JOINED_CHANNELS, Msg, World};

/// `messages.getHistory`, newest first: ids below `offset_id` (when set),
/// skipping `add_offset`, within (`min_id`, `max_id`), at most `limit` (≤ 100).
pub(super) fn get_history(
    world: &World,
    me: i64,
    req: &tl::functions::messages::GetHistory,
) -> Reply {
    let ch = visible(channel_of_peer(world, me, &req.peer)?, me)?;
    let in_range = |id: &i32| *id > req.min_id && (req.max_id <= 0 || *id < req.max_id);
    // Short pages: Telegram picks the page by message ids, deleted ones
    // included, and leaves the deleted out afterwards, so a page may hold
    // fewer messages than the limit while more exist. grammers
    // 0.11 `client/messages.rs` (`fill_buffer`): "Can't rely on
    // `count(messages) < limit` as the stop condition. See
    // https://t.me/tdlibchat/57257 … offset_id 132002, limit 4 => we get msg
    // 131999 & 131998"; TDLib's `getChatHistory` (td_api.tl, as mirrored in danog/MadelineProto
    // `docs/TD_docs/methods/getChatHistory.md`): "There may be
    // less than limit messages returned even the end of the history is not
    // reached". How Telegram picks the window exactly is not documented;
    // the fake counts every id ever given out (a window of deleted ids
    // only answers empty: what Telegram answers then, no source says).
    // Off unless the test asks
    // (`MtprotoFake::set_short_pages`).
    let ids: Vec<i32> = if ch.short_pages {
        (1..ch.next_id).rev().filter(in_range).collect()
    } else {
        ch.messages.keys().rev().copied().filter(in_range).collect()
    };
    let start = if req.offset_id > 0 {
        ids.partition_point(|&id| id >= req.offset_id)
    } else {
        0
    };
    let start = usize::try_from(i64::try_from(start).unwrap_or(0) + i64::from(req.add_offset))
        .unwrap_or(0)
        .min(ids.len());
    let limit = usize::try_from(req.limit.clamp(0, 100)).unwrap_or(0);
    let limit = if limit == 0 { 20 } else { limit };
    let messages = ids[start..]
        .iter()
        .take(limit)
        .filter_map(|id| ch.messages.get(id))
        .map(|m| objects::message(ch.id, m))
        .collect();
    Ok(channel_messages(ch, me, messages))
}

pub(super) fn join(
    world: &mut World,
    me: i64,
    req: &tl::functions::channels::JoinChannel,
) -> Reply {
    let ch = channel_of(world, me, &req.channel)?;
    let id = ch.id;
    // An account limited for spam cannot join: `400 PEER_FLOOD`, "too many
    // requests" (core.telegram.org/api/errors lists PEER_FLOOD under 400;
    // danog/MadelineProto#433: it "means that your current account is
    // spamreported/otherwise limited"; tdlib/td#338: after it "I can't add
    // anyone at all for a day or something"). Set by the test
    // (`MtprotoFake::set_peer_flood`).
    if account_of(world, me)?.peer_flood {
        return Err(err(400, "PEER_FLOOD"));
    }
    let member = ch.members.contains(&me);
    if !member {
        visible(ch, me)?;
        let acc = account_of(world, me)?;
        if acc.joined.len() >= MAX_JOINED_CHANNELS {
            return Err(err(400, "CHANNELS_TOO_MUCH"));
        }
        if let Some(acc) = world.accounts.get_mut(&me) {
            acc.joined.insert(id);
        }
        if let Some(ch) = world.channels.get_mut(&id) {
            ch.members.insert(me);
        }
    }
    let ch = &world.channels[&id];
    let updates = updates::updates_body(Vec::new(), vec![objects::channel(ch, Some(me))]);
    Ok(
        tl::enums::messages::ChatInviteJoinResult::Ok(
            tl::types::messages::ChatInviteJoinResultOk { updates },
        )
        .to_bytes(),
    )
}

/// `channels.leaveChannel`: the account is a member no more, so nothing of
/// the channel is pushed to it (<https://core.telegram.org/method/channels.leaveChannel>:
/// "Leave a channel/supergroup", returns `Updates`; errors listed there
/// include `CHANNEL_INVALID`, `CHANNEL_PRIVATE` and `USER_NOT_PARTICIPANT`
/// — "You're not a member of this supergroup/channel"). The `Updates`
/// carries the channel without membership; Telegram also sends an
/// `updateChannel`, which the fake does not model.
pub(super) fn leave(
    world: &mut World,
    me: i64,
    req: &tl::functions::channels::LeaveChannel,
) -> Reply {
    let id = channel_of(world, me, &req.channel)?.id;
    let ch = world.channels.get_mut(&id).expect("found above");
    if !ch.members.remove(&me) {
        return Err(err(400, "USER_NOT_PARTICIPANT"));
    }
    if let Some(acc) = world.accounts.get_mut(&me) {
        acc.joined.remove(&id);
    }
    let ch = &world.channels[&id];
    Ok(updates::updates_body(Vec::new(), vec![objects::channel(ch, Some(me))]).to_bytes())
}

/// `messages.forwardMessages` from a channel into a channel the account
/// administers. A `random_id` seen before forwards nothing again: the
/// answer names the message that first forward made.
pub(super) fn forward(
    world: &mut World,
    me: i64,
    req: &tl::functions::messages::ForwardMessages,
) -> Reply {
    if req.id.len() != req.random_id.len() || req.id.is_empty() {
        return Err(err(400, "RANDOM_ID_INVALID"));
    }
    let src = visible(channel_of_peer(world, me, &req.from_peer)?, me)?;
    let src_id = src.id;
    let dst = channel_of_peer(world, me, &req.to_peer)?;
    let dst_id = dst.id;
    if !dst.admins.contains(&me) {
        return Err(err(403, "CHAT_WRITE_FORBIDDEN"));
    }
    let mut copies = Vec::new();
    for (&mid, &rid) in req.id.iter().zip(&req.random_id) {
        if let Some(&(c, existing)) = account_of(world, me)?.forwarded.get(&rid) {
            copies.push((rid, c, existing, false));
            continue;
        }
        let Some(m) = src.messages.get(&mid) else {
            continue;
        };
        if src.protected || m.noforwards {
            return Err(err(400, "CHAT_FORWARDS_RESTRICTED"));
        }
        copies.push((rid, dst_id, mid, true));
    }
    if copies.is_empty() {
        return Err(err(400, "MESSAGE_ID_INVALID"));
    }
    let mut updates_list = Vec::new();
    let mut albums = std::collections::HashMap::new();
    for (rid, channel, id, fresh) in copies {
        let new_id = if fresh {
            let src = &world.channels[&src_id];
            let m = &src.messages[&id];
            let fwd_from = m.fwd_from.or(Some((src_id, m.id, m.date)));
            let grouped_id = m
                .grouped_id
                .map(|g| *albums.entry(g).or_insert_with(|| g.wrapping_mul(31) ^ rid));
            let copy = Msg {
                id: 0,
                date: now_i32(),
                text: m.text.clone(),
                media: m.media,
                grouped_id,
                edit_date: None,
                fwd_from,
                noforwards: false,
            };
            let bot_api_copy = NewChannelMessage {
                text: Some(m.text.clone()).filter(|t| !t.is_empty()),
                entities: Vec::new(),
                media: m.media,
                media_group_id: grouped_id.map(|g| g.to_string()),
                protected: false,
            };
            let new_id = world
                .append_message(dst_id, copy)
                .ok_or_else(|| err(400, "CHANNEL_INVALID"))?;
            if let Some(bot_api) = &world.bot_api {
                updates::mirror_post(bot_api, dst_id, bot_api_copy);
            }
            if let Some(acc) = world.accounts.get_mut(&me) {
                acc.forwarded.insert(rid, (dst_id, new_id));
            }
            new_id
        } else {
            id
        };
        let ch = &world.channels[&channel];
        updates_list.push(
            tl::types::UpdateMessageId {
                id: new_id,
                random_id: rid,
            }
            .into(),
        );
        if let Some(e) = ch
            .events
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::New(new_id))
            && let Some(u) = updates::event_update(ch, e)
        {
            updates_list.push(u);
        }
    }
    let chats = vec![
        objects::channel(&world.channels[&dst_id], Some(me)),
        objects::channel(&world.channels[&src_id], Some(me)),
    ];
    Ok(updates::updates_body(updates_list, chats).to_bytes())
}
