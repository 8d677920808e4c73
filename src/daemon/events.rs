//! What the channel sources tell the daemon, acted on: channels woken and
//! started in the pipeline, and subscribers told (through the bots) of
//! look-ups that ended, protected or unreadable channels, renames.

use std::sync::Arc;

use kuryer_actors::model::ChannelRef;
use teloxide::Bot;
use teloxide::prelude::Requester;

use crate::bot::{self, channel_notices::ChannelProblem};
use crate::i18n::{Arg, Lang, Texts};
use crate::pipeline::Pipeline;
use crate::source_events::SourceEvents;
use crate::store::Store;
use crate::telegram::bot_id_of;

/// The sources' news, into the pipeline; notices go out in tasks of their
/// own, so a slow Bot API never holds up the next event.
pub(super) struct PipelineEvents {
    pub(super) pipeline: Pipeline,
    pub(super) store: Store,
    pub(super) bots: Vec<Bot>,
    pub(super) texts: Arc<Texts>,
}

impl PipelineEvents {
    /// Runs `notice` in a task of its own with the store, bots and texts.
    fn notify<F, Fut>(&self, notice: F)
    where
        F: FnOnce(Store, Vec<Bot>, Arc<Texts>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(notice(
            self.store.clone(),
            self.bots.clone(),
            self.texts.clone(),
        ));
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
        self.notify(move |store, bots, texts| async move {
            let problem = ChannelProblem::Protected;
            bot::channel_notices::tell_channel_problem(
                &store, &bots, &texts, channel_id, &name, problem,
            )
            .await;
        });
    }
    fn settled(&self, channel_id: i64, name: &str) {
        let name = name.to_owned();
        self.notify(move |store, bots, texts| async move {
            tell_resolved(&store, &bots, &texts, channel_id, &name).await;
        });
    }
    fn changed(&self) {
        self.pipeline.mirror_wake();
    }
    fn channel_problem(&self, channel_id: i64, name: &str, problem: &'static str) {
        let name = name.to_owned();
        let problem = match problem {
            crate::store::CHANNEL_PRIVATE => ChannelProblem::Private,
            crate::store::CHANNEL_BOT_REMOVED => ChannelProblem::BotRemoved,
            _ => ChannelProblem::Gone,
        };
        self.notify(move |store, bots, texts| async move {
            bot::channel_notices::tell_channel_problem(
                &store, &bots, &texts, channel_id, &name, problem,
            )
            .await;
        });
    }
    fn channel_readable(&self, channel_id: i64, name: &str) {
        let name = name.to_owned();
        self.notify(move |store, bots, texts| async move {
            bot::channel_notices::channel_resumed(&store, &bots, &texts, channel_id, &name).await;
        });
    }
    fn channel_renamed(&self, channel_id: i64, old: &str, new: Option<&str>) {
        let (old, new) = (old.to_owned(), new.map(str::to_owned));
        self.notify(move |store, bots, texts| async move {
            bot::channel_notices::channel_renamed(&store, &bots, &texts, channel_id, &old, new)
                .await;
        });
    }
}

/// The bot the user started, else the first.
fn bot_of(bots: &[Bot], bot_id: Option<i64>) -> Option<&Bot> {
    bot_id
        .and_then(|id| bots.iter().find(|b| bot_id_of(b.token()) == id))
        .or(bots.first())
}

/// Tells each subscriber who was told "still checking" how the look-up of
/// the channel ended, once and in their language. Claimed before sending:
/// a notice that fails to send is logged and counted, not retried.
async fn tell_resolved(store: &Store, bots: &[Bot], texts: &Texts, channel_id: i64, name: &str) {
    let people = match store.claim_resolve_notices(channel_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(channel_id, error = %e, "Cannot claim the resolve notices; they are sent at the next start.");
            return;
        }
    };
    for n in people {
        let Some(key) = bot::resolve_notice_key(&n.status) else {
            continue;
        };
        let lang = Lang::parse(&n.language).unwrap_or(Lang::En);
        let text = texts.get(lang, key, &[("name", Arg::S(name.to_owned()))]);
        let Some(bot) = bot_of(bots, n.bot_id) else {
            return;
        };
        let sent = bot
            .send_message(teloxide::types::ChatId(n.user), text)
            .await;
        let result = sent
            .as_ref()
            .map(|_| ())
            .map_err(|e| e as &dyn std::fmt::Display);
        crate::telemetry::events::resolve_notice(channel_id, n.user, &n.status, result);
    }
}

/// At start: the notices a stopped process settled but did not send.
pub(super) async fn tell_owed_resolve_notices(store: Store, bots: Vec<Bot>, texts: Arc<Texts>) {
    match store.channels_owing_resolve_notices().await {
        Ok(channels) => {
            for (channel_id, name) in channels {
                tell_resolved(&store, &bots, &texts, channel_id, &name).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "Cannot read the resolve notices owed."),
    }
}
