//! The MTProto `ChannelSource`: what a channel's poller reads when our bot
//! does not administer the channel.
//!
//! A joined channel's posts arrive pushed (grammers fills pts gaps with
//! getChannelDifference) and wait in its buffer; the poller is woken and
//! reads them from there. The history (`messages.getHistory` with `min_id`
//! = the high-water mark, oldest first) is read instead when the pushes
//! cannot be trusted to be complete: on the first read after a start (what
//! was posted while kuryer was down), when the ids pushed leave a gap (a
//! push lost, a `channelDifferenceTooLong`, which hands grammers no
//! messages), after the channel changed account, and once every
//! `reader.verify_interval_s` of silence (longer when the account reads
//! many channels, `quiet.rs`). A channel no account could join
//! is read from its history every `reader.poll_interval_s`, within the
//! account's getHistory pace. A channel never read (mark 0, no
//! `start_message_id`) is first read from its newest page: its past is
//! left to backfills and reading starts after it (`history.rs`).
//!
//! Albums: pushes bring an album's parts one update each, so a read between
//! two parts would split it. A trailing album that came through the pushes
//! is held here ([`ALBUM_GRACE`] after its last new part, the Bot API
//! intake's grace) and yielded whole once no part came for that long; the
//! poller is woken when the grace ends. It is held *before* the relay
//! forward, so an album is forwarded once, in one call, whole. A history
//! page shows an album whole (Telegram creates its parts in one request),
//! so what the history brings is not held. The poller's own grace stays
//! zero: holding after the read would forward a part alone first.
//!
//! The buffer is bounded (`pool.rs`): over its cap, with no poller, or
//! when the poller stops it is dropped, and the next read goes to the
//! history from the mark.

use kuryer_actors::telemetry::events::telegram_id;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use grammers_client::tl;
use kuryer_actors::model::{ChannelRef, SourceMessage};
use kuryer_actors::ports::{ChannelSource, SourceError};
use tokio::time::Instant;

use super::client::CallError;
use super::hashes::NoHash;
use super::mapping;
use super::pool::{Inner, ReaderPool};

/// How long a trailing pushed album is held after its last new part (as
/// the Bot API intake holds one).
pub const ALBUM_GRACE: Duration = Duration::from_millis(700);

/// When a read waiting for its account to resolve the channel again is
/// tried next (the resolver wakes the poller sooner when it is done).
const REHASH_RETRY: Duration = Duration::from_secs(10);

/// Pages of nothing kuryer relays (service messages) one read steps over
/// before it answers nothing and leaves the rest to the next read.
const SKIP_PAGES: usize = 10;

/// The source of one channel.
pub struct MtprotoSource {
    pool: Arc<Inner>,
    channel: ChannelRef,
    /// Parts of a trailing album read but not yet yielded, by id.
    withheld: std::collections::BTreeMap<i32, SourceMessage>,
    /// The held album's group and when its last new part came.
    held: Option<(String, Instant)>,
    /// What this source last told about the channel being readable: None
    /// at start, so the first good read clears what an earlier run stored.
    told: Option<Readable>,
}

/// Whether the channel could be read, last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readable {
    Yes,
    No(&'static str),
}

impl ReaderPool {
    /// The source of a channel read over MTProto.
    pub fn source(&self, channel: &ChannelRef) -> MtprotoSource {
        self.0.poller_started(channel.channel_id);
        MtprotoSource {
            pool: Arc::clone(&self.0),
            channel: channel.clone(),
            withheld: std::collections::BTreeMap::new(),
            held: None,
            told: None,
        }
    }
}

impl Drop for MtprotoSource {
    /// The poller stopped (its channel released, its lease moved, the
    /// process stopping): what waits for it is dropped with it.
    fn drop(&mut self) {
        self.pool.poller_stopped(self.channel.channel_id);
    }
}

fn transient(message: impl Into<String>, retry_after: Option<Duration>) -> SourceError {
    SourceError::Transient {
        message: message.into(),
        retry_after,
    }
}

/// What one read decided, under the pool's lock.
enum Plan {
    /// Return these (pushed, contiguous from the mark).
    Buffered(Vec<SourceMessage>),
    /// Read the history from the mark.
    History,
    /// Nothing to do yet.
    Nothing,
}

impl MtprotoSource {
    fn plan(&self, after: i32, limit: usize) -> Option<Plan> {
        let cfg = &self.pool.cfg;
        let mut channels = self
            .pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = channels.get_mut(&self.channel.channel_id)?;
        st.buffer.retain(|&id, _| id > after);
        let now = Instant::now();
        let checked_recently = |every: Duration| {
            st.last_history
                .is_some_and(|t| now.duration_since(t) < every)
        };
        if !st.joined {
            return Some(
                if checked_recently(Duration::from_secs(cfg.poll_interval_s)) {
                    Plan::Nothing
                } else {
                    Plan::History
                },
            );
        }
        if st.verified < after || st.last_history.is_none() {
            return Some(Plan::History);
        }
        let mut v = st.verified.max(after);
        let mut out = Vec::new();
        for (&id, m) in &st.buffer {
            if id != v + 1 || out.len() >= limit {
                break;
            }
            v = id;
            out.push(m.clone());
        }
        let gap = st.buffer.keys().any(|&id| id > v);
        st.verified = v;
        if !out.is_empty() {
            return Some(Plan::Buffered(out));
        }
        // Telegram may stop pushing a channel without a word: one that
        // posts at a pace and went silent for long is read sooner than
        // the re-read of every joined channel (`quiet.rs`).
        let quiet = st.pace.overdue(
            now,
            st.last_history,
            Duration::from_secs(cfg.quiet_check_min_s),
            st.verify_every,
        );
        if quiet && !gap {
            tracing::debug!(
                channel_id = telegram_id(self.channel.channel_id),
                channel_key = self.channel.channel_id,
                "A channel that posts went silent: its history is read."
            );
        }
        Some(if gap || quiet || !checked_recently(st.verify_every) {
            Plan::History
        } else {
            Plan::Nothing
        })
    }

    /// The posts after `after` (with `newest`: the newest page instead),
    /// the channel's public name as the answer shows it (outer None: the
    /// answer did not show the channel), and whether more may follow.
    ///
    /// A page shorter than asked is no sign of the end: Telegram picks a
    /// page by message ids and leaves out the deleted ones (grammers 0.11
    /// `client/messages.rs`, `fill_buffer`: "Can't rely on
    /// `count(messages) < limit` as the stop condition"). Read oldest
    /// first, the history is caught up only when an answer is empty (what
    /// grammers' own reverse iteration stops on); a page of nothing kuryer
    /// relays (service messages only) is stepped over here, so the mark
    /// never sticks below it.
    async fn history(
        &self,
        after: i32,
        limit: usize,
        newest: bool,
    ) -> Result<(Vec<SourceMessage>, Option<Option<String>>, bool), SourceError> {
        let mut from = after;
        for _ in 0..SKIP_PAGES {
            let (out, shown_name, more, max_id) = self.page(from, limit, newest).await?;
            if !out.is_empty() || !more || newest || max_id <= from {
                return Ok((out, shown_name, more));
            }
            from = max_id;
        }
        Ok((Vec::new(), None, true))
    }

    /// One `messages.getHistory` page (see [`Self::history`]); also
    /// answers the highest id it showed.
    async fn page(
        &self,
        after: i32,
        limit: usize,
        newest: bool,
    ) -> Result<(Vec<SourceMessage>, Option<Option<String>>, bool, i32), SourceError> {
        let client = self
            .pool
            .account_for(self.channel.channel_id)
            .await
            .ok_or_else(|| {
                transient(
                    "no reader account is available",
                    Some(Duration::from_secs(30)),
                )
            })?;
        let (bare, hash, protected, joins) = self.known(client.name())?;
        let limit = i32::try_from(limit.clamp(1, 100)).unwrap_or(100);
        // Oldest first from the mark: offset just above it, stepped back by
        // the limit, so a backlog longer than one page is read in order.
        let request = tl::functions::messages::GetHistory {
            peer: tl::types::InputPeerChannel {
                channel_id: bare,
                access_hash: hash,
            }
            .into(),
            offset_id: if newest { 0 } else { after + 1 },
            offset_date: 0,
            add_offset: if newest { 0 } else { -limit },
            limit,
            max_id: 0,
            min_id: after,
            hash: 0,
        };
        let answer = match client.history(&request).await {
            Ok(a) => a,
            Err(CallError::FloodWait { wait, .. }) => {
                return Err(transient("flood wait on messages.getHistory", Some(wait)));
            }
            Err(CallError::Lost(reason)) => {
                self.pool.lost(client.name(), &reason).await;
                return Err(transient(
                    format!("reader account lost: {reason}"),
                    Some(Duration::from_secs(1)),
                ));
            }
            // Another account's hash (the channel moved): resolved again,
            // or read by an account that has its own; never "deleted".
            Err(e) if e.rpc_name() == Some("CHANNEL_INVALID") => {
                let name = self.channel.username.as_deref();
                let id = self.channel.channel_id;
                if self.pool.hash_refused(id, client.name(), name).await {
                    return Err(transient(e.to_string(), Some(REHASH_RETRY)));
                }
                return Err(SourceError::Gone(e.to_string()));
            }
            Err(e) if e.rpc_name() == Some("CHANNEL_PRIVATE") => {
                return Err(SourceError::Gone(e.to_string()));
            }
            Err(e) => return Err(transient(e.to_string(), None)),
        };
        let (messages, chats) = match answer {
            tl::enums::messages::Messages::Messages(m) => (m.messages, m.chats),
            tl::enums::messages::Messages::Slice(m) => (m.messages, m.chats),
            tl::enums::messages::Messages::ChannelMessages(m) => (m.messages, m.chats),
            tl::enums::messages::Messages::NotModified(_) => (Vec::new(), Vec::new()),
        };
        let shown_name = chats.iter().find_map(|c| match c {
            tl::enums::Chat::Channel(c) if c.id == bare => Some(c.username.clone()),
            _ => None,
        });
        let max_id = messages
            .iter()
            .map(|m| match m {
                tl::enums::Message::Message(m) => m.id,
                tl::enums::Message::Service(m) => m.id,
                tl::enums::Message::Empty(m) => m.id,
            })
            .max()
            .unwrap_or(after);
        // Oldest first: more may follow unless the answer is empty. The
        // newest page: more lies below unless its highest id is within the
        // limit (ids start at 1; grammers' `fill_buffer` stops on the same).
        let more = if newest {
            max_id > limit
        } else {
            !messages.is_empty()
        };
        let mut out: Vec<SourceMessage> = messages
            .iter()
            .filter_map(|m| mapping::source_message(m, protected))
            .filter(|m| m.id > after)
            .collect();
        out.sort_by_key(|m| m.id);
        self.note_read(&out, max_id, more, joins);
        Ok((out, shown_name, more, max_id))
    }

    /// The channel's bare id, `account`'s access hash of it, whether it is
    /// protected, and how many joins of it were made so far. Without a hash
    /// of its own the account resolves the name again first (`hashes.rs`).
    fn known(&self, account: &str) -> Result<(i64, i64, bool, u64), SourceError> {
        let id = self.channel.channel_id;
        let hash = match self
            .pool
            .read_hash(id, account, self.channel.username.as_deref())
        {
            Ok(h) => h,
            Err(NoHash::Resolving) => {
                return Err(transient(
                    "the reader account resolves the channel again for its own access hash",
                    Some(REHASH_RETRY),
                ));
            }
            Err(NoHash::Lost) => {
                return Err(SourceError::Gone(
                    "CHANNEL_INVALID: no reader account holds an access hash of the channel"
                        .to_owned(),
                ));
            }
        };
        let channels = self
            .pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = channels
            .get(&id)
            .ok_or_else(|| transient("channel unknown", None))?;
        Ok((st.info.bare_id, hash, st.info.protected, st.joins))
    }

    /// A history read gave `out`, reaching message `max_id`: the pushed
    /// copies of what it read are dropped from the buffer. A page with more
    /// behind it: the next read goes to the history again;
    /// verified only as far as it reached. A join during the call (`joins`
    /// changed): its answer may predate posts nobody pushed, so the history
    /// is read again.
    fn note_read(&self, out: &[SourceMessage], max_id: i32, more: bool, joins: u64) {
        let mut channels = self
            .pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let account = channels
            .get(&self.channel.channel_id)
            .and_then(|st| st.account.clone());
        let held = channels
            .values()
            .filter(|c| c.joined && c.account.is_some() && c.account == account)
            .count();
        if let Some(st) = channels.get_mut(&self.channel.channel_id) {
            st.verify_every = super::quiet::verify_every(
                Duration::from_secs(self.pool.cfg.verify_interval_s),
                held,
                self.pool.cfg.history_per_second,
            );
            let new = out
                .iter()
                .filter(|m| m.id > st.verified && !st.buffer.contains_key(&m.id))
                .count();
            st.pace.saw(new, Instant::now());
            st.last_history = (!more && st.joins == joins).then(Instant::now);
            st.verified = st.verified.max(max_id);
            for m in out {
                st.buffer.remove(&m.id);
            }
        }
    }

    /// One history read, with what it shows about the channel told: a good
    /// read clears a problem and notices a rename, a refusal for good
    /// (`CHANNEL_PRIVATE`, `CHANNEL_INVALID`) is told once.
    async fn read_history(
        &mut self,
        after: i32,
        limit: usize,
        newest: bool,
    ) -> Result<(Vec<SourceMessage>, bool), SourceError> {
        match self.history(after, limit, newest).await {
            Ok((messages, shown_name, full)) => {
                self.readable(shown_name);
                Ok((messages, full))
            }
            Err(SourceError::Gone(message)) => {
                let rpc = ["CHANNEL_PRIVATE", "CHANNEL_INVALID"]
                    .into_iter()
                    .find(|r| message.contains(r));
                self.unreadable(rpc);
                Err(SourceError::Gone(message))
            }
            Err(e) => Err(e),
        }
    }

    /// Where reading the channel starts (`None`: never read yet); `Gone`
    /// when the channel is not resolved.
    fn start(&self) -> Result<Option<i32>, SourceError> {
        let channels = self
            .pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = channels
            .get(&self.channel.channel_id)
            .ok_or_else(|| SourceError::Gone("the channel is not resolved".to_owned()))?;
        Ok(st
            .info
            .start_message_id
            .map(|s| i32::try_from(s).unwrap_or(i32::MAX)))
    }

    /// The first read of a channel never read before: the newest page,
    /// split where its first subscription was made
    /// ([`super::history::start_of_reading`]). What came before is stored
    /// as where reading starts (and the mark moves there); what came after
    /// is returned as new. Without this the first read, from mark 0, would
    /// hand the channel's whole past to its subscribers as new posts.
    async fn first_read(&mut self, limit: usize) -> Result<Vec<SourceMessage>, SourceError> {
        let id = self.channel.channel_id;
        let since = self
            .pool
            .store
            .channel_reading_starts(id)
            .await
            .map_err(|e| transient(e.to_string(), None))?
            - chrono::Duration::from_std(super::history::FIRST_READ_GRACE).unwrap_or_default();
        let (mut messages, full) = self.read_history(0, limit, true).await?;
        let start = super::history::start_of_reading(&messages, since, full);
        let start = self
            .pool
            .store
            .set_channel_start(id, start)
            .await
            .map_err(|e| transient(e.to_string(), None))?;
        if let Some(st) = self
            .pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&id)
        {
            st.info.start_message_id = Some(start);
        }
        messages.retain(|m| i64::from(m.id) > start);
        tracing::info!(
            channel_id = telegram_id(id),
            channel_key = id,
            start_message_id = start,
            new_posts = messages.len(),
            "First read of the channel: older posts are history, sent only when a backfill asks."
        );
        Ok(messages)
    }
}

impl MtprotoSource {
    /// How to call the channel in a notice.
    fn display_name(&self) -> String {
        self.channel.username.as_deref().map_or_else(
            || format!("channel {}", self.channel.chat_id),
            |u| format!("@{u}"),
        )
    }

    /// A read failed for good (`CHANNEL_PRIVATE`, `CHANNEL_INVALID`): the
    /// subscribers are told, once per problem (the store's claim makes it
    /// once across processes and restarts; this flag spares the claim on
    /// every rare poll).
    ///
    /// `CHANNEL_PRIVATE` to an account that had joined the channel means it
    /// was deleted (or the account banned from it): Telegram answers so for
    /// a deleted channel; a channel made private still answers its members.
    fn unreadable(&mut self, rpc: Option<&str>) {
        let problem = match rpc {
            Some("CHANNEL_PRIVATE") if !self.joined() => crate::store::CHANNEL_PRIVATE,
            _ => crate::store::CHANNEL_GONE,
        };
        if self.told == Some(Readable::No(problem)) {
            return;
        }
        self.told = Some(Readable::No(problem));
        let name = self.display_name();
        self.pool
            .events
            .channel_problem(self.channel.channel_id, &name, problem);
    }

    /// Whether a reader account of ours had joined the channel.
    fn joined(&self) -> bool {
        self.pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&self.channel.channel_id)
            .is_some_and(|st| st.joined)
    }

    /// A read succeeded: a problem told before has ended; and a public
    /// name that differs from ours is a rename (or the name was dropped).
    fn readable(&mut self, shown_name: Option<Option<String>>) {
        let ev = self.pool.events.clone();
        if self.told != Some(Readable::Yes) {
            self.told = Some(Readable::Yes);
            ev.channel_readable(self.channel.channel_id, &self.display_name());
        }
        let Some(shown) = shown_name.map(|n| n.map(|n| n.to_ascii_lowercase())) else {
            return;
        };
        if shown != self.channel.username {
            let old = self.display_name();
            tracing::info!(
                channel_id = telegram_id(self.channel.channel_id), channel_key = self.channel.channel_id,
                old = %old,
                new = shown.as_deref().unwrap_or("-"),
                "The channel's public name changed."
            );
            ev.channel_renamed(self.channel.channel_id, &old, shown.as_deref());
            self.channel.username = shown;
        }
    }

    /// The channel protects its content (no post of it can be forwarded).
    fn protected(&self) -> bool {
        self.pool
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&self.channel.channel_id)
            .is_some_and(|st| st.info.protected)
    }

    /// Media messages forwarded into the relay by the channel's account.
    async fn relayed(
        &self,
        relay: super::relay::Relay,
        messages: Vec<SourceMessage>,
    ) -> Result<Vec<SourceMessage>, SourceError> {
        if !messages.iter().any(|m| m.media.is_some() && m.copyable) {
            return Ok(messages);
        }
        let client = self
            .pool
            .account_for(self.channel.channel_id)
            .await
            .ok_or_else(|| {
                transient(
                    "no reader account is available",
                    Some(Duration::from_secs(30)),
                )
            })?;
        let (bare, hash, _, _) = self.known(client.name())?;
        let from = (bare, hash);
        match super::relay::forward(&client, relay, from, messages).await {
            super::relay::Outcome::Done(m) => Ok(m),
            super::relay::Outcome::Retry(e) => Err(e),
            super::relay::Outcome::Lost(reason) => {
                self.pool.lost(client.name(), &reason).await;
                Err(transient(
                    format!("reader account lost: {reason}"),
                    Some(Duration::from_secs(1)),
                ))
            }
        }
    }
}

impl MtprotoSource {
    /// What was read, with the parts held before merged in, minus a
    /// trailing pushed album still within its grace (kept for the next
    /// read; the poller is woken when the grace ends).
    fn hold_trailing_album(
        &mut self,
        after: i32,
        limit: usize,
        fetched: Vec<SourceMessage>,
        pushed: bool,
    ) -> Vec<SourceMessage> {
        let full = fetched.len() >= limit;
        self.withheld.retain(|&id, _| id > after);
        let mut merged = std::mem::take(&mut self.withheld);
        // Parts held before: read again (a history read), they are not new.
        let known: Vec<i32> = merged.keys().copied().collect();
        for m in fetched {
            merged.insert(m.id, m);
        }
        let mut messages: Vec<SourceMessage> = merged.into_values().collect();
        if messages.len() > limit {
            // The rest stays for the next read.
            for m in messages.split_off(limit) {
                self.withheld.insert(m.id, m);
            }
        }
        let Some(group) = messages.last().and_then(|m| m.media_group_id.clone()) else {
            self.held = None;
            return messages;
        };
        let start = messages
            .iter()
            .rposition(|m| m.media_group_id.as_ref() != Some(&group))
            .map_or(0, |i| i + 1);
        let now = Instant::now();
        // A new part of this album in this read: its grace starts again.
        let grew = messages[start..].iter().any(|m| !known.contains(&m.id));
        let since = match &self.held {
            Some((g, t)) if *g == group && !grew => *t,
            _ => now,
        };
        let from_pushes = pushed || self.held.as_ref().is_some_and(|(g, _)| *g == group);
        if full || !from_pushes || now.duration_since(since) >= ALBUM_GRACE {
            self.held = None;
            return messages;
        }
        for m in messages.split_off(start) {
            self.withheld.insert(m.id, m);
        }
        self.held = Some((group, since));
        {
            let ev = Arc::clone(&self.pool.events);
            let channel_id = self.channel.channel_id;
            let wait =
                ALBUM_GRACE.saturating_sub(now.duration_since(since)) + Duration::from_millis(5);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                ev.wake(channel_id);
            });
        }
        messages
    }
}

impl ChannelSource for MtprotoSource {
    fn fetch(
        &mut self,
        after: i32,
        limit: usize,
    ) -> LocalBoxFuture<'_, Result<Vec<SourceMessage>, SourceError>> {
        Box::pin(async move {
            if let Err(e) = self.pool.ensure_channel(&self.channel).await {
                return Err(transient(e.to_string(), None));
            }
            // Mark 0: nothing recorded yet; reading starts where the
            // first read found the channel (its past is history).
            let start = if after == 0 {
                self.start()?
            } else {
                Some(after)
            };
            let (after, fetched, pushed) = match start {
                None => (0, self.first_read(limit).await?, false),
                Some(after) => {
                    let plan = self.plan(after, limit).ok_or_else(|| {
                        SourceError::Gone("the channel is not resolved".to_owned())
                    })?;
                    let (fetched, pushed) = match plan {
                        Plan::Buffered(m) => (m, true),
                        Plan::Nothing => (Vec::new(), false),
                        Plan::History => (self.read_history(after, limit, false).await?.0, false),
                    };
                    (after, fetched, pushed)
                }
            };
            let messages = self.hold_trailing_album(after, limit, fetched, pushed);
            if messages.is_empty() {
                return Ok(messages);
            }
            if messages.iter().any(|m| !m.copyable) && self.protected() {
                let ev = &self.pool.events;
                let name = self.channel.username.as_deref().map_or_else(
                    || format!("channel {}", self.channel.chat_id),
                    |u| format!("@{u}"),
                );
                ev.protected(self.channel.channel_id, &name);
            }
            let messages = match self.pool.relay {
                Some(relay) => self.relayed(relay, messages).await?,
                None => messages,
            };
            // Media without a relay copy go out as text with a link.
            let username = self.channel.username.as_deref();
            Ok(messages
                .into_iter()
                .map(|m| match m.relay {
                    Some(_) => m,
                    None => mapping::without_relay(m, username),
                })
                .collect())
        })
    }
}
