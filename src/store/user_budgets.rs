//! What a user's next `/add` of a name would cost them: whether the name
//! is new to kuryer (a new channel, to be looked up and joined), how many
//! new channels they added in the last day, and how many of their
//! subscriptions still wait for their channel's look-up (migration 0023).

use super::error::OpContext;
use super::{Store, StoreError};

/// A user's standing against the per-user budgets of `/add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddBudget {
    /// No channel by that name exists yet: adding it creates one.
    pub new_channel: bool,
    /// The name's channel is (or would be) pending its look-up.
    pub pending: bool,
    /// Channels this user created in the last 24 hours.
    pub new_channels_today: i64,
    /// This user's subscriptions (not removed) whose channel is pending.
    pub pending_subscriptions: i64,
}

impl Store {
    /// Where `user_telegram_id` stands if they add `username` now.
    pub async fn add_budget(
        &self,
        user_telegram_id: i64,
        username: &str,
    ) -> Result<AddBudget, StoreError> {
        const OP: &str = "read add budget";
        let c = self.conn(OP).await?;
        let r = c
            .query_one(
                "SELECT (SELECT status FROM channels WHERE username = $2),
                        (SELECT count(*) FROM channels ch JOIN users u ON u.id = ch.added_by_user_id
                          WHERE u.telegram_id = $1
                            AND ch.created_at > now() - interval '1 day'),
                        (SELECT count(*) FROM subscriptions s
                           JOIN users u ON u.id = s.user_id
                           JOIN channels ch ON ch.id = s.channel_id
                          WHERE u.telegram_id = $1 AND s.removed_at IS NULL
                            AND ch.status = 'pending')",
                &[&user_telegram_id, &username],
            )
            .await
            .op(OP)?;
        let status: Option<String> = r.get(0);
        Ok(AddBudget {
            new_channel: status.is_none(),
            pending: status.as_deref().is_none_or(|s| s == "pending"),
            new_channels_today: r.get(1),
            pending_subscriptions: r.get(2),
        })
    }
}
