//! ChannelPoller: one per channel with an active subscription.
//!
//! Owns its channel's high-water mark (the newest message id whose post is
//! recorded) and its `ChannelSource`. Each cycle it reads the messages newer
//! than the mark, groups album parts into one post, and for each post in
//! order: records it (post row + mark, one transaction), then publishes it to
//! the SubscriberRegistry and waits for the answer (back-pressure). The mark
//! therefore moves only once the post is safely recorded, and a post that
//! was read but not recorded is simply read again.
//!
//! The interval adapts: halved after a cycle that found posts, grown by half
//! after an empty one, within `[min_interval, max_interval]`; a `Wake`
//! (push notice) polls at once. A panic inside the source is caught, the
//! source is rebuilt and the cycle retried after a backoff; a panic anywhere
//! else kills this actor only, and the ChannelSupervisor restarts it.

use crate::telemetry::events::telegram_id;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::backoff::Backoff;
use crate::model::{ChannelRef, Post};
use crate::ports::{ChannelSource, Persistence, SourceError, SourceFactory};
use crate::subscriber_registry::PublishPost;
use crate::telemetry::events;

/// Poller settings.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Shortest interval between polls of a busy channel.
    pub min_interval: Duration,
    /// Longest interval between polls of a quiet channel.
    pub max_interval: Duration,
    /// Messages read at most per fetch.
    pub batch_limit: usize,
    /// Longest backoff after errors.
    pub max_backoff: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            batch_limit: 100,
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Poll now (a push notice: new messages are there).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wake;

/// Stop after the cycle in progress; answers when stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopPoller;

/// Panics inside the actor itself. Exists so tests can prove the
/// ChannelSupervisor restarts a poller that died of a panic; only with the
/// `test-hooks` feature.
#[cfg(any(test, feature = "test-hooks"))]
#[derive(Message)]
#[rtype(result = "()")]
pub struct PanicForTest;

enum Cycle {
    Done {
        hwm: i32,
        posts: usize,
        /// A trailing album held back: its group, since when, and the grace.
        hold: Option<(String, Instant, Duration)>,
    },
    SourceFailed(SourceError),
    Panicked,
    PersistFailed(String),
}

/// The ChannelPoller actor.
pub struct ChannelPoller {
    channel: ChannelRef,
    cfg: PollerConfig,
    factory: SourceFactory,
    source: Option<Box<dyn ChannelSource>>,
    persistence: Arc<dyn Persistence>,
    registry: Recipient<PublishPost>,
    hwm: Option<i32>,
    interval: Duration,
    busy: bool,
    wake_pending: bool,
    timer: Option<SpawnHandle>,
    /// Failed cycles in a row.
    failures: u32,
    /// Delay before the next cycle after `failures` failures.
    retry: Backoff,
    stop_waiters: Vec<oneshot::Sender<()>>,
    /// A trailing album held back for the source's grace: group id and since when.
    held: Option<(String, Instant)>,
}

impl ChannelPoller {
    /// A poller for `channel`.
    pub(crate) fn new(
        channel: ChannelRef,
        cfg: PollerConfig,
        factory: SourceFactory,
        persistence: Arc<dyn Persistence>,
        registry: Recipient<PublishPost>,
    ) -> Self {
        // Its log lines name it by Telegram's id too (`channel_id`).
        events::channel_known(channel.channel_id, channel.chat_id);
        let interval = cfg.min_interval;
        // 100 ms, doubled each failure (ten times at most), up to max_backoff.
        let retry = Backoff::new(
            Duration::from_millis(100),
            cfg.max_backoff.min(Duration::from_millis(100 << 10)),
        );
        Self {
            channel,
            cfg,
            factory,
            source: None,
            persistence,
            registry,
            hwm: None,
            interval,
            busy: false,
            wake_pending: false,
            timer: None,
            failures: 0,
            retry,
            stop_waiters: Vec::new(),
            held: None,
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.timer = Some(ctx.run_later(after, |act, ctx| {
            act.timer = None;
            act.poll(ctx);
        }));
    }

    fn backoff(&self) -> Duration {
        self.retry.delay(self.failures)
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.wake_pending = true;
            return;
        }
        if !self.stop_waiters.is_empty() {
            ctx.stop();
            return;
        }
        self.busy = true;
        let source = self
            .source
            .take()
            .unwrap_or_else(|| (self.factory)(&self.channel));
        let started = Instant::now();
        // One span per poll cycle: every line of the cycle carries the
        // channel (`CHANNEL_ID` in journald), and its close event gives the
        // cycle's duration at debug level.
        let span = tracing::debug_span!("poll_cycle", channel_id = self.channel.channel_id);
        let cycle = CycleRun {
            channel: self.channel.clone(),
            persistence: self.persistence.clone(),
            registry: self.registry.clone(),
            known_hwm: self.hwm,
            limit: self.cfg.batch_limit,
            held: self.held.take(),
        };
        let fut = tracing::Instrument::instrument(cycle.run(source), span);
        ctx.spawn(fut.into_actor(self).map(move |(source, cycle), act, ctx| {
            act.busy = false;
            act.source = source;
            events::channel_polled(act.channel.channel_id, started.elapsed());
            let next = act.after_cycle(cycle);
            if !act.stop_waiters.is_empty() {
                ctx.stop();
            } else if std::mem::take(&mut act.wake_pending) {
                act.schedule(ctx, Duration::ZERO);
            } else {
                act.schedule(ctx, next);
            }
        }));
    }

    /// Takes in what a cycle ended with; answers when to poll next.
    fn after_cycle(&mut self, cycle: Cycle) -> Duration {
        let channel_id = self.channel.channel_id;
        match cycle {
            Cycle::Done { hwm, posts, hold } => {
                self.hwm = Some(hwm);
                let recheck = hold.as_ref().map(|(_, since, grace)| {
                    grace.saturating_sub(since.elapsed()) + Duration::from_millis(5)
                });
                self.held = hold.map(|(g, since, _)| (g, since));
                self.failures = 0;
                self.interval = if posts > 0 {
                    (self.interval / 2).max(self.cfg.min_interval)
                } else {
                    self.interval.mul_f64(1.5).min(self.cfg.max_interval)
                };
                match recheck {
                    Some(wait) => wait,
                    None if posts > 0 => Duration::ZERO,
                    None => self.interval,
                }
            }
            Cycle::Panicked => {
                self.failures += 1;
                events::channel_source_panicked(channel_id, self.failures);
                self.backoff()
            }
            Cycle::SourceFailed(SourceError::Transient {
                message,
                retry_after,
            }) => {
                self.failures += 1;
                let wait = retry_after.unwrap_or_else(|| self.backoff());
                tracing::warn!(
                    channel_id = telegram_id(channel_id), channel_key = channel_id,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %message,
                    "Reading the channel failed; retrying."
                );
                wait
            }
            Cycle::SourceFailed(SourceError::Gone(message)) => {
                self.failures += 1;
                tracing::warn!(
                    channel_id = telegram_id(channel_id), channel_key = channel_id,
                    error = %message,
                    "Channel is unavailable; polling it rarely."
                );
                self.cfg.max_interval
            }
            Cycle::PersistFailed(message) => {
                self.failures += 1;
                // Forget the mark: read it again from the database.
                self.hwm = None;
                tracing::warn!(
                    channel_id = telegram_id(channel_id), channel_key = channel_id,
                    error = %message,
                    "Recording posts failed; the channel will be read again."
                );
                self.backoff()
            }
        }
    }
}

/// What one poll cycle works with, away from the actor.
struct CycleRun {
    channel: ChannelRef,
    persistence: Arc<dyn Persistence>,
    registry: Recipient<PublishPost>,
    /// The mark, unless it must be read from the database.
    known_hwm: Option<i32>,
    limit: usize,
    /// The trailing album held back by the last cycle.
    held: Option<(String, Instant)>,
}

/// The source to keep (`None`: rebuild it) and how the cycle ended.
type CycleEnd = (Option<Box<dyn ChannelSource>>, Cycle);

impl CycleRun {
    /// Reads what is newer than the mark, then records and publishes each
    /// post in order.
    async fn run(self, mut source: Box<dyn ChannelSource>) -> CycleEnd {
        let mut hwm = match self.known_hwm {
            Some(h) => h,
            None => match self
                .persistence
                .high_water_mark(self.channel.channel_id)
                .await
            {
                Ok(h) => i32::try_from(h).unwrap_or(i32::MAX),
                Err(e) => return (Some(source), Cycle::PersistFailed(e.message)),
            },
        };
        let fetched = AssertUnwindSafe(async { source.fetch(hwm, self.limit).await })
            .catch_unwind()
            .await;
        let mut messages = match fetched {
            // The source's state after a panic is unknown: drop it.
            Err(_) => return (None, Cycle::Panicked),
            Ok(Err(e)) => return (Some(source), Cycle::SourceFailed(e)),
            Ok(Ok(m)) => m,
        };
        let full = messages.len() >= self.limit;
        messages.retain(|m| m.id > hwm);
        messages.sort_by_key(|m| m.id);
        messages.dedup_by_key(|m| m.id);
        let hold = if full {
            None
        } else {
            hold_trailing_album(&mut messages, self.held.clone(), source.album_grace())
        };
        let posts = Post::group(&self.channel, messages, chrono::Utc::now());
        let n = posts.len();
        for post in posts {
            match self.record(Arc::new(post)).await {
                Ok(last_id) => hwm = hwm.max(last_id),
                Err(failed) => return (Some(source), failed),
            }
        }
        (
            Some(source),
            Cycle::Done {
                hwm,
                posts: n,
                hold,
            },
        )
    }

    /// Records one post and publishes it to the registry; answers the
    /// post's last message id (the mark may pass it), or how the cycle
    /// ends when it cannot be recorded.
    async fn record(&self, post: Arc<Post>) -> Result<i32, Cycle> {
        let channel_id = self.channel.channel_id;
        let mut attempt = 0u32;
        loop {
            match self.persistence.record_post(post.clone()).await {
                Ok(new) => {
                    // "Already recorded" after a retry may be our own commit
                    // whose answer was lost: publish it anyway (the dedup
                    // layers stop a second send).
                    if new || attempt > 0 {
                        events::post_detected(channel_id, post.first_id());
                        if self.registry.send(PublishPost(post.clone())).await.is_err() {
                            return Err(Cycle::PersistFailed("registry is gone".into()));
                        }
                    }
                    return Ok(post.last_id());
                }
                Err(e) if e.retriable && attempt < 20 => {
                    attempt += 1;
                    tracing::warn!(
                        channel_id = telegram_id(channel_id), channel_key = channel_id,
                        attempt,
                        error = %e,
                        "Recording a post failed; retrying."
                    );
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) if !e.retriable => {
                    // No retry can record it (text PostgreSQL refuses, a
                    // broken invariant): set it aside and read on, rather
                    // than stop this channel for good.
                    return match self
                        .persistence
                        .dead_letter_post(post.clone(), e.message.clone())
                        .await
                    {
                        Ok(()) => {
                            events::post_dead_lettered(channel_id, post.message_ids[0], &e);
                            Ok(post.last_id())
                        }
                        Err(_) => Err(Cycle::PersistFailed(e.message)),
                    };
                }
                Err(e) => return Err(Cycle::PersistFailed(e.message)),
            }
        }
    }
}

/// A trailing album from a source that sends parts one by one is held back
/// once, for the source's `grace`, in case more parts are on their way;
/// seen again after the grace, it goes out whole. Cuts it off `messages`
/// and answers what is held (its group, since when, the grace).
fn hold_trailing_album(
    messages: &mut Vec<crate::model::SourceMessage>,
    held: Option<(String, Instant)>,
    grace: Duration,
) -> Option<(String, Instant, Duration)> {
    let group = messages.last()?.media_group_id.clone()?;
    if grace.is_zero() {
        return None;
    }
    let ready = held
        .as_ref()
        .is_some_and(|(g, since)| *g == group && since.elapsed() >= grace);
    if ready {
        return None;
    }
    let keep = messages
        .iter()
        .rposition(|m| m.media_group_id.as_ref() != Some(&group))
        .map_or(0, |i| i + 1);
    messages.truncate(keep);
    let since = held
        .filter(|(g, _)| *g == group)
        .map_or_else(Instant::now, |(_, t)| t);
    Some((group, since, grace))
}

impl Actor for ChannelPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

impl Handler<Wake> for ChannelPoller {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        if self.busy {
            self.wake_pending = true;
        } else {
            self.schedule(ctx, Duration::ZERO);
        }
    }
}

impl Handler<StopPoller> for ChannelPoller {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopPoller, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.stop_waiters.push(tx);
        if !self.busy {
            ctx.stop();
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(any(test, feature = "test-hooks"))]
impl Handler<PanicForTest> for ChannelPoller {
    type Result = ();

    fn handle(&mut self, _: PanicForTest, _: &mut Context<Self>) {
        panic!(
            "poller of channel {} panicked on request",
            self.channel.channel_id
        );
    }
}
