//! Changes of channels and what they produce: every publish, edit and
//! delete is an event with the channel's next pts (`pts_count` 1, or the
//! number of deleted messages), pushed at once to every member account as
//! `updates` (`updateNewChannelMessage`, `updateEditChannelMessage`,
//! `updateDeleteChannelMessages`), and kept in the channel's log so
//! `updates.getChannelDifference` can answer from it.

use std::sync::Arc;

use grammers_tl_types::{self as tl, Serializable};

use super::objects;
use super::session::unix_now;
use super::world::{Channel, Event, EventKind, Msg, World};
use crate::fake_bot_api::NewChannelMessage;

thread_local! {
    /// Set while this face publishes onto the Bot API face, so that the Bot
    /// API face's post hook does not bring the post back here.
    static MIRRORING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is mirroring a post onto the Bot API face.
pub(crate) fn mirroring() -> bool {
    MIRRORING.with(std::cell::Cell::get)
}

/// Publishes `post` on the Bot API face without it coming back.
pub(crate) fn mirror_post(
    bot_api: &crate::fake_bot_api::FakeTelegram,
    channel: i64,
    post: NewChannelMessage,
) -> i32 {
    MIRRORING.with(|m| m.set(true));
    let id = bot_api.post(bot_api_chat_id(channel), post);
    MIRRORING.with(|m| m.set(false));
    id
}

pub(crate) fn now_i32() -> i32 {
    i32::try_from(unix_now().0).unwrap_or(i32::MAX)
}

/// The update an event is, or `None` when its message is gone.
pub(crate) fn event_update(ch: &Channel, event: &Event) -> Option<tl::enums::Update> {
    Some(match &event.kind {
        EventKind::New(id) => tl::types::UpdateNewChannelMessage {
            message: objects::message(ch.id, ch.messages.get(id)?),
            pts: event.pts,
            pts_count: event.pts_count,
        }
        .into(),
        EventKind::Edit(id) => tl::types::UpdateEditChannelMessage {
            message: objects::message(ch.id, ch.messages.get(id)?),
            pts: event.pts,
            pts_count: event.pts_count,
        }
        .into(),
        EventKind::Delete(ids) => tl::types::UpdateDeleteChannelMessages {
            channel_id: ch.id,
            messages: ids.clone(),
            pts: event.pts,
            pts_count: event.pts_count,
        }
        .into(),
    })
}

/// An `updates` body carrying `updates` and the channel (as a member sees it).
pub(crate) fn updates_body(
    updates: Vec<tl::enums::Update>,
    chats: Vec<tl::enums::Chat>,
) -> tl::enums::Updates {
    tl::types::Updates {
        updates,
        users: Vec::new(),
        chats,
        date: now_i32(),
        seq: 0,
    }
    .into()
}

impl World {
    /// Pushes an event to every member, each with the channel as that
    /// member sees it: its `chats` carry the member's own access hash
    /// (core.telegram.org/api/peers: a hash is specific to the account), so
    /// one body is built per member.
    fn push_event(&mut self, channel: i64, event: &Event) {
        let Some(ch) = self.channels.get(&channel) else {
            return;
        };
        let Some(update) = event_update(ch, event) else {
            return;
        };
        let date = now_i32();
        // A silenced channel: Telegram does not promise a push for every
        // channel event — core.telegram.org/api/updates ("Subscribing to
        // updates of channels/supergroups") tells clients to fetch a
        // channel's difference themselves, and grammers forces
        // getChannelDifference after 15 minutes without updates
        // (grammers-session 0.11 `message_box/defs.rs`, `NO_UPDATES_TIMEOUT`,
        // "Documentation recommends 15 minutes without updates"). When and
        // for which channels Telegram stops, no source says: the test
        // chooses (`MtprotoFake::silence_channel`). The event stays in the
        // log, so getChannelDifference and the history still show it.
        if ch.silent {
            return;
        }
        for &member in &ch.members {
            let Some(acc) = self.accounts.get_mut(&member) else {
                continue;
            };
            // The account's common box moves to this event's date (a
            // dropped push too: getDifference from an older date names the
            // channel). `seq` stays 0 in channel pushes: the box's seq
            // numbers common-box events (core.telegram.org/api/updates,
            // "seq"), which a channel-only world has none of; whether
            // Telegram numbers channel pushes, no source says.
            acc.date = date;
            let body = tl::types::Updates {
                updates: vec![update.clone()],
                users: Vec::new(),
                chats: vec![objects::channel(ch, Some(member))],
                date,
                seq: 0,
            };
            let body = Arc::new(tl::enums::Updates::from(body).to_bytes());
            super::world::push_to(acc, Some(channel), &body);
        }
    }

    /// Appends a message to a channel, logs and pushes it; returns its id.
    pub(crate) fn append_message(&mut self, channel: i64, mut msg: Msg) -> Option<i32> {
        let ch = self.channels.get_mut(&channel)?;
        msg.id = ch.next_id;
        ch.next_id += 1;
        let id = msg.id;
        ch.messages.insert(id, msg);
        let event = ch.log(1, EventKind::New(id));
        self.push_event(channel, &event);
        Some(id)
    }

    /// Publishes a post as the channel; returns its id.
    pub(crate) fn publish(&mut self, channel: i64, post: NewChannelMessage) -> Option<i32> {
        let ch = self.channels.get_mut(&channel)?;
        let grouped_id = post.media_group_id.as_ref().map(|g| ch.album_id(g));
        let protected = post.protected || ch.protected;
        let msg = Msg {
            id: 0,
            date: now_i32(),
            text: post.text.clone().unwrap_or_default(),
            media: post.media,
            grouped_id,
            edit_date: None,
            fwd_from: None,
            noforwards: protected,
        };
        let id = self.append_message(channel, msg)?;
        if let Some(bot_api) = &self.bot_api {
            let bot_api_id = mirror_post(bot_api, channel, post);
            debug_assert_eq!(bot_api_id, id, "both faces number a channel's posts alike");
        }
        Some(id)
    }

    /// Edits a message's text; false when there is no such message.
    pub(crate) fn edit(&mut self, channel: i64, id: i32, text: &str) -> bool {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return false;
        };
        let Some(m) = ch.messages.get_mut(&id) else {
            return false;
        };
        text.clone_into(&mut m.text);
        m.edit_date = Some(now_i32());
        let event = ch.log(1, EventKind::Edit(id));
        self.push_event(channel, &event);
        true
    }

    /// Deletes messages; returns how many existed.
    pub(crate) fn delete(&mut self, channel: i64, ids: &[i32]) -> usize {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return 0;
        };
        let gone: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|id| ch.messages.remove(id).is_some())
            .collect();
        if gone.is_empty() {
            return 0;
        }
        let n = gone.len();
        let count = i32::try_from(n).expect("few messages");
        let event = ch.log(count, EventKind::Delete(gone));
        self.push_event(channel, &event);
        n
    }
}

/// The Bot API chat id of a channel: `-100` followed by its id.
pub(crate) fn bot_api_chat_id(channel: i64) -> i64 {
    -1_000_000_000_000 - channel
}

/// The channel id of a Bot API chat id (`-100…`).
pub(crate) fn channel_of_bot_api_chat(chat_id: i64) -> i64 {
    -1_000_000_000_000 - chat_id
}

impl World {
    /// A post published on the Bot API face, appended here and pushed to
    /// the members (channels this face does not know are ignored).
    pub(crate) fn mirror_from_bot_api(
        &mut self,
        chat_id: i64,
        m: &crate::fake_bot_api::ChannelMessage,
    ) {
        let channel = channel_of_bot_api_chat(chat_id);
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        let grouped_id = m.media_group_id.as_ref().map(|g| ch.album_id(g));
        let msg = Msg {
            id: 0,
            date: i32::try_from(m.date).unwrap_or_else(|_| now_i32()),
            text: m.text.clone().unwrap_or_default(),
            media: m.media,
            grouped_id,
            edit_date: None,
            fwd_from: None,
            noforwards: m.protected || ch.protected,
        };
        let id = self.append_message(channel, msg);
        debug_assert_eq!(id, Some(m.id), "both faces number a channel's posts alike");
    }
}

/// `updates.getChannelDifference` from `pts`, for `account`.
pub(crate) fn channel_difference(
    ch: &Channel,
    account: i64,
    pts: i32,
    limit: usize,
) -> tl::enums::updates::ChannelDifference {
    let chats = vec![objects::channel(ch, Some(account))];
    if pts >= ch.pts {
        return tl::types::updates::ChannelDifferenceEmpty {
            r#final: true,
            pts: ch.pts,
            timeout: Some(30),
        }
        .into();
    }
    let start = ch.events.partition_point(|e| e.pts <= pts);
    let events = &ch.events[start..];
    if events.len() > limit || pts <= 0 {
        let top = ch.messages.keys().next_back().copied().unwrap_or(0);
        let messages = ch
            .messages
            .values()
            .rev()
            .take(limit)
            .map(|m| objects::message(ch.id, m))
            .collect();
        return tl::types::updates::ChannelDifferenceTooLong {
            r#final: true,
            timeout: Some(30),
            dialog: tl::types::Dialog {
                pinned: false,
                unread_mark: false,
                view_forum_as_messages: false,
                peer: objects::peer_channel(ch.id),
                top_message: top,
                read_inbox_max_id: top,
                read_outbox_max_id: 0,
                unread_count: 0,
                unread_mentions_count: 0,
                unread_reactions_count: 0,
                unread_poll_votes_count: 0,
                notify_settings: objects::notify_settings(),
                pts: Some(ch.pts),
                draft: None,
                folder_id: None,
                ttl_period: None,
            }
            .into(),
            messages,
            chats,
            users: Vec::new(),
        }
        .into();
    }
    let mut new_messages = Vec::new();
    let mut other_updates = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::New(id) => {
                if let Some(m) = ch.messages.get(id) {
                    new_messages.push(objects::message(ch.id, m));
                }
            }
            _ => {
                if let Some(u) = event_update(ch, e) {
                    other_updates.push(u);
                }
            }
        }
    }
    tl::types::updates::ChannelDifference {
        r#final: true,
        pts: ch.pts,
        timeout: Some(30),
        new_messages,
        other_updates,
        chats,
        users: Vec::new(),
    }
    .into()
}
