//! Opening the store for a command that only reads or changes rows
//! (`accounts`, `instances`, `logout`, `dead-letters`, `check-config
//! --connect`): the database is never created and never migrated. A missing
//! database, or a schema behind this kuryer, is an error that names the
//! database and the command that makes it right (`kuryer migrate`), so a
//! typo in `database.url` never yields a new empty database.

use super::connect::{connect_error, drive, open_own};
use super::error::ConnectError;
use super::migrate::MIGRATIONS;
use super::{Store, StoreError};
use crate::config::{DatabaseConfig, DbConnect};

/// Why an existing store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ExistingError {
    #[error(
        "database \"{database}\" does not exist on {endpoint}; `kuryer migrate` creates it (and applies the schema)"
    )]
    Missing { database: String, endpoint: String },
    #[error(
        "database \"{database}\" on {endpoint} has {applied} of this kuryer's {known} migrations; `kuryer migrate` applies the rest"
    )]
    Behind {
        database: String,
        endpoint: String,
        applied: usize,
        known: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `target`'s database exists and holds every migration this
/// kuryer knows; one connection of its own, closed after.
pub async fn check_existing(target: &DbConnect) -> Result<(), ExistingError> {
    const OP: &str = "connect to the database (database.url)";
    let (client, conn) = match open_own(target, "kuryer-cli").await {
        Ok(pair) => pair,
        Err(Ok(ConnectError::Postgres(e)))
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
        {
            return Err(ExistingError::Missing {
                database: target.dbname().to_owned(),
                endpoint: target.endpoint().to_owned(),
            });
        }
        Err(Ok(failed)) => return Err(connect_error(OP, target, failed).into()),
        Err(Err(setup)) => return Err(setup.into()),
    };
    drive(conn);
    // No table yet (an empty database) reads as none applied.
    let applied = match client
        .query_one("SELECT count(*) FROM kuryer_migrations", &[])
        .await
    {
        Ok(r) => r.get::<_, i64>(0) as usize,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(source) => return Err(StoreError::Query { op: OP, source }.into()),
    };
    if applied < MIGRATIONS.len() {
        return Err(ExistingError::Behind {
            database: target.dbname().to_owned(),
            endpoint: target.endpoint().to_owned(),
            applied,
            known: MIGRATIONS.len(),
        });
    }
    Ok(())
}

impl Store {
    /// The store of a database that exists with the whole schema; never
    /// creates or migrates anything.
    pub async fn open_existing(cfg: &DatabaseConfig) -> Result<Store, ExistingError> {
        let primary = cfg
            .primary()
            .map_err(|e| StoreError::Config(format!("database.url: {e}")))?;
        check_existing(&primary).await?;
        Ok(Store::on(primary, cfg)?)
    }
}
