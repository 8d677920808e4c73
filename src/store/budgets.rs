//! Reader accounts' daily budgets (migration 0022): how many look-ups
//! (`contacts.resolveUsername`) and joins (`channels.joinChannel`) each
//! account made on the current UTC day, counted in PostgreSQL before each
//! call so a restart or another instance continues from the same count;
//! and the flood wait each account is waiting out, for the status page.
//! The day is PostgreSQL's (`now()` in UTC), one clock for every instance.

use chrono::{DateTime, Utc};

use super::error::OpContext;
use super::{Store, StoreError};

/// Which budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// `contacts.resolveUsername`.
    Resolve,
    /// `channels.joinChannel`.
    Join,
}

impl BudgetKind {
    /// Its name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Join => "join",
        }
    }
}

/// An account's limits for today (joins already ramped for its age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayLimits {
    /// Look-ups allowed today.
    pub resolves: i32,
    /// Joins allowed today.
    pub joins: i32,
}

const TODAY: &str = "(now() AT TIME ZONE 'UTC')::date";

impl Store {
    /// Counts one call of `kind` against `account`'s budget for today and
    /// returns true, or returns false (counting nothing) when today's is
    /// spent — or, for joins, stopped by Telegram. Refused in the same
    /// statement that counts, so two instances cannot both take the last one.
    pub async fn spend_reader_budget(
        &self,
        account: &str,
        kind: BudgetKind,
        limits: DayLimits,
    ) -> Result<bool, StoreError> {
        const OP: &str = "spend a reader budget";
        let limit = match kind {
            BudgetKind::Resolve => limits.resolves,
            BudgetKind::Join => limits.joins,
        };
        if limit <= 0 {
            return Ok(false);
        }
        let sql = match kind {
            BudgetKind::Resolve => format!(
                "INSERT INTO reader_budgets (account, day, resolves, resolve_limit, join_limit)
                 VALUES ($1, {TODAY}, 1, $2, $3)
                 ON CONFLICT (account, day) DO UPDATE
                    SET resolves = reader_budgets.resolves + 1, resolve_limit = $2, join_limit = $3
                  WHERE reader_budgets.resolves < $2
                 RETURNING resolves"
            ),
            BudgetKind::Join => format!(
                "INSERT INTO reader_budgets (account, day, joins, resolve_limit, join_limit)
                 VALUES ($1, {TODAY}, 1, $2, $3)
                 ON CONFLICT (account, day) DO UPDATE
                    SET joins = reader_budgets.joins + 1, resolve_limit = $2, join_limit = $3
                  WHERE reader_budgets.joins < $3 AND reader_budgets.joins_stopped IS NULL
                 RETURNING joins"
            ),
        };
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(&sql, &[&account, &limits.resolves, &limits.joins])
            .await
            .op(OP)?;
        Ok(row.is_some())
    }

    /// Writes today's limits for `account` (so the status page shows what
    /// is left before the first call of the day).
    pub async fn ensure_reader_budget(
        &self,
        account: &str,
        limits: DayLimits,
    ) -> Result<(), StoreError> {
        const OP: &str = "write a reader budget";
        let c = self.conn(OP).await?;
        c.execute(
            &format!(
                "INSERT INTO reader_budgets (account, day, resolve_limit, join_limit)
                 VALUES ($1, {TODAY}, $2, $3)
                 ON CONFLICT (account, day) DO UPDATE SET resolve_limit = $2, join_limit = $3"
            ),
            &[&account, &limits.resolves, &limits.joins],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// No more joins for `account` today (`reason`: what Telegram said).
    pub async fn stop_reader_joins(
        &self,
        account: &str,
        reason: &str,
        limits: DayLimits,
    ) -> Result<(), StoreError> {
        const OP: &str = "stop a reader account's joins";
        let c = self.conn(OP).await?;
        c.execute(
            &format!(
                "INSERT INTO reader_budgets (account, day, resolve_limit, join_limit, joins_stopped)
                 VALUES ($1, {TODAY}, $2, $3, $4)
                 ON CONFLICT (account, day) DO UPDATE SET joins_stopped = $4"
            ),
            &[&account, &limits.resolves, &limits.joins, &reason],
        )
        .await
        .op(OP)?;
        Ok(())
    }

    /// Whole UTC days since the account was created in kuryer (0 on its
    /// first day); `None` for an unknown account.
    pub async fn reader_account_age_days(&self, account: &str) -> Result<Option<i32>, StoreError> {
        const OP: &str = "read a reader account's age";
        let c = self.conn(OP).await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {TODAY} - (created_at AT TIME ZONE 'UTC')::date
                       FROM reader_accounts WHERE name = $1"
                ),
                &[&account],
            )
            .await
            .op(OP)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records a flood wait `account` must wait out, unless a longer one is
    /// already recorded and running.
    pub async fn set_reader_flood_wait(
        &self,
        account: &str,
        until: DateTime<Utc>,
        method: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "record a reader flood wait";
        let c = self.conn(OP).await?;
        c.execute(
            "UPDATE reader_accounts SET flood_wait_until = $2, flood_wait_method = $3
              WHERE name = $1
                AND (flood_wait_until IS NULL OR flood_wait_until < $2
                     OR flood_wait_until <= now())",
            &[&account, &until, &method],
        )
        .await
        .op(OP)?;
        Ok(())
    }
}
