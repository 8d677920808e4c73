//! Which bots' lanes are halted (their token was refused), shared with the
//! daemon: `/readyz` and the pipeline's stats read it, and a sweep skips the
//! deliveries of a halted bot instead of queueing them to be turned away.

use std::sync::atomic::{AtomicBool, Ordering};

use super::limits::{LimiterConfig, lane_of};

/// The halted flag of every lane.
#[derive(Debug)]
pub struct HaltedLanes {
    bot_ids: Vec<i64>,
    halted: Vec<AtomicBool>,
}

impl HaltedLanes {
    /// Every lane of `cfg` running.
    pub fn new(cfg: &LimiterConfig) -> Self {
        Self {
            bot_ids: cfg.bot_ids.clone(),
            halted: (0..cfg.bots.max(1))
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }

    /// Marks a lane halted; true when it was running until now.
    pub(super) fn halt(&self, lane: usize) -> bool {
        self.halted
            .get(lane)
            .is_some_and(|h| !h.swap(true, Ordering::Relaxed))
    }

    /// True when a destination pinned to `bot_id` (or not pinned: `None`)
    /// is served by a halted lane.
    pub fn is_halted_for(&self, bot_id: Option<i64>) -> bool {
        let lane = lane_of(&self.bot_ids, self.halted.len(), bot_id);
        self.halted[lane].load(Ordering::Relaxed)
    }

    /// Lanes halted.
    pub fn count(&self) -> usize {
        self.halted
            .iter()
            .filter(|h| h.load(Ordering::Relaxed))
            .count()
    }

    /// The bot id of each halted lane (the lane's index when its id is not
    /// configured). Never a token.
    pub fn bot_ids(&self) -> Vec<i64> {
        self.halted
            .iter()
            .enumerate()
            .filter(|(_, h)| h.load(Ordering::Relaxed))
            .map(|(lane, _)| self.bot_id_of(lane))
            .collect()
    }

    /// The bot id of a lane, or its index when not configured.
    pub(super) fn bot_id_of(&self, lane: usize) -> i64 {
        self.bot_ids.get(lane).copied().unwrap_or(lane as i64)
    }
}
