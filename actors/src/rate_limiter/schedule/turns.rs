//! A lane's ready chats and whose turn is next. Turns go in rounds, and in
//! a round every person with a ready chat (the subscriber the delivery is
//! for, who owns its destination) gets one turn, however many channels and
//! destinations they have: a user with a few always-busy channels fanning
//! out to many groups takes one turn in a round, not one per channel, so
//! cannot take most of the bot from everyone else. Within a round the
//! people take turns round-robin over the channels of their next chats, so
//! a channel fanning out to 5,000 people still cannot starve one fanning
//! out to ten; within a person, their channels take turns.

use std::collections::{HashMap, HashSet, VecDeque};

/// One person's ready chats: their channels in round-robin order, the
/// ready chats of each.
#[derive(Default)]
struct Person {
    rr: VecDeque<i64>,
    chats: HashMap<i64, VecDeque<i64>>,
}

/// The ready chats of one lane, in turn order.
///
/// Every person with a ready chat is in exactly one place: waiting in this
/// round (under the channel of their next chat) or in `next`.
#[derive(Default)]
pub(super) struct Turns {
    /// This round's channels, in round-robin order.
    rr: VecDeque<i64>,
    /// This round's people still to have their turn, per channel.
    round: HashMap<i64, VecDeque<i64>>,
    /// People who had their turn this round.
    served: HashSet<i64>,
    /// People waiting for the next round, in the order they got there.
    next: VecDeque<i64>,
    people: HashMap<i64, Person>,
}

impl Turns {
    /// True when no chat is ready.
    pub(super) fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Lists `chat` as ready, for `person`, under `channel` (those of the
    /// chat's oldest queued delivery), behind what they already have. A
    /// person who already had their turn this round waits for the next.
    pub(super) fn push(&mut self, person: i64, channel: i64, chat: i64) {
        let p = self.people.entry(person).or_default();
        let arriving = p.rr.is_empty();
        let list = p.chats.entry(channel).or_default();
        if list.is_empty() {
            p.rr.push_back(channel);
        }
        list.push_back(chat);
        if arriving {
            if self.served.contains(&person) {
                self.next.push_back(person);
            } else {
                self.enter(person, channel);
            }
        }
    }

    /// The next ready chat: the next channel of this round, its next
    /// person, that person's next channel's oldest ready chat. When the
    /// round is over a new one starts with everyone still waiting.
    pub(super) fn pop(&mut self) -> Option<i64> {
        if self.rr.is_empty() {
            self.served.clear();
            for person in std::mem::take(&mut self.next) {
                let channel = *self.people[&person]
                    .rr
                    .front()
                    .expect("waiting people have channels");
                self.enter(person, channel);
            }
        }
        let channel = self.rr.pop_front()?;
        let waiting = self.round.get_mut(&channel).expect("rr and round agree");
        let person = waiting.pop_front().expect("listed channels have people");
        if waiting.is_empty() {
            self.round.remove(&channel);
        } else {
            self.rr.push_back(channel);
        }
        self.served.insert(person);
        let p = self
            .people
            .get_mut(&person)
            .expect("waiting people are known");
        let channel = p.rr.pop_front().expect("waiting people have channels");
        let list = p.chats.get_mut(&channel).expect("rr and chats agree");
        let chat = list.pop_front().expect("listed channels have ready chats");
        if list.is_empty() {
            p.chats.remove(&channel);
        } else {
            p.rr.push_back(channel);
        }
        if p.rr.is_empty() {
            self.people.remove(&person);
        } else {
            self.next.push_back(person);
        }
        Some(chat)
    }

    /// Forgets every ready chat.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// `person` waits for their turn in this round under `channel`.
    fn enter(&mut self, person: i64, channel: i64) {
        let waiting = self.round.entry(channel).or_default();
        if waiting.is_empty() {
            self.rr.push_back(channel);
        }
        waiting.push_back(person);
    }
}
