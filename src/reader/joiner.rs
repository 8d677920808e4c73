//! Joining, spread over time: each account joins the channels assigned to
//! it one at a time, `reader.join_interval_ms` apart, while it has room
//! (`reader.max_channels_per_account`; Telegram's `CHANNELS_TOO_MUCH`
//! lowers it) and joins left in its budget for the day (`budget.rs`; a
//! spent budget waits for the next UTC day). `PEER_FLOOD` (the account is
//! limited for spam) stops its joins for the day. A channel not yet joined
//! is read by polling meanwhile.

use kuryer_actors::telemetry::events::telegram_id;
use std::sync::{Arc, Weak};
use std::time::Duration;

use grammers_client::tl;

use super::client::CallError;
use super::pool::Inner;
use crate::store::BudgetKind;
use crate::telemetry::events;

const METHOD: &str = "channels.joinChannel";

/// The joiner of one account.
pub(super) async fn run(pool: Weak<Inner>, account: String) {
    let mut shown = None;
    loop {
        let Some(p) = pool.upgrade() else { return };
        // Today's limits written once a day, for every instance's status page.
        let today = chrono::Utc::now().date_naive();
        if shown != Some(today) {
            p.budgets.show(&p.store, &account).await;
            shown = Some(today);
        }
        let interval = Duration::from_millis(p.cfg.join_interval_ms);
        let wait = match join_one(&p, &account).await {
            Ok(()) => interval,
            Err(Some(wait)) => wait.max(interval),
            Err(None) => return,
        };
        drop(p);
        tokio::time::sleep(wait).await;
    }
}

/// `Err(None)`: the account is gone; `Err(Some(wait))`: try again after it.
async fn join_one(p: &Arc<Inner>, account: &str) -> Result<(), Option<Duration>> {
    let client = p.client(account).ok_or(None)?;
    if let Some(wait) = client.paused_for(METHOD) {
        return Err(Some(wait));
    }
    if p.join_room(account) == 0 {
        return Ok(());
    }
    let Some((channel_id, bare, hash)) = p.next_to_join(account) else {
        return Ok(());
    };
    // Counted before it is made: never a join over the day's budget.
    if !p.budgets.spend(&p.store, account, BudgetKind::Join).await {
        // Spent (or stopped) for today: looked at again within ten
        // minutes, so a new day or a failed count is not missed for long.
        return Err(Some(
            super::budget::until_tomorrow().min(Duration::from_secs(600)),
        ));
    }
    let request = tl::functions::channels::JoinChannel {
        channel: tl::types::InputChannel {
            channel_id: bare,
            access_hash: hash,
        }
        .into(),
    };
    match client.call(METHOD, &request).await {
        Ok(_) => {
            p.mark_joined(channel_id);
            if let Err(e) = p.store.set_channel_joined(channel_id, account, true).await {
                tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot record the join.");
            }
            tracing::debug!(
                channel_id = telegram_id(channel_id),
                channel_key = channel_id,
                account,
                "Reader account joined the channel."
            );
            Ok(())
        }
        Err(CallError::FloodWait { wait, .. }) => Err(Some(wait)),
        Err(CallError::Lost(reason)) => {
            p.lost(account, &reason).await;
            Err(None)
        }
        Err(e) if e.rpc_name() == Some("CHANNELS_TOO_MUCH") => {
            tracing::warn!(
                account,
                "Telegram says the reader account joined too many channels; the rest are polled."
            );
            p.account_full(account);
            Ok(())
        }
        Err(e) if e.rpc_name() == Some("PEER_FLOOD") => {
            // Limited for spam: more joins would only deepen it. The
            // channel stays polled and is joined another day.
            events::reader_peer_flood(account, channel_id);
            p.budgets.stop_joins(&p.store, account, "PEER_FLOOD").await;
            Ok(())
        }
        Err(e) if e.rpc_name() == Some("CHANNEL_INVALID") => {
            // Another account's hash: the read resolves it again (and the
            // join follows with the new hash).
            p.hash_refused(channel_id, account, None).await;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, account, error = %e, "Joining the channel failed; it stays polled.");
            // Not tried again at once: the next channel goes first.
            p.mark_joined_failed(channel_id);
            Ok(())
        }
    }
}
