//! Access hashes per reader account (migration 0016). Telegram gives each
//! account its own access hash for a channel and answers another account's
//! with `CHANNEL_INVALID`, so a channel is read with the hash of the
//! account that reads it: the one it resolved, or one it resolved again.

use std::collections::HashMap;

use super::error::OpContext;
use super::{Store, StoreError};

impl Store {
    /// Every account's access hash of the Telegram channel `peer_id` (bare id).
    pub async fn peer_hashes(&self, peer_id: i64) -> Result<HashMap<String, i64>, StoreError> {
        const OP: &str = "read access hashes";
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                "SELECT account, access_hash FROM reader_peer_hashes WHERE peer_id = $1",
                &[&peer_id],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records the access hash `account` was given for `peer_id`.
    pub async fn set_peer_hash(
        &self,
        account: &str,
        peer_id: i64,
        access_hash: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "store access hash";
        let c = self.conn(OP).await?;
        c.execute(
            "INSERT INTO reader_peer_hashes (account, peer_id, access_hash) VALUES ($1, $2, $3)
             ON CONFLICT (account, peer_id)
             DO UPDATE SET access_hash = $3, learned_at = now()",
            &[&account, &peer_id, &access_hash],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Forgets `account`'s hash of `peer_id` (Telegram refused it).
    pub async fn forget_peer_hash(&self, account: &str, peer_id: i64) -> Result<(), StoreError> {
        const OP: &str = "forget access hash";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM reader_peer_hashes WHERE account = $1 AND peer_id = $2",
            &[&account, &peer_id],
        )
        .await
        .op(OP)?;
        Ok(())
    }
}
