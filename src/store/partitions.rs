//! Daily partitions of `forwarded_messages`: created ahead of need, dropped
//! past the retention period.
//!
//! Partitions are named `forwarded_messages_pYYYYMMDD` and cover one UTC day
//! of `post_day`. Rows for a day without a partition land in the default
//! partition, so inserts never fail; creating the partition for such a day
//! later is then refused by PostgreSQL, which this module logs and skips
//! (the rows stay queryable in the default partition and leave with it when
//! an operator cleans it up).

use chrono::{Days, NaiveDate, Utc};

use super::error::OpContext;
use super::{Store, StoreError};

const PREFIX: &str = "forwarded_messages_p";

/// What one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionReport {
    /// Partitions created.
    pub created: Vec<String>,
    /// Partitions dropped for retention.
    pub dropped: Vec<String>,
    /// Posts deleted for retention.
    pub posts_deleted: u64,
    /// Rows moved from the default partition into a partition created for their day.
    pub moved_from_default: u64,
    /// Rows of the default partition deleted for retention.
    pub default_rows_deleted: u64,
}

impl Store {
    /// Ensures partitions from yesterday to `ahead_days` after today exist,
    /// and drops those wholly older than `retention_days` (with the posts
    /// detected before then). Safe to run at any time, from any instance.
    pub async fn maintain_partitions(
        &self,
        ahead_days: u32,
        retention_days: u32,
    ) -> Result<PartitionReport, StoreError> {
        self.maintain_partitions_at(Utc::now().date_naive(), ahead_days, retention_days)
            .await
    }

    /// [`Store::maintain_partitions`] as if today were `today` (for tests).
    pub async fn maintain_partitions_at(
        &self,
        today: NaiveDate,
        ahead_days: u32,
        retention_days: u32,
    ) -> Result<PartitionReport, StoreError> {
        const OP: &str = "maintain partitions";
        let c = self.conn(OP).await?;
        let existing: Vec<String> = c
            .query(
                "SELECT c.relname::text FROM pg_inherits i
                   JOIN pg_class c ON c.oid = i.inhrelid
                   JOIN pg_class p ON p.oid = i.inhparent
                  WHERE p.relname = 'forwarded_messages'",
                &[],
            )
            .await
            .op(OP)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut report = PartitionReport::default();
        drop(c);

        let first = today - Days::new(1);
        for offset in 0..=u64::from(ahead_days) + 1 {
            let day = first + Days::new(offset);
            let name = partition_name(day);
            if existing.contains(&name) {
                continue;
            }
            let next = day + Days::new(1);
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF forwarded_messages
                 FOR VALUES FROM ('{day}') TO ('{next}')"
            );
            let c = self.conn(OP).await?;
            match c.batch_execute(&sql).await {
                Ok(()) => report.created.push(name),
                // 23514: the default partition already holds rows of that day.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION) => {
                    drop(c);
                    let moved = self.partition_from_default(day, next, &name).await?;
                    tracing::info!(partition = %name, rows = moved, "Rows of this day moved out of the default partition into their own.");
                    report.created.push(name);
                    report.moved_from_default += moved;
                }
                // 42P07: another instance created it a moment ago.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_TABLE) => {}
                Err(e) => return Err(e).op(OP),
            }
        }

        let c = self.conn(OP).await?;
        let cutoff = today - Days::new(u64::from(retention_days));
        report.default_rows_deleted = c
            .execute(
                "DELETE FROM forwarded_messages_default WHERE post_day < $1",
                &[&cutoff],
            )
            .await
            .op(OP)?;
        for name in &existing {
            let Some(day) = parse_partition_day(name) else {
                continue;
            };
            // The partition covers [day, day + 1); drop it once all of it is past the cutoff.
            if day + Days::new(1) <= cutoff {
                c.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await
                    .op(OP)?;
                report.dropped.push(name.clone());
            }
        }
        let cutoff_ts = cutoff.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        report.posts_deleted = c
            .execute("DELETE FROM posts WHERE detected_at < $1", &[&cutoff_ts])
            .await
            .op(OP)?;
        if !report.created.is_empty() || !report.dropped.is_empty() {
            tracing::info!(
                created = report.created.len(),
                dropped = report.dropped.len(),
                posts_deleted = report.posts_deleted,
                "Partitions of forwarded_messages maintained."
            );
        }
        Ok(report)
    }
}

impl Store {
    /// Creates the partition of `[day, next)` when the default partition
    /// holds rows of that day: in one transaction, the rows leave the
    /// default partition, the partition is created, and they go into it.
    /// Inserts of that day wait on the lock for the moment it takes.
    async fn partition_from_default(
        &self,
        day: NaiveDate,
        next: NaiveDate,
        name: &str,
    ) -> Result<u64, StoreError> {
        const OP: &str = "move rows out of the default partition";
        let mut c = self.conn(OP).await?;
        let tx = c.transaction().await.op(OP)?;
        tx.batch_execute(&format!(
            "LOCK TABLE forwarded_messages_default IN ACCESS EXCLUSIVE MODE;
             CREATE TEMP TABLE kuryer_moving ON COMMIT DROP AS
                 SELECT * FROM forwarded_messages_default
                  WHERE post_day >= '{day}' AND post_day < '{next}';
             DELETE FROM forwarded_messages_default
              WHERE post_day >= '{day}' AND post_day < '{next}';
             CREATE TABLE {name} PARTITION OF forwarded_messages
                 FOR VALUES FROM ('{day}') TO ('{next}');"
        ))
        .await
        .op(OP)?;
        let moved = tx
            .execute(
                "INSERT INTO forwarded_messages SELECT * FROM kuryer_moving",
                &[],
            )
            .await
            .op(OP)?;
        tx.commit().await.op(OP)?;
        Ok(moved)
    }
}

/// `forwarded_messages_pYYYYMMDD` for a day.
pub fn partition_name(day: NaiveDate) -> String {
    format!("{PREFIX}{}", day.format("%Y%m%d"))
}

/// The day a partition name stands for, if it is one of ours.
pub fn parse_partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix(PREFIX)?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(partition_name(d), "forwarded_messages_p20261125");
        assert_eq!(parse_partition_day(&partition_name(d)), Some(d));
        assert_eq!(parse_partition_day("forwarded_messages_default"), None);
    }
}
