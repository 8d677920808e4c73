//! Per-subscription extras: text transforms and quiet hours,
//! stored as JSON (`subscriptions.transform`, `subscriptions.quiet`,
//! migration 0011) and validated before they get here.

use super::error::OpContext;
use super::{Store, StoreError};

/// Which stored extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// `subscriptions.transform` (`TransformSpec`).
    Transform,
    /// `subscriptions.quiet` (`QuietSpec`).
    Quiet,
    /// `subscriptions.digest` (`DigestSpec`).
    Digest,
}

impl Extra {
    fn column(self) -> &'static str {
        match self {
            Self::Transform => "transform",
            Self::Quiet => "quiet",
            Self::Digest => "digest",
        }
    }
}

impl Store {
    /// The regular expressions `owner`'s live subscriptions compile (their
    /// transforms' regex rules and filter regexes), leaving out
    /// `except`'s (the subscription about to change): what the per-user
    /// budget of compiled patterns counts.
    pub async fn user_patterns(&self, owner: i64, except: i64) -> Result<usize, StoreError> {
        const OP: &str = "count a user's regular expressions";
        let c = self.conn(OP).await?;
        let row = c
            .query_one(
                "SELECT coalesce(sum(
                          (SELECT count(*) FROM jsonb_array_elements(
                                CASE WHEN jsonb_typeof(s.transform -> 'replace') = 'array'
                                     THEN s.transform -> 'replace' ELSE '[]'::jsonb END) r
                            WHERE r ->> 'regex' = 'true')
                        + CASE WHEN coalesce(s.filters ->> 'regex', '') <> '' THEN 1 ELSE 0 END
                        ), 0)::bigint
                   FROM subscriptions s JOIN users u ON u.id = s.user_id
                  WHERE u.telegram_id = $1 AND s.removed_at IS NULL AND s.id <> $2",
                &[&owner, &except],
            )
            .await
            .op(OP)?;
        Ok(row.get::<_, i64>(0).max(0) as usize)
    }

    /// A subscription's stored extra (`None`: not set, or no such
    /// subscription of `owner`).
    pub async fn subscription_extra(
        &self,
        owner: Option<i64>,
        subscription_id: i64,
        extra: Extra,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        const OP: &str = "read subscription extras";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT s.{} FROM subscriptions s JOIN users u ON u.id = s.user_id
                      WHERE s.id = $1 AND ($2::bigint IS NULL OR u.telegram_id = $2)",
                    extra.column()
                ),
                &[&subscription_id, &owner],
            )
            .await
            .op(OP)?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Sets (or with `None` clears) a subscription's extra. Returns the
    /// subscriptions changed: `subscription_id`'s, or with `None` every
    /// subscription of `owner` (not removed) — `/quiet` without a name.
    pub async fn set_subscription_extra(
        &self,
        owner: Option<i64>,
        subscription_id: Option<i64>,
        extra: Extra,
        value: Option<&serde_json::Value>,
    ) -> Result<Vec<i64>, StoreError> {
        const OP: &str = "change subscription extras";
        if subscription_id.is_none() && owner.is_none() {
            return Ok(Vec::new());
        }
        let c = self.conn(OP).await?;
        let rows = c
            .query(
                &format!(
                    "UPDATE subscriptions s SET {col} = {value}, updated_at = now(){due}
                       FROM users u
                      WHERE u.id = s.user_id AND s.removed_at IS NULL
                        AND ($1::bigint IS NULL OR s.id = $1)
                        AND ($2::bigint IS NULL OR u.telegram_id = $2)
                      RETURNING s.id",
                    col = extra.column(),
                    // A digest turned off sends what it holds first: one
                    // last digest, due at once, after which the worker
                    // clears the setting (nothing held is left owed past
                    // the resume window). `$3` is NULL here.
                    value = if extra == Extra::Digest && value.is_none() {
                        "CASE WHEN s.digest IS NULL THEN $3::jsonb
                              ELSE '{\"every\": \"closing\"}'::jsonb END"
                    } else {
                        "$3"
                    },
                    // A new schedule: the daemon computes its next due time.
                    due = if extra == Extra::Digest {
                        ", digest_due_at = NULL"
                    } else {
                        ""
                    },
                ),
                &[&subscription_id, &owner, &value],
            )
            .await
            .op(OP)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl Store {
    /// Claims the one notice of `problem` about a destination: true for the
    /// first caller only (the row is the record that the owner was told).
    pub async fn claim_destination_notice(
        &self,
        destination_id: i64,
        problem: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "claim a problem notice";
        let c = self.conn(OP).await?;
        let n = c
            .execute(
                "INSERT INTO problem_notices (subject, subject_id, problem)
                 VALUES ('destination', $1, $2) ON CONFLICT DO NOTHING",
                &[&destination_id, &problem],
            )
            .await
            .op(OP)?;
        Ok(n == 1)
    }

    /// A destination works again (linked again): its problems may be news again.
    pub async fn clear_destination_notices(&self, destination_id: i64) -> Result<(), StoreError> {
        const OP: &str = "clear problem notices";
        let c = self.conn(OP).await?;
        c.execute(
            "DELETE FROM problem_notices WHERE subject = 'destination' AND subject_id = $1",
            &[&destination_id],
        )
        .await
        .op(OP)?;
        Ok(())
    }
}
