//! Destinations (the chats posts go to): deactivating a lost one and
//! following a group's move to a supergroup.

use super::error::OpContext;
use super::{Store, StoreError};

impl Store {
    /// Deactivates a destination (bot blocked or kicked, or failing) with the reason.
    /// Returns its owner's Telegram id and whether it is the owner's private chat.
    pub async fn deactivate_destination(
        &self,
        destination_id: i64,
        reason: &str,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        const OP: &str = "deactivate destination";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "UPDATE destinations d SET is_active = false, deactivated_reason = $2,
                        updated_at = now()
                   FROM users u
                  WHERE d.id = $1 AND u.id = d.owner_user_id
                  RETURNING u.telegram_id, d.kind = 'private' AND d.chat_id = u.telegram_id",
                &[&destination_id, &reason],
            )
            .await
            .op(OP)?;
        if row.is_some() {
            c.execute(
                "UPDATE users SET is_blocked = true, updated_at = now()
                  WHERE telegram_id = (SELECT chat_id FROM destinations
                                        WHERE id = $1 AND kind = 'private')
                    AND $2 = 'blocked'",
                &[&destination_id, &reason],
            )
            .await
            .op(OP)?;
        }
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// A group became a supergroup: the destination moves to the new chat id.
    pub async fn migrate_destination(
        &self,
        old_chat_id: i64,
        new_chat_id: i64,
    ) -> Result<(), StoreError> {
        const OP: &str = "move destination";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE destinations SET chat_id = $2, kind = 'supergroup', updated_at = now()
              WHERE chat_id = $1
                AND NOT EXISTS (SELECT 1 FROM destinations WHERE chat_id = $2)",
            &[&old_chat_id, &new_chat_id],
        )
        .await
        .op(OP)?;
        Ok(())
    }
}
