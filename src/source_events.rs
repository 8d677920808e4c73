//! What the channel sources (the reader accounts, the bots' update loops)
//! tell the daemon: posts waiting, channels resolved, problems, renames.
//!
//! A source gets its [`SourceEvents`] when it is built. The daemon builds the
//! sources before the pipeline they feed, so it hands them the sending half
//! of a [`queue`] and, once the pipeline runs, lets the [`EventInbox`]
//! deliver everything queued meanwhile and everything after: nothing is
//! wired after construction, and nothing said before the pipeline ran is
//! lost.

use std::sync::Arc;

use kuryer_actors::model::ChannelRef;
use tokio::sync::mpsc;

/// What a source tells the daemon.
pub trait SourceEvents: Send + Sync {
    /// Posts of this channel are waiting: poll it now.
    fn wake(&self, channel_id: i64);
    /// A channel was resolved: start reading it.
    fn resolved(&self, channel: ChannelRef);
    /// Posts of a protected channel were read: its subscribers not yet
    /// told are told why they cannot be forwarded.
    /// `name`: how to call the channel (`@name`).
    fn protected(&self, _channel_id: i64, _name: &str) {}
    /// The look-up of a channel added by name ended (stored: `active`,
    /// `invalid`, `private` or `not_a_channel`): those told "still
    /// checking" are told how it ended. `name`: its `@name`.
    fn settled(&self, _channel_id: i64, _name: &str) {}
    /// An edit or deletion of a source post was queued (`post_events`).
    fn changed(&self) {}
    /// The channel cannot be read (`problem`: `store::CHANNEL_PRIVATE` or
    /// `store::CHANNEL_GONE`): its subscribers are told once.
    /// `name`: how to call the channel (`@name`).
    fn channel_problem(&self, _channel_id: i64, _name: &str, _problem: &'static str) {}
    /// The channel was read: a pause for it (private, gone, our bot no
    /// longer its admin) is lifted, those told are told it resumed, and
    /// those problems may be news again. `name`: how to call the channel (`@name`).
    fn channel_readable(&self, _channel_id: i64, _name: &str) {}
    /// The channel's public name changed from `old` to `new` (None: it has
    /// none now): stored, and its subscribers are told once per new name.
    fn channel_renamed(&self, _channel_id: i64, _old: &str, _new: Option<&str>) {}
}

/// One event on its way through a [`queue`].
#[derive(Debug, Clone)]
enum SourceEvent {
    Wake(i64),
    Resolved(ChannelRef),
    Protected(i64, String),
    Settled(i64, String),
    Changed,
    Problem(i64, String, &'static str),
    Readable(i64, String),
    Renamed(i64, String, Option<String>),
}

impl SourceEvent {
    fn deliver(self, to: &dyn SourceEvents) {
        match self {
            SourceEvent::Wake(id) => to.wake(id),
            SourceEvent::Resolved(ch) => to.resolved(ch),
            SourceEvent::Protected(id, name) => to.protected(id, &name),
            SourceEvent::Settled(id, name) => to.settled(id, &name),
            SourceEvent::Changed => to.changed(),
            SourceEvent::Problem(id, name, problem) => to.channel_problem(id, &name, problem),
            SourceEvent::Readable(id, name) => to.channel_readable(id, &name),
            SourceEvent::Renamed(id, old, new) => to.channel_renamed(id, &old, new.as_deref()),
        }
    }
}

/// The sending half of a [`queue`]: what sources are built with.
///
/// Unbounded on purpose: events come at most one per Telegram update and
/// are small, the senders are synchronous callbacks inside the reader's
/// update tasks (a full queue could only drop or block them), and the
/// receiving side does no I/O of its own (it hands each event to actors or
/// to a spawned task), so it keeps up.
#[derive(Clone)]
pub struct QueuedEvents(mpsc::UnboundedSender<SourceEvent>);

impl QueuedEvents {
    fn send(&self, event: SourceEvent) {
        // The inbox is gone only at shutdown; an event then has no one to
        // act on it anyway.
        let _ = self.0.send(event);
    }
}

impl SourceEvents for QueuedEvents {
    fn wake(&self, channel_id: i64) {
        self.send(SourceEvent::Wake(channel_id));
    }
    fn resolved(&self, channel: ChannelRef) {
        self.send(SourceEvent::Resolved(channel));
    }
    fn protected(&self, channel_id: i64, name: &str) {
        self.send(SourceEvent::Protected(channel_id, name.to_owned()));
    }
    fn settled(&self, channel_id: i64, name: &str) {
        self.send(SourceEvent::Settled(channel_id, name.to_owned()));
    }
    fn changed(&self) {
        self.send(SourceEvent::Changed);
    }
    fn channel_problem(&self, channel_id: i64, name: &str, problem: &'static str) {
        self.send(SourceEvent::Problem(channel_id, name.to_owned(), problem));
    }
    fn channel_readable(&self, channel_id: i64, name: &str) {
        self.send(SourceEvent::Readable(channel_id, name.to_owned()));
    }
    fn channel_renamed(&self, channel_id: i64, old: &str, new: Option<&str>) {
        self.send(SourceEvent::Renamed(
            channel_id,
            old.to_owned(),
            new.map(str::to_owned),
        ));
    }
}

/// The receiving half of a [`queue`].
pub struct EventInbox(mpsc::UnboundedReceiver<SourceEvent>);

impl EventInbox {
    /// Hands every event, those queued so far first, to `to`, until every
    /// sender is gone.
    pub async fn deliver(mut self, to: Arc<dyn SourceEvents>) {
        while let Some(event) = self.0.recv().await {
            event.deliver(to.as_ref());
        }
    }
}

/// A queue of events: the sources are built with the first half, the
/// second delivers to whoever acts on them once that exists.
pub fn queue() -> (Arc<QueuedEvents>, EventInbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(QueuedEvents(tx)), EventInbox(rx))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Heard(Mutex<Vec<String>>);

    impl SourceEvents for Heard {
        fn wake(&self, channel_id: i64) {
            self.0.lock().unwrap().push(format!("wake {channel_id}"));
        }
        fn resolved(&self, channel: ChannelRef) {
            self.0
                .lock()
                .unwrap()
                .push(format!("resolved {}", channel.channel_id));
        }
        fn channel_renamed(&self, channel_id: i64, old: &str, new: Option<&str>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("renamed {channel_id} {old} {new:?}"));
        }
    }

    #[tokio::test]
    async fn events_said_before_anyone_listens_are_delivered_in_order() {
        let (events, inbox) = queue();
        events.wake(7);
        events.channel_renamed(7, "@old", Some("new"));
        events.wake(8);
        let heard = Arc::new(Heard::default());
        drop(events);
        inbox.deliver(heard.clone()).await;
        assert_eq!(
            *heard.0.lock().unwrap(),
            ["wake 7", "renamed 7 @old Some(\"new\")", "wake 8"]
        );
    }
}
