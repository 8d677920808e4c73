//! `kuryer migrate` and the start-up migration with their progress shown
//! (a bar on a terminal, lines under journald: `crate::progress`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Store;
use super::migrate::{self, MigrateError, MigrateReport, MigrationStep};
use crate::progress::Progress;

/// `kuryer migrate` (and the daemon's start-up migration) with progress:
/// one step a migration, and while a long one runs (an index on a large
/// table) a report every few seconds that it still does.
pub async fn migrate_with_progress(store: &Store) -> Result<MigrateReport, MigrateError> {
    // The bar, the migration running, and since when.
    type Running = Option<(Progress, &'static str, Instant)>;
    let state: Arc<Mutex<Running>> = Arc::new(Mutex::new(None));
    let mut observe = {
        let state = state.clone();
        move |step: MigrationStep| {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let entry = st.get_or_insert_with(|| {
                (
                    Progress::new("applying migrations", step.of as u64),
                    step.name,
                    Instant::now(),
                )
            });
            entry.1 = step.name;
            entry.2 = Instant::now();
            entry.0.set(step.index as u64);
            tracing::info!(
                migration = step.name,
                step = step.index + 1,
                of = step.of,
                "Applying a migration."
            );
        }
    };
    let apply = migrate::apply_observed(store, migrate::MIGRATIONS, &mut observe);
    tokio::pin!(apply);
    let mut tick = tokio::time::interval(crate::progress::LINE_EVERY);
    tick.tick().await;
    let report = loop {
        tokio::select! {
            r = &mut apply => break r,
            _ = tick.tick() => {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, name, since)) = st.as_ref() {
                    tracing::info!(
                        migration = *name,
                        elapsed_s = since.elapsed().as_secs(),
                        "Still applying a migration."
                    );
                }
            }
        }
    };
    if let Some((mut p, _, _)) = state.lock().unwrap_or_else(|e| e.into_inner()).take() {
        p.finish();
    }
    report
}
