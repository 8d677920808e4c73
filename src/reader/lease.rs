//! The lease of each reader account, kept by one task an account: renewed
//! every third of `reader.lease_ttl_s`, and trusted only until a local
//! deadline on the monotonic clock — the moment the last successful
//! renewal (or the take) was *sent* + TTL − a margin. PostgreSQL counts the
//! TTL from its own `now()` at the renewal, which is later, so the local
//! deadline passes first: an account whose lease was not renewed in time
//! (PostgreSQL unreachable, the process paused) is disconnected before the
//! lease runs out, and every call checks the deadline right before it is
//! made (`AccountClient::call`). Another process takes a lease only one TTL
//! after it ran out (`Store::take_lease`), so even a holder that noticed
//! late has stopped by then: one session is never used from two places.

use std::sync::Weak;
use std::time::Duration;

use grammers_client::tl;
use tokio::time::Instant;

use super::client::CallError;
use super::pool::Inner;

/// How much earlier than the TTL a lease stops being trusted: a sixth of
/// it (room for a slow renewal answer), at least 200 ms — as for the
/// instance's own leases (`Ownership::margin`).
pub(super) fn margin(ttl: Duration) -> Duration {
    (ttl / 6).max(Duration::from_millis(200))
}

/// The local deadline of a lease taken or renewed by a request sent at `sent_at`.
pub(super) fn deadline(sent_at: Instant, ttl: Duration) -> Instant {
    sent_at + ttl.saturating_sub(margin(ttl))
}

/// After a failed renewal, the next try comes this soon (never past the deadline).
const RETRY: Duration = Duration::from_millis(500);

/// Renews the account's lease until it is lost, ends, or its deadline
/// passes; stores the update state and checks the session is alive.
pub(super) async fn heartbeat(
    pool: Weak<Inner>,
    account: String,
    generation: i64,
    mut deadline: Instant,
) {
    let Some(ttl) = pool
        .upgrade()
        .map(|p| Duration::from_secs(p.cfg.lease_ttl_s))
    else {
        return;
    };
    let mut next = Instant::now() + ttl / 3;
    loop {
        tokio::time::sleep_until(next.min(deadline)).await;
        let Some(p) = pool.upgrade() else { return };
        let sent = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(sent)
            .filter(|d| !d.is_zero())
        else {
            p.lease_lost(&account, true).await;
            return;
        };
        let renewal = p.store.renew_lease(&account, &p.holder, generation, ttl);
        match tokio::time::timeout(left, renewal).await {
            Ok(Ok(true)) => {
                deadline = self::deadline(sent, ttl);
                if let Some(c) = p.client(&account) {
                    c.set_usable_until(deadline);
                }
                next = sent + ttl / 3;
            }
            Ok(Ok(false)) => {
                p.lease_lost(&account, false).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(account, error = %e, "Cannot renew the reader lease; trying again before it must be trusted no more.");
                next = Instant::now() + RETRY;
                continue;
            }
            Err(_) => {
                p.lease_lost(&account, true).await;
                return;
            }
        }
        let Some(c) = p.client(&account) else { return };
        if let Err(e) = c.session().flush().await {
            tracing::warn!(account, error = %e, "Cannot store the update state.");
        }
        // A session Telegram ended shows only on a call; an account whose
        // channels are all quiet makes none, so the heartbeat asks.
        match c
            .call("updates.getState", &tl::functions::updates::GetState {})
            .await
        {
            Err(CallError::Lost(reason)) => {
                p.lost(&account, &reason).await;
                return;
            }
            Err(e) => tracing::debug!(account, error = %e, "Reader heartbeat call failed."),
            Ok(_) => {}
        }
        p.count_accounts();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_deadline_comes_before_the_lease_runs_out() {
        let now = Instant::now();
        let ttl = Duration::from_secs(3);
        assert_eq!(deadline(now, ttl), now + Duration::from_millis(2500));
        assert_eq!(
            deadline(now, Duration::from_secs(60)),
            now + Duration::from_secs(50)
        );
    }
}
