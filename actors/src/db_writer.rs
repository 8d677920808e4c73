//! DbWriter: collects finished deliveries and writes them in batches.
//!
//! Owns the buffer of [`DeliveryRecord`](crate::model::DeliveryRecord)s not yet written. Flushes when a
//! batch is full or `flush_interval` after the first row of a batch arrived,
//! up to `writes_in_flight` writes at once (each takes its own pooled
//! connection, so a second PostgreSQL backend works while the first one
//! does; batches hold different deliveries, and a row that is written twice
//! — an ambiguous send, then its outcome — is an upsert that never lets an
//! older `ambiguous` replace a final outcome, so their order does not
//! matter). Nothing accepted is dropped silently:
//!
//! - a write that fails with a retriable error (connection lost, database
//!   restarting) is retried with backoff, the rows kept in order;
//! - a write that fails for good (a row the database rejects) is split in
//!   halves until the bad row stands alone; that one row is logged and counted
//!   as dropped, every other row of the batch is written.
//!
//! Back-pressure: the number of rows waiting is published in a shared
//! counter that the RateLimiter reads before dispatching, so senders stop
//! when PostgreSQL falls behind instead of growing this buffer without bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::backoff::Backoff;
use crate::model::DeliveryRecord;
use crate::ports::{PersistError, Persistence};
use crate::telemetry::events;

/// DbWriter settings.
#[derive(Debug, Clone)]
pub struct DbWriterConfig {
    /// Rows a batch holds at most.
    pub batch_size: usize,
    /// Longest a row waits for its batch to fill.
    pub flush_interval: Duration,
    /// Writes in flight at once.
    pub writes_in_flight: usize,
    /// First retry delay after a retriable failure (doubles to `max_retry_delay`).
    pub retry_delay: Duration,
    /// Cap of the retry delay.
    pub max_retry_delay: Duration,
}

impl Default for DbWriterConfig {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            flush_interval: Duration::from_millis(50),
            writes_in_flight: 2,
            retry_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_secs(5),
        }
    }
}

/// Finished deliveries to persist.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordDeliveries(pub Vec<DeliveryRecord>);

/// Resolves once every row accepted before it is written (or dropped as bad).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Counters, for the demo and tests.
#[derive(Message)]
#[rtype(result = "DbWriterStats")]
pub struct GetDbWriterStats;

/// What the DbWriter has done.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct DbWriterStats {
    /// Rows written.
    pub written: u64,
    /// Rows dropped because the database rejected them alone.
    pub dropped: u64,
    /// Batches written.
    pub batches: u64,
    /// Write attempts that failed and were retried.
    pub retries: u64,
    /// Rows handed to the writer and not yet written (the shared backlog
    /// counter the limiter also reads).
    pub backlog: usize,
}

/// The DbWriter actor.
pub struct DbWriter {
    persistence: Arc<dyn Persistence>,
    cfg: DbWriterConfig,
    /// Rows not yet handed to a write, oldest first.
    buffer: VecDeque<DeliveryRecord>,
    /// Batches split after a non-retriable failure, written before the buffer.
    isolating: VecDeque<Vec<DeliveryRecord>>,
    /// Writes in flight.
    writing: usize,
    timer: Option<SpawnHandle>,
    /// Delay before the next retry: `retry_delay`, doubled after each
    /// retriable failure up to `max_retry_delay`, reset by a success.
    retry: Backoff,
    /// After a retriable failure, no write before this moment, however
    /// many rows arrive meanwhile.
    retry_not_before: Option<std::time::Instant>,
    backlog: Arc<AtomicUsize>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    stats: DbWriterStats,
}

impl DbWriter {
    /// A writer over `persistence`; `backlog` is the shared count of rows waiting.
    pub fn new(
        persistence: Arc<dyn Persistence>,
        cfg: DbWriterConfig,
        backlog: Arc<AtomicUsize>,
    ) -> Self {
        let retry = Backoff::new(cfg.retry_delay, cfg.max_retry_delay);
        Self {
            persistence,
            cfg,
            buffer: VecDeque::new(),
            isolating: VecDeque::new(),
            writing: 0,
            timer: None,
            retry,
            retry_not_before: None,
            backlog,
            flush_waiters: Vec::new(),
            stats: DbWriterStats::default(),
        }
    }

    fn pending(&self) -> usize {
        self.buffer.len() + self.isolating.iter().map(Vec::len).sum::<usize>()
    }

    /// Starts a write when one is due: a full batch, or `force` (timer, flush).
    fn pump(&mut self, ctx: &mut Context<Self>, force: bool) {
        while self.writing < self.cfg.writes_in_flight.max(1) {
            if !self.start_write(ctx, force) {
                break;
            }
        }
        if self.writing == 0 && self.pending() == 0 {
            for w in self.flush_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Starts one write if one is due; false when none is.
    fn start_write(&mut self, ctx: &mut Context<Self>, force: bool) -> bool {
        if let Some(t) = self.retry_not_before {
            if std::time::Instant::now() < t {
                return false;
            }
            self.retry_not_before = None;
        }
        // While the database is failing, one write at a time probes it.
        if self.writing > 0 && self.retry.current() > self.cfg.retry_delay {
            return false;
        }
        let batch = if let Some(b) = self.isolating.pop_front() {
            b
        } else if self.buffer.len() >= self.cfg.batch_size
            || (force || !self.flush_waiters.is_empty()) && !self.buffer.is_empty()
        {
            let n = self.buffer.len().min(self.cfg.batch_size);
            self.buffer.drain(..n).collect()
        } else {
            if !self.buffer.is_empty() && self.timer.is_none() {
                let interval = self.cfg.flush_interval;
                self.timer = Some(ctx.run_later(interval, |act, ctx| {
                    act.timer = None;
                    act.pump(ctx, true);
                }));
            }
            return false;
        };
        if self.buffer.is_empty()
            && let Some(t) = self.timer.take()
        {
            ctx.cancel_future(t);
        }
        self.writing += 1;
        let fut = self.persistence.write_deliveries(batch.clone());
        let started = std::time::Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.writing -= 1;
            if result.is_ok() {
                events::batch_written(batch.len(), started.elapsed());
            }
            act.finish(batch, result, ctx);
        }));
        true
    }

    fn finish(
        &mut self,
        batch: Vec<DeliveryRecord>,
        result: Result<u64, PersistError>,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(_) => {
                self.retry.reset();
                self.stats.written += batch.len() as u64;
                self.stats.batches += 1;
                self.backlog.fetch_sub(batch.len(), Ordering::Relaxed);
                self.pump(ctx, false);
            }
            Err(e) if e.retriable => {
                self.stats.retries += 1;
                tracing::warn!(
                    rows = batch.len(),
                    retry_in_ms = self.retry.current().as_millis() as u64,
                    error = %e,
                    "Writing deliveries failed; keeping the batch and retrying."
                );
                self.isolating.push_front(batch);
                let delay = self.retry.next_delay();
                self.retry_not_before = Some(std::time::Instant::now() + delay);
                ctx.run_later(delay, |act, ctx| act.pump(ctx, true));
            }
            Err(e) if batch.len() > 1 => {
                // One bad row fails the whole statement: split to find it.
                let mut left = batch;
                let right = left.split_off(left.len() / 2);
                self.isolating.push_front(right);
                self.isolating.push_front(left);
                tracing::debug!(error = %e, "A batch was rejected; splitting it to isolate the bad row.");
                self.pump(ctx, false);
            }
            Err(e) => {
                let row = &batch[0];
                tracing::error!(
                    subscription_id = row.subscription_id,
                    source_message_id = row.source_message_id,
                    error = %e,
                    "The database rejected a delivery row; dropping that row alone."
                );
                self.stats.dropped += 1;
                self.backlog.fetch_sub(1, Ordering::Relaxed);
                self.pump(ctx, false);
            }
        }
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;
}

impl Handler<RecordDeliveries> for DbWriter {
    type Result = ();

    fn handle(&mut self, msg: RecordDeliveries, ctx: &mut Context<Self>) {
        self.backlog.fetch_add(msg.0.len(), Ordering::Relaxed);
        self.buffer.extend(msg.0);
        self.pump(ctx, false);
    }
}

impl Handler<Flush> for DbWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        self.pump(ctx, true);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<GetDbWriterStats> for DbWriter {
    type Result = DbWriterStats;

    fn handle(&mut self, _: GetDbWriterStats, _: &mut Context<Self>) -> DbWriterStats {
        DbWriterStats {
            backlog: self.backlog.load(Ordering::Relaxed),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::model::{DeliveryStatus, Post};

    /// Fails the first `outages` writes as a lost connection, and rejects for
    /// good any batch holding subscription 13.
    struct FlakyStore {
        outages: Mutex<u32>,
        written: Mutex<Vec<i64>>,
    }

    impl Persistence for FlakyStore {
        fn record_post(&self, _: Arc<Post>) -> BoxFuture<'static, Result<bool, PersistError>> {
            Box::pin(async { Ok(true) })
        }
        fn high_water_mark(&self, _: i64) -> BoxFuture<'static, Result<i64, PersistError>> {
            Box::pin(async { Ok(0) })
        }
        fn dead_letter_post(
            &self,
            _: Arc<Post>,
            _: String,
        ) -> BoxFuture<'static, Result<(), PersistError>> {
            unreachable!("the writer records no posts")
        }
        fn write_deliveries(
            &self,
            rows: Vec<DeliveryRecord>,
        ) -> BoxFuture<'static, Result<u64, PersistError>> {
            let result = {
                let mut outages = self.outages.lock().unwrap();
                if *outages > 0 {
                    *outages -= 1;
                    Err(PersistError {
                        message: "connection closed".into(),
                        retriable: true,
                    })
                } else if rows.iter().any(|r| r.subscription_id == 13) {
                    Err(PersistError {
                        message: "check constraint".into(),
                        retriable: false,
                    })
                } else {
                    self.written
                        .lock()
                        .unwrap()
                        .extend(rows.iter().map(|r| r.subscription_id));
                    Ok(rows.len() as u64)
                }
            };
            Box::pin(async move { result })
        }
    }

    /// Takes 30 ms a write and notes how many writes overlap.
    #[derive(Default)]
    struct SlowStore {
        now: AtomicUsize,
        most: AtomicUsize,
        written: Mutex<Vec<i64>>,
    }

    impl Persistence for Arc<SlowStore> {
        fn record_post(&self, _: Arc<Post>) -> BoxFuture<'static, Result<bool, PersistError>> {
            Box::pin(async { Ok(true) })
        }
        fn high_water_mark(&self, _: i64) -> BoxFuture<'static, Result<i64, PersistError>> {
            Box::pin(async { Ok(0) })
        }
        fn dead_letter_post(
            &self,
            _: Arc<Post>,
            _: String,
        ) -> BoxFuture<'static, Result<(), PersistError>> {
            unreachable!("the writer records no posts")
        }
        fn write_deliveries(
            &self,
            rows: Vec<DeliveryRecord>,
        ) -> BoxFuture<'static, Result<u64, PersistError>> {
            let me = self.clone();
            Box::pin(async move {
                let n = me.now.fetch_add(1, Ordering::SeqCst) + 1;
                me.most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                me.written
                    .lock()
                    .unwrap()
                    .extend(rows.iter().map(|r| r.subscription_id));
                me.now.fetch_sub(1, Ordering::SeqCst);
                Ok(rows.len() as u64)
            })
        }
    }

    #[actix_rt::test]
    async fn writes_overlap_up_to_the_bound_and_flush_waits_for_all() {
        for bound in [1, 2, 3] {
            let store = Arc::new(SlowStore::default());
            let backlog = Arc::new(AtomicUsize::new(0));
            let cfg = DbWriterConfig {
                batch_size: 10,
                writes_in_flight: bound,
                ..DbWriterConfig::default()
            };
            let w = DbWriter::new(Arc::new(store.clone()), cfg, backlog.clone()).start();
            w.send(RecordDeliveries((0..95).map(row).collect()))
                .await
                .unwrap();
            w.send(Flush).await.unwrap();
            let mut written = store.written.lock().unwrap().clone();
            written.sort_unstable();
            assert_eq!(written, (0..95).collect::<Vec<_>>(), "bound {bound}");
            assert_eq!(store.most.load(Ordering::SeqCst), bound, "bound {bound}");
            assert_eq!(backlog.load(Ordering::Relaxed), 0);
            let stats = w.send(GetDbWriterStats).await.unwrap();
            assert_eq!((stats.written, stats.batches), (95, 10));
        }
    }

    fn row(sub: i64) -> DeliveryRecord {
        DeliveryRecord {
            subscription_id: sub,
            channel_id: 1,
            source_message_id: 1,
            post_day: Utc::now().date_naive(),
            destination_chat_id: sub,
            sent_message_id: Some(1),
            status: DeliveryStatus::Sent,
            error: None,
            sent_message_ids: None,
            backfill: false,
        }
    }

    #[actix_rt::test]
    async fn an_outage_and_a_bad_row_lose_only_the_bad_row() {
        let store = Arc::new(FlakyStore {
            outages: Mutex::new(3),
            written: Mutex::new(Vec::new()),
        });
        let backlog = Arc::new(AtomicUsize::new(0));
        let cfg = DbWriterConfig {
            batch_size: 16,
            retry_delay: Duration::from_millis(5),
            ..DbWriterConfig::default()
        };
        let w = DbWriter::new(store.clone(), cfg, backlog.clone()).start();
        w.send(RecordDeliveries((0..40).map(row).collect()))
            .await
            .unwrap();
        w.send(Flush).await.unwrap();
        let mut written = store.written.lock().unwrap().clone();
        written.sort_unstable();
        let want: Vec<i64> = (0..40).filter(|s| *s != 13).collect();
        assert_eq!(written, want, "every good row written exactly once");
        let stats = w.send(GetDbWriterStats).await.unwrap();
        assert_eq!((stats.written, stats.dropped, stats.retries), (39, 1, 3));
        assert_eq!(backlog.load(Ordering::Relaxed), 0);
    }
}
