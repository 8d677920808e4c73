//! A channel's past, over MTProto: where reading a channel starts, and the
//! history a backfill asks for.
//!
//! - **Where reading starts.** A channel never read before (mark 0) is read
//!   first from its newest page: the messages published before its first
//!   subscription (less [`FIRST_READ_GRACE`]) are its past
//!   ([`start_of_reading`]); the mark starts at
//!   the newest of them (`channels.start_message_id`), and only what came
//!   after is new. (Read from mark 0 oldest first, the whole past would
//!   reach the subscribers as new posts.)
//! - **History for a backfill** ([`ReaderPool::backfill_history`]): one
//!   `messages.getHistory` page below the backfill's newest message, by the
//!   account that reads the channel (the pool's choice, its getHistory pace
//!   and flood waits), with the access hash the pool already has (no
//!   resolve). The newest `want` posts of it that are not recorded are
//!   relayed and mapped like new posts, grouped into posts like the
//!   poller's (an album is one post) and recorded as history posts: sent
//!   only where a backfill asks, never fanned out or owed, the mark left
//!   where it is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use grammers_client::tl;
use kuryer_actors::model::{ChannelRef, Post, SourceMessage};
use kuryer_actors::ports::SourceError;

use super::client::{AccountClient, CallError};
use super::mapping;
use super::pool::ReaderPool;
use crate::store::{StoreError, new_post};

/// Messages one history read asks for (Telegram's most for one page).
const PAGE: i32 = 100;

/// A channel's first read counts as new what was published this long
/// before its first subscription: the bot may see an `/add` late (its long
/// poll, a restart, a busy machine), and a post sent right after the
/// person asked must not be taken for the past.
pub(super) const FIRST_READ_GRACE: Duration = Duration::from_secs(60);

/// Why a backfill's history was not read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Not now: a flood wait (the time Telegram said), no live account, an
    /// account lost, no answer. The backfill reads again after `retry_after`.
    #[error("cannot read the channel's history now: {reason}")]
    Later {
        /// When to try again.
        retry_after: Duration,
        /// What happened.
        reason: String,
    },
    /// Telegram refuses the channel for good (`CHANNEL_PRIVATE`,
    /// `CHANNEL_INVALID`): the backfill sends what is recorded.
    #[error("the channel's history cannot be read: {0}")]
    Unreadable(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn later(retry_after: Duration, reason: impl Into<String>) -> HistoryError {
    HistoryError::Later {
        retry_after,
        reason: reason.into(),
    }
}

fn message_id(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.id,
        tl::enums::Message::Service(m) => m.id,
        tl::enums::Message::Empty(m) => m.id,
    }
}

/// Where reading a channel starts, from its newest page (oldest first):
/// the newest message published in a second before `since` (its first
/// subscription, less the grace). A message of the same second counts as new: one post too
/// many rather than one lost. None before: 0 when the page holds the whole
/// channel, else just below the page (a channel that posted more than a
/// page since it was added: what is behind is its past).
pub(super) fn start_of_reading(
    messages: &[SourceMessage],
    since: DateTime<Utc>,
    full: bool,
) -> i64 {
    let before = messages
        .iter()
        .filter(|m| m.date.timestamp() < since.timestamp())
        .map(|m| i64::from(m.id))
        .max();
    match before {
        Some(id) => id,
        None if full => messages
            .iter()
            .map(|m| i64::from(m.id) - 1)
            .min()
            .unwrap_or(0)
            .max(0),
        None => 0,
    }
}

/// The messages of the newest `want` posts of a page (oldest first), an
/// album counting as one post. The oldest album of a full page may have
/// parts below it: it is left out when the page reaches it.
pub(super) fn newest_posts(
    messages: Vec<SourceMessage>,
    want: usize,
    full: bool,
) -> Vec<SourceMessage> {
    let mut start = messages.len();
    let mut posts = 0;
    while start > 0 && posts < want {
        let group = messages[start - 1].media_group_id.clone();
        start -= 1;
        while let Some(g) = &group
            && start > 0
            && messages[start - 1].media_group_id.as_ref() == Some(g)
        {
            start -= 1;
        }
        posts += 1;
        if start == 0 && full && group.is_some() {
            // Reaches the page's bottom: the album may go on below it.
            start = messages
                .iter()
                .position(|m| m.media_group_id != group)
                .unwrap_or(messages.len());
            break;
        }
    }
    let mut messages = messages;
    messages.split_off(start)
}

impl ReaderPool {
    /// Reads the newest `want` posts of `channel` at or below `upto` that
    /// are not recorded, and records them as history posts; returns how
    /// many were recorded. See the module docs.
    pub async fn backfill_history(
        &self,
        channel: &ChannelRef,
        upto: i64,
        want: usize,
    ) -> Result<usize, HistoryError> {
        let pool = &self.0;
        pool.ensure_channel(channel).await?;
        let id = channel.channel_id;
        let known = pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .map(|st| (st.info.bare_id, st.info.protected));
        let Some((bare, protected)) = known else {
            return Err(later(
                Duration::from_secs(30),
                "the channel is not resolved",
            ));
        };
        let Some(client) = pool.account_for(id).await else {
            return Err(later(
                Duration::from_secs(30),
                "no reader account is available",
            ));
        };
        // The account's own access hash (`hashes.rs`): without one, it
        // resolves the channel again first.
        let hash = match pool.read_hash(id, client.name(), channel.username.as_deref()) {
            Ok(h) => h,
            Err(super::hashes::NoHash::Resolving) => {
                return Err(later(
                    Duration::from_secs(10),
                    "the reader account resolves the channel again for its own access hash",
                ));
            }
            Err(super::hashes::NoHash::Lost) => {
                return Err(HistoryError::Unreadable(
                    "CHANNEL_INVALID: no reader account holds an access hash of the channel"
                        .to_owned(),
                ));
            }
        };
        let upto = i32::try_from(upto).unwrap_or(i32::MAX);
        let (raw, full) = match self.read_page(&client, (bare, hash), upto).await {
            Err(HistoryError::Unreadable(e)) if e.contains("CHANNEL_INVALID") => {
                // Another account's hash: resolved again, read later.
                let name = channel.username.as_deref();
                if pool.hash_refused(id, client.name(), name).await {
                    return Err(later(Duration::from_secs(10), e));
                }
                return Err(HistoryError::Unreadable(e));
            }
            other => other?,
        };
        let mut messages: Vec<SourceMessage> = raw
            .iter()
            .filter_map(|m| mapping::source_message(m, protected))
            .filter(|m| m.id <= upto)
            .collect();
        messages.sort_by_key(|m| m.id);
        messages.dedup_by_key(|m| m.id);
        let mut messages = self
            .not_recorded(id, newest_posts(messages, want, full))
            .await?;
        if messages.is_empty() {
            return Ok(0);
        }
        for m in &mut messages {
            // What PostgreSQL refuses in text; U+FFFD is one UTF-16 unit
            // like NUL, so entities keep their offsets.
            if let Some(t) = m.text.as_mut().filter(|t| t.contains('\0')) {
                *t = t.replace('\0', "\u{FFFD}");
            }
        }
        let messages = self.relay(&client, (bare, hash), messages).await?;
        // Media without a relay copy go out as text with a link, as new posts do.
        let username = channel.username.as_deref();
        let messages: Vec<SourceMessage> = messages
            .into_iter()
            .map(|m| match m.relay {
                Some(_) => m,
                None => mapping::without_relay(m, username),
            })
            .collect();
        let posts = Post::group(channel, messages, Utc::now());
        let rows: Vec<_> = posts.iter().map(new_post).collect();
        let new = pool.store.record_history_posts(&rows).await?;
        Ok(usize::try_from(new).unwrap_or(usize::MAX))
    }

    /// One page of the channel's history, newest first, from just above
    /// `upto` down; answers its messages and whether the page was full.
    async fn read_page(
        &self,
        client: &AccountClient,
        (bare, hash): (i64, i64),
        upto: i32,
    ) -> Result<(Vec<tl::enums::Message>, bool), HistoryError> {
        let request = tl::functions::messages::GetHistory {
            peer: tl::types::InputPeerChannel {
                channel_id: bare,
                access_hash: hash,
            }
            .into(),
            offset_id: upto.saturating_add(1),
            offset_date: 0,
            add_offset: 0,
            limit: PAGE,
            max_id: 0,
            min_id: 0,
            hash: 0,
        };
        let answer = match client.history(&request).await {
            Ok(a) => a,
            Err(CallError::FloodWait { wait, method }) => {
                return Err(later(wait, format!("flood wait on {method}")));
            }
            Err(CallError::Lost(reason)) => return Err(self.account_lost(client, &reason).await),
            Err(e @ CallError::Rpc { .. })
                if matches!(e.rpc_name(), Some("CHANNEL_PRIVATE" | "CHANNEL_INVALID")) =>
            {
                return Err(HistoryError::Unreadable(e.to_string()));
            }
            Err(e) => return Err(later(Duration::from_secs(5), e.to_string())),
        };
        let raw = match answer {
            tl::enums::messages::Messages::Messages(m) => m.messages,
            tl::enums::messages::Messages::Slice(m) => m.messages,
            tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
            tl::enums::messages::Messages::NotModified(_) => Vec::new(),
        };
        // More may lie below unless the page reaches id 1: a page shorter
        // than asked is no sign of the end (deleted messages count against
        // the limit; grammers 0.11 `client/messages.rs`, `fill_buffer`).
        let top = raw.iter().map(message_id).max().unwrap_or(0);
        let full = raw.len() >= PAGE as usize || top > PAGE;
        Ok((raw, full))
    }

    /// `messages` less those recorded already (as new, or by an earlier
    /// backfill): nothing is recorded or relayed again, and an album goes
    /// whole or not at all.
    async fn not_recorded(
        &self,
        channel_id: i64,
        mut messages: Vec<SourceMessage>,
    ) -> Result<Vec<SourceMessage>, HistoryError> {
        let ids: Vec<i32> = messages.iter().map(|m| m.id).collect();
        let recorded = self.0.store.recorded_message_ids(channel_id, &ids).await?;
        let recorded_groups: Vec<String> = messages
            .iter()
            .filter(|m| recorded.contains(&m.id))
            .filter_map(|m| m.media_group_id.clone())
            .collect();
        messages.retain(|m| {
            !recorded.contains(&m.id)
                && m.media_group_id
                    .as_ref()
                    .is_none_or(|g| !recorded_groups.contains(g))
        });
        Ok(messages)
    }

    /// Media forwarded into the relay channel once (without a relay, as
    /// they are).
    async fn relay(
        &self,
        client: &AccountClient,
        channel: (i64, i64),
        messages: Vec<SourceMessage>,
    ) -> Result<Vec<SourceMessage>, HistoryError> {
        let Some(relay) = self.0.relay else {
            return Ok(messages);
        };
        match super::relay::forward(client, relay, channel, messages).await {
            super::relay::Outcome::Done(m) => Ok(m),
            super::relay::Outcome::Retry(SourceError::Transient {
                message,
                retry_after,
            }) => Err(later(
                retry_after.unwrap_or(Duration::from_secs(5)),
                message,
            )),
            super::relay::Outcome::Retry(SourceError::Gone(message)) => {
                Err(HistoryError::Unreadable(message))
            }
            super::relay::Outcome::Lost(reason) => Err(self.account_lost(client, &reason).await),
        }
    }

    /// The account is marked lost; the read is tried again shortly.
    async fn account_lost(&self, client: &AccountClient, reason: &str) -> HistoryError {
        self.0.lost(client.name(), reason).await;
        later(
            Duration::from_secs(1),
            format!("reader account lost: {reason}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i32, secs: i64, group: Option<&str>) -> SourceMessage {
        SourceMessage {
            id,
            date: DateTime::<Utc>::from_timestamp(secs, 0).unwrap(),
            text: Some(format!("m{id}")),
            entities: Vec::new(),
            media: None,
            media_group_id: group.map(str::to_owned),
            copyable: true,
            relay: None,
        }
    }

    fn ids(m: &[SourceMessage]) -> Vec<i32> {
        m.iter().map(|m| m.id).collect()
    }

    #[test]
    fn reading_starts_after_the_last_message_before_the_first_subscription() {
        let since = DateTime::<Utc>::from_timestamp(1000, 500_000_000).unwrap();
        let page = [msg(7, 990, None), msg(8, 999, None), msg(9, 1000, None)];
        // 9 was published in the same second: new.
        assert_eq!(start_of_reading(&page, since, false), 8);
        let all_new = [msg(3, 1000, None), msg(4, 1005, None)];
        assert_eq!(start_of_reading(&all_new, since, false), 0);
        // A full page of new ones: what is behind it is the past.
        assert_eq!(start_of_reading(&all_new, since, true), 2);
        assert_eq!(start_of_reading(&[], since, false), 0);
    }

    #[test]
    fn the_newest_posts_count_an_album_as_one() {
        let page = vec![
            msg(1, 1, None),
            msg(2, 1, Some("a")),
            msg(3, 1, Some("a")),
            msg(4, 1, Some("a")),
            msg(5, 1, None),
            msg(6, 1, None),
        ];
        assert_eq!(ids(&newest_posts(page.clone(), 2, false)), [5, 6]);
        assert_eq!(ids(&newest_posts(page.clone(), 3, false)), [2, 3, 4, 5, 6]);
        assert_eq!(
            ids(&newest_posts(page.clone(), 10, false)),
            [1, 2, 3, 4, 5, 6]
        );
        assert!(newest_posts(page, 0, false).is_empty());
    }

    #[test]
    fn an_album_cut_by_a_full_page_is_left_out() {
        let page = vec![msg(2, 1, Some("a")), msg(3, 1, Some("a")), msg(4, 1, None)];
        assert_eq!(ids(&newest_posts(page.clone(), 5, true)), [4]);
        assert_eq!(ids(&newest_posts(page, 5, false)), [2, 3, 4]);
    }
}
