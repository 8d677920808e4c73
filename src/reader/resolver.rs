//! The resolve queue: channels added by name wait (`pending`) until a
//! reader account looks them up with `contacts.resolveUsername` — one look-up
//! every `reader.resolve_interval_ms` over all accounts, because it earns
//! Telegram's longest flood waits. The answer is stored for good: the id,
//! access hash and title of a broadcast channel (read by id from then on,
//! whatever it is renamed to), or `invalid` (no such name), `private`, or
//! `not_a_channel` (a user, bot or group). A flood wait puts the name off
//! for exactly that long; no account, or no answer, for a minute.
//!
//! Each look-up is counted against the asking account's budget for the
//! day before it is made (`budget.rs`): an account whose budget is spent
//! is skipped, and while every account's is, the queue waits (for the next
//! UTC day, or an account with budget). Only names some live subscription
//! still wants are looked up (`Store::next_pending_channel`).

use kuryer_actors::telemetry::events::telegram_id;
use std::sync::Weak;
use std::time::Duration;

use grammers_client::tl;

use super::client::CallError;
use super::pool::Inner;
use crate::store::{BudgetKind, FoundChannel, PendingChannel, Unresolvable};
use crate::telemetry::events;

const METHOD: &str = "contacts.resolveUsername";

/// Runs the queue until the pool goes.
pub(super) async fn run(pool: Weak<Inner>) {
    let mut turn = 0usize;
    loop {
        let Some(p) = pool.upgrade() else { return };
        let interval = Duration::from_millis(p.cfg.resolve_interval_ms);
        // Channels an account must resolve again (moved to it) go first:
        // they have subscribers waiting and cost the same call.
        let again = p.next_rehash(|a| {
            p.client(a).is_some_and(|c| c.paused_for(METHOD).is_none())
                && !p.budgets.spent_today(a, BudgetKind::Resolve)
        });
        if let Some((account, channel_id, name)) = again {
            resolve_again(&p, &account, channel_id, &name).await;
            drop(p);
            tokio::time::sleep(interval).await;
            continue;
        }
        // Only with a live account to ask that has look-ups left today.
        let ready = p
            .live_names()
            .iter()
            .any(|a| !p.budgets.spent_today(a, BudgetKind::Resolve));
        match if ready {
            p.store.next_pending_channel().await
        } else {
            Ok(None)
        } {
            Ok(Some(pending)) => {
                turn += 1;
                resolve_one(&p, &pending, turn).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot read the resolve queue."),
        }
        drop(p);
        tokio::time::sleep(interval).await;
    }
}

async fn resolve_one(p: &std::sync::Arc<Inner>, pending: &PendingChannel, turn: usize) {
    let postpone = |wait: Duration| {
        let at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        p.store.postpone_resolve(pending.channel_id, at)
    };
    // The accounts in turn, skipping those in a flood wait on this method
    // and those whose look-ups for today are spent; the one chosen counts
    // this look-up before it is made.
    let names = p.live_names();
    let mut client = None;
    let mut waiting = false;
    for n in (0..names.len()).map(|i| &names[(turn + i) % names.len()]) {
        let Some(c) = p.client(n) else { continue };
        if c.paused_for(METHOD).is_some() {
            waiting = true;
            continue;
        }
        if p.budgets.spend(&p.store, n, BudgetKind::Resolve).await {
            client = Some(c);
            break;
        }
    }
    let Some(client) = client else {
        // Budgets spent: the name keeps its place (the queue waits for
        // an account with budget); flood waits put it off a minute.
        if waiting {
            let _ = postpone(Duration::from_secs(60)).await;
        }
        return;
    };
    let request = tl::functions::contacts::ResolveUsername {
        username: pending.username.clone(),
        referer: None,
    };
    let outcome = match client.call(METHOD, &request).await {
        Ok(tl::enums::contacts::ResolvedPeer::Peer(found)) => classify(&found),
        Err(e)
            if matches!(
                e.rpc_name(),
                Some("USERNAME_NOT_OCCUPIED" | "USERNAME_INVALID")
            ) =>
        {
            Err(Unresolvable::Invalid)
        }
        Err(e) if e.rpc_name() == Some("CHANNEL_PRIVATE") => Err(Unresolvable::Private),
        Err(CallError::FloodWait { wait, .. }) => {
            let _ = postpone(wait).await;
            return;
        }
        Err(CallError::Lost(reason)) => {
            p.lost(client.name(), &reason).await;
            let _ = postpone(Duration::from_secs(1)).await;
            return;
        }
        Err(e) => {
            tracing::warn!(channel = pending.username, error = %e, "Resolving the channel failed; trying again later.");
            let _ = postpone(Duration::from_secs(60)).await;
            return;
        }
    };
    match outcome {
        Ok(found) => match p.store.channel_resolved(pending.channel_id, &found).await {
            Ok(channel) => {
                // The hash is this account's own (core.telegram.org/api/peers).
                p.learned_hash(client.name(), found.bare_id, found.access_hash)
                    .await;
                events::channel_resolved(&pending.username, channel.channel_id);
                // The pending row may have merged into another one:
                // its subscribers are the target's now.
                p.events.settled(channel.channel_id, &pending.username);
                p.events.resolved(channel);
            }
            Err(e) => {
                tracing::warn!(channel = pending.username, error = %e, "Cannot store the resolved channel.")
            }
        },
        Err(why) => {
            events::channel_unresolvable(&pending.username, why.as_str());
            match p.store.channel_unresolvable(pending.channel_id, why).await {
                Ok(()) => p.events.settled(pending.channel_id, &pending.username),
                Err(e) => {
                    tracing::warn!(channel = pending.username, error = %e, "Cannot store the channel's status.");
                }
            }
        }
    }
}

/// `account` resolves `name` again for its own access hash of the channel
/// `channel_id` (it moved to this account, or its hash was refused).
async fn resolve_again(p: &std::sync::Arc<Inner>, account: &str, channel_id: i64, name: &str) {
    let Some(client) = p.client(account) else {
        return;
    };
    // Within the account's budget, like any look-up.
    if !p
        .budgets
        .spend(&p.store, account, BudgetKind::Resolve)
        .await
    {
        p.rehash_later(account, channel_id, name);
        return;
    }
    let request = tl::functions::contacts::ResolveUsername {
        username: name.to_owned(),
        referer: None,
    };
    let bare = p.bare_of(channel_id);
    match client.call(METHOD, &request).await {
        Ok(tl::enums::contacts::ResolvedPeer::Peer(found)) => match classify(&found) {
            Ok(f) if Some(f.bare_id) == bare => {
                p.learned_hash(account, f.bare_id, f.access_hash).await;
                tracing::info!(
                    account,
                    channel_id = telegram_id(channel_id),
                    channel_key = channel_id,
                    "Channel resolved again for the account's own access hash."
                );
                p.events.wake(channel_id);
            }
            other => {
                tracing::warn!(account, channel_id = telegram_id(channel_id), channel_key = channel_id, channel = name, found = ?other.map(|f| f.bare_id), "The channel's name no longer leads to it; the account cannot read it.");
                p.hash_lost(channel_id);
            }
        },
        Err(e)
            if matches!(
                e.rpc_name(),
                Some("USERNAME_NOT_OCCUPIED" | "USERNAME_INVALID")
            ) =>
        {
            tracing::warn!(
                account,
                channel_id = telegram_id(channel_id),
                channel_key = channel_id,
                channel = name,
                "The channel's name no longer exists; the account cannot read it."
            );
            p.hash_lost(channel_id);
        }
        Err(CallError::Lost(reason)) => p.lost(account, &reason).await,
        Err(e) => {
            tracing::debug!(account, channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Resolving the channel again failed; trying later.");
            p.rehash_later(account, channel_id, name);
        }
    }
}

/// What a resolved name is.
pub fn classify(found: &tl::types::contacts::ResolvedPeer) -> Result<FoundChannel, Unresolvable> {
    let tl::enums::Peer::Channel(peer) = &found.peer else {
        return Err(Unresolvable::NotAChannel);
    };
    for chat in &found.chats {
        match chat {
            tl::enums::Chat::Channel(c) if c.id == peer.channel_id => {
                if !c.broadcast || c.megagroup {
                    return Err(Unresolvable::NotAChannel);
                }
                let Some(access_hash) = c.access_hash else {
                    return Err(Unresolvable::Private);
                };
                return Ok(FoundChannel {
                    bare_id: c.id,
                    access_hash,
                    title: c.title.clone(),
                    protected: c.noforwards,
                });
            }
            tl::enums::Chat::ChannelForbidden(c) if c.id == peer.channel_id => {
                return Err(Unresolvable::Private);
            }
            _ => {}
        }
    }
    Err(Unresolvable::Invalid)
}
