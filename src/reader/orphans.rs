//! Channels nobody subscribes to any more. The instance holding the
//! channel's lease stops its poller at once (`crate::keeper`); here, the
//! holder of the reader account sees the account's assignments in
//! PostgreSQL with no active subscription, marks since when
//! (`reader_assignments.unwanted_since`), and once a joined one has been
//! unwanted for `reader.orphan_grace_s` leaves it (`channels.leaveChannel`)
//! and records it (`joined = false`, `left_at`). One leave at most every
//! `reader.join_interval_ms` an account, like joins: no burst a bot farm
//! would make. Meanwhile the joiner joins no unwanted channel; once someone
//! subscribes again the mark goes and the channel is joined again within the
//! day's join budget (`joiner.rs`).
//!
//! Without this an account would only ever join: any user can make it join
//! channels (subscribe, then unsubscribe), and it would drift towards
//! Telegram's 500-channel cap with channels no one reads.

use kuryer_actors::telemetry::events::telegram_id;
use std::collections::HashSet;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use grammers_client::tl;

use super::client::CallError;
use super::pool::Inner;
use crate::telemetry::events;

const METHOD: &str = "channels.leaveChannel";

/// How often an account's assignments are looked at: a quarter of the
/// grace, between 200 ms (tests run with a grace of seconds) and a minute.
fn period(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// The sweeper of one account, until the account is gone from the pool.
pub(super) async fn run(pool: Weak<Inner>, account: String) {
    loop {
        let Some(p) = pool.upgrade() else { return };
        let grace = Duration::from_secs(p.cfg.orphan_grace_s);
        let pace = Duration::from_millis(p.cfg.join_interval_ms);
        let wait = match sweep(&p, &account, grace).await {
            Ok(true) => pace.max(period(grace)),
            Ok(false) => period(grace),
            Err(Some(wait)) => wait.max(period(grace)),
            Err(None) => return,
        };
        drop(p);
        tokio::time::sleep(wait).await;
    }
}

/// One look: marks, and leaves at most one channel due. `Ok(true)`: one
/// was left (the next waits for the account's pace); `Err(None)`: the
/// account is gone; `Err(Some(wait))`: look again after it.
async fn sweep(p: &Arc<Inner>, account: &str, grace: Duration) -> Result<bool, Option<Duration>> {
    let client = p.client(account).ok_or(None)?;
    let unwanted = match p
        .store
        .unwanted_assignments(account, grace.as_secs_f64())
        .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(account, error = %e, "Cannot read which channels nobody subscribes to; looking again later.");
            return Ok(false);
        }
    };
    let ids: HashSet<i64> = unwanted.iter().map(|u| u.channel_id).collect();
    p.mark_unwanted(account, &ids);
    let Some(due) = unwanted.iter().find(|u| u.due) else {
        return Ok(false);
    };
    if let Some(wait) = client.paused_for(METHOD) {
        return Err(Some(wait));
    }
    let Some(hash) = due.access_hash else {
        // No hash to name it by: it cannot be a member's channel we can
        // leave; recorded as left so it is not tried for ever.
        left(p, account, due.channel_id, "no_hash").await;
        return Ok(false);
    };
    let request = tl::functions::channels::LeaveChannel {
        channel: tl::types::InputChannel {
            channel_id: due.peer_id,
            access_hash: hash,
        }
        .into(),
    };
    match client.call(METHOD, &request).await {
        Ok(_) => {
            left(p, account, due.channel_id, "left").await;
            Ok(true)
        }
        Err(CallError::FloodWait { wait, .. }) => Err(Some(wait)),
        Err(CallError::Lost(reason)) => {
            p.lost(account, &reason).await;
            Err(None)
        }
        // Not a member (any more), or the channel is gone or private for
        // it: nothing to leave. Telegram's errors of the method:
        // <https://core.telegram.org/method/channels.leaveChannel>.
        Err(e)
            if matches!(
                e.rpc_name(),
                Some("USER_NOT_PARTICIPANT" | "CHANNEL_PRIVATE" | "CHANNEL_INVALID")
            ) =>
        {
            let outcome = e.rpc_name().unwrap_or("").to_ascii_lowercase();
            left(p, account, due.channel_id, &outcome).await;
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(account, channel_id = telegram_id(due.channel_id), channel_key = due.channel_id, error = %e, "Leaving a channel nobody subscribes to failed; trying again later.");
            Ok(true)
        }
    }
}

/// Recorded as left, in PostgreSQL and in the pool.
async fn left(p: &Arc<Inner>, account: &str, channel_id: i64, outcome: &str) {
    if let Err(e) = p.store.record_channel_left(channel_id, account).await {
        tracing::warn!(account, channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot record that the channel was left.");
    }
    p.mark_left(channel_id, account);
    events::reader_channel_left(account, channel_id, outcome);
}

impl Inner {
    /// The channels of `account` nobody subscribes to are `unwanted` (the
    /// joiner skips them); the others are not.
    fn mark_unwanted(&self, account: &str, unwanted: &HashSet<i64>) {
        let mut ch = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, st) in ch.iter_mut() {
            if st.account.as_deref() == Some(account) {
                st.unwanted = unwanted.contains(id);
            }
        }
    }

    /// Left: not joined, nothing pushed any more, so a later read starts
    /// from the history at the mark.
    fn mark_left(&self, channel_id: i64, account: &str) {
        let mut ch = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(st) = ch.get_mut(&channel_id)
            && st.account.as_deref() == Some(account)
        {
            st.joined = false;
            st.verified = 0;
            st.last_history = None;
            st.buffer.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_look_comes_a_quarter_of_the_grace_apart_within_bounds() {
        assert_eq!(period(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(
            period(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
        assert_eq!(period(Duration::from_secs(86_400)), Duration::from_secs(60));
    }
}
