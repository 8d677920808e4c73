//! The `getUpdates` loop: updates handled chat by chat — up to 32 chats at
//! once, each chat's in order, the chats at work kept across batches
//! (`chat_work.rs`), so the loop fetches the next batch while a slow chat
//! is still at work — and each confirmed to Telegram once its effect is
//! durable or, failing for good, once it is set aside as a dead letter
//! (the offset never passes an update not handled). No update can hold the
//! loop, or another chat, for ever.

use std::time::Duration;

use kuryer_actors::backoff::Backoff;
use serde_json::Value;
use teloxide::payloads::{GetUpdates, GetUpdatesSetters};
use teloxide::requests::{JsonRequest, Payload, Request};
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::{Bot, RequestError};
use tokio::sync::watch;

use super::BotUpdates;
use super::chat_work::ChatWork;
use super::intake::handle;
use crate::bot::BotHandler;
use crate::pipeline::Pipeline;
use crate::store::{DeadUpdate, Store, StoreError};
use crate::telemetry::events;

/// Tries of an update failing with an error no retry can fix (a constraint,
/// data PostgreSQL refuses) before it becomes a dead letter. Retriable
/// errors (the database away) are retried without limit: every other update
/// would fail the same way, and Telegram keeps them 24 hours.
const NON_RETRIABLE_TRIES: u32 = 3;

/// What Telegram's answer held.
pub(super) enum Item {
    /// An update teloxide could read, and its JSON as Telegram sent it
    /// (what a channel post is comes from its fields).
    Update(Box<Update>, Option<Value>),
    /// One whose JSON teloxide could not read (the whole answer was refused,
    /// so it was read one update at a time).
    Unreadable { id: i64, raw: Value },
}

impl Item {
    pub(super) fn id(&self) -> i64 {
        match self {
            Self::Update(u, _) => i64::from(u.id.0),
            Self::Unreadable { id, .. } => *id,
        }
    }

    /// The chat whose updates are handled in order (a button's: the chat
    /// of its message); 0 for an update of no chat.
    pub(super) fn chat(&self) -> i64 {
        match self {
            Self::Update(u, _) => u.chat().map_or(0, |c| c.id.0),
            Self::Unreadable { .. } => 0,
        }
    }
}

/// Runs the update loop of one bot until `stop` turns true: one loop per
/// configured bot (a token allows one `getUpdates` consumer), each handing
/// its people's commands to that bot's `handler`.
pub async fn run_loop(
    bot: Bot,
    handler: BotHandler,
    store: Store,
    pipeline: Pipeline,
    updates: BotUpdates,
    request_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if !load_state(&store, &updates, &pipeline, &mut stop).await {
        return;
    }
    let mut update_loop = UpdateLoop {
        bot_id: crate::telegram::bot_id_of(bot.token()),
        bot,
        handler,
        store,
        pipeline,
        updates,
        stop,
        // The long poll must end before the HTTP client gives up on it
        // (teloxide does not lengthen its timeout for getUpdates).
        long_poll: request_timeout
            .saturating_sub(Duration::from_secs(3))
            .as_secs()
            .clamp(1, 25) as u32,
        offset: None,
        // Not reading until the keeper's first round takes the lease: the
        // start is no "another instance reads" (one instance alone said so).
        standing_by: true,
        backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
        // While chats are at work and nothing new came: their updates,
        // unconfirmed, make Telegram answer at once, so the loop pauses
        // between asks (short: the pause delays another chat's next update).
        idle: Backoff::new(Duration::from_millis(50), Duration::from_millis(100)),
        replays_checked: std::time::Instant::now() - Duration::from_secs(1),
    };
    update_loop.run().await;
    tracing::info!("Update loop stopped.");
}

/// Whether the loop goes on.
#[derive(PartialEq)]
enum Flow {
    Next,
    Stop,
}

/// What one `getUpdates` call gave.
enum Fetched {
    Items(Vec<Item>),
    /// Nothing to handle: ask again (after the wait already slept).
    Again,
    Stop,
}

/// One bot's update loop and its state between polls.
struct UpdateLoop {
    bot: Bot,
    bot_id: i64,
    handler: BotHandler,
    store: Store,
    pipeline: Pipeline,
    updates: BotUpdates,
    stop: watch::Receiver<bool>,
    /// The long poll's length, in seconds.
    long_poll: u32,
    /// Confirms what was handled; `None`: Telegram's confirmed offset.
    offset: Option<i32>,
    /// This instance does not hold this bot's lease (at start, until the
    /// keeper takes it; later, when another instance holds it).
    standing_by: bool,
    /// Between failed `getUpdates` calls.
    backoff: Backoff,
    /// Between asks while chats are at work and nothing new comes.
    idle: Backoff,
    /// When the dead-letter updates to replay were last looked for.
    replays_checked: std::time::Instant,
}

impl UpdateLoop {
    async fn run(&mut self) {
        let handling = Handling {
            store: self.store.clone(),
            pipeline: self.pipeline.clone(),
            updates: self.updates.clone(),
            handler: self.handler.clone(),
            stop: self.stop.clone(),
        };
        let mut work = ChatWork::new(Box::new(move |item| {
            Box::pin(handling.clone().handle_one(item))
        }));
        self.run_with(&mut work).await;
        // The updates at work end (told to stop, a retry ends at once).
        work.settle().await;
    }

    async fn run_with(&mut self, work: &mut ChatWork) {
        while !*self.stop.borrow() {
            let Some(long_poll) = self.lease_window().await else {
                // Not this instance's to read: what is at work ends, what
                // was not handled goes to the holder (never confirmed here).
                work.settle().await;
                if sleep_or_stop(&mut self.stop, Duration::from_millis(200)).await {
                    return;
                }
                continue;
            };
            // Updates an operator asked to replay go first, at most once a
            // second (one indexed query).
            if self.replays_checked.elapsed() >= Duration::from_secs(1) {
                self.replays_checked = std::time::Instant::now();
                work.beside(super::replays::replay_kept(
                    &self.store,
                    &self.pipeline,
                    &self.updates,
                    &self.handler,
                ))
                .await;
            }
            // Everything below the lowest update not handled is confirmed.
            if let Some(through) = work.handled_through() {
                self.offset = Some(next_offset(through));
            }
            // Updates not handled yet make Telegram answer at once anyway.
            let long_poll = if work.has_unhandled() { 0 } else { long_poll };
            let items = match work.beside(self.fetch(long_poll)).await {
                Fetched::Items(items) => items,
                Fetched::Again => continue,
                Fetched::Stop => return,
            };
            if self.handle_all(work, items).await == Flow::Stop {
                return;
            }
        }
    }

    /// The long poll this instance may make now (`None`: not its turn).
    /// Several instances: only the holder of this bot's lease polls, and a
    /// poll never outlives the lease (it ends a second before the local
    /// deadline), so a new holder never polls while an old one does.
    async fn lease_window(&mut self) -> Option<u32> {
        let Some(o) = &self.updates.ownership else {
            return Some(self.long_poll);
        };
        let bot_id = self.bot_id;
        if o.bot_polls_held(bot_id) {
            return None;
        }
        match o.bot_lease_left(bot_id) {
            Some(left) if left >= Duration::from_secs(2) => {
                if self.standing_by {
                    self.standing_by = false;
                    tracing::info!(bot_id, "This instance now reads the bot's updates.");
                }
                Some(self.long_poll.min((left.as_secs() - 1) as u32))
            }
            held => {
                if held.is_none() && !self.standing_by {
                    self.standing_by = true;
                    // The next holder starts from Telegram's confirmed offset.
                    self.offset = None;
                    tracing::info!(
                        bot_id,
                        "Another instance reads the bot's updates; standing by."
                    );
                }
                None
            }
        }
    }

    /// One `getUpdates` call; waits out what Telegram or a failure asks.
    async fn fetch(&mut self, long_poll: u32) -> Fetched {
        let mut payload = GetUpdates::new().timeout(long_poll).allowed_updates(vec![
            AllowedUpdate::ChannelPost,
            AllowedUpdate::EditedChannelPost,
            AllowedUpdate::MyChatMember,
            AllowedUpdate::Message,
            AllowedUpdate::CallbackQuery,
        ]);
        if let Some(o) = self.offset {
            payload = payload.offset(o);
        }
        // Each update is read as JSON first, then by teloxide: the JSON
        // tells what a channel post holds where teloxide's reading cannot.
        let req = JsonRequest::new(self.bot.clone(), RawUpdates(payload));
        let result = tokio::select! {
            r = req.send() => r,
            _ = self.stop.changed() => return Fetched::Stop,
        };
        let wait = match result {
            Ok(batch) => {
                self.backoff.reset();
                return match read_all(batch) {
                    Some(items) => Fetched::Items(items),
                    None => {
                        // Not even update ids: as unreadable as a broken
                        // answer (counted under kind "answer").
                        events::updates_answer_unreadable(0, 0, &serde_json::error::Category::Data);
                        if sleep_or_stop(&mut self.stop, self.backoff.next_delay()).await {
                            Fetched::Stop
                        } else {
                            Fetched::Again
                        }
                    }
                };
            }
            Err(RequestError::RetryAfter(s)) => s.duration(),
            Err(RequestError::InvalidJson { source, raw }) => {
                // Never log `raw` or the parser's message: both may quote
                // users' messages. Where the answer broke is enough.
                events::updates_answer_unreadable(
                    source.line(),
                    source.column(),
                    &source.classify(),
                );
                match salvage(&raw) {
                    Some(items) => return Fetched::Items(items),
                    None => self.backoff.next_delay(),
                }
            }
            Err(e) => {
                let wait = self.backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "getUpdates failed; retrying.");
                wait
            }
        };
        if sleep_or_stop(&mut self.stop, wait).await {
            Fetched::Stop
        } else {
            Fetched::Again
        }
    }

    /// Takes a batch into the chats at work and starts them; when nothing
    /// new came while chats are at work (their updates, unconfirmed, come
    /// back at once), waits for one to end or a short pause rather than
    /// asking Telegram again straight away.
    async fn handle_all(&mut self, work: &mut ChatWork, items: Vec<Item>) -> Flow {
        if work.take(items) > 0 || !work.is_busy() {
            self.idle.reset();
            return Flow::Next;
        }
        let pause = self.idle.next_delay();
        tokio::select! {
            () = work.wait_one(pause) => Flow::Next,
            _ = self.stop.changed() => Flow::Stop,
        }
    }
}

/// What the update loop's chats need to handle one update.
#[derive(Clone)]
struct Handling {
    store: Store,
    pipeline: Pipeline,
    updates: BotUpdates,
    handler: BotHandler,
    stop: watch::Receiver<bool>,
}

impl Handling {
    /// Handles `item` until it is handled or set aside (`true`), or the
    /// loop is told to stop (`false`). A failure holds this update's chat
    /// only: it is tried again after a wait (1 s, doubling to 10 s); one
    /// no retry can fix is set aside after [`NON_RETRIABLE_TRIES`] tries.
    /// Retriable failures (the database away) are retried without limit:
    /// Telegram keeps updates 24 hours.
    async fn handle_one(mut self, item: Item) -> bool {
        let id = item.id();
        let mut tries = 0;
        let mut hold = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        loop {
            let result = match &item {
                Item::Update(u, raw) => {
                    handle(
                        &self.store,
                        &self.pipeline,
                        &self.updates,
                        &self.handler,
                        u,
                        raw.as_ref(),
                    )
                    .await
                }
                Item::Unreadable { raw, .. } => unreadable(&self.store, id, raw).await,
            };
            let Err(e) = result else {
                return true;
            };
            tries += 1;
            if !e.is_retriable()
                && tries >= NON_RETRIABLE_TRIES
                && set_aside(&self.store, &item, &e).await
            {
                // Set aside: handled. The offset passes it once everything
                // below it is handled too; until then it is skipped when it
                // comes again, never handled beside its dead letter.
                return true;
            }
            let wait = hold.next_delay();
            tracing::warn!(
                update_id = id,
                tries,
                retriable = e.is_retriable(),
                retry_in_ms = wait.as_millis() as u64,
                error = %e,
                "An update could not be handled; trying it again."
            );
            if sleep_or_stop(&mut self.stop, wait).await {
                return false;
            }
        }
    }
}

/// The offset that confirms update `id`. Telegram's ids fit in 31 bits; one
/// that does not would confirm everything below the largest offset.
fn next_offset(id: i64) -> i32 {
    i32::try_from(id + 1).unwrap_or(i32::MAX)
}

/// Loads the bot-admin channels and the inbox; retries while the database
/// is away. False when told to stop first.
async fn load_state(
    store: &Store,
    updates: &BotUpdates,
    pipeline: &Pipeline,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        match (store.admin_channels().await, store.inbox_load().await) {
            (Ok(channels), Ok(inbox)) => {
                let waiting: Vec<i64> = {
                    let mut shared = updates.shared();
                    for ch in channels {
                        shared
                            .channels
                            .insert(ch.chat_id, (ch.channel_id, ch.username));
                    }
                    // Several instances read the inbox itself.
                    let inbox = if updates.ownership.is_some() {
                        &[][..]
                    } else {
                        &inbox[..]
                    };
                    for e in inbox {
                        shared
                            .buffers
                            .entry(e.channel_id)
                            .or_default()
                            .insert(e.message.id, e.message.clone());
                    }
                    shared.buffers.keys().copied().collect()
                };
                if !inbox.is_empty() {
                    tracing::info!(
                        posts = inbox.len(),
                        "Posts of bot-admin channels waiting from before the restart."
                    );
                }
                for channel_id in waiting {
                    pipeline.wake(channel_id);
                }
                return true;
            }
            (Err(e), _) | (_, Err(e)) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Could not load the bot-admin channels and inbox; retrying.");
                if sleep_or_stop(stop, wait).await {
                    return false;
                }
            }
        }
    }
}

/// `getUpdates` read as JSON: each update is then read by teloxide on its
/// own, beside the JSON it came from.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct RawUpdates(GetUpdates);

impl Payload for RawUpdates {
    type Output = Vec<Value>;
    const NAME: &'static str = GetUpdates::NAME;

    /// The long poll's length, as teloxide's own `GetUpdates` asks.
    fn timeout_hint(&self) -> Option<Duration> {
        self.0.timeout_hint()
    }
}

/// Reads an answer teloxide refused one update at a time: `None` when it is
/// not even `{"result": [...]}` with update ids.
pub(super) fn salvage(raw: &str) -> Option<Vec<Item>> {
    let v: Value = serde_json::from_str(raw).ok()?;
    read_all(v.get("result")?.as_array()?.clone())
}

/// Reads each update of an answer; `None` when one has no update id.
fn read_all(batch: Vec<Value>) -> Option<Vec<Item>> {
    let mut out = Vec::with_capacity(batch.len());
    for u in batch {
        let id = u.get("update_id")?.as_i64()?;
        // From text, not from the `Value`: teloxide reads an update's kind
        // by a borrowed key, which a `Value` cannot lend (every kind would
        // read as an error).
        out.push(match serde_json::from_str::<Update>(&u.to_string()) {
            Ok(update) => Item::Update(Box::new(update), Some(u)),
            Err(_) => Item::Unreadable { id, raw: u },
        });
    }
    Some(out)
}

/// The field that names an update's kind (`message`, `channel_post`, …),
/// never its content.
fn kind_of(raw: &Value) -> String {
    raw.as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id"))
        .map_or_else(|| "unknown".to_owned(), |k| k.chars().take(40).collect())
}

/// An update no one can read: counted by kind, kept as a dead letter, then
/// confirmed. It has no effect to record; the dead letter is its record.
pub(super) async fn unreadable(store: &Store, id: i64, raw: &Value) -> Result<(), StoreError> {
    let kind = kind_of(raw);
    let reason = format!("unparsable update of kind {kind}");
    let bytes = serde_json::to_vec(raw).unwrap_or_default();
    store
        .dead_letter_update(&DeadUpdate {
            update_id: id,
            reason: &reason,
            raw: &bytes,
            ..DeadUpdate::default()
        })
        .await?;
    // Counted once it is kept: a failed write is retried with the update.
    events::update_unparsable(id, &kind);
    Ok(())
}

/// Keeps an update that failed for good; true when kept (then it may be
/// confirmed), false when even that failed.
async fn set_aside(store: &Store, item: &Item, error: &StoreError) -> bool {
    let (raw, chat_id, message_id) = match item {
        Item::Update(u, raw) => {
            let (chat, message) = match &u.kind {
                UpdateKind::ChannelPost(m) | UpdateKind::Message(m) => {
                    (Some(m.chat.id.0), Some(i64::from(m.id.0)))
                }
                UpdateKind::MyChatMember(m) => (Some(m.chat.id.0), None),
                _ => (None, None),
            };
            // As Telegram sent it, when known: teloxide's reading may
            // have lost what it could not read.
            let bytes = match raw {
                Some(raw) => serde_json::to_vec(raw),
                None => serde_json::to_vec(u),
            };
            (bytes.unwrap_or_default(), chat, message)
        }
        Item::Unreadable { raw, .. } => (serde_json::to_vec(raw).unwrap_or_default(), None, None),
    };
    // The reason is the store's error: an operation and PostgreSQL's
    // message, which names no user content.
    let reason = error.to_string();
    let id = item.id();
    match store
        .dead_letter_update(&DeadUpdate {
            update_id: id,
            chat_id,
            message_id,
            reason: &reason,
            raw: &raw,
            ..DeadUpdate::default()
        })
        .await
    {
        Ok(()) => {
            events::update_set_aside(id, chat_id, message_id, error);
            true
        }
        Err(e) => {
            tracing::warn!(update_id = id, error = %e, "Could not keep a failing update as a dead letter.");
            false
        }
    }
}

/// Sleeps, unless told to stop first; true when stopping.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_answer_is_read_one_update_at_a_time() {
        // An id past u32 fails teloxide's `Update`; a payload of the wrong
        // shape or an unknown kind parses, as `UpdateKind::Error`.
        let raw = r#"{"ok":true,"result":[
            {"update_id":4294967296,"message":{}},
            {"update_id":7,"my_chat_member":"not an object"},
            {"update_id":8,"brand_new_kind":{"x":1}},
            {"update_id":9,"channel_post":{"message_id":1,"date":1,
             "chat":{"id":-1,"type":"channel","title":"t"},"text":"x"}}
        ]}"#;
        let items = salvage(raw).expect("salvaged");
        assert_eq!(
            items.iter().map(Item::id).collect::<Vec<_>>(),
            vec![4_294_967_296, 7, 8, 9]
        );
        assert!(matches!(items[0], Item::Unreadable { .. }));
        // A readable update beside them reads as its kind, with its JSON.
        assert!(matches!(
            &items[3],
            Item::Update(u, Some(raw)) if matches!(u.kind, UpdateKind::ChannelPost(_))
                && raw["channel_post"]["text"] == "x"
        ));
        for item in &items[1..3] {
            assert!(
                matches!(item, Item::Update(u, _) if matches!(u.kind, UpdateKind::Error(_))),
                "{}",
                item.id()
            );
        }
        assert!(salvage("<html>bad gateway</html>").is_none());
        assert!(salvage(r#"{"ok":true,"result":[{"no_id":1}]}"#).is_none());
    }

    #[test]
    fn the_kind_of_an_update_is_its_field_name_only() {
        let v: Value = serde_json::json!({"update_id": 1, "message": {"text": "secret"}});
        assert_eq!(kind_of(&v), "message");
        assert_eq!(kind_of(&Value::Null), "unknown");
    }

    #[test]
    fn offsets_never_overflow() {
        assert_eq!(next_offset(41), 42);
        assert_eq!(next_offset(i64::from(u32::MAX)), i32::MAX);
    }
}
