//! Access hashes per account. Telegram gives every account its own access
//! hash for a channel and refuses another account's with `CHANNEL_INVALID`
//! ("access_hash … is specific to the user/bot that fetched it",
//! core.telegram.org/api/peers). A channel is read with the hash of the
//! account that reads it (`reader_peer_hashes`, migration 0016): the one the
//! resolver stored when that account resolved it, or, after the channel
//! moved to an account without one, the one it gets by resolving the name
//! again — queued here, served by the resolver at its pace. `CHANNEL_INVALID`
//! therefore means "this account's hash is wrong": the hash is forgotten and
//! resolved again, never taken for a deleted channel. A channel row from
//! before the table has one hash and no owner: it is tried as a guess by
//! whichever account reads it, until Telegram refuses it once.

use kuryer_actors::telemetry::events::telegram_id;
use std::sync::{Arc, Mutex, MutexGuard};

use super::pool::{ChanState, Inner};

/// How many more channels an account without its own hash must be below
/// one with a hash to be given the channel: resolving costs a call of the
/// most flood-prone method, reading with a known hash costs nothing.
const MOVE_COST: usize = 5;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The hash `account` reads the channel with: its own, or the channel
/// row's one hash while no account is known to own one and it was never
/// refused.
pub(super) fn own_hash(st: &ChanState, account: &str) -> Option<i64> {
    st.hashes
        .get(account)
        .copied()
        .or_else(|| (st.hashes.is_empty() && !st.guess_refused).then_some(st.info.access_hash))
}

/// What giving the channel to `account` costs over its load.
pub(super) fn move_cost(st: &ChanState, account: &str) -> usize {
    if own_hash(st, account).is_some() {
        0
    } else {
        MOVE_COST
    }
}

/// Why an account has no hash to read a channel with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoHash {
    /// Queued for the account to resolve the name again.
    Resolving,
    /// No way to get one: a private channel (no name to resolve), or its
    /// name no longer leads to it.
    Lost,
}

impl Inner {
    /// `account`'s hash of the channel, if it has one.
    pub(super) fn hash_for(&self, channel_id: i64, account: &str) -> Option<i64> {
        lock(&self.channels)
            .get(&channel_id)
            .and_then(|st| own_hash(st, account))
    }

    /// The hash `account` reads the channel with; without one, the name is
    /// queued for that account to resolve again.
    pub(super) fn read_hash(
        &self,
        channel_id: i64,
        account: &str,
        username: Option<&str>,
    ) -> Result<i64, NoHash> {
        {
            let ch = lock(&self.channels);
            let st = ch.get(&channel_id).ok_or(NoHash::Resolving)?;
            if st.hash_lost {
                return Err(NoHash::Lost);
            }
            if let Some(h) = own_hash(st, account) {
                return Ok(h);
            }
        }
        let Some(name) = username else {
            return Err(NoHash::Lost);
        };
        lock(&self.rehash).insert((account.to_owned(), channel_id), name.to_owned());
        Err(NoHash::Resolving)
    }

    /// `account` was given `hash` for the Telegram channel `bare`: stored,
    /// kept for the channel when it is read here, told to the session (so
    /// grammers' getChannelDifference uses it).
    pub(super) async fn learned_hash(&self, account: &str, bare: i64, hash: i64) {
        if let Err(e) = self.store.set_peer_hash(account, bare, hash).await {
            tracing::warn!(account, peer_id = bare, error = %e, "Cannot store the access hash.");
        }
        let channel_id = lock(&self.by_bare).get(&bare).copied();
        if let Some(id) = channel_id
            && let Some(st) = lock(&self.channels).get_mut(&id)
        {
            st.hashes.insert(account.to_owned(), hash);
        }
        if let Some(c) = self.client(account) {
            c.session().know_channel(bare, hash);
        }
    }

    /// Telegram answered `CHANNEL_INVALID` to `account`'s hash: forgotten;
    /// the channel goes to a live account that has its own hash, else the
    /// account resolves the name again. False when neither can be (a
    /// private channel no other account can read).
    pub(super) async fn hash_refused(
        self: &Arc<Self>,
        channel_id: i64,
        account: &str,
        username: Option<&str>,
    ) -> bool {
        let live = self.live_names();
        let (bare, moved) = {
            let mut ch = lock(&self.channels);
            let Some(st) = ch.get_mut(&channel_id) else {
                return true;
            };
            st.hashes.remove(account);
            st.guess_refused = true;
            let other = live
                .iter()
                .any(|a| a != account && st.hashes.contains_key(a));
            if other && st.account.as_deref() == Some(account) {
                // Read by that account from its mark, as after any move.
                st.account = None;
                st.joined = false;
                st.verified = 0;
                st.last_history = None;
                st.buffer.clear();
            }
            (st.info.bare_id, other)
        };
        if let Err(e) = self.store.forget_peer_hash(account, bare).await {
            tracing::warn!(account, channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot forget the refused access hash.");
        }
        tracing::info!(
            account,
            channel_id = telegram_id(channel_id),
            channel_key = channel_id,
            to_another_account = moved,
            "Telegram refused the account's access hash of the channel; it is read with another account's or resolved again."
        );
        if moved {
            self.events.wake(channel_id);
            return true;
        }
        let Some(name) = username else {
            return false;
        };
        lock(&self.rehash).insert((account.to_owned(), channel_id), name.to_owned());
        true
    }

    /// The next (account, channel, name) to resolve again whose account is
    /// live and `ready` (not in a flood wait); requests of accounts gone
    /// are dropped.
    pub(super) fn next_rehash(
        &self,
        ready: impl Fn(&str) -> bool,
    ) -> Option<(String, i64, String)> {
        let live = self.live_names();
        let mut queue = lock(&self.rehash);
        queue.retain(|(a, _), _| live.contains(a));
        let key = queue.keys().find(|(a, _)| ready(a)).cloned()?;
        let name = queue.remove(&key)?;
        Some((key.0, key.1, name))
    }

    /// Tells a newly connected account's session its own hash of the relay
    /// channel, when one is stored (`reader.relay_access_hash` serves only
    /// the account it was taken from).
    pub(super) async fn know_relay(&self, client: &super::client::AccountClient) {
        let Some(relay) = self.relay else { return };
        match self.store.peer_hashes(relay.bare_id).await {
            Ok(h) => {
                if let Some(&hash) = h.get(client.name()) {
                    client.session().know_channel(relay.bare_id, hash);
                }
            }
            Err(e) => {
                tracing::warn!(account = client.name(), error = %e, "Cannot read the relay's access hash.");
            }
        }
    }

    /// The bare Telegram id of a channel read here.
    pub(super) fn bare_of(&self, channel_id: i64) -> Option<i64> {
        lock(&self.channels)
            .get(&channel_id)
            .map(|st| st.info.bare_id)
    }

    /// Puts a request back (a flood wait, no answer).
    pub(super) fn rehash_later(&self, account: &str, channel_id: i64, name: &str) {
        lock(&self.rehash).insert((account.to_owned(), channel_id), name.to_owned());
    }

    /// Resolving the name again did not lead to the channel (gone, or the
    /// name moved to another channel): it cannot be read by this account.
    pub(super) fn hash_lost(&self, channel_id: i64) {
        if let Some(st) = lock(&self.channels).get_mut(&channel_id) {
            st.hash_lost = true;
        }
        self.events.wake(channel_id);
    }
}
