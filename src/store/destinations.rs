//! Destinations (the chats posts go to): deactivating a lost one and
//! following a group's move to a supergroup.

use super::error::OpContext;
use super::{LostDestination, Store, StoreError};

impl Store {
    /// Deactivates a destination (bot blocked or kicked, or failing) with the reason.
    /// Returns its owner (to tell them, in their language, through their
    /// bot) and whether it is the owner's private chat.
    pub async fn deactivate_destination(
        &self,
        destination_id: i64,
        reason: &str,
    ) -> Result<Option<(LostDestination, bool)>, StoreError> {
        const OP: &str = "deactivate destination";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                "UPDATE destinations d SET is_active = false, deactivated_reason = $2,
                        updated_at = now()
                   FROM users u
                  WHERE d.id = $1 AND u.id = d.owner_user_id
                  RETURNING u.telegram_id, d.kind = 'private' AND d.chat_id = u.telegram_id,
                            u.language, u.bot_id, d.title",
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
        Ok(row.map(|r| {
            let lost = LostDestination {
                destination_id,
                owner_telegram_id: r.get(0),
                owner_language: r.get(2),
                owner_bot_id: r.get(3),
                title: r.get(4),
            };
            (lost, r.get(1))
        }))
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
