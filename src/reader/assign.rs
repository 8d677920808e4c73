//! Which account reads a channel: a channel is given, when first read, to
//! the live account with the fewest channels and stays there (the database
//! remembers) while that account lives; each account joins its channels
//! one at a time up to `reader.max_channels_per_account` (the joiner asks
//! here which is next), and the rest are polled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kuryer_actors::model::ChannelRef;
use kuryer_actors::telemetry::events::telegram_id;

use super::client::AccountClient;
use super::pool::{ChanState, Inner, lock};

impl Inner {
    /// The channel's state, loaded and assigned on first use. `None` when
    /// the channel is not resolved.
    pub(super) async fn ensure_channel(
        self: &Arc<Self>,
        channel: &ChannelRef,
    ) -> Result<(), crate::store::StoreError> {
        if lock(&self.channels).contains_key(&channel.channel_id) {
            return Ok(());
        }
        let Some(info) = self.store.reader_channel(channel.channel_id).await? else {
            return Ok(());
        };
        // Its own row: listing every assignment here made the first reads
        // of n channels cost n² rows.
        let assigned = self.store.reader_assignment(channel.channel_id).await?;
        let hashes = self.store.peer_hashes(info.bare_id).await?;
        lock(&self.by_bare).insert(info.bare_id, channel.channel_id);
        lock(&self.channels)
            .entry(channel.channel_id)
            .or_insert_with(|| ChanState {
                info,
                account: assigned.as_ref().map(|a| a.account.clone()),
                joined: assigned.is_some_and(|a| a.joined),
                join_failed: false,
                buffer: BTreeMap::new(),
                verified: 0,
                last_history: None,
                joins: 0,
                hashes,
                guess_refused: false,
                hash_lost: false,
                pace: super::quiet::Pace::default(),
                unwanted: false,
                verify_every: Duration::from_secs(self.cfg.verify_interval_s),
            });
        Ok(())
    }

    /// The live account reading `channel_id`, assigning one when it has
    /// none (or its account is gone): the live account with the fewest channels.
    pub(super) async fn account_for(
        self: &Arc<Self>,
        channel_id: i64,
    ) -> Option<Arc<AccountClient>> {
        let (current, bare) = {
            let ch = lock(&self.channels);
            let st = ch.get(&channel_id)?;
            (st.account.clone(), st.info.bare_id)
        };
        if let Some(name) = &current
            && let Some(l) = lock(&self.accounts).get(name)
        {
            return Some(Arc::clone(&l.client));
        }
        let chosen = {
            let accounts = lock(&self.accounts);
            let ch = lock(&self.channels);
            let mut load: HashMap<&str, usize> = accounts.keys().map(|k| (k.as_str(), 0)).collect();
            for st in ch.values() {
                if let Some(a) = st.account.as_deref()
                    && let Some(n) = load.get_mut(a)
                {
                    *n += 1;
                }
            }
            // An account holding its own access hash reads at once; any
            // other must resolve the channel first (`hashes.rs`).
            let st = ch.get(&channel_id)?;
            load.into_iter()
                .min_by_key(|(name, n)| (*n + super::hashes::move_cost(st, name), *name))
                .map(|(name, _)| name.to_owned())?
        };
        if let Err(e) = self.store.assign_channel(channel_id, &chosen).await {
            tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot record the channel's reader account.");
            return None;
        }
        let client = {
            let mut ch = lock(&self.channels);
            let st = ch.get_mut(&channel_id)?;
            st.account = Some(chosen.clone());
            st.joined = false;
            Arc::clone(&lock(&self.accounts).get(&chosen)?.client)
        };
        if let Some(hash) = self.hash_for(channel_id, &chosen) {
            client.session().know_channel(bare, hash);
        }
        tracing::debug!(
            channel_id = telegram_id(channel_id),
            channel_key = channel_id,
            account = chosen,
            "Channel assigned to a reader account."
        );
        Some(client)
    }

    /// How many channels `account` may still join.
    pub(super) fn join_room(&self, account: &str) -> usize {
        let cap = lock(&self.accounts).get(account).map_or(0, |l| l.capacity);
        let joined = lock(&self.channels)
            .values()
            .filter(|s| s.joined && s.account.as_deref() == Some(account))
            .count();
        cap.saturating_sub(joined)
    }

    /// Telegram says the account is full: it joins no more.
    pub(super) fn account_full(&self, account: &str) {
        let joined = lock(&self.channels)
            .values()
            .filter(|s| s.joined && s.account.as_deref() == Some(account))
            .count();
        if let Some(l) = lock(&self.accounts).get_mut(account) {
            l.capacity = joined;
        }
    }

    /// The next channel `account` should join: assigned to it, not
    /// joined, wanted by someone, and with the account's own access hash.
    pub(super) fn next_to_join(&self, account: &str) -> Option<(i64, i64, i64)> {
        lock(&self.channels)
            .iter()
            .filter(|(_, s)| {
                !s.joined && !s.join_failed && !s.unwanted && s.account.as_deref() == Some(account)
            })
            .filter_map(|(id, s)| Some((*id, s.info.bare_id, super::hashes::own_hash(s, account)?)))
            .min()
    }

    /// Joined: pushes come from now on, but what was posted between the
    /// last history read and the join was pushed to nobody here, so the
    /// next read goes to the history from the mark once more.
    pub(super) fn mark_joined(&self, channel_id: i64) {
        if let Some(s) = lock(&self.channels).get_mut(&channel_id) {
            s.joined = true;
            s.joins += 1;
            s.last_history = None;
        }
        self.events.wake(channel_id);
    }

    /// A join that failed for good: the channel stays polled by its account.
    pub(super) fn mark_joined_failed(&self, channel_id: i64) {
        if let Some(s) = lock(&self.channels).get_mut(&channel_id) {
            s.join_failed = true;
        }
    }
}
