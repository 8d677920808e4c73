//! The identity of the database (`installation.id`, made by migration 0003):
//! what namespaces everything kept about its rows outside it.

use super::{Store, StoreError};

impl Store {
    /// This database's installation id (a UUID, as text). Read once at start.
    pub async fn installation_id(&self) -> Result<String, StoreError> {
        const OP: &str = "read the installation id";
        let c = self.conn(OP).await?;
        let row = c
            .query_one("SELECT id::text FROM installation", &[])
            .await
            .map_err(|source| StoreError::Query { op: OP, source })?;
        Ok(row.get(0))
    }
}
