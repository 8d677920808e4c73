//! Pollers held back until their channel's owed deliveries are queued (so
//! those stay ahead of its newer posts), and the resume's progress read
//! off them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use actix::prelude::*;
use kuryer_actors::channel_supervisor::{ChannelSupervisor, StartChannel};
use kuryer_actors::model::ChannelRef;

/// Pollers held back until their channel's owed deliveries are queued.
#[derive(Default)]
pub struct PollerGate {
    /// Held channel → the channel to start when released (if known).
    held: Mutex<BTreeMap<i64, Option<ChannelRef>>>,
}

impl PollerGate {
    /// Starts `channel`'s poller now, or when its channel is released.
    pub fn start(&self, supervisor: &Addr<ChannelSupervisor>, channel: ChannelRef) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(&channel.channel_id) {
            Some(slot) => *slot = Some(channel),
            None => supervisor.do_send(StartChannel(channel)),
        }
    }

    pub(super) fn hold(&self, channels: impl IntoIterator<Item = ChannelRef>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for ch in channels {
            held.insert(ch.channel_id, Some(ch));
        }
    }

    /// Starts the held channels whose id is below `below` (all: `None`).
    pub(super) fn release(&self, supervisor: &Addr<ChannelSupervisor>, below: Option<i64>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let rest = match below {
            Some(id) => held.split_off(&id),
            None => BTreeMap::new(),
        };
        for ch in std::mem::replace(&mut *held, rest).into_values().flatten() {
            supervisor.do_send(StartChannel(ch));
        }
    }

    /// Starts the held channels among `ids` that `keep` still wants.
    pub(super) fn release_ids(
        &self,
        supervisor: &Addr<ChannelSupervisor>,
        ids: &[i64],
        keep: impl Fn(i64) -> bool,
    ) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if let Some(Some(ch)) = held.remove(id)
                && keep(*id)
            {
                supervisor.do_send(StartChannel(ch));
            }
        }
    }

    /// Forgets held channels (their lease is gone): never started.
    pub fn forget(&self, ids: &[i64]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            held.remove(id);
        }
    }

    /// Channels held back now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The start-up resume's progress, in channels: each channel with owed
/// deliveries has its poller held back until the resume's stream is past
/// it ([`PollerGate`]), so the held count going down is the progress.
/// Runs until `done`.
pub(super) fn watch_resume(
    gate: std::sync::Arc<PollerGate>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    actix_rt::spawn(async move {
        let mut progress: Option<(crate::progress::Progress, u64)> = None;
        loop {
            let held = gate.held() as u64;
            if progress.is_none() && held > 0 {
                progress = Some((
                    crate::progress::Progress::new("resuming channels", held),
                    held,
                ));
            }
            if let Some((p, total)) = progress.as_mut() {
                p.set(total.saturating_sub(held));
            }
            if done.load(Ordering::Relaxed) {
                if let Some((p, _)) = progress.as_mut() {
                    p.finish();
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
