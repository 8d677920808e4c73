//! Persistence: the DbWriter against the seed's per-row INSERT + commit and
//! against a binary COPY of the same kind of rows, in one database, one run.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use actix::Actor;
use chrono::{NaiveDate, Utc};
use kuryer_actors::db_writer::{
    DbWriter, DbWriterConfig, Flush, GetDbWriterStats, RecordDeliveries,
};
use kuryer_actors::model::{DeliveryRecord, DeliveryStatus};
use kuryer_actors::ports::Persistence;
use serde::{Deserialize, Serialize};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::util::BenchDb;
use kuryer::config::Config;
use kuryer::store::{Open, Store};

/// What one persistence run writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersistenceSpec {
    /// Rows through the DbWriter and through COPY.
    pub(crate) rows: u64,
    /// Rows through one INSERT + commit each (fewer: it is slow).
    pub(crate) per_row_rows: u64,
}

/// Rows a second of each way (`_s`: seconds taken; `_vs_`: ratios of rows/s).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct PersistenceResult {
    pub(crate) rows: u64,
    pub(crate) batch_size: usize,
    pub(crate) writer_s: f64,
    pub(crate) writer_rows_per_s: f64,
    pub(crate) per_row_rows: u64,
    pub(crate) per_row_s: f64,
    pub(crate) per_row_rows_per_s: f64,
    /// Binary COPY into `forwarded_messages` itself (same partitions, key, indexes).
    pub(crate) copy_s: f64,
    pub(crate) copy_rows_per_s: f64,
    /// Binary COPY into a bare heap table of the same columns (no key, no index).
    pub(crate) copy_bare_s: f64,
    pub(crate) copy_bare_rows_per_s: f64,
    pub(crate) writer_vs_copy: f64,
    pub(crate) writer_vs_copy_bare: f64,
    pub(crate) writer_vs_per_row: f64,
    /// Every way wrote exactly its rows.
    pub(crate) counts_exact: bool,
}

/// The k-th row of a set: distinct (subscription, message) keys per `set`.
fn record(set: i64, k: i64, day: NaiveDate) -> DeliveryRecord {
    DeliveryRecord {
        subscription_id: k + 1,
        channel_id: k % 1000 + 1,
        source_message_id: set * 1_000_000_000 + k / 1000 + 1,
        post_day: day,
        destination_chat_id: 100_000 + k,
        sent_message_id: Some(k + 1),
        status: DeliveryStatus::Sent,
        error: None,
        sent_message_ids: None,
        backfill: false,
    }
}

/// Runs the three ways in a throw-away database.
pub(crate) async fn run(spec: &PersistenceSpec, cfg: &Config) -> anyhow::Result<PersistenceResult> {
    let db = BenchDb::create(cfg, "w").await?;
    let result = run_in(spec, cfg, &db).await;
    db.drop_db().await;
    result
}

/// The single count a `SELECT count(*)` returns, never negative.
async fn count(c: &tokio_postgres::Client, sql: &str) -> anyhow::Result<u64> {
    let n: i64 = c.query_one(sql, &[]).await?.get(0);
    Ok(n.max(0) as u64)
}

/// Times the three ways in turn, checks their counts and derives the rates.
async fn run_in(
    spec: &PersistenceSpec,
    cfg: &Config,
    db: &BenchDb,
) -> anyhow::Result<PersistenceResult> {
    let store = Store::open(&db.cfg, Open::fresh()).await?.store;
    let day = Utc::now().date_naive();
    let rows = i64::try_from(spec.rows.max(1))?;
    let per_row = i64::try_from(spec.per_row_rows.max(1))?;
    let batch_size = cfg.delivery.db_batch_size;
    let mut out = PersistenceResult {
        rows: rows as u64,
        per_row_rows: per_row as u64,
        batch_size,
        ..Default::default()
    };

    // (1) The DbWriter, as the senders feed it: one record a message.
    let (writer_s, written) = time_db_writer(&store, cfg, rows, day).await?;
    out.writer_s = writer_s;

    // (2) The seed's "bad" pattern: one INSERT and one commit a row.
    let mut c = store.conn("bench per-row").await?;
    out.per_row_s = time_per_row(&mut c, per_row, day).await?;

    // (3) Binary COPY: into the same table, and into a bare heap.
    c.batch_execute("CREATE TABLE bench_copy_bare (LIKE forwarded_messages INCLUDING DEFAULTS)")
        .await?;
    out.copy_s = copy(&c, "forwarded_messages", 3, rows, day).await?;
    out.copy_bare_s = copy(&c, "bench_copy_bare", 4, rows, day).await?;

    out.counts_exact = counts_exact(&c, written, rows, per_row).await?;
    drop(c);
    store.close();

    out.fill_rates();
    Ok(out)
}

/// Feeds `rows` records to a DbWriter one message at a time; returns the seconds to flush and the rows it wrote.
async fn time_db_writer(
    store: &Store,
    cfg: &Config,
    rows: i64,
    day: NaiveDate,
) -> anyhow::Result<(f64, u64)> {
    let persistence: Arc<dyn Persistence> = Arc::new(store.clone());
    let writer = DbWriter::new(
        persistence,
        DbWriterConfig {
            batch_size: cfg.delivery.db_batch_size,
            flush_interval: Duration::from_millis(cfg.delivery.db_flush_interval_ms),
            writes_in_flight: cfg.delivery.db_writes_in_flight,
            ..DbWriterConfig::default()
        },
        Arc::new(AtomicUsize::new(0)),
    )
    .start();
    let records: Vec<DeliveryRecord> = (0..rows).map(|k| record(1, k, day)).collect();
    let t = Instant::now();
    for r in records {
        writer.do_send(RecordDeliveries(vec![r]));
    }
    writer.send(Flush).await?;
    let secs = t.elapsed().as_secs_f64();
    let written = writer.send(GetDbWriterStats).await?.written;
    Ok((secs, written))
}

/// Inserts `per_row` rows with one INSERT and one commit each; returns the seconds it took.
async fn time_per_row(
    c: &mut tokio_postgres::Client,
    per_row: i64,
    day: NaiveDate,
) -> anyhow::Result<f64> {
    let insert = c
        .prepare(
            "INSERT INTO forwarded_messages
                (subscription_id, channel_id, source_message_id, post_day,
                 destination_chat_id, sent_message_id, status, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    let t = Instant::now();
    for k in 0..per_row {
        let r = record(2, k, day);
        let tx = c.transaction().await?;
        tx.execute(
            &insert,
            &[
                &r.subscription_id,
                &r.channel_id,
                &r.source_message_id,
                &r.post_day,
                &r.destination_chat_id,
                &r.sent_message_id,
                &r.status.as_str(),
                &r.error,
            ],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Whether every way wrote exactly its rows: the writer's own count and each set's rows in the tables.
async fn counts_exact(
    c: &tokio_postgres::Client,
    written: u64,
    rows: i64,
    per_row: i64,
) -> anyhow::Result<bool> {
    let by_set = |set: i64| {
        format!(
            "SELECT count(*) FROM forwarded_messages
              WHERE source_message_id BETWEEN {lo} AND {hi} AND status = 'sent'",
            lo = set * 1_000_000_000,
            hi = set * 1_000_000_000 + 999_999_999
        )
    };
    Ok(written == rows as u64
        && count(c, &by_set(1)).await? == rows as u64
        && count(c, &by_set(2)).await? == per_row as u64
        && count(c, &by_set(3)).await? == rows as u64
        && count(c, "SELECT count(*) FROM bench_copy_bare").await? == rows as u64)
}

impl PersistenceResult {
    /// Derives the rows/s of each way and their ratios from the rows and seconds.
    fn fill_rates(&mut self) {
        let rate = |n: u64, s: f64| n as f64 / s.max(1e-9);
        self.writer_rows_per_s = rate(self.rows, self.writer_s);
        self.per_row_rows_per_s = rate(self.per_row_rows, self.per_row_s);
        self.copy_rows_per_s = rate(self.rows, self.copy_s);
        self.copy_bare_rows_per_s = rate(self.rows, self.copy_bare_s);
        self.writer_vs_copy = self.writer_rows_per_s / self.copy_rows_per_s.max(1e-9);
        self.writer_vs_copy_bare = self.writer_rows_per_s / self.copy_bare_rows_per_s.max(1e-9);
        self.writer_vs_per_row = self.writer_rows_per_s / self.per_row_rows_per_s.max(1e-9);
    }
}

/// COPYs `rows` rows of `set` into `table` in binary; returns the seconds it took.
async fn copy(
    c: &tokio_postgres::Client,
    table: &str,
    set: i64,
    rows: i64,
    day: NaiveDate,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let sink = c
        .copy_in(&format!(
            "COPY {table} (subscription_id, channel_id, source_message_id, post_day,
                           destination_chat_id, sent_message_id, status, error)
             FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let types = [
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::DATE,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for k in 0..rows {
        let r = record(set, k, day);
        let status = r.status.as_str();
        let row: [&(dyn ToSql + Sync); 8] = [
            &r.subscription_id,
            &r.channel_id,
            &r.source_message_id,
            &r.post_day,
            &r.destination_chat_id,
            &r.sent_message_id,
            &status,
            &r.error,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(t.elapsed().as_secs_f64())
}
