//! Schema migrations: the numbered plain-SQL files of `sql/`, compiled into
//! the binary and applied in order, each in its own transaction.
//!
//! A table `kuryer_migrations` records each applied file with a SHA-256 of
//! its text. If an applied file's text has changed since, or the database
//! holds a migration this binary does not know (it is older than the
//! schema), nothing is applied and the error says which file. A session-level
//! advisory lock makes concurrent `migrate` runs (several instances starting
//! at once) take turns.

use sha2::{Digest, Sha256};

use super::connect::{connect_error, drive, open_own, open_own_or_fail};
use super::error::{ConnectError, OpContext};
use super::{Store, StoreError};
use crate::config::DbConnect;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The number the file name starts with.
    pub version: i32,
    /// The file name, e.g. `0001_init.sql`.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL text, hex.
    pub(crate) fn checksum(&self) -> String {
        hex(&Sha256::digest(self.sql.as_bytes()))
    }
}

/// Every migration, in order. A test checks this list against `sql/`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init.sql",
        sql: include_str!("../../sql/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_durable_delivery.sql",
        sql: include_str!("../../sql/0002_durable_delivery.sql"),
    },
    Migration {
        version: 3,
        name: "0003_installation.sql",
        sql: include_str!("../../sql/0003_installation.sql"),
    },
    Migration {
        version: 4,
        name: "0004_dead_letters_and_inbox.sql",
        sql: include_str!("../../sql/0004_dead_letters_and_inbox.sql"),
    },
    Migration {
        version: 5,
        name: "0005_reader.sql",
        sql: include_str!("../../sql/0005_reader.sql"),
    },
    Migration {
        version: 6,
        name: "0006_bot.sql",
        sql: include_str!("../../sql/0006_bot.sql"),
    },
    Migration {
        version: 7,
        name: "0007_protected_notice.sql",
        sql: include_str!("../../sql/0007_protected_notice.sql"),
    },
    Migration {
        version: 8,
        name: "0008_resolve_notice.sql",
        sql: include_str!("../../sql/0008_resolve_notice.sql"),
    },
    Migration {
        version: 9,
        name: "0009_instances.sql",
        sql: include_str!("../../sql/0009_instances.sql"),
    },
    Migration {
        version: 10,
        name: "0010_edits_deletions_backfill.sql",
        sql: include_str!("../../sql/0010_edits_deletions_backfill.sql"),
    },
    Migration {
        version: 11,
        name: "0011_extras.sql",
        sql: include_str!("../../sql/0011_extras.sql"),
    },
    Migration {
        version: 12,
        name: "0012_change_notify.sql",
        sql: include_str!("../../sql/0012_change_notify.sql"),
    },
    Migration {
        version: 13,
        name: "0013_digest.sql",
        sql: include_str!("../../sql/0013_digest.sql"),
    },
    Migration {
        version: 14,
        name: "0014_channel_problems.sql",
        sql: include_str!("../../sql/0014_channel_problems.sql"),
    },
    Migration {
        version: 15,
        name: "0015_history_on_subscribe.sql",
        sql: include_str!("../../sql/0015_history_on_subscribe.sql"),
    },
    Migration {
        version: 16,
        name: "0016_instance_identity.sql",
        sql: include_str!("../../sql/0016_instance_identity.sql"),
    },
    Migration {
        version: 17,
        name: "0017_notify_per_installation.sql",
        sql: include_str!("../../sql/0017_notify_per_installation.sql"),
    },
    Migration {
        version: 18,
        name: "0018_reader_peer_hashes.sql",
        sql: include_str!("../../sql/0018_reader_peer_hashes.sql"),
    },
    Migration {
        version: 19,
        name: "0019_dead_letter_console.sql",
        sql: include_str!("../../sql/0019_dead_letter_console.sql"),
    },
    Migration {
        version: 20,
        name: "0020_instance_snapshot.sql",
        sql: include_str!("../../sql/0020_instance_snapshot.sql"),
    },
    Migration {
        version: 21,
        name: "0021_inbox_notify.sql",
        sql: include_str!("../../sql/0021_inbox_notify.sql"),
    },
    Migration {
        version: 22,
        name: "0022_reader_budgets.sql",
        sql: include_str!("../../sql/0022_reader_budgets.sql"),
    },
    Migration {
        version: 23,
        name: "0023_user_budgets.sql",
        sql: include_str!("../../sql/0023_user_budgets.sql"),
    },
    Migration {
        version: 24,
        name: "0024_reader_orphans.sql",
        sql: include_str!("../../sql/0024_reader_orphans.sql"),
    },
];

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "migration {name} was changed after it was applied (checksum {applied} in the database, {current} in this binary); refusing to continue — restore the file or write a new migration"
    )]
    Changed {
        name: String,
        applied: String,
        current: String,
    },
    #[error(
        "the database has migration {version} ({name}) which this kuryer does not know; it is older than the schema — upgrade kuryer"
    )]
    Unknown { version: i32, name: String },
    #[error("migration {name} failed: {source}")]
    Failed {
        name: &'static str,
        #[source]
        source: StoreError,
    },
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// File names applied by this run, in order.
    pub applied: Vec<&'static str>,
    /// How many were already applied.
    pub already: usize,
}

/// Any number the lock could be; it only has to be the same for every kuryer.
const LOCK_KEY: i64 = 0x6b75_7279_6572; // "kuryer"

/// Applies `migrations` that are not yet applied. Idempotent.
pub async fn apply(store: &Store, migrations: &[Migration]) -> Result<MigrateReport, MigrateError> {
    apply_observed(store, migrations, &mut |_| {}).await
}

/// A step of [`apply_observed`]: the migration about to run, its place
/// among those to apply, and how many there are.
#[derive(Debug, Clone, Copy)]
pub struct MigrationStep {
    pub name: &'static str,
    pub index: usize,
    pub of: usize,
}

/// [`apply`], telling `observe` before each migration it applies (how
/// `kuryer migrate` shows its progress).
pub async fn apply_observed(
    store: &Store,
    migrations: &[Migration],
    observe: &mut (dyn FnMut(MigrationStep) + Send),
) -> Result<MigrateReport, MigrateError> {
    const OP: &str = "migrate";
    let mut c = store.conn(OP).await?;
    c.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .op(OP)?;
    let result = apply_locked(&mut c, migrations, observe).await;
    // Unlock even on failure; a dropped connection would release it too.
    let _ = c
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

async fn apply_locked(
    c: &mut deadpool_postgres::Object,
    migrations: &[Migration],
    observe: &mut (dyn FnMut(MigrationStep) + Send),
) -> Result<MigrateReport, MigrateError> {
    const OP: &str = "migrate";
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS kuryer_migrations (
             version    integer PRIMARY KEY,
             name       text        NOT NULL,
             checksum   text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .op(OP)?;
    let applied = c
        .query(
            "SELECT version, name, checksum FROM kuryer_migrations ORDER BY version",
            &[],
        )
        .await
        .op(OP)?;
    for row in &applied {
        let (version, name, checksum): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
        match migrations.iter().find(|m| m.version == version) {
            None => return Err(MigrateError::Unknown { version, name }),
            Some(m) if m.checksum() != checksum => {
                return Err(MigrateError::Changed {
                    name: m.name.to_owned(),
                    applied: checksum,
                    current: m.checksum(),
                });
            }
            Some(_) => {}
        }
    }
    let mut report = MigrateReport {
        applied: Vec::new(),
        already: applied.len(),
    };
    let to_apply = migrations
        .iter()
        .filter(|m| !applied.iter().any(|r| r.get::<_, i32>(0) == m.version))
        .count();
    for m in migrations {
        if applied.iter().any(|r| r.get::<_, i32>(0) == m.version) {
            continue;
        }
        observe(MigrationStep {
            name: m.name,
            index: report.applied.len(),
            of: to_apply,
        });
        let fail = |source| MigrateError::Failed {
            name: m.name,
            source,
        };
        let tx = c.transaction().await.op(OP).map_err(fail)?;
        tx.batch_execute(m.sql).await.op(OP).map_err(fail)?;
        tx.execute(
            "INSERT INTO kuryer_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .op(OP)
        .map_err(fail)?;
        tx.commit().await.op(OP).map_err(fail)?;
        // Debug: the caller told the step as it began (`migrate_progress`).
        tracing::debug!(migration = m.name, "Migration applied.");
        report.applied.push(m.name);
    }
    Ok(report)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the database of `target` when the server says it does not
/// exist, connecting to the server's `postgres` database to do so. Returns
/// whether it created one. Any other connection failure is returned as is,
/// naming `host:port`; each connection is opened within the connect timeout.
pub async fn create_database_if_missing(target: &DbConnect) -> Result<bool, StoreError> {
    const OP: &str = "create database";
    const APP: &str = "kuryer-migrate";
    match open_own(target, APP).await {
        Ok((client, conn)) => {
            // Dropping the client ends the session politely.
            drive(conn);
            drop(client);
            Ok(false)
        }
        Err(Ok(ConnectError::Postgres(e)))
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
        {
            let name = target.dbname().to_owned();
            let (client, conn) = open_own_or_fail(OP, &target.on_database("postgres"), APP).await?;
            drive(conn);
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            match client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                Ok(()) => {
                    tracing::info!(database = %name, "Database created.");
                    Ok(true)
                }
                // Another instance created it a moment ago.
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e).op(OP),
            }
        }
        Err(Ok(failed)) => Err(connect_error(
            "connect to the database (database.url)",
            target,
            failed,
        )),
        Err(Err(setup)) => Err(setup),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed, "sql/ and MIGRATIONS disagree");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{} is out of sequence", m.name);
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
        }
    }
}
