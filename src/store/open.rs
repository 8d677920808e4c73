//! Opening the store as a command needs it: the database created if
//! missing, the pools built, the migrations applied, the partitions kept —
//! each step when asked, in that order, all on the one connection target
//! parsed from `database.url`.

use super::migrate::{self, MigrateError, MigrateReport};
use super::partitions::PartitionReport;
use super::{Store, StoreError};
use crate::config::DatabaseConfig;

/// The steps [`Store::open`] takes besides building the pools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Open {
    /// Create the database when the server says it does not exist.
    pub create_if_missing: bool,
    /// Apply the migrations of `sql/`.
    pub migrate: bool,
    /// Create daily partitions ahead and drop those past retention.
    pub partitions: Option<Retention>,
}

/// How far ahead partitions are made and how long they are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Daily partitions created ahead of today.
    pub ahead_days: u32,
    /// Days of history kept.
    pub retention_days: u32,
}

impl Open {
    /// `kuryer run` and `kuryer migrate`: every step, partitions as
    /// `database.partitions_ahead_days` and `database.retention_days` say.
    pub fn everything(cfg: &DatabaseConfig) -> Self {
        Self {
            create_if_missing: true,
            migrate: true,
            partitions: Some(Retention {
                ahead_days: cfg.partitions_ahead_days,
                retention_days: cfg.retention_days,
            }),
        }
    }

    /// The reader and instance commands (`login`, `accounts`, `logout`,
    /// `instances`): the database created if missing and migrated, the
    /// partitions left to the daemon.
    pub fn schema() -> Self {
        Self {
            create_if_missing: true,
            migrate: true,
            partitions: None,
        }
    }

    /// A database just made for one run (the demo, the benchmarks):
    /// migrated, partitions two days ahead, kept 30 days.
    pub fn fresh() -> Self {
        Self {
            create_if_missing: false,
            migrate: true,
            partitions: Some(Retention {
                ahead_days: 2,
                retention_days: 30,
            }),
        }
    }
}

/// What [`Store::open`] did, and the store.
#[derive(Debug)]
pub struct Opened {
    /// The store, ready.
    pub store: Store,
    /// The database did not exist and was created.
    pub created: bool,
    /// The migrations' report, when they were applied.
    pub migrations: Option<MigrateReport>,
    /// The partitions' report, when they were maintained.
    pub partitions: Option<PartitionReport>,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Connecting, creating the database, the partitions.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Applying the migrations.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

impl Store {
    /// Opens the store on `cfg` taking `steps`, the migrations applied
    /// quietly (one log line each).
    pub async fn open(cfg: &DatabaseConfig, steps: Open) -> Result<Opened, OpenError> {
        Self::open_with(cfg, steps, async |store: &Store| {
            migrate::apply(store, migrate::MIGRATIONS).await
        })
        .await
    }

    /// [`Store::open`] whose migrations are applied by `apply` (the
    /// daemon and `kuryer migrate` show their progress).
    pub async fn open_with(
        cfg: &DatabaseConfig,
        steps: Open,
        apply: impl AsyncFnOnce(&Store) -> Result<MigrateReport, MigrateError>,
    ) -> Result<Opened, OpenError> {
        let primary = cfg
            .primary()
            .map_err(|e| StoreError::Config(format!("database.url: {e}")))?;
        let created =
            steps.create_if_missing && migrate::create_database_if_missing(&primary).await?;
        let store = Store::on(primary, cfg)?;
        let migrations = if steps.migrate {
            let report = apply(&store).await?;
            if !report.applied.is_empty() {
                tracing::info!(applied = ?report.applied, already = report.already, "Migrations applied.");
            }
            Some(report)
        } else {
            None
        };
        let partitions = match steps.partitions {
            Some(r) => Some(
                store
                    .maintain_partitions(r.ahead_days, r.retention_days)
                    .await?,
            ),
            None => None,
        };
        Ok(Opened {
            store,
            created,
            migrations,
            partitions,
        })
    }
}
