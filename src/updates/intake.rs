//! The `getUpdates` loop: each update handled in order, and confirmed to
//! Telegram once its effect is durable or, failing for good, once it is set
//! aside as a dead letter. No update can hold the loop for ever.

use std::time::Duration;

use crate::telemetry::events;
use kuryer_actors::backoff::Backoff;
use serde_json::Value;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, ChatMemberUpdated, Message, MessageKind, Update, UpdateKind};
use teloxide::{Bot, RequestError};
use tokio::sync::watch;

use super::{BotUpdates, source_message};
use crate::bot::BotHandler;
use crate::pipeline::Pipeline;
use crate::store::{DeadUpdate, Store, StoreError};

/// Tries of an update failing with an error no retry can fix (a constraint,
/// data PostgreSQL refuses) before it becomes a dead letter. Retriable
/// errors (the database away) are retried without limit: every other update
/// would fail the same way, and Telegram keeps them 24 hours.
const NON_RETRIABLE_TRIES: u32 = 3;

/// What Telegram's answer held.
enum Item {
    /// An update teloxide could read.
    Update(Box<Update>),
    /// One whose JSON teloxide could not read (the whole answer was refused,
    /// so it was read one update at a time).
    Unreadable { id: i64, raw: Value },
}

impl Item {
    fn id(&self) -> i64 {
        match self {
            Self::Update(u) => i64::from(u.id.0),
            Self::Unreadable { id, .. } => *id,
        }
    }
}

/// The update currently failing, and how often.
#[derive(Default)]
struct Failing {
    update_id: i64,
    tries: u32,
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
    // The long poll must end before the HTTP client gives up on it (teloxide
    // does not lengthen its timeout for getUpdates).
    let long_poll = request_timeout
        .saturating_sub(Duration::from_secs(3))
        .as_secs()
        .clamp(1, 25) as u32;
    if !load_state(&store, &updates, &pipeline, &mut stop).await {
        return;
    }
    let bot_id = crate::telegram::bot_id_of(bot.token());
    let mut offset: Option<i32> = None;
    let mut standing_by = false;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    // At most 10 s between tries of a failing update: after an outage the
    // loop is back within seconds (a try is one cheap query).
    let mut hold = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
    let mut failing = Failing::default();
    'poll: loop {
        if *stop.borrow() {
            break;
        }
        // Several instances: only the holder of this bot's lease polls, and
        // a poll never outlives the lease (it ends a second before the
        // local deadline), so a new holder never polls while an old one does.
        let long_poll = match &updates.ownership {
            None => long_poll,
            Some(o) => match o.bot_lease_left(bot_id) {
                Some(left) if left >= Duration::from_secs(2) => {
                    if standing_by {
                        standing_by = false;
                        tracing::info!(bot_id, "This instance now reads the bot's updates.");
                    }
                    long_poll.min((left.as_secs() - 1) as u32)
                }
                held => {
                    if held.is_none() && !standing_by {
                        standing_by = true;
                        // The next holder starts from Telegram's confirmed offset.
                        offset = None;
                        tracing::info!(
                            bot_id,
                            "Another instance reads the bot's updates; standing by."
                        );
                    }
                    if sleep_or_stop(&mut stop, Duration::from_millis(200)).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let mut req = bot.get_updates().timeout(long_poll).allowed_updates(vec![
            AllowedUpdate::ChannelPost,
            AllowedUpdate::EditedChannelPost,
            AllowedUpdate::MyChatMember,
            AllowedUpdate::Message,
            AllowedUpdate::CallbackQuery,
        ]);
        if let Some(o) = offset {
            req = req.offset(o);
        }
        let result = tokio::select! {
            r = req => r,
            _ = stop.changed() => break,
        };
        let items: Vec<Item> = match result {
            Ok(batch) => {
                backoff.reset();
                batch
                    .into_iter()
                    .map(|u| Item::Update(Box::new(u)))
                    .collect()
            }
            Err(RequestError::RetryAfter(s)) => {
                if sleep_or_stop(&mut stop, s.duration()).await {
                    break;
                }
                continue;
            }
            Err(RequestError::InvalidJson { source, raw }) => {
                // Never log `raw` or the parser's message: both may quote
                // users' messages. Where the answer broke is enough.
                events::updates_answer_unreadable(
                    source.line(),
                    source.column(),
                    &source.classify(),
                );
                match salvage(&raw) {
                    Some(items) => items,
                    None => {
                        let wait = backoff.next_delay();
                        if sleep_or_stop(&mut stop, wait).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "getUpdates failed; retrying.");
                if sleep_or_stop(&mut stop, wait).await {
                    break;
                }
                continue;
            }
        };
        for item in items {
            let id = item.id();
            let result = match &item {
                Item::Update(u) => handle(&store, &pipeline, &updates, &handler, u).await,
                Item::Unreadable { raw, .. } => unreadable(&store, id, raw).await,
            };
            match result {
                Ok(()) => {
                    offset = Some(next_offset(id));
                    hold.reset();
                }
                Err(e) => {
                    if failing.update_id != id {
                        failing = Failing {
                            update_id: id,
                            tries: 0,
                        };
                    }
                    failing.tries += 1;
                    if !e.is_retriable()
                        && failing.tries >= NON_RETRIABLE_TRIES
                        && set_aside(&store, &item, &e).await
                    {
                        offset = Some(next_offset(id));
                        hold.reset();
                        continue;
                    }
                    // Stay before it: it and what follows come again.
                    let wait = hold.next_delay();
                    tracing::warn!(
                        update_id = id,
                        tries = failing.tries,
                        retriable = e.is_retriable(),
                        retry_in_ms = wait.as_millis() as u64,
                        error = %e,
                        "An update could not be handled; trying it again."
                    );
                    if sleep_or_stop(&mut stop, wait).await {
                        break 'poll;
                    }
                    continue 'poll;
                }
            }
        }
    }
    tracing::info!("Update loop stopped.");
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

/// Reads an answer teloxide refused one update at a time: `None` when it is
/// not even `{"result": [...]}` with update ids.
fn salvage(raw: &str) -> Option<Vec<Item>> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let mut out = Vec::new();
    for u in v.get("result")?.as_array()? {
        let id = u.get("update_id")?.as_i64()?;
        out.push(match serde_json::from_value::<Update>(u.clone()) {
            Ok(update) => Item::Update(Box::new(update)),
            Err(_) => Item::Unreadable { id, raw: u.clone() },
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
async fn unreadable(store: &Store, id: i64, raw: &Value) -> Result<(), StoreError> {
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
        Item::Update(u) => {
            let (chat, message) = match &u.kind {
                UpdateKind::ChannelPost(m) | UpdateKind::Message(m) => {
                    (Some(m.chat.id.0), Some(i64::from(m.id.0)))
                }
                UpdateKind::MyChatMember(m) => (Some(m.chat.id.0), None),
                _ => (None, None),
            };
            (serde_json::to_vec(u).unwrap_or_default(), chat, message)
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

/// Handles one update; `Ok` once its effect is durable.
async fn handle(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    handler: &BotHandler,
    update: &Update,
) -> Result<(), StoreError> {
    let id = i64::from(update.id.0);
    match &update.kind {
        UpdateKind::ChannelPost(msg) => {
            // `/link <code>` in a channel is a command, not a post.
            if handler.on_channel_post(msg).await? {
                return Ok(());
            }
            on_channel_post(store, pipeline, updates, id, msg).await
        }
        UpdateKind::EditedChannelPost(msg) => {
            super::edits::on_edited_channel_post(store, pipeline, updates, msg).await
        }
        UpdateKind::MyChatMember(m) => {
            handler.on_my_chat_member(m).await?;
            on_my_chat_member(store, pipeline, updates, handler, m).await
        }
        UpdateKind::Message(msg) => handler.on_message(msg).await,
        UpdateKind::CallbackQuery(q) => handler.on_callback(q).await,
        UpdateKind::Error(raw) => unreadable(store, id, raw).await,
        _ => Ok(()),
    }
}

/// Keeps a channel post in the inbox and its channel's buffer, and wakes
/// the channel's poller.
async fn on_channel_post(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    update_id: i64,
    msg: &Message,
) -> Result<(), StoreError> {
    // How far behind the update loop reads (Telegram dates to the second).
    let lag = (chrono::Utc::now() - msg.date).num_milliseconds().max(0) as f64 / 1000.0;
    let chat_id = msg.chat.id.0;
    events::channel_post_received(chat_id, lag);
    let username = msg.chat.username().map(str::to_ascii_lowercase);
    let known = updates.shared().channels.get(&chat_id).cloned();
    let channel_id = match known {
        Some((id, name)) if name == username => id,
        Some((_, old)) => {
            // Renamed since we last saw it: the record follows, and the name
            // moves away from any other channel that had it.
            let ch = store
                .upsert_admin_channel(chat_id, msg.chat.username(), msg.chat.title(), true)
                .await?;
            tracing::info!(
                chat_id,
                channel = username.as_deref().unwrap_or("-"),
                "A bot-admin channel has a new name."
            );
            // Its subscribers are told (once per new name) when it had one.
            if let Some(old) = old {
                updates.events.channel_renamed(
                    ch.channel_id,
                    &format!("@{old}"),
                    ch.username.as_deref(),
                );
            }
            updates
                .shared()
                .channels
                .insert(chat_id, (ch.channel_id, ch.username.clone()));
            ch.channel_id
        }
        None => {
            // A post from a channel we have no record of: our bot must be
            // admin there (channel posts reach only admins), so record it.
            let ch = store
                .upsert_admin_channel(chat_id, msg.chat.username(), msg.chat.title(), true)
                .await?;
            updates
                .shared()
                .channels
                .insert(chat_id, (ch.channel_id, ch.username.clone()));
            let channel_id = ch.channel_id;
            pipeline.start_channel(ch);
            channel_id
        }
    };
    if !matches!(msg.kind, MessageKind::Common(_)) {
        // Service messages (pins, title changes) are not posts: nothing to
        // deliver.
        return Ok(());
    }
    let message = source_message(msg);
    store.inbox_put(channel_id, update_id, &message).await?;
    if updates.ownership.is_none() {
        updates
            .shared()
            .buffers
            .entry(channel_id)
            .or_default()
            .insert(message.id, message);
    }
    // Another instance's channel is not polled here: a no-op then; its
    // owner's poller finds the post in the inbox.
    pipeline.wake(channel_id);
    Ok(())
}

/// Records our bot's rights in a channel; starts its poller when admin.
async fn on_my_chat_member(
    store: &Store,
    pipeline: &Pipeline,
    updates: &BotUpdates,
    handler: &BotHandler,
    m: &ChatMemberUpdated,
) -> Result<(), StoreError> {
    if !m.chat.is_channel() {
        return Ok(());
    }
    let chat_id = m.chat.id.0;
    let is_admin = m.new_chat_member.is_administrator() || m.new_chat_member.is_owner();
    let was_admin = m.old_chat_member.is_administrator() || m.old_chat_member.is_owner();
    let ch = store
        .upsert_admin_channel(chat_id, m.chat.username(), m.chat.title(), is_admin)
        .await?;
    tracing::info!(
        chat_id,
        channel = ch.username.as_deref().unwrap_or("-"),
        is_admin,
        "Our bot's rights in a channel changed."
    );
    // Its subscribers are told when the posts stop or come again (claimed
    // in the store: once, whichever process takes the update). A notice
    // that fails is logged there; the update is done either way.
    if is_admin != was_admin {
        let name = ch.username.as_deref().map_or_else(
            || m.chat.title().unwrap_or("…").to_owned(),
            |u| format!("@{u}"),
        );
        handler
            .source_channel_rights(ch.channel_id, &name, is_admin)
            .await;
    }
    if is_admin {
        updates
            .shared()
            .channels
            .insert(chat_id, (ch.channel_id, ch.username.clone()));
        pipeline.start_channel(ch);
    } else {
        updates.shared().channels.remove(&chat_id);
    }
    Ok(())
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
            {"update_id":8,"brand_new_kind":{"x":1}}
        ]}"#;
        let items = salvage(raw).expect("salvaged");
        assert_eq!(
            items.iter().map(Item::id).collect::<Vec<_>>(),
            vec![4_294_967_296, 7, 8]
        );
        assert!(matches!(items[0], Item::Unreadable { .. }));
        for item in &items[1..] {
            assert!(
                matches!(item, Item::Update(u) if matches!(u.kind, UpdateKind::Error(_))),
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
