//! The update loop's chats at work, kept across `getUpdates` calls: each
//! chat's updates handled in order, one at a time, at most
//! [`CHATS_AT_ONCE`] chats at once, while the loop goes on fetching. One
//! chat's slow command (an `/add` of many names, each a `getChat`) holds no
//! other chat's next update: that update comes in the next batch, fetched
//! while the slow one is still at work.
//!
//! An update not yet handled is not confirmed: Telegram's `offset` confirms
//! every update below it (<https://core.telegram.org/bots/api#getupdates>),
//! so the offset stays at the lowest update seen and not handled, and what
//! was handled above it is remembered and skipped when Telegram sends it
//! again (an unconfirmed update comes back in each answer).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;

use super::update_loop::Item;

/// The most chats whose updates are handled at once.
pub(super) const CHATS_AT_ONCE: usize = 32;

/// The most updates of one chat kept waiting behind the one at work; the
/// chat's later ones are left unconfirmed and taken when Telegram sends
/// them again. (A `getUpdates` answer holds at most 100 updates from the
/// offset, which stays below the lowest unhandled one: that bounds what all
/// chats keep together.)
const QUEUED_PER_CHAT: usize = 20;

/// Handles one update to the end: `true` once it is handled (its effect
/// durable, or it set aside as a dead letter), `false` when told to stop
/// first. Its retries are its own: a failing update holds its chat only.
pub(super) type HandleOne = Box<dyn Fn(Item) -> LocalBoxFuture<'static, bool>>;

/// What one handled update gives back: its chat, its id, whether handled.
type Finished = (i64, i64, bool);

/// The chats at work and what is known of the updates seen.
pub(super) struct ChatWork {
    handle_one: HandleOne,
    /// Updates waiting, per chat (behind the chat's one at work, if any).
    queues: HashMap<i64, VecDeque<Item>>,
    /// Chats with an update waiting and none at work, first come first.
    ready: VecDeque<i64>,
    /// Chats with an update at work.
    busy: HashSet<i64>,
    running: FuturesUnordered<LocalBoxFuture<'static, Finished>>,
    /// Updates waiting or at work: skipped when they come again.
    taken: HashSet<i64>,
    /// Updates seen and not handled (taken, or left for a later answer):
    /// the offset never passes the lowest.
    unhandled: BTreeSet<i64>,
    /// Updates handled at or above the offset: skipped when they come again.
    done: HashSet<i64>,
    /// The highest update seen.
    highest: Option<i64>,
}

impl ChatWork {
    pub(super) fn new(handle_one: HandleOne) -> Self {
        Self {
            handle_one,
            queues: HashMap::new(),
            ready: VecDeque::new(),
            busy: HashSet::new(),
            running: FuturesUnordered::new(),
            taken: HashSet::new(),
            unhandled: BTreeSet::new(),
            done: HashSet::new(),
            highest: None,
        }
    }

    /// Takes a batch's updates: those not seen before queue behind their
    /// chat's (or are left, the chat's queue full) and chats start, up to
    /// [`CHATS_AT_ONCE`]. How many were taken.
    pub(super) fn take(&mut self, items: Vec<Item>) -> usize {
        let mut taken = 0;
        for item in items {
            let id = item.id();
            self.highest = Some(self.highest.map_or(id, |h| h.max(id)));
            if self.done.contains(&id) || self.taken.contains(&id) {
                continue;
            }
            self.unhandled.insert(id);
            let chat = item.chat();
            let queue = self.queues.entry(chat).or_default();
            // Full: this update and the chat's later ones in this answer
            // are left (the queue does not shrink while the answer is
            // read), so the chat's order holds when they come again.
            if queue.len() >= QUEUED_PER_CHAT {
                continue;
            }
            queue.push_back(item);
            self.taken.insert(id);
            taken += 1;
            if queue.len() == 1 && !self.busy.contains(&chat) {
                self.ready.push_back(chat);
            }
        }
        self.start();
        taken
    }

    /// Starts waiting chats' next updates while fewer than
    /// [`CHATS_AT_ONCE`] chats are at work.
    fn start(&mut self) {
        while self.running.len() < CHATS_AT_ONCE {
            let Some(chat) = self.ready.pop_front() else {
                return;
            };
            let Some(item) = self.queues.get_mut(&chat).and_then(VecDeque::pop_front) else {
                continue;
            };
            self.busy.insert(chat);
            let id = item.id();
            let work = (self.handle_one)(item);
            self.running
                .push(Box::pin(async move { (chat, id, work.await) }));
        }
    }

    /// Records an update's end and starts what waited for it.
    fn finished(&mut self, (chat, id, handled): Finished) {
        self.busy.remove(&chat);
        self.taken.remove(&id);
        if handled {
            self.unhandled.remove(&id);
            self.done.insert(id);
        }
        match self.queues.get(&chat) {
            Some(q) if !q.is_empty() => self.ready.push_back(chat),
            _ => {
                self.queues.remove(&chat);
            }
        }
        self.start();
    }

    /// Whether an update is waiting or at work.
    pub(super) fn is_busy(&self) -> bool {
        !self.running.is_empty() || !self.ready.is_empty()
    }

    /// Whether an update seen is not handled yet (at work, waiting, or
    /// left for Telegram to send again).
    pub(super) fn has_unhandled(&self) -> bool {
        !self.unhandled.is_empty()
    }

    /// The update through which everything seen is handled: the one below
    /// the lowest not handled, or the highest seen (`None`: nothing seen).
    /// Updates through it are forgotten: once confirmed, Telegram does not
    /// send them again.
    pub(super) fn handled_through(&mut self) -> Option<i64> {
        let through = match self.unhandled.first() {
            Some(low) => low - 1,
            None => self.highest?,
        };
        self.done.retain(|d| *d > through);
        Some(through)
    }

    /// Drives the chats at work while `f` runs; `f`'s output.
    pub(super) async fn beside<F: std::future::Future>(&mut self, f: F) -> F::Output {
        tokio::pin!(f);
        loop {
            tokio::select! {
                out = &mut f => return out,
                Some(done) = self.running.next(), if !self.running.is_empty() => self.finished(done),
            }
        }
    }

    /// Waits until an update ends or `most` has passed.
    pub(super) async fn wait_one(&mut self, most: Duration) {
        if self.running.is_empty() {
            tokio::time::sleep(most).await;
            return;
        }
        tokio::select! {
            Some(done) = self.running.next() => self.finished(done),
            () = tokio::time::sleep(most) => {}
        }
    }

    /// Lets the updates at work end (each ends at once when told to stop)
    /// and forgets everything: what was not handled comes again, to this
    /// instance or to the one that reads the bot's updates now.
    pub(super) async fn settle(&mut self) {
        self.ready.clear();
        self.queues.clear();
        while self.running.next().await.is_some() {}
        self.busy.clear();
        self.taken.clear();
        self.unhandled.clear();
        self.done.clear();
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// An update of chat `chat` (0: no chat) as Telegram sends it.
    fn item(id: i64, chat: i64) -> Item {
        let raw = format!(
            r#"{{"ok":true,"result":[{{"update_id":{id},"message":{{"message_id":{id},"date":1,
            "chat":{{"id":{chat},"type":"private","first_name":"u"}},"text":"/help"}}}}]}}"#
        );
        super::super::update_loop::salvage(&raw)
            .expect("read")
            .pop()
            .expect("one")
    }

    /// Work whose updates end when the test says: a started update's id is
    /// recorded, and it ends once its id is in `release`.
    struct Gate {
        started: Rc<RefCell<Vec<i64>>>,
        release: Rc<RefCell<HashSet<i64>>>,
    }

    fn gated() -> (ChatWork, Gate) {
        let started = Rc::new(RefCell::new(Vec::new()));
        let release = Rc::new(RefCell::new(HashSet::new()));
        let (s, r) = (started.clone(), release.clone());
        let work = ChatWork::new(Box::new(move |item: Item| {
            let (s, r) = (s.clone(), r.clone());
            Box::pin(async move {
                let id = item.id();
                s.borrow_mut().push(id);
                while !r.borrow().contains(&id) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                true
            })
        }));
        (work, Gate { started, release })
    }

    async fn settle_a_moment(work: &mut ChatWork) {
        work.beside(tokio::time::sleep(Duration::from_millis(20)))
            .await;
    }

    #[tokio::test]
    async fn a_slow_chat_holds_neither_other_chats_nor_their_confirmation_past_it() {
        let (mut work, gate) = gated();
        // Chat 1's update 10 is slow; chat 2's 11 arrives with it, 12 later.
        work.take(vec![item(10, 1), item(11, 2)]);
        gate.release.borrow_mut().insert(11);
        settle_a_moment(&mut work).await;
        // A later answer holds 10 and 11 again (10 unconfirmed) and 12.
        assert_eq!(work.handled_through(), Some(9));
        assert_eq!(work.take(vec![item(10, 1), item(11, 2), item(12, 2)]), 1);
        gate.release.borrow_mut().insert(12);
        settle_a_moment(&mut work).await;
        assert_eq!(*gate.started.borrow(), vec![10, 11, 12]);
        // 11 and 12 are handled, but 10 is not: the offset stays at 10.
        assert_eq!(work.handled_through(), Some(9));
        assert!(work.has_unhandled());
        gate.release.borrow_mut().insert(10);
        settle_a_moment(&mut work).await;
        assert_eq!(work.handled_through(), Some(12));
        assert!(!work.has_unhandled() && !work.is_busy());
    }

    #[tokio::test]
    async fn a_chats_updates_go_one_at_a_time_in_order_and_a_full_queue_leaves_the_rest() {
        let (mut work, gate) = gated();
        let first: Vec<Item> = (0..=QUEUED_PER_CHAT as i64)
            .map(|i| item(100 + i, 7))
            .collect();
        // One more than the queue holds: the last is left, unconfirmed.
        assert_eq!(work.take(first), QUEUED_PER_CHAT);
        settle_a_moment(&mut work).await;
        assert_eq!(*gate.started.borrow(), vec![100]);
        gate.release.borrow_mut().insert(100);
        settle_a_moment(&mut work).await;
        assert_eq!(*gate.started.borrow(), vec![100, 101]);
        assert_eq!(work.handled_through(), Some(100));
        // Sent again, the left one is taken now, behind the chat's others.
        let again: Vec<Item> = (1..=QUEUED_PER_CHAT as i64 + 1)
            .map(|i| item(100 + i, 7))
            .collect();
        assert_eq!(work.take(again), 2);
        gate.release
            .borrow_mut()
            .extend(101..=100 + QUEUED_PER_CHAT as i64 + 1);
        settle_a_moment(&mut work).await;
        let want: Vec<i64> = (100..=100 + QUEUED_PER_CHAT as i64 + 1).collect();
        assert_eq!(*gate.started.borrow(), want);
        assert_eq!(
            work.handled_through(),
            Some(100 + QUEUED_PER_CHAT as i64 + 1)
        );
    }

    #[tokio::test]
    async fn at_most_chats_at_once_are_at_work() {
        let (mut work, gate) = gated();
        let many: Vec<Item> = (0..CHATS_AT_ONCE as i64 + 5)
            .map(|i| item(1_000 + i, 50 + i))
            .collect();
        work.take(many);
        settle_a_moment(&mut work).await;
        assert_eq!(gate.started.borrow().len(), CHATS_AT_ONCE);
        gate.release.borrow_mut().insert(1_000);
        settle_a_moment(&mut work).await;
        assert_eq!(gate.started.borrow().len(), CHATS_AT_ONCE + 1);
    }
}
