//! SubscriberRegistry: the in-memory index channel → active subscriptions.
//!
//! Owns the index. Loaded at start from a streaming query (in chunks, see
//! [`LoadSubscriptions`](crate::subscriber_registry::LoadSubscriptions)) and kept current by [`AddSubscription`](crate::subscriber_registry::AddSubscription) /
//! [`RemoveSubscription`](crate::subscriber_registry::RemoveSubscription) as subscriptions change. Turns a [`PublishPost`](crate::subscriber_registry::PublishPost)
//! into one [`Delivery`](crate::model::Delivery) per subscription of the post's channel, with no
//! database query, and hands them to the RateLimiter; its answer waits for
//! the limiter's, which is how a poller feels back-pressure. While the
//! limiter's queue has no room (its [`QueueRoom`], when given), a post waits
//! here *before* it fans out, in arrival order: what waits is the post, not
//! its deliveries, so the queue stays within its capacity however many
//! pollers publish at once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::filters::PostFilter;
use crate::in_flight::InFlight;
use crate::model::{ActiveSubscription, DedupCheck, Delivery, Post};
use crate::ports::Dedup;
use crate::quiet::{Quiet, QuietHolds};
use crate::rate_limiter::{Enqueue, QueueRoom};
use crate::shaping::Shaper;
use crate::telemetry::{events, registry};

/// A chunk of the initial load.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LoadSubscriptions(pub Vec<ActiveSubscription>);

/// A subscription became active. Answers true when its channel had no active
/// subscription before (its poller must start).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AddSubscription(pub ActiveSubscription);

/// A subscription stopped. Answers true when its channel has no active
/// subscription left (its poller may stop).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct RemoveSubscription {
    /// `subscriptions.id`.
    pub subscription_id: i64,
}

/// The end of a re-sync (after a lost change feed): every indexed
/// subscription not in this set is no longer active and leaves the index.
/// Answers how many left.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RetainSubscriptions(pub std::collections::HashSet<i64>);

/// A destination was deactivated: drop all its subscriptions. Answers the
/// channels left with no active subscription.
#[derive(Message)]
#[rtype(result = "DestinationRemoved")]
pub struct RemoveDestination(pub i64);

/// What [`RemoveDestination`] took out of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct DestinationRemoved {
    /// Active subscriptions of the destination that were indexed: 0 when it
    /// was already out (a later failure of a delivery queued before).
    pub subscriptions: usize,
    /// Channels left with no active subscription.
    pub emptied: Vec<i64>,
}

/// A destination moved to a new chat id (group → supergroup).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MigrateDestination {
    /// `destinations.id`.
    pub destination_id: i64,
    /// The supergroup's chat id.
    pub new_chat_id: i64,
}

/// A recorded post to fan out. Answers the number of deliveries made, once
/// the RateLimiter has accepted them.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct PublishPost(pub Arc<Post>);

/// Counts of the index.
#[derive(Message)]
#[rtype(result = "RegistryStats")]
pub struct GetRegistryStats;

/// Size of the index.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct RegistryStats {
    /// Channels with at least one active subscription.
    pub channels: usize,
    /// Active subscriptions.
    pub subscriptions: usize,
    /// Posts fanned out.
    pub posts_published: u64,
    /// Deliveries made from them.
    pub deliveries_made: u64,
}

/// The SubscriberRegistry actor.
pub struct SubscriberRegistry {
    by_channel: HashMap<i64, Vec<Arc<ActiveSubscription>>>,
    channel_of: HashMap<i64, i64>,
    /// Compiled filters of the subscriptions that have one: compiled when a
    /// subscription enters the index, so the fan-out never parses JSON.
    filters: HashMap<i64, PostFilter>,
    /// Compiled quiet hours of the subscriptions that have them.
    quiet: HashMap<i64, Quiet>,
    /// Subscriptions holding their posts (quiet now, or a backlog not yet released).
    holds: Arc<QuietHolds>,
    limiter: Recipient<Enqueue>,
    /// Asked once a post which of its deliveries were already accepted.
    dedup: Arc<dyn Dedup>,
    /// Every delivery is claimed here before it is queued.
    in_flight: Arc<InFlight>,
    /// Room in the limiter's queue, when the registry waits for it.
    room: Option<Arc<QueueRoom>>,
    /// Deliveries fanned out whose `Enqueue` the limiter has not answered yet.
    promised: Arc<AtomicUsize>,
    /// Posts waiting for room before their fan-out, oldest first, with
    /// where their answer goes.
    parked: VecDeque<(Arc<Post>, oneshot::Sender<usize>)>,
    stats: RegistryStats,
    /// The sender's compiled transforms: a removed subscription's are dropped.
    shaper: Option<Arc<Shaper>>,
}

/// A fan-out under way: the dedup question and the limiter's answer.
type FanOut = Pin<Box<dyn Future<Output = usize>>>;

impl SubscriberRegistry {
    /// An empty registry feeding `limiter`; it claims each delivery in
    /// `in_flight` before queueing it.
    pub fn new(
        limiter: Recipient<Enqueue>,
        dedup: Arc<dyn Dedup>,
        in_flight: Arc<InFlight>,
    ) -> Self {
        Self {
            by_channel: HashMap::new(),
            channel_of: HashMap::new(),
            filters: HashMap::new(),
            quiet: HashMap::new(),
            holds: Arc::new(QuietHolds::new()),
            limiter,
            dedup,
            in_flight,
            room: None,
            promised: Arc::new(AtomicUsize::new(0)),
            parked: VecDeque::new(),
            stats: RegistryStats::default(),
            shaper: None,
        }
    }

    /// Forgets a removed subscription's compiled transforms in `shaper`
    /// (the sender's) too.
    pub fn with_shaper(mut self, shaper: Arc<Shaper>) -> Self {
        self.shaper = Some(shaper);
        self
    }

    fn forget_transforms(&self, subscription_id: i64) {
        if let Some(s) = &self.shaper {
            s.forget(subscription_id);
        }
    }

    /// Waits for room in the limiter's queue before each fan-out (see the
    /// module's doc), as [`RateLimiter::room`](crate::rate_limiter::RateLimiter::room) reports it.
    pub fn with_room(mut self, room: Arc<QueueRoom>) -> Self {
        self.room = Some(room);
        self
    }

    /// Whether a post of `channel` may fan out now: nothing waits before it
    /// and its deliveries (at most one a subscription) fit in the queue.
    fn may_fan_out(&self, channel: i64) -> bool {
        let Some(room) = &self.room else {
            return true;
        };
        let at_most = self.by_channel.get(&channel).map_or(0, Vec::len);
        self.parked.is_empty() && room.fits(self.promised.load(Ordering::Relaxed), at_most)
    }

    /// Fans out the posts that waited, oldest first, while there is room.
    fn unpark(&mut self) {
        let Some(room) = self.room.clone() else {
            return;
        };
        while let Some((post, _)) = self.parked.front() {
            let at_most = self.by_channel.get(&post.channel_id).map_or(0, Vec::len);
            if !room.fits(self.promised.load(Ordering::Relaxed), at_most) {
                break;
            }
            let Some((post, reply)) = self.parked.pop_front() else {
                break;
            };
            let fan_out = self.fan_out(post);
            actix::spawn(async move {
                let _ = reply.send(fan_out.await);
            });
        }
    }

    /// Unparks each time the limiter signals room, for as long as the
    /// registry runs; and at least every 100 ms, so that a signal lost to a
    /// stale reading never leaves a post waiting.
    fn watch_room(&self, ctx: &mut Context<Self>) {
        let Some(room) = self.room.clone() else {
            return;
        };
        let signal = async move {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), room.freed()).await;
        };
        ctx.spawn(signal.into_actor(self).map(|(), act, ctx| {
            act.unpark();
            act.watch_room(ctx);
        }));
    }

    /// Shares `holds` with the resume and the sweep, which release what
    /// the registry held.
    pub fn with_quiet_holds(mut self, holds: Arc<QuietHolds>) -> Self {
        self.holds = holds;
        self
    }

    /// Puts `s` in the index; `filter`: its filter compiled already
    /// (`None`: compiled here).
    fn insert(&mut self, s: ActiveSubscription, filter: Option<Option<PostFilter>>) -> bool {
        if let Some(old_channel) = self.channel_of.get(&s.subscription_id).copied() {
            // Already known: replace (destination or mode may have changed).
            if let Some(list) = self.by_channel.get_mut(&old_channel) {
                list.retain(|x| x.subscription_id != s.subscription_id);
            }
        }
        self.channel_of.insert(s.subscription_id, s.channel_id);
        match filter.unwrap_or_else(|| PostFilter::from_stored(&s.filters)) {
            Some(f) => self.filters.insert(s.subscription_id, f),
            None => self.filters.remove(&s.subscription_id),
        };
        match Quiet::from_stored(s.quiet.as_deref()) {
            Some(q) => self.quiet.insert(s.subscription_id, q),
            None => self.quiet.remove(&s.subscription_id),
        };
        let list = self.by_channel.entry(s.channel_id).or_default();
        let first = list.is_empty();
        list.push(Arc::new(s));
        first
    }

    fn gauge(&self) {
        registry::SUBSCRIBED_CHANNELS
            .get()
            .set(self.by_channel.len() as f64);
    }
}

impl Actor for SubscriberRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.watch_room(ctx);
    }
}

/// Compiles the filters of `subs` that hold a regular expression on a
/// worker thread (`cpu.rs`): a pattern near its size limit takes
/// milliseconds to compile, and a load brings thousands. `None` in place of
/// a subscription whose filter is compiled inline (none, or keywords only).
async fn compile_filters(subs: Vec<(i64, String)>) -> Vec<(i64, Option<PostFilter>)> {
    crate::cpu::run(move || {
        subs.into_iter()
            .map(|(id, json)| (id, PostFilter::from_stored(&json)))
            .collect()
    })
    .await
}

/// Whether a stored filter has a regular expression (worth a worker thread).
fn has_regex(filters: &str) -> bool {
    filters.contains("\"regex\"")
}

impl SubscriberRegistry {
    /// Inserts `subs` once their regex filters are compiled off the actor
    /// thread; the registry handles no other message meanwhile (`wait`), so
    /// a removal sent after an add is applied after it. `done` gets whether
    /// the first of them was its channel's first subscription.
    fn insert_compiled(
        &mut self,
        subs: Vec<ActiveSubscription>,
        ctx: &mut Context<Self>,
        done: Option<oneshot::Sender<bool>>,
    ) {
        let heavy: Vec<(i64, String)> = subs
            .iter()
            .filter(|s| has_regex(&s.filters))
            .map(|s| (s.subscription_id, s.filters.clone()))
            .collect();
        if heavy.is_empty() {
            let first = self.insert_all(subs, HashMap::new());
            if let Some(done) = done {
                let _ = done.send(first);
            }
            return;
        }
        ctx.wait(
            compile_filters(heavy)
                .into_actor(self)
                .map(move |compiled, act, _| {
                    let first = act.insert_all(subs, compiled.into_iter().collect());
                    if let Some(done) = done {
                        let _ = done.send(first);
                    }
                }),
        );
    }

    fn insert_all(
        &mut self,
        subs: Vec<ActiveSubscription>,
        mut compiled: HashMap<i64, Option<PostFilter>>,
    ) -> bool {
        let mut first = None;
        for s in subs {
            let filter = compiled.remove(&s.subscription_id);
            let f = self.insert(s, filter);
            first.get_or_insert(f);
        }
        self.gauge();
        first.unwrap_or(false)
    }
}

impl Handler<LoadSubscriptions> for SubscriberRegistry {
    type Result = ();

    fn handle(&mut self, msg: LoadSubscriptions, ctx: &mut Context<Self>) {
        self.insert_compiled(msg.0, ctx, None);
    }
}

impl Handler<AddSubscription> for SubscriberRegistry {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: AddSubscription, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.insert_compiled(vec![msg.0], ctx, Some(tx));
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<RemoveSubscription> for SubscriberRegistry {
    type Result = bool;

    fn handle(&mut self, msg: RemoveSubscription, _: &mut Context<Self>) -> bool {
        let Some(channel) = self.channel_of.remove(&msg.subscription_id) else {
            return false;
        };
        self.filters.remove(&msg.subscription_id);
        self.quiet.remove(&msg.subscription_id);
        self.forget_transforms(msg.subscription_id);
        // Its owed deliveries are no longer read (inactive): nothing to release.
        self.holds.try_release(msg.subscription_id, i32::MAX);
        let mut last = false;
        if let Some(list) = self.by_channel.get_mut(&channel) {
            list.retain(|x| x.subscription_id != msg.subscription_id);
            if list.is_empty() {
                self.by_channel.remove(&channel);
                last = true;
            }
        }
        self.gauge();
        last
    }
}

impl Handler<RetainSubscriptions> for SubscriberRegistry {
    type Result = usize;

    fn handle(&mut self, msg: RetainSubscriptions, _: &mut Context<Self>) -> usize {
        let gone: Vec<(i64, i64)> = self
            .channel_of
            .iter()
            .filter(|(id, _)| !msg.0.contains(id))
            .map(|(id, ch)| (*id, *ch))
            .collect();
        for (id, channel) in &gone {
            self.channel_of.remove(id);
            self.filters.remove(id);
            self.forget_transforms(*id);
            if let Some(list) = self.by_channel.get_mut(channel) {
                list.retain(|x| x.subscription_id != *id);
                if list.is_empty() {
                    self.by_channel.remove(channel);
                }
            }
        }
        self.gauge();
        gone.len()
    }
}

impl Handler<RemoveDestination> for SubscriberRegistry {
    type Result = DestinationRemoved;

    fn handle(&mut self, msg: RemoveDestination, _: &mut Context<Self>) -> DestinationRemoved {
        let mut out = DestinationRemoved::default();
        let channel_of = &mut self.channel_of;
        let filters = &mut self.filters;
        let quiet = &mut self.quiet;
        let holds = &self.holds;
        let shaper = &self.shaper;
        self.by_channel.retain(|channel, list| {
            list.retain(|s| {
                let keep = s.destination_id != msg.0;
                if !keep {
                    channel_of.remove(&s.subscription_id);
                    filters.remove(&s.subscription_id);
                    quiet.remove(&s.subscription_id);
                    holds.try_release(s.subscription_id, i32::MAX);
                    if let Some(sh) = shaper {
                        sh.forget(s.subscription_id);
                    }
                    out.subscriptions += 1;
                }
                keep
            });
            if list.is_empty() {
                out.emptied.push(*channel);
            }
            !list.is_empty()
        });
        self.gauge();
        out
    }
}

impl Handler<MigrateDestination> for SubscriberRegistry {
    type Result = ();

    fn handle(&mut self, msg: MigrateDestination, _: &mut Context<Self>) {
        for list in self.by_channel.values_mut() {
            for s in list.iter_mut() {
                if s.destination_id == msg.destination_id && s.chat_id != msg.new_chat_id {
                    let mut moved = (**s).clone();
                    moved.chat_id = msg.new_chat_id;
                    moved.destination_kind = crate::model::DestinationKind::Supergroup;
                    *s = Arc::new(moved);
                }
            }
        }
    }
}

impl Handler<PublishPost> for SubscriberRegistry {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, msg: PublishPost, _: &mut Context<Self>) -> Self::Result {
        let post = msg.0;
        if !self.may_fan_out(post.channel_id) {
            let (reply, answer) = oneshot::channel();
            self.parked.push_back((post, reply));
            // A registry stopped with posts waiting answers 0: their
            // deliveries stay owed in the database for the sweep.
            return Box::pin(async move { answer.await.unwrap_or(0) });
        }
        self.fan_out(post)
    }
}

impl SubscriberRegistry {
    /// One post → its deliveries, claimed, asked of the dedup layer once and
    /// handed to the limiter; the future answers how many.
    fn fan_out(&mut self, post: Arc<Post>) -> FanOut {
        let filters = &self.filters;
        let (quiet, holds, room) = (&self.quiet, &self.holds, &self.room);
        let now = chrono::Utc::now();
        let mut filtered = 0u64;
        let mut held = 0u64;
        let deliveries: Vec<Delivery> = self
            .by_channel
            .get(&post.channel_id)
            .map(|subs| {
                subs.iter()
                    .filter(|sub| {
                        // A filtered post is no delivery at all: nothing is
                        // queued, sent or recorded for it (and resuming at
                        // start applies the same filter).
                        let pass = filters
                            .get(&sub.subscription_id)
                            .is_none_or(|f| f.accepts(&post));
                        filtered += u64::from(!pass);
                        pass
                    })
                    .filter(|sub| {
                        // Quiet hours, a destination whose queue in the
                        // limiter is full, or a held backlog not yet
                        // released: not queued; the delivery stays owed in
                        // the database and the sweep queues it after, in order.
                        let id = sub.subscription_id;
                        let hold = holds.is_holding(id)
                            || quiet.get(&id).is_some_and(|q| q.quiet_until(now).is_some())
                            || room.as_ref().is_some_and(|r| r.chat_full(sub.chat_id));
                        if hold {
                            holds.hold(id, post.first_id());
                            held += 1;
                        }
                        !hold
                    })
                    .map(|sub| Delivery {
                        post: post.clone(),
                        sub: sub.clone(),
                        attempt: 0,
                        dedup: DedupCheck::Unchecked,
                        op: Default::default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // A post published twice (its recording retried), or whose
        // deliveries a sweep took first, is not queued twice.
        let deliveries = self.in_flight.claim_fan_out(deliveries);
        if held > 0 {
            // Held deliveries stay owed: the sweep must read this post again.
            self.in_flight
                .unmark_handled((post.channel_id, post.first_id()));
        }
        let n = deliveries.len();
        events::post_fanned_out(post.channel_id, post.first_id(), n, filtered, held);
        self.stats.posts_published += 1;
        self.stats.deliveries_made += n as u64;
        let limiter = self.limiter.clone();
        let dedup = self.dedup.clone();
        let promised = self.promised.clone();
        promised.fetch_add(n, Ordering::Relaxed);
        let room = self.room.clone();
        Box::pin(async move {
            let mut deliveries = deliveries;
            if n > 0 {
                // The dedup layer, asked once for the whole fan-out rather
                // than once a send: one round trip a post.
                let first_id = post.first_id();
                let keys = deliveries
                    .iter()
                    .map(|d| (d.sub.subscription_id, first_id))
                    .collect();
                if let Some(answers) = dedup.seen_many(keys).await
                    && answers.len() == n
                {
                    for (d, seen) in deliveries.iter_mut().zip(answers) {
                        d.dedup = DedupCheck::Checked(seen);
                    }
                }
            }
            if n > 0 && limiter.send(Enqueue(deliveries)).await.is_err() {
                tracing::error!("RateLimiter is gone; deliveries of a post were not queued.");
            }
            promised.fetch_sub(n, Ordering::Relaxed);
            if let Some(room) = room {
                room.notify();
            }
            n
        })
    }
}

impl Handler<GetRegistryStats> for SubscriberRegistry {
    type Result = RegistryStats;

    fn handle(&mut self, _: GetRegistryStats, _: &mut Context<Self>) -> RegistryStats {
        RegistryStats {
            channels: self.by_channel.len(),
            subscriptions: self.channel_of.len(),
            ..self.stats
        }
    }
}
