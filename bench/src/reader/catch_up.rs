//! The catch-up: posts published while the pipeline is down, more than two
//! history pages a channel, and the restart that must read every one, in
//! order, counting the calls it made against the channels with something new
//! and against the others.

use std::time::{Duration, Instant};

use kuryer_sim::mtproto::FloodLimit;

use super::{Bench, Running, delta, pages_by_channel, snapshot};
use crate::reader_observer::{out_of_order, wait_recorded};
use crate::reader_result::{CatchUp, ReaderResult};

impl Bench<'_> {
    /// With the pipeline down, publishes on the catch-up channels, starts it again and measures until they are recorded; returns the restarted pipeline.
    pub(super) async fn catch_up(&self, out: &mut ReaderResult) -> anyhow::Result<Running> {
        let spec = self.spec;
        let world = &self.world;
        let n = spec.catch_up_channels.min(spec.channels);
        let n_channels = n as usize;
        let mut keys = Vec::with_capacity((n * spec.catch_up_posts) as usize);
        for row in 1..=i64::from(n) {
            let ch = world.channels[(row - 1) as usize];
            for p in 0..spec.catch_up_posts {
                let id = world.dc.publish_text(ch, &format!("While down {p}"));
                keys.push((row, id));
            }
        }
        if let Some(max_calls) = spec.catch_up_history_limit {
            world.dc.set_flood_limit(
                "messages.getHistory",
                Some(FloodLimit {
                    max_calls,
                    per: Duration::from_secs(1),
                }),
            );
        }
        let c0 = snapshot(world);
        let p0 = pages_by_channel(world);
        let sent0 = self.bot_api.stats().await?.messages_received;
        let t0 = Instant::now();
        let again = self.start().await?;
        // Every channel's first read after the start waits for its turn in
        // its account's getHistory pace, and a channel with posts waiting
        // needs a page a hundred and the empty answer: patience covers the
        // busiest account's pages, twice over, and two minutes.
        let pages = f64::from(spec.catch_up_posts.div_ceil(100) + 1);
        let patience =
            Duration::from_secs_f64(self.busiest() * pages / spec.history_per_second * 2.0 + 120.0);
        let recorded = wait_recorded(&self.heard, &keys, patience).await;
        let seconds = t0.elapsed().as_secs_f64();
        let c1 = snapshot(world);
        let (twice, late) = {
            let h = self.heard.lock().unwrap_or_else(|e| e.into_inner());
            (h.twice - out.duplicates, out_of_order(&h, &keys))
        };
        // One subscriber a channel: each post is sent once. Wait for the
        // sends to settle before counting them.
        let mut sent = 0;
        for _ in 0..100 {
            sent = self.bot_api.stats().await?.messages_received - sent0;
            if sent >= keys.len() as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let d = delta(&c0, &c1);
        // Pages answered on the channels posted to, and on the others.
        let p1 = pages_by_channel(world);
        let (mut new_pages, mut quiet_pages) = (0u64, 0u64);
        for (row, c) in world.channels.iter().enumerate() {
            let n = p1.get(&c.id).copied().unwrap_or(0) - p0.get(&c.id).copied().unwrap_or(0);
            if row < n_channels {
                new_pages += n;
            } else {
                quiet_pages += n;
            }
        }
        let quiet = world.channels.len().saturating_sub(n_channels);
        out.catch_up = Some(CatchUp {
            channels: n,
            out_of_order: late,
            sent,
            history_per_channel: new_pages as f64 / f64::from(n.max(1)),
            history_per_quiet_channel: if quiet == 0 {
                0.0
            } else {
                quiet_pages as f64 / quiet as f64
            },
            posts: keys.len() as u64,
            recorded,
            lost: keys.len() as u64 - recorded,
            duplicates: twice,
            seconds,
            per_s: recorded as f64 / seconds.max(1e-9),
            calls: d
                .iter()
                .map(|(m, (c, _, _))| (m.clone(), c.iter().sum()))
                .collect(),
            flood_waits: d.values().map(|v| v.1).sum(),
            calls_during_flood_wait: d.values().map(|v| v.2).sum(),
        });
        Ok(again)
    }
}
