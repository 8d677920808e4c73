//! Restarting a long-running task that panicked.
//!
//! An actor that panics ends only its own task (actix runs each actor as
//! one); a plain spawned loop that panics ends just as quietly, and what it
//! did stops until the process restarts. [`supervise`] runs such a loop
//! again after a panic, with a backoff, logging each panic at ERROR and
//! counting it in `kuryer_worker_restarts_total{worker}`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::backoff::Backoff;
use crate::telemetry::events;

/// A run that lasted this long before it panicked was healthy: the next
/// restart starts from the first backoff again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs `make()`'s future to its end; when it panics, makes a new one and
/// runs that after the next `backoff` delay. Returns when a run ends
/// without a panic (the task stopped as it should).
///
/// Each restart starts from what `make` builds: state the panicked run
/// held in memory is gone, so a task supervised this way keeps what must
/// survive in the database (the copies worker does).
pub async fn supervise<F, Fut>(worker: &'static str, mut backoff: Backoff, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut restarts: u64 = 0;
    loop {
        let started = Instant::now();
        let panic = match AssertUnwindSafe(make()).catch_unwind().await {
            Ok(()) => return,
            Err(payload) => panic_message(payload.as_ref()),
        };
        if started.elapsed() >= HEALTHY_RUN {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        restarts += 1;
        events::worker_restarted(worker, restarts, &panic, started.elapsed(), delay);
        tokio::time::sleep(delay).await;
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[actix_rt::test]
    async fn a_task_that_panics_runs_again_until_it_ends() {
        let runs = Rc::new(Cell::new(0u32));
        let started = Instant::now();
        let counted = runs.clone();
        supervise(
            "test",
            Backoff::new(Duration::from_millis(20), Duration::from_millis(40)),
            move || {
                let runs = counted.clone();
                async move {
                    runs.set(runs.get() + 1);
                    tokio::task::yield_now().await;
                    // The first three runs panic, the fourth ends.
                    if runs.get() <= 3 {
                        panic!("run {} broke", runs.get());
                    }
                }
            },
        )
        .await;
        assert_eq!(runs.get(), 4);
        // Three backoffs: 20 + 40 + 40 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }

    #[actix_rt::test]
    async fn a_task_that_ends_is_not_run_again() {
        let runs = Rc::new(Cell::new(0u32));
        let counted = runs.clone();
        supervise(
            "test",
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
            move || {
                let runs = counted.clone();
                async move { runs.set(runs.get() + 1) }
            },
        )
        .await;
        assert_eq!(runs.get(), 1);
    }

    #[test]
    fn a_panics_message_is_read_from_either_string_kind() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "plain");
        let n = 7;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "formatted 7");
    }
}
