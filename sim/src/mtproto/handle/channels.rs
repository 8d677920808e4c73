//! What a test does to channels through [`MtprotoFake`]: create them
//! (public or private, protected), add members and admins, publish, edit,
//! delete and backdate posts, rename, make private, delete the channel,
//! move its username.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::rpc::username_valid;
use super::super::updates::{bot_api_chat_id, now_i32};
use super::super::world::{Channel, World};
use super::{ControlError, MtprotoFake};
use crate::fake_bot_api::NewChannelMessage;

/// A channel to create.
#[derive(Clone, Debug, Default)]
pub struct ChannelSpec {
    /// Title.
    pub title: String,
    /// Public username; `None` makes a private channel.
    pub username: Option<String>,
    /// Protected content (`noforwards`).
    pub protected: bool,
}

/// A channel of the fake, by id. Its access hash depends on the account
/// asking ([`MtprotoFake::access_hash`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRef {
    /// The bare channel id (the Bot API id is `-100` followed by it).
    pub id: i64,
}

impl ChannelRef {
    /// The channel's id on the Bot API face.
    pub fn bot_api_chat_id(self) -> i64 {
        bot_api_chat_id(self.id)
    }
}

impl MtprotoFake {
    /// Creates a broadcast channel. A username another channel has moves
    /// to this one (tests that need the check use
    /// [`MtprotoFake::try_create_channel`]).
    pub fn create_channel(&self, spec: ChannelSpec) -> ChannelRef {
        let mut w = self.world();
        Self::insert_channel(&mut w, spec)
    }

    /// Creates a broadcast channel, or says why not (a username invalid or
    /// taken).
    pub fn try_create_channel(&self, spec: ChannelSpec) -> Result<ChannelRef, ControlError> {
        let mut w = self.world();
        if let Some(u) = &spec.username {
            let u = u.trim_start_matches('@');
            if !username_valid(u) {
                return Err(ControlError::UsernameInvalid(u.to_owned()));
            }
            if w.usernames.contains_key(&u.to_ascii_lowercase()) {
                return Err(ControlError::UsernameTaken(u.to_owned()));
            }
        }
        Ok(Self::insert_channel(&mut w, spec))
    }

    /// The channel with this bare id, if it exists.
    pub fn channel(&self, id: i64) -> Option<ChannelRef> {
        self.world()
            .channels
            .contains_key(&id)
            .then_some(ChannelRef { id })
    }

    /// The access hash `account` is given for `channel` (its own: another
    /// account's is answered `CHANNEL_INVALID`, as on Telegram).
    pub fn access_hash(&self, channel: ChannelRef, account: i64) -> i64 {
        self.world()
            .channels
            .get(&channel.id)
            .map_or(0, |c| c.access_hash(Some(account)))
    }

    fn insert_channel(w: &mut World, spec: ChannelSpec) -> ChannelRef {
        let id = w.next_channel_id;
        w.next_channel_id += 1;
        let hash_seed = rand::random();
        let username = spec.username.map(|u| u.trim_start_matches('@').to_owned());
        if let Some(u) = &username {
            w.usernames.insert(u.to_ascii_lowercase(), id);
        }
        if let Some(bot_api) = &w.bot_api {
            bot_api.create_channel(
                bot_api_chat_id(id),
                username.as_deref().unwrap_or(""),
                &spec.title,
            );
        }
        w.channels.insert(
            id,
            Channel {
                id,
                hash_seed,
                title: spec.title,
                username,
                protected: spec.protected,
                date: now_i32(),
                messages: BTreeMap::new(),
                next_id: 1,
                pts: 1,
                events: Vec::new(),
                members: Default::default(),
                admins: Default::default(),
                albums: Default::default(),
                deleted: false,
                last_event: 0,
                short_pages: false,
                silent: false,
            },
        );
        ChannelRef { id }
    }

    fn with_channel<T>(&self, channel: ChannelRef, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = self.world();
        assert!(
            w.channels.contains_key(&channel.id),
            "MTProto fake: unknown channel {}",
            channel.id
        );
        f(&mut w)
    }

    /// Makes `account` a member (the way into a private channel).
    pub fn add_member(&self, channel: ChannelRef, account: i64) {
        self.with_channel(channel, |w| {
            w.channels
                .get_mut(&channel.id)
                .expect("checked")
                .members
                .insert(account);
            if let Some(a) = w.accounts.get_mut(&account) {
                a.joined.insert(channel.id);
            }
        });
    }

    /// Whether `account` is a member of `channel` now (joined and not left).
    pub fn is_member(&self, channel: ChannelRef, account: i64) -> bool {
        self.with_channel(channel, |w| {
            w.channels[&channel.id].members.contains(&account)
        })
    }

    /// Makes `account` an administrator (it may forward into the channel).
    pub fn set_admin(&self, channel: ChannelRef, account: i64) {
        self.with_channel(channel, |w| {
            w.channels
                .get_mut(&channel.id)
                .expect("checked")
                .admins
                .insert(account);
        });
    }

    /// Publishes a post; returns its message id. Members get it pushed.
    pub fn publish(&self, channel: ChannelRef, post: NewChannelMessage) -> i32 {
        self.with_channel(channel, |w| w.publish(channel.id, post).expect("checked"))
    }

    /// Publishes a text post.
    pub fn publish_text(&self, channel: ChannelRef, text: &str) -> i32 {
        self.publish(channel, NewChannelMessage::text(text))
    }

    /// Moves the date of every message of the channel `by` into the past,
    /// as if they had been published that much earlier (a channel's past,
    /// for tests of what a first read counts as new).
    pub fn backdate(&self, channel: ChannelRef, by: Duration) {
        let by = i32::try_from(by.as_secs()).unwrap_or(i32::MAX);
        self.with_channel(channel, |w| {
            if let Some(ch) = w.channels.get_mut(&channel.id) {
                for m in ch.messages.values_mut() {
                    m.date = m.date.saturating_sub(by);
                }
            }
        });
    }

    /// Edits a post's text; false when there is no such message.
    pub fn edit(&self, channel: ChannelRef, id: i32, text: &str) -> bool {
        self.with_channel(channel, |w| w.edit(channel.id, id, text))
    }

    /// With `on`, `messages.getHistory` of the channel counts deleted
    /// messages against the limit, as Telegram does: a page may then hold
    /// fewer messages than asked while more exist (see `get_history`).
    pub fn set_short_pages(&self, channel: ChannelRef, on: bool) {
        self.with_channel(channel, |w| {
            w.channels
                .get_mut(&channel.id)
                .expect("checked")
                .short_pages = on;
        });
    }

    /// With `on`, the channel's events are no longer pushed to its members
    /// (Telegram may stop sending a channel's updates; see `push_event`);
    /// getChannelDifference and the history still show them.
    pub fn silence_channel(&self, channel: ChannelRef, on: bool) {
        self.with_channel(channel, |w| {
            w.channels.get_mut(&channel.id).expect("checked").silent = on;
        });
    }

    /// Deletes posts; returns how many existed.
    pub fn delete(&self, channel: ChannelRef, ids: &[i32]) -> usize {
        self.with_channel(channel, |w| w.delete(channel.id, ids))
    }

    /// Renames a channel.
    pub fn rename(&self, channel: ChannelRef, title: &str) {
        self.with_channel(channel, |w| {
            title.clone_into(&mut w.channels.get_mut(&channel.id).expect("checked").title);
        });
    }

    /// Makes a channel private: its username is freed; non-members get
    /// `CHANNEL_PRIVATE` (source: <https://core.telegram.org/method/messages.getHistory>,
    /// "CHANNEL_PRIVATE: You haven't joined this channel/supergroup").
    pub fn make_private(&self, channel: ChannelRef) {
        self.with_channel(channel, |w| {
            if let Some(u) = w
                .channels
                .get_mut(&channel.id)
                .expect("checked")
                .username
                .take()
            {
                w.usernames.remove(&u.to_ascii_lowercase());
            }
        });
    }

    /// Deletes a channel, as its owner can: its username is freed and every
    /// call about it — history, joins, differences, members' too — gets
    /// `CHANNEL_PRIVATE`. That is what Telegram answers for a deleted
    /// channel (a client that deleted one sees `CHANNEL_PRIVATE` on
    /// `messages.getPeerDialogs`, zhukov/webogram#1417), not
    /// `CHANNEL_INVALID`, which is for an id or access hash that never
    /// matched; a reader that was a member is how "deleted" is told apart
    /// from "made private".
    pub fn delete_channel(&self, channel: ChannelRef) {
        self.with_channel(channel, |w| {
            let ch = w.channels.get_mut(&channel.id).expect("checked");
            ch.deleted = true;
            if let Some(u) = ch.username.take() {
                w.usernames.remove(&u.to_ascii_lowercase());
            }
        });
    }

    /// Moves a channel to a new public username (a rename of its `@name`):
    /// the old name is freed and resolves to nothing.
    pub fn set_username(&self, channel: ChannelRef, username: &str) {
        self.with_channel(channel, |w| {
            let ch = w.channels.get_mut(&channel.id).expect("checked");
            let old = ch.username.replace(username.to_owned());
            if let Some(u) = old {
                w.usernames.remove(&u.to_ascii_lowercase());
            }
            w.usernames
                .insert(username.to_ascii_lowercase(), channel.id);
        });
    }

    /// The channel's current pts.
    pub fn channel_pts(&self, channel: ChannelRef) -> i32 {
        self.with_channel(channel, |w| w.channels[&channel.id].pts)
    }
}
