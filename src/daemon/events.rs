//! What the channel sources tell the daemon, acted on: channels woken and
//! started in the pipeline, and subscribers told (through the rate
//! limiter, like every delivery) of look-ups that ended, protected or
//! unreadable channels, renames.
//!
//! A channel's state notices are debounced: the first problem, "readable
//! again" or rename of a channel opens a window (`delivery.notice_debounce_ms`);
//! what else is said of that channel meanwhile replaces it; when the window
//! ends the channel's final state is acted on once — a rename back and
//! forth tells nothing, a name changed three times tells the last one, a
//! channel made private and public again tells nothing. So an owner who
//! toggles a channel sends each subscriber at most one notice a window,
//! however often they toggle, and a channel's notices are acted on one
//! window at a time, in order.

use kuryer_actors::telemetry::events::telegram_id;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuryer_actors::model::{ChannelRef, DestinationKind, NoticeTarget};

use crate::bot::{self, channel_notices::ChannelProblem};
use crate::i18n::{Arg, Lang, Texts};
use crate::pipeline::{Notice, Notices, Pipeline};
use crate::source_events::SourceEvents;
use crate::store::Store;

/// The sources' news, into the pipeline; notices go out in tasks of their
/// own, so a slow Bot API never holds up the next event.
pub(super) struct PipelineEvents {
    pipeline: Pipeline,
    store: Store,
    texts: Arc<Texts>,
    /// The channels whose debounce window is open, and what they will act on.
    pending: Arc<Mutex<HashMap<i64, Pending>>>,
    window: Duration,
}

/// What a channel's window ends on (`None`: nothing said of it).
#[derive(Debug, Default)]
struct Pending {
    /// Readable or not, as last said, and how to call the channel then.
    state: Option<(String, Option<ChannelProblem>)>,
    /// The name before the window's first rename, and the last new one.
    rename: Option<(String, Option<String>)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.state.is_none() && self.rename.is_none()
    }
}

impl PipelineEvents {
    pub(super) fn new(
        pipeline: Pipeline,
        store: Store,
        texts: Arc<Texts>,
        window: Duration,
    ) -> Self {
        Self {
            pipeline,
            store,
            texts,
            pending: Arc::default(),
            window,
        }
    }

    /// Runs `notice` in a task of its own with the store, the limiter's
    /// door and the texts.
    fn notify<F, Fut>(&self, notice: F)
    where
        F: FnOnce(Store, Notices, Arc<Texts>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(notice(
            self.store.clone(),
            self.pipeline.notices(),
            self.texts.clone(),
        ));
    }

    /// Records what was said of `channel_id` for its window, opening one
    /// (and the task that ends it) when none is open.
    fn debounce(&self, channel_id: i64, said: impl FnOnce(&mut Pending)) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let open = map.contains_key(&channel_id);
        said(map.entry(channel_id).or_default());
        if open {
            tracing::debug!(
                channel_id = telegram_id(channel_id),
                channel_key = channel_id,
                "Channel notice debounced: its window is open."
            );
            return;
        }
        drop(map);
        let (pending, window) = (self.pending.clone(), self.window);
        self.notify(move |store, notices, texts| async move {
            loop {
                tokio::time::sleep(window).await;
                // The entry stays while acting: what is said meanwhile
                // waits for the next window, so a channel's notices are
                // acted on one window at a time, in order.
                let now = {
                    let mut map = pending.lock().unwrap_or_else(|e| e.into_inner());
                    std::mem::take(map.entry(channel_id).or_default())
                };
                act(&store, &notices, &texts, channel_id, now).await;
                let mut map = pending.lock().unwrap_or_else(|e| e.into_inner());
                if map.get(&channel_id).is_none_or(Pending::is_empty) {
                    map.remove(&channel_id);
                    return;
                }
            }
        });
    }
}

/// A channel's window ended: its final state acted on (a pause or its
/// end, with their notices), then its final name told.
async fn act(store: &Store, notices: &Notices, texts: &Texts, channel_id: i64, p: Pending) {
    match p.state {
        Some((name, Some(problem))) => {
            bot::channel_notices::tell_channel_problem(
                store, notices, texts, channel_id, &name, problem,
            )
            .await;
        }
        Some((name, None)) => {
            bot::channel_notices::channel_resumed(store, notices, texts, channel_id, &name).await;
        }
        None => {}
    }
    if let Some((old, new)) = p.rename {
        // Renamed back to where it started: nothing to tell.
        let back = match &new {
            Some(n) => old
                .strip_prefix('@')
                .is_some_and(|o| o.eq_ignore_ascii_case(n)),
            None => !old.starts_with('@'),
        };
        if back {
            tracing::debug!(channel_id = telegram_id(channel_id), channel_key = channel_id, name = %old, "Renamed and back within the debounce window; nothing told.");
            if let Err(e) = store.channel_renamed(channel_id, new.as_deref()).await {
                tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot store the channel's name.");
            }
        } else {
            bot::channel_notices::channel_renamed(store, notices, texts, channel_id, &old, new)
                .await;
        }
    }
}

impl SourceEvents for PipelineEvents {
    fn wake(&self, channel_id: i64) {
        self.pipeline.wake(channel_id);
    }
    fn resolved(&self, channel: ChannelRef) {
        self.pipeline.start_channel(channel);
    }
    fn protected(&self, channel_id: i64, name: &str) {
        let name = name.to_owned();
        self.notify(move |store, notices, texts| async move {
            let problem = ChannelProblem::Protected;
            bot::channel_notices::tell_channel_problem(
                &store, &notices, &texts, channel_id, &name, problem,
            )
            .await;
        });
    }
    fn settled(&self, channel_id: i64, name: &str) {
        let name = name.to_owned();
        self.notify(move |store, notices, texts| async move {
            tell_resolved(&store, &notices, &texts, channel_id, &name).await;
        });
    }
    fn changed(&self) {
        self.pipeline.mirror_wake();
    }
    fn channel_problem(&self, channel_id: i64, name: &str, problem: &'static str) {
        let problem = match problem {
            crate::store::CHANNEL_PRIVATE => ChannelProblem::Private,
            crate::store::CHANNEL_BOT_REMOVED => ChannelProblem::BotRemoved,
            _ => ChannelProblem::Gone,
        };
        let name = name.to_owned();
        self.debounce(channel_id, |p| p.state = Some((name, Some(problem))));
    }
    fn channel_readable(&self, channel_id: i64, name: &str) {
        let name = name.to_owned();
        self.debounce(channel_id, |p| p.state = Some((name, None)));
    }
    fn channel_renamed(&self, channel_id: i64, old: &str, new: Option<&str>) {
        // Stored and told at the window's end, from the first old name to
        // the last new one (in order: one window of a channel at a time).
        let (old, new) = (old.to_owned(), new.map(str::to_owned));
        self.debounce(channel_id, |p| {
            let first = p.rename.take().map_or(old, |(first, _)| first);
            p.rename = Some((first, new));
        });
    }
}

/// Tells each subscriber who was told "still checking" how the look-up of
/// the channel ended, once and in their language. Claimed before sending:
/// a notice that fails to send is logged and counted, not retried.
async fn tell_resolved(
    store: &Store,
    notices: &Notices,
    texts: &Texts,
    channel_id: i64,
    name: &str,
) {
    let people = match store.claim_resolve_notices(channel_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel_id = telegram_id(channel_id), channel_key = channel_id, error = %e, "Cannot claim the resolve notices; they are sent at the next start.");
            return;
        }
    };
    let mut told = Vec::new();
    let mut batch = Vec::new();
    for n in people {
        let Some(key) = bot::resolve_notice_key(&n.status) else {
            continue;
        };
        let lang = Lang::parse(&n.language).unwrap_or(Lang::En);
        let text = texts.get(lang, key, &[("name", Arg::S(name.to_owned()))]);
        batch.push(Notice {
            to: NoticeTarget {
                channel_id,
                subscription_id: 0,
                chat_id: n.user,
                kind: DestinationKind::Private,
                bot_id: n.bot_id,
                thread_id: None,
            },
            text,
            buttons: None,
        });
        told.push((n.user, n.status));
    }
    for ((user, status), sent) in told.into_iter().zip(notices.send_all(batch).await) {
        let result = sent
            .as_ref()
            .map(|_| ())
            .map_err(|e| e as &dyn std::fmt::Display);
        crate::telemetry::events::resolve_notice(channel_id, user, &status, result);
    }
}

/// At start: the notices a stopped process settled but did not send.
pub(super) async fn tell_owed_resolve_notices(store: Store, notices: Notices, texts: Arc<Texts>) {
    match store.channels_owing_resolve_notices().await {
        Ok(channels) => {
            for (channel_id, name) in channels {
                tell_resolved(&store, &notices, &texts, channel_id, &name).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "Cannot read the resolve notices owed."),
    }
}
