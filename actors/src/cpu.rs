//! CPU-heavy work off the actor thread: a bounded pool of worker threads
//! (tokio's blocking pool, at most [`workers`] jobs at once; the rest wait
//! their turn without holding a thread).
//!
//! `kuryer run` drives every actor, update loop and the lease keeper from
//! one thread; a synchronous stretch of work there stalls all of them,
//! watchdog and readiness included. What can take long for reasons a user
//! controls — applying and compiling a subscription's text transforms,
//! compiling a filter's regular expression — runs here instead. What waits
//! is only the delivery (or subscription) that asked.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// Jobs run at once: one per core the process may use, at most 8.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(workers()))
}

/// Runs `job` on a worker thread once one of the [`workers`] slots is free;
/// its result. A job that panicked panics here, in the caller's task, as
/// it would have inline.
pub async fn run<F, R>(job: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let _permit = permits().acquire().await.expect("never closed");
    match tokio::task::spawn_blocking(job).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[actix_rt::test]
    async fn a_long_job_leaves_the_calling_thread_free() {
        let started = Instant::now();
        let job = actix_rt::spawn(super::run(|| {
            std::thread::sleep(Duration::from_millis(300))
        }));
        // The actor thread ticks on while the job sleeps on a worker.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_millis(200));
        job.await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
