//! What the daemon does when a destination changes under it: the bot was
//! blocked or kicked (403), a group became a supergroup (400 with
//! `migrate_to_chat_id`), or sends keep failing. The database is updated,
//! the registry drops or moves the subscriptions, the pollers of channels
//! left without subscribers stop, and the owner is told in their private
//! chat when the lost destination was not that chat itself. A post kuryer
//! cannot read that Telegram refused by id too is kept as a dead letter.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use kuryer_actors::channel_supervisor::{ChannelSupervisor, StopChannel};
use kuryer_actors::model::{ActiveSubscription, Delivery, DestinationKind, NoticeTarget};
use kuryer_actors::ports::{DestinationEvent, DestinationEvents};
use kuryer_actors::rate_limiter::{Enqueue, MoveChat, RateLimiter};
use kuryer_actors::subscriber_registry::{
    MigrateDestination, RemoveDestination, SubscriberRegistry,
};
use teloxide::Bot;

use crate::i18n::{Arg, Lang, Texts};
use crate::source_events::SourceEvents;
use crate::store::{LostDestination, Store};
use crate::telegram::bot_id_of;
use crate::telemetry::events;

/// Acts on destination events; see the module doc.
#[derive(Clone)]
pub struct DestinationHandler {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Every bot's id: an owner is told by the bot they started.
    bots: Vec<i64>,
    /// The bot's texts: the owner reads it in their language.
    texts: Arc<Texts>,
    registry: Addr<SubscriberRegistry>,
    supervisor: Addr<ChannelSupervisor>,
    limiter: Addr<RateLimiter>,
    /// Destinations already moved to a supergroup: every queued delivery to
    /// the old chat fails the same way, one move is enough (a group becomes
    /// a supergroup once in its life).
    handled: Mutex<HashSet<(i64, &'static str)>>,
    /// Told of a bot-admin channel the bot can no longer read, and of its
    /// return: its subscribers are told once, as for a bot removed.
    source_events: Option<Arc<dyn SourceEvents>>,
    /// Posts refused by id already kept (channel, first message id): every
    /// delivery of such a post finds the refusal, one dead letter is kept
    /// (the store checks again; this spares it the fan-out's calls).
    unsendable: Mutex<HashSet<(i64, i32)>>,
}

/// Posts refused by id remembered at most; then the set starts again (the
/// store still keeps one dead letter a post).
const UNSENDABLE_REMEMBERED: usize = 10_000;

impl DestinationHandler {
    /// A handler that tells owners through the bot each started, and
    /// takes a lost or moved destination out of the actors (their
    /// addresses may belong to actors not running yet: what is sent waits
    /// in their mailboxes).
    pub fn new(
        store: Store,
        bots: &[Bot],
        registry: Addr<SubscriberRegistry>,
        supervisor: Addr<ChannelSupervisor>,
        limiter: Addr<RateLimiter>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                bots: bots.iter().map(|b| bot_id_of(b.token())).collect(),
                texts: Texts::shared(),
                registry,
                supervisor,
                limiter,
                handled: Mutex::new(HashSet::new()),
                source_events: None,
                unsendable: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Tells `events` of channels whose posts the bot can no longer read
    /// (`None`: the sender's log line is all).
    pub fn with_source_events(mut self, events: Option<Arc<dyn SourceEvents>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.source_events = events;
        }
        self
    }

    fn first_time(&self, destination_id: i64, what: &'static str) -> bool {
        self.inner
            .handled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((destination_id, what))
    }
}

impl DestinationEvents for DestinationHandler {
    fn on_event(&self, event: DestinationEvent) {
        let inner = self.inner.clone();
        match event {
            DestinationEvent::Gone { sub, reason } | DestinationEvent::Failing { sub, reason } => {
                actix::spawn(async move { inner.lose(&sub, reason).await });
            }
            DestinationEvent::Migrated { sub, new_chat_id }
                if self.first_time(sub.destination_id, "moved") =>
            {
                actix::spawn(async move { inner.migrate(&sub, new_chat_id).await });
            }
            // The relay serves every channel read over MTProto: the sender's
            // ERROR is for the operator, subscribers cannot help. A
            // channel's own source: its subscribers are told, as when the
            // bot is removed from it.
            DestinationEvent::SourceRefused {
                channel_id,
                relay: false,
                channel_username,
                ..
            } => {
                if let Some(ev) = &inner.source_events {
                    let name = channel_name(channel_id, channel_username);
                    ev.channel_problem(channel_id, &name, crate::store::CHANNEL_BOT_REMOVED);
                }
            }
            DestinationEvent::SourceReadable {
                channel_id,
                relay: false,
                channel_username,
                ..
            } => {
                if let Some(ev) = &inner.source_events {
                    ev.channel_readable(channel_id, &channel_name(channel_id, channel_username));
                }
            }
            DestinationEvent::PostUnsendable { post, reason } => {
                let key = (
                    post.channel_id,
                    post.message_ids.first().copied().unwrap_or(0),
                );
                let first = {
                    let mut seen = inner
                        .unsendable
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if seen.len() >= UNSENDABLE_REMEMBERED {
                        seen.clear();
                    }
                    seen.insert(key)
                };
                if first {
                    actix::spawn(async move { inner.keep_unsendable(&post, &reason).await });
                }
            }
            _ => {}
        }
    }
}

/// How a notice calls the channel: `@name`, or its id when it has none.
fn channel_name(channel_id: i64, username: Option<String>) -> String {
    username.map_or_else(|| channel_id.to_string(), |u| format!("@{u}"))
}

impl Inner {
    /// Keeps a post Telegram refused by id as a dead letter (once a post),
    /// for the operator to see and replay.
    async fn keep_unsendable(&self, post: &kuryer_actors::model::Post, reason: &str) {
        let message_id = post.message_ids.first().copied().map(i64::from);
        let reason = format!("Telegram refused to copy and to forward it by id: {reason}");
        match self.store.dead_letter_unsendable(post, &reason).await {
            Ok(true) => {
                events::post_unsendable_kept(
                    post.channel_id,
                    post.source_chat_id,
                    message_id,
                    &reason,
                );
            }
            Ok(false) => {}
            Err(e) => events::post_unsendable_not_kept(post.channel_id, message_id, &e),
        }
    }

    /// The bot can no longer post to this destination: it leaves the
    /// registry, is deactivated, and its owner is told once.
    async fn lose(&self, sub: &ActiveSubscription, reason: String) {
        // The registry decides whether this is news: every delivery queued
        // to a lost chat fails the same way, and only the first finds the
        // destination still indexed. A destination made active again later
        // (a new subscription) is indexed again, so losing it again is
        // handled again. (A per-process "handled" set missed that second
        // loss.)
        match self
            .registry
            .send(RemoveDestination(sub.destination_id))
            .await
        {
            Ok(removed) if removed.subscriptions == 0 => return,
            Ok(removed) => {
                for channel in removed.emptied {
                    self.supervisor.do_send(StopChannel(channel));
                }
            }
            Err(e) => {
                tracing::warn!(destination_id = sub.destination_id, error = %e, "The registry did not answer; deactivating anyway.")
            }
        }
        let owner = match self
            .store
            .deactivate_destination(sub.destination_id, &reason)
            .await
        {
            Ok(owner) => owner,
            Err(e) => {
                tracing::error!(destination_id = sub.destination_id, error = %e, "Could not deactivate a destination.");
                None
            }
        };
        events::destination_deactivated(sub.destination_id, sub.chat_id, &reason);
        // Tell the owner, unless the lost chat is their own private chat.
        // Told once per problem, whichever process sees it: the stored
        // claim (a failed claim tells rather than stays silent).
        let first = self
            .store
            .claim_destination_notice(sub.destination_id, &reason)
            .await
            .unwrap_or(true);
        if let (Some((lost, false)), true) = (owner, first) {
            let key = if reason == kuryer_actors::sender_pool::TOPIC_DELETED {
                "dest-topic-lost"
            } else {
                "dest-lost"
            };
            self.tell_owner(&lost, sub, key).await;
        }
    }

    /// The group became a supergroup: the destination moves to its new id.
    async fn migrate(&self, sub: &ActiveSubscription, new_chat_id: i64) {
        // The limiter first: from then on a delivery to either id waits
        // behind what the group had queued. Only then can the registry (or
        // a sweep reading the moved row) queue one under the new id.
        let moved = MoveChat {
            old: sub.chat_id,
            new: new_chat_id,
        };
        if let Err(e) = self.limiter.send(moved).await {
            tracing::warn!(chat_id = sub.chat_id, new_chat_id, error = %e, "The limiter did not take the move.");
        }
        if let Err(e) = self
            .store
            .migrate_destination(sub.chat_id, new_chat_id)
            .await
        {
            tracing::error!(chat_id = sub.chat_id, new_chat_id, error = %e, "Could not move a destination.");
        }
        self.registry.do_send(MigrateDestination {
            destination_id: sub.destination_id,
            new_chat_id,
        });
        tracing::info!(
            chat_id = sub.chat_id,
            new_chat_id,
            "Group became a supergroup; destination moved."
        );
    }

    /// The bot's "I was removed from …" in the owner's language, sent by
    /// the bot that serves their private chat (what the bot itself says
    /// when Telegram tells it it was removed), through the limiter like
    /// every message of kuryer's own: a fan-out that loses many chats at
    /// once tells their owners within the bot's and each chat's limits,
    /// never beside them.
    async fn tell_owner(&self, lost: &LostDestination, sub: &ActiveSubscription, key: &str) {
        let lang = Lang::parse(&lost.owner_language).unwrap_or(Lang::En);
        // A chat linked without a title is named by its id.
        let title = lost
            .title
            .clone()
            .unwrap_or_else(|| sub.chat_id.to_string());
        let text = self.texts.get(lang, key, &[("title", Arg::from(title))]);
        let Some(bot_id) = lost
            .owner_bot_id
            .and_then(|id| self.bots.iter().find(|b| **b == id))
            .or(self.bots.first())
            .copied()
        else {
            return;
        };
        let owner = lost.owner_telegram_id;
        let to = NoticeTarget {
            channel_id: sub.channel_id,
            subscription_id: 0,
            chat_id: owner,
            kind: DestinationKind::Private,
            bot_id: Some(bot_id),
            thread_id: None,
        };
        let (notice, sent) = Delivery::notice(&to, text, None);
        self.limiter.do_send(Enqueue(vec![notice]));
        // The outcome only matters to the log: waited for off this task.
        actix::spawn(async move {
            match sent.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::info!(owner, error = %e, "Could not tell the owner about a lost destination.");
                }
                Err(_) => {
                    tracing::info!(
                        owner,
                        "The owner was not told about a lost destination: the send was let go (a halted bot, a shutdown)."
                    );
                }
            }
        });
    }
}
