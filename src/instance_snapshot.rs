//! What an instance holds in memory — its queue depths and the flood waits
//! its reader accounts met — written into its `instances` row every few
//! seconds, so the status page of any instance shows every instance. The
//! database alone cannot answer these: the queues live in one process's
//! actors, the flood-wait counters in its metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::instance::Ownership;
use crate::pipeline::{Pipeline, PipelineStats};
use crate::store::Store;

/// How often an instance writes its snapshot. The page says how old each
/// one is; a few seconds is what an operator looking at it expects.
pub const PERIOD: Duration = Duration::from_secs(5);

/// The longest a snapshot waits for the pipeline's answer: its actors may be
/// busy, and a late snapshot is only skipped, never queued.
const STATS_WAIT: Duration = Duration::from_secs(2);

/// Flood waits one reader account met in one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FloodWaits {
    /// How many.
    pub waits: f64,
    /// Seconds waited in all.
    pub seconds: f64,
}

/// One instance's snapshot (stored as JSON; fields added later default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// Deliveries queued in the rate limiter.
    pub queued: usize,
    /// Sends in flight.
    pub in_flight: usize,
    /// Delivery rows waiting for PostgreSQL.
    pub db_backlog: usize,
    /// Deliveries held (queued, sending, outcome not yet committed).
    pub held_deliveries: usize,
    /// Channels polled.
    pub channels_polled: usize,
    /// Pollers held back by the start-up resume.
    pub resuming_channels: usize,
    /// Bots halted because Telegram refused their token.
    pub halted_bots: usize,
    /// Flood waits by reader account, since this process started.
    pub flood_waits: BTreeMap<String, FloodWaits>,
}

impl Snapshot {
    /// From the pipeline's counters and this process's metrics text.
    pub fn new(stats: &PipelineStats, metrics: &str) -> Self {
        Self {
            queued: stats.queued,
            in_flight: stats.in_flight,
            db_backlog: stats.db_backlog,
            held_deliveries: stats.held_deliveries,
            channels_polled: stats.channels_polled,
            resuming_channels: stats.resuming_channels,
            halted_bots: stats.halted_bots,
            flood_waits: flood_waits(metrics),
        }
    }

    /// Reads a stored snapshot; `None` when it is not one (written by a
    /// kuryer whose snapshot had another shape).
    pub fn read(value: &serde_json::Value) -> Option<Self> {
        Self::deserialize(value).ok()
    }
}

/// Flood waits per reader account from a metrics text
/// (`kuryer_reader_flood_waits_total`, `kuryer_reader_flood_wait_seconds_total`,
/// summed over their `method` label).
pub fn flood_waits(metrics: &str) -> BTreeMap<String, FloodWaits> {
    let mut out: BTreeMap<String, FloodWaits> = BTreeMap::new();
    for line in metrics.lines() {
        let (count, rest) = if let Some(r) = line.strip_prefix("kuryer_reader_flood_waits_total{") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("kuryer_reader_flood_wait_seconds_total{") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(account) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("account=\""))
            .map(|a| a.trim_end_matches('"').to_owned())
        else {
            continue;
        };
        let v: f64 = value.trim().parse().unwrap_or(0.0);
        let e = out.entry(account).or_default();
        if count {
            e.waits += v;
        } else {
            e.seconds += v;
        }
    }
    out
}

/// Flood waits by account over several instances' snapshots.
pub fn flood_waits_of_all<'a>(
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
) -> BTreeMap<String, FloodWaits> {
    let mut out: BTreeMap<String, FloodWaits> = BTreeMap::new();
    for s in snapshots {
        for (account, w) in &s.flood_waits {
            let e = out.entry(account.clone()).or_default();
            e.waits += w.waits;
            e.seconds += w.seconds;
        }
    }
    out
}

/// Writes this instance's snapshot every [`PERIOD`] until the process ends.
/// A failure is logged and the next round tries again: the snapshot only
/// informs the page, and nothing else waits for it.
pub async fn publish(store: Store, pipeline: Pipeline, ownership: Arc<Ownership>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Ok(Ok(stats)) = tokio::time::timeout(STATS_WAIT, pipeline.stats()).await else {
            continue;
        };
        let snapshot = Snapshot::new(&stats, &crate::telemetry::metrics_handle().render());
        let value = match serde_json::to_value(&snapshot) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "Could not encode this instance's snapshot.");
                continue;
            }
        };
        let written = store
            .instance_snapshot_write(ownership.id(), ownership.identity().incarnation, &value)
            .await;
        match written {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(instance = ownership.id(), error = %e, "Could not write this instance's snapshot for the status page; trying again.");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_waits_are_read_by_account_and_summed_over_instances() {
        let text = "kuryer_reader_flood_waits_total{account=\"main\",method=\"getHistory\"} 2\n\
                    kuryer_reader_flood_wait_seconds_total{account=\"main\",method=\"getHistory\"} 31\n\
                    kuryer_reader_flood_waits_total{account=\"main\",method=\"resolve\"} 1\n";
        let w = flood_waits(text);
        assert_eq!(
            w["main"],
            FloodWaits {
                waits: 3.0,
                seconds: 31.0
            }
        );
        let a = Snapshot {
            flood_waits: w,
            ..Snapshot::default()
        };
        let b = Snapshot {
            flood_waits: flood_waits(
                "kuryer_reader_flood_waits_total{account=\"main\",method=\"join\"} 4\n",
            ),
            ..Snapshot::default()
        };
        assert_eq!(flood_waits_of_all([&a, &b])["main"].waits, 7.0);
    }

    #[test]
    fn a_snapshot_survives_its_json_and_tolerates_missing_fields() {
        let s = Snapshot {
            queued: 7,
            held_deliveries: 3,
            ..Snapshot::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(Snapshot::read(&v), Some(s));
        let older = serde_json::json!({"queued": 1});
        assert_eq!(Snapshot::read(&older).unwrap().queued, 1);
        assert_eq!(Snapshot::read(&serde_json::json!("queued")), None);
    }
}
