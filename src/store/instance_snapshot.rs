//! Each instance's own snapshot of what it holds in memory (queue depths,
//! the flood waits its reader accounts met), written into its `instances`
//! row by the instance itself, read by the status page of any instance.

use chrono::{DateTime, Utc};

use super::error::OpContext;
use super::{Store, StoreError};

/// An instance's last snapshot, as the status page reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSnapshotRow {
    pub id: String,
    /// Its heartbeat is within its TTL.
    pub live: bool,
    /// When it wrote the snapshot (`None`: it has not written one yet).
    pub at: Option<DateTime<Utc>>,
    /// The snapshot as it wrote it; `crate::instance_snapshot` reads it.
    pub snapshot: Option<serde_json::Value>,
}

impl Store {
    /// Writes this instance's snapshot. Only the row this process
    /// registered (same incarnation) is written: a namesake's row is not
    /// overwritten, and after a graceful stop (row gone) nothing is.
    pub async fn instance_snapshot_write(
        &self,
        id: &str,
        incarnation: i64,
        snapshot: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        const OP: &str = "write this instance's snapshot";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "UPDATE instances SET snapshot = $3, snapshot_at = now()
                  WHERE id = $1 AND incarnation = $2",
                &[&id, &incarnation, snapshot],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// Every registered instance's last snapshot, live ones first (at most
    /// 100 rows: an installation has a handful of instances).
    pub async fn instance_snapshots(&self) -> Result<Vec<InstanceSnapshotRow>, StoreError> {
        const OP: &str = "read the instances' snapshots";
        let c = self.read_conn(OP).await?;
        let rows = c
            .query(
                "SELECT id, heartbeat_at > now() - make_interval(secs => lease_ttl_s),
                        snapshot_at, snapshot
                   FROM instances
                  ORDER BY 2 DESC, id LIMIT 100",
                &[],
            )
            .await
            .op(OP)?;
        Ok(rows
            .iter()
            .map(|r| InstanceSnapshotRow {
                id: r.get(0),
                live: r.get(1),
                at: r.get(2),
                snapshot: r.get(3),
            })
            .collect())
    }
}
