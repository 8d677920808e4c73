//! Each reader account's budget for the day: look-ups
//! (`contacts.resolveUsername`, `reader.resolves_per_day`) and joins
//! (`channels.joinChannel`, from `reader.joins_first_day` on the account's
//! first day in kuryer up to `reader.joins_per_day` over
//! `reader.join_ramp_days`). Telegram punishes both by the day, not by the
//! second: reports put the look-up allowance at a few dozen a day before
//! waits grow to 18 hours, and fast joining gets accounts limited
//! (`PEER_FLOOD`) or frozen. A call is counted in PostgreSQL before it is
//! made (`Store::spend_reader_budget`), so no call goes over the budget,
//! whatever restarts or which instance holds the account. A spent budget
//! is remembered here until the UTC day ends, so the queue does not ask
//! PostgreSQL again for an account it knows is done.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{NaiveDate, Utc};

use crate::config::ReaderConfig;
use crate::store::{BudgetKind, DayLimits, Store, StoreError};
use crate::telemetry::events;

/// The budgets of this process's accounts.
pub(super) struct Budgets {
    resolves_per_day: u32,
    joins_first_day: u32,
    joins_per_day: u32,
    join_ramp_days: u32,
    /// (account, kind) → the UTC day its budget was found spent.
    spent: Mutex<HashMap<(String, BudgetKind), NaiveDate>>,
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Time until the next UTC midnight (when budgets start again).
pub(super) fn until_tomorrow() -> Duration {
    let now = Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    midnight
        .and_then(|m| (m - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3_600))
        + Duration::from_secs(1)
}

impl Budgets {
    pub(super) fn new(cfg: &ReaderConfig) -> Self {
        Self {
            resolves_per_day: cfg.resolves_per_day,
            joins_first_day: cfg.joins_first_day,
            joins_per_day: cfg.joins_per_day,
            join_ramp_days: cfg.join_ramp_days,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// Today's limits of an account `age_days` old in kuryer: joins grow
    /// evenly from the first day's to the full number over the ramp.
    pub(super) fn limits(&self, age_days: i32) -> DayLimits {
        let age = u64::try_from(age_days.max(0)).unwrap_or(0);
        let (first, full, ramp) = (
            u64::from(self.joins_first_day),
            u64::from(self.joins_per_day),
            u64::from(self.join_ramp_days),
        );
        let joins = if ramp == 0 || age >= ramp {
            full
        } else {
            first + full.saturating_sub(first) * age / ramp
        };
        DayLimits {
            resolves: i32::try_from(self.resolves_per_day).unwrap_or(i32::MAX),
            joins: i32::try_from(joins).unwrap_or(i32::MAX),
        }
    }

    /// Whether `account`'s `kind` budget is known to be spent today (no query).
    pub(super) fn spent_today(&self, account: &str, kind: BudgetKind) -> bool {
        self.spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(account.to_owned(), kind))
            .is_some_and(|d| *d == today())
    }

    fn mark_spent(&self, account: &str, kind: BudgetKind) -> bool {
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        spent.insert((account.to_owned(), kind), today()) != Some(today())
    }

    async fn day_limits(&self, store: &Store, account: &str) -> Result<DayLimits, StoreError> {
        let age = store.reader_account_age_days(account).await?.unwrap_or(0);
        Ok(self.limits(age))
    }

    /// Takes one call of `kind` from `account`'s budget for today: true
    /// when the call may be made. False when today's is spent (told once a
    /// day per account and kind), or PostgreSQL cannot count it (no count,
    /// no call).
    pub(super) async fn spend(&self, store: &Store, account: &str, kind: BudgetKind) -> bool {
        if self.spent_today(account, kind) {
            return false;
        }
        let spent = match self.day_limits(store, account).await {
            Ok(limits) => store.spend_reader_budget(account, kind, limits).await,
            Err(e) => Err(e),
        };
        match spent {
            Ok(true) => true,
            Ok(false) => {
                if self.mark_spent(account, kind) {
                    events::reader_budget_spent(account, kind.as_str());
                }
                false
            }
            Err(e) => {
                tracing::warn!(account, kind = kind.as_str(), error = %e, "Cannot count the call against the account's budget; not making it now.");
                false
            }
        }
    }

    /// Writes today's limits for `account`, for the status page.
    pub(super) async fn show(&self, store: &Store, account: &str) {
        let written = match self.day_limits(store, account).await {
            Ok(limits) => store.ensure_reader_budget(account, limits).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::debug!(account, error = %e, "Cannot write the account's budget for today.");
        }
    }

    /// No more joins for `account` today: Telegram said `reason`.
    pub(super) async fn stop_joins(&self, store: &Store, account: &str, reason: &str) {
        self.mark_spent(account, BudgetKind::Join);
        let stopped = match self.day_limits(store, account).await {
            Ok(limits) => store.stop_reader_joins(account, reason, limits).await,
            Err(e) => Err(e),
        };
        if let Err(e) = stopped {
            tracing::warn!(account, error = %e, "Cannot record that the account's joins stopped for today; this instance stops them anyway.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_ramp_up_evenly_and_resolves_do_not() {
        let cfg = ReaderConfig {
            resolves_per_day: 30,
            joins_first_day: 10,
            joins_per_day: 40,
            join_ramp_days: 14,
            ..ReaderConfig::default()
        };
        let b = Budgets::new(&cfg);
        assert_eq!(b.limits(0).joins, 10);
        assert_eq!(b.limits(7).joins, 25);
        assert_eq!(b.limits(13).joins, 37);
        assert_eq!(b.limits(14).joins, 40);
        assert_eq!(b.limits(400).joins, 40);
        assert_eq!(b.limits(-1).joins, 10);
        assert_eq!(b.limits(0).resolves, 30);
        let flat = Budgets::new(&ReaderConfig {
            join_ramp_days: 0,
            ..cfg
        });
        assert_eq!(flat.limits(0).joins, 40);
        assert!(until_tomorrow() <= Duration::from_secs(86_401));
    }
}
