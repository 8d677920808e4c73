//! The daemon's stop, as an ordered list of steps: each has a name, a
//! deadline and what it does; they run one after the other, each under its
//! deadline, and the first step that fails says why the stop was not
//! clean (the exit status), while the later steps still run.

use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;

/// What one step does: `Err` says what it left undone.
type Stop = Box<dyn FnOnce() -> LocalBoxFuture<'static, Result<(), String>>>;

struct Step {
    name: &'static str,
    deadline: Duration,
    stop: Stop,
}

/// The ordered steps of a stop.
#[derive(Default)]
pub(super) struct Shutdown(Vec<Step>);

impl Shutdown {
    /// Adds a step after those already added.
    pub(super) fn then<F>(&mut self, name: &'static str, deadline: Duration, stop: F) -> &mut Self
    where
        F: Future<Output = Result<(), String>> + 'static,
    {
        self.0.push(Step {
            name,
            deadline,
            stop: Box::new(move || Box::pin(stop)),
        });
        self
    }

    /// Runs every step in order; answers what the first failed or late step
    /// left undone (`None`: all finished in time).
    pub(super) async fn run(self) -> Option<String> {
        let mut first_failure = None;
        for step in self.0 {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(step.deadline, (step.stop)()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "{} did not finish within {} s",
                    step.name,
                    step.deadline.as_secs_f64()
                )),
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match outcome {
                Ok(()) => tracing::debug!(step = step.name, elapsed_ms, "Stopped."),
                Err(why) => {
                    tracing::warn!(
                        step = step.name,
                        elapsed_ms,
                        why,
                        "A step of the stop did not finish cleanly."
                    );
                    first_failure.get_or_insert(why);
                }
            }
        }
        first_failure
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    #[tokio::test]
    async fn steps_run_in_order_and_a_late_one_does_not_stop_the_rest() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut stop = Shutdown::default();
        for (name, wait_ms) in [("first", 0u64), ("late", 1_000), ("last", 0)] {
            let order = order.clone();
            stop.then(name, Duration::from_millis(50), async move {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                order.borrow_mut().push(name);
                Ok(())
            });
        }
        let failure = stop.run().await;
        assert_eq!(*order.borrow(), ["first", "last"]);
        assert_eq!(
            failure.as_deref(),
            Some("late did not finish within 0.05 s")
        );
    }

    #[tokio::test]
    async fn the_first_failure_is_the_one_reported() {
        let mut stop = Shutdown::default();
        stop.then("a", Duration::from_secs(1), async {
            Err("a failed".to_owned())
        })
        .then("b", Duration::from_secs(1), async {
            Err("b failed".to_owned())
        });
        assert_eq!(stop.run().await.as_deref(), Some("a failed"));
    }
}
