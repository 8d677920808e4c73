//! The deliveries this process holds, so that a sweep of the database for
//! deliveries without an outcome never queues one a second time.
//!
//! A delivery is *held* from the moment it is claimed (by the registry when
//! a post fans out, or by a resume or sweep that read it from the database)
//! until its final outcome is committed (`settle`, called once the DbWriter's
//! write succeeded) or it is let go without an outcome (`release`: its bot's
//! token was revoked, so the database keeps owing it). Every delivery enters
//! the rate limiter through a claim, and a claim of a held delivery fails:
//! no delivery is ever queued twice in one process.
//!
//! Held alone is not enough for a sweep: it reads the database in a snapshot
//! taken at some moment, and a delivery whose outcome was committed just
//! after that moment looks owed in the snapshot yet is no longer held. So
//! while a sweep runs, settled keys are remembered with the sequence number
//! of their settlement, and a sweep's claim also fails for a key settled at
//! or after the sweep began ([`InFlight::begin_sweep`]). A key settled
//! before the sweep began has its outcome in the sweep's snapshot, so the
//! sweep never sees it as owed.
//!
//! Posts are tracked too: a post is *handled* once every delivery of it
//! that the database owes was held by this process at some point (fanned
//! out, or read by a resume or sweep). Its deliveries then either have a
//! committed outcome or are held, so a sweep need not read it again; the
//! periodic sweep reads only posts not handled, which keeps it cheap.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::model::{Delivery, DeliveryRecord, DeliveryStatus};

/// (subscription id, the post's first message id): one delivery. A
/// subscription belongs to one channel, so this is unique.
pub type DeliveryKey = (i64, i32);

/// (channel id, first message id): one post.
pub type PostKey = (i64, i32);

/// A sweep in progress, from [`InFlight::begin_sweep`]; hand it back to
/// [`InFlight::end_sweep`].
#[derive(Debug)]
pub struct SweepMark(u64);

#[derive(Default)]
struct Inner {
    held: HashSet<DeliveryKey>,
    /// Settlement sequence numbers of keys settled while a sweep ran.
    settled: HashMap<DeliveryKey, u64>,
    seq: u64,
    /// Marks of the sweeps running (a mark may repeat).
    sweeps: Vec<u64>,
    handled: HashMap<PostKey, DateTime<Utc>>,
}

/// The shared set; cheap to query under its lock (a hash look-up a delivery).
pub struct InFlight {
    inner: Mutex<Inner>,
    /// With `on_ambiguous = "retry"` an `ambiguous` row is not an outcome:
    /// the delivery is re-queued and stays held.
    retry_ambiguous: bool,
}

impl InFlight {
    /// An empty set. `retry_ambiguous`: an `ambiguous` row does not settle
    /// its delivery (it is sent again).
    pub fn new(retry_ambiguous: bool) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            retry_ambiguous,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data stays consistent whatever panicked while holding it
        // (every method finishes its updates before it can panic).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the deliveries of a post being fanned out: keeps those not
    /// held already (and holds them), and marks the post handled.
    pub fn claim_fan_out(&self, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let mut g = self.lock();
        if let Some(d) = deliveries.first() {
            g.handled
                .insert((d.post.channel_id, d.post.first_id()), d.post.detected_at);
        }
        deliveries
            .into_iter()
            .filter(|d| g.held.insert(key_of(d)))
            .collect()
    }

    /// The post is not handled after all: some of its deliveries were held
    /// (quiet hours) and stay owed, so the sweep must read it again.
    pub fn unmark_handled(&self, post: PostKey) {
        self.lock().handled.remove(&post);
    }

    /// Starts a sweep: from now on, settled keys are remembered until it ends.
    /// Take the mark *before* the sweep's database snapshot.
    pub fn begin_sweep(&self) -> SweepMark {
        let mut g = self.lock();
        let mark = g.seq;
        g.sweeps.push(mark);
        SweepMark(mark)
    }

    /// A sweep's claim of deliveries it read as owed: keeps those neither
    /// held nor settled since the sweep began (and holds them).
    pub fn claim_swept(&self, mark: &SweepMark, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let mut g = self.lock();
        deliveries
            .into_iter()
            .filter(|d| {
                let k = key_of(d);
                if g.settled.get(&k).is_some_and(|at| *at >= mark.0) {
                    return false;
                }
                g.held.insert(k)
            })
            .collect()
    }

    /// Ends a sweep and forgets the settlements no running sweep needs.
    pub fn end_sweep(&self, mark: SweepMark) {
        let mut g = self.lock();
        if let Some(i) = g.sweeps.iter().position(|m| *m == mark.0) {
            g.sweeps.swap_remove(i);
        }
        match g.sweeps.iter().min().copied() {
            None => g.settled.clear(),
            Some(oldest) => g.settled.retain(|_, at| *at >= oldest),
        }
    }

    /// The key and status of each row, as [`InFlight::settle`] takes them.
    pub fn settlement(rows: &[DeliveryRecord]) -> Vec<(DeliveryKey, DeliveryStatus)> {
        rows.iter()
            .map(|r| {
                let msg = i32::try_from(r.source_message_id).unwrap_or(i32::MAX);
                ((r.subscription_id, msg), r.status)
            })
            .collect()
    }

    /// Rows whose write committed (see [`InFlight::settlement`]): their
    /// deliveries are no longer held.
    pub fn settle(&self, rows: &[(DeliveryKey, DeliveryStatus)]) {
        let mut g = self.lock();
        g.seq += 1;
        let seq = g.seq;
        let remember = !g.sweeps.is_empty();
        for &(k, status) in rows {
            if self.retry_ambiguous && status == DeliveryStatus::Ambiguous {
                continue;
            }
            g.held.remove(&k);
            if remember {
                g.settled.insert(k, seq);
            }
        }
    }

    /// Deliveries dropped with no outcome (the database still owes them).
    pub fn release<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        let mut g = self.lock();
        for d in deliveries {
            g.held.remove(&key_of(d));
        }
    }

    /// True when this delivery is held.
    pub fn is_held(&self, key: DeliveryKey) -> bool {
        self.lock().held.contains(&key)
    }

    /// Marks posts handled (a resume or sweep read all their owed deliveries).
    pub fn mark_handled(&self, posts: impl IntoIterator<Item = (PostKey, DateTime<Utc>)>) {
        let mut g = self.lock();
        g.handled.extend(posts);
    }

    /// True when the post is handled.
    pub fn is_handled(&self, post: PostKey) -> bool {
        self.lock().handled.contains_key(&post)
    }

    /// Forgets handled posts detected before `before` (out of every window).
    pub fn forget_handled_before(&self, before: DateTime<Utc>) {
        self.lock().handled.retain(|_, at| *at >= before);
    }

    /// Deliveries held now.
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }
}

fn key_of(d: &Delivery) -> DeliveryKey {
    (d.sub.subscription_id, d.post.first_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DestinationKind;
    use crate::testing::delivery;

    fn row(d: &Delivery, status: DeliveryStatus) -> (DeliveryKey, DeliveryStatus) {
        let r = DeliveryRecord {
            subscription_id: d.sub.subscription_id,
            channel_id: d.post.channel_id,
            source_message_id: i64::from(d.post.first_id()),
            post_day: d.post.post_day(),
            destination_chat_id: d.sub.chat_id,
            sent_message_id: None,
            status,
            error: None,
            sent_message_ids: None,
            backfill: false,
        };
        InFlight::settlement(&[r])[0]
    }

    #[test]
    fn a_held_delivery_is_claimed_once() {
        let f = InFlight::new(true);
        let a = delivery(1, 10, DestinationKind::Private);
        assert_eq!(f.claim_fan_out(vec![a.clone()]).len(), 1);
        assert!(f.is_handled((1, 1)));
        let m = f.begin_sweep();
        assert!(f.claim_swept(&m, vec![a.clone()]).is_empty());
        f.end_sweep(m);
        // An ambiguous row under "retry" does not settle it …
        f.settle(&[row(&a, DeliveryStatus::Ambiguous)]);
        assert!(f.is_held((10, 1)));
        // … its final outcome does.
        f.settle(&[row(&a, DeliveryStatus::Sent)]);
        assert_eq!(f.held(), 0);
    }

    #[test]
    fn a_sweep_never_claims_what_settled_after_it_began() {
        let f = InFlight::new(true);
        let a = delivery(1, 10, DestinationKind::Private);
        let b = delivery(1, 11, DestinationKind::Private);
        f.claim_fan_out(vec![a.clone()]);
        let m = f.begin_sweep();
        // `a` commits after the sweep's snapshot may have been taken: the
        // snapshot can still show it owed, and the sweep must not take it.
        f.settle(&[row(&a, DeliveryStatus::Sent)]);
        let got = f.claim_swept(&m, vec![a.clone(), b.clone()]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sub.subscription_id, 11);
        f.end_sweep(m);
        // A later sweep's snapshot has `a`'s outcome: nothing to remember.
        let m = f.begin_sweep();
        assert_eq!(f.claim_swept(&m, vec![a]).len(), 1);
        f.end_sweep(m);
    }

    #[test]
    fn a_released_delivery_can_be_claimed_again() {
        let f = InFlight::new(false);
        let a = delivery(1, 10, DestinationKind::Private);
        f.claim_fan_out(vec![a.clone()]);
        f.release([&a]);
        let m = f.begin_sweep();
        assert_eq!(f.claim_swept(&m, vec![a]).len(), 1);
        f.end_sweep(m);
    }
}
