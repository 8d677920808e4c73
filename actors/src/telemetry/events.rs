//! What the actors report, one function per thing that happened: each
//! writes its log line (fields first, then a short sentence) and records
//! its metrics, so the two never drift apart. The hot ones (a delivery
//! sent, a batch written) log at DEBUG; what an operator acts on logs at
//! WARN or ERROR.
//!
//! The daemon's own events (reader accounts, bot updates, notices, the
//! HTTP API) are in `src/telemetry/events.rs`, on the same registry.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Duration;

use super::registry as r;

// --- Channels by Telegram's id ----------------------------------------------
//
// Log lines name a channel as operators and the API do, by Telegram's id
// (`channel_id`, `-100…`, `CHANNEL_ID` in journald), and by kuryer's own
// (`channel_key`, `channels.id`). The actors carry kuryer's; each poller
// says which Telegram id it reads as it is made, and the events look it up.

/// Telegram's id of each channel a poller was made for, by `channels.id`.
static TELEGRAM_IDS: LazyLock<RwLock<HashMap<i64, i64>>> = LazyLock::new(Default::default);

/// Channel `key` (`channels.id`) is Telegram's `chat_id`, from now on.
pub fn channel_known(key: i64, chat_id: i64) {
    TELEGRAM_IDS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, chat_id);
}

/// Telegram's id of channel `key`, once a poller was made for it (`None`
/// records no `channel_id` field).
pub fn telegram_id(key: i64) -> Option<i64> {
    TELEGRAM_IDS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .copied()
}

/// A post recorded for the first time and about to be fanned out.
pub fn post_detected(channel_key: i64, post_id: i32) {
    r::POSTS_DETECTED_TOTAL.get().increment(1);
    tracing::debug!(
        channel_id = telegram_id(channel_key),
        channel_key,
        post_id,
        "Post detected."
    );
}

/// One poll of one channel ended (whatever it found).
pub fn channel_polled(channel_key: i64, took: Duration) {
    r::POLL_DURATION_SECONDS.get().record(took.as_secs_f64());
    tracing::trace!(
        channel_id = telegram_id(channel_key),
        channel_key,
        took_ms = took.as_millis() as u64,
        "Channel polled."
    );
}

/// A post turned into `deliveries` queued deliveries; `filtered` were not
/// made (the subscription's filters refused the post), `held` wait out
/// quiet hours.
pub fn post_fanned_out(
    channel_key: i64,
    post_id: i32,
    deliveries: usize,
    filtered: u64,
    held: u64,
) {
    if filtered > 0 {
        r::DELIVERIES_FILTERED_TOTAL.get().increment(filtered);
    }
    if held > 0 {
        r::DELIVERIES_HELD_TOTAL.get().increment(held);
    }
    // The one INFO line of a post's story (not one per delivery): with
    // `CHANNEL_ID`/`POST_ID` in journald it finds the rest.
    tracing::info!(
        channel_id = telegram_id(channel_key),
        channel_key,
        post_id,
        deliveries,
        "Post fanned out."
    );
}

/// A post no retry can record, kept in `dead_letters` and skipped.
pub fn post_dead_lettered(channel_key: i64, message_id: i32, error: &dyn Display) {
    r::DEAD_LETTERS_TOTAL.at(["post".into()]).increment(1);
    tracing::error!(
        channel_id = telegram_id(channel_key),
        channel_key,
        message_id,
        error = %error,
        "A post cannot be recorded; kept in dead_letters and skipped."
    );
}

/// A poller's channel source panicked; the poller builds a new one.
pub fn channel_source_panicked(channel_key: i64, failures: u32) {
    r::POLLER_RESTARTS_TOTAL.get().increment(1);
    tracing::error!(
        channel_id = telegram_id(channel_key),
        channel_key,
        failures,
        "Channel source panicked; rebuilding it."
    );
}

/// The supervisor started a poller again after it died of a panic.
pub fn poller_restarted(channel_key: i64, restarts: u64) {
    r::POLLER_RESTARTS_TOTAL.get().increment(1);
    tracing::info!(
        channel_id = telegram_id(channel_key),
        channel_key,
        restarts,
        "Channel poller restarted."
    );
}

/// A supervised background task panicked; it runs again after `backoff`.
pub fn worker_restarted(
    worker: &'static str,
    restarts: u64,
    panic: &str,
    ran: Duration,
    backoff: Duration,
) {
    r::WORKER_RESTARTS_TOTAL.at([worker.into()]).increment(1);
    tracing::error!(
        worker,
        restarts,
        panic = %panic,
        ran_ms = ran.as_millis() as u64,
        backoff_ms = backoff.as_millis() as u64,
        "A worker panicked; restarting it after a backoff."
    );
}

/// Telegram accepted a delivery, `waited` after its post was detected;
/// `note` says what fallback form it took, if any.
pub fn delivered(chat_id: i64, subscription_id: i64, waited: Duration, note: Option<&str>) {
    r::MESSAGES_FORWARDED_TOTAL.get().increment(1);
    r::FORWARD_DURATION_SECONDS
        .get()
        .record(waited.as_secs_f64());
    match note {
        Some(note) => {
            tracing::info!(chat_id, subscription_id, note = %note, "Delivered in a fallback form.")
        }
        None => tracing::trace!(chat_id, subscription_id, "Delivered."),
    }
}

/// The dedup key said this delivery was already made: recorded, not sent.
pub fn already_delivered(chat_id: i64, subscription_id: i64) {
    r::DEDUP_HITS_TOTAL.at(["redis".into()]).increment(1);
    tracing::debug!(
        chat_id,
        subscription_id,
        "Already delivered (dedup); recording it without sending."
    );
}

/// Telegram refused this message for good (not the chat: no streak).
pub fn delivery_refused(chat_id: i64, subscription_id: i64, error: &str) {
    r::DELIVERIES_FAILED_TOTAL
        .at(["refused".into()])
        .increment(1);
    tracing::warn!(chat_id, subscription_id, error = %error, "Delivery failed for good.");
}

/// The bot can no longer post to the chat (blocked, removed, deleted).
pub fn destination_gone(chat_id: i64, destination_id: i64, reason: &str) {
    r::DELIVERIES_FAILED_TOTAL.at(["gone".into()]).increment(1);
    tracing::warn!(
        chat_id,
        destination_id,
        reason = %reason,
        "The bot can no longer post to this chat; deactivating it."
    );
}

/// The bot can no longer read a post's source chat (the relay channel, or
/// a bot-admin channel): its deliveries wait, no destination is touched.
/// Once per episode.
pub fn source_refused(source_chat_id: i64, channel_key: i64, relay: bool, reason: &str) {
    tracing::error!(
        source_chat_id,
        channel_id = telegram_id(channel_key),
        channel_key,
        relay,
        reason = %reason,
        error_kind = "source_refused",
        "The bot can no longer read this source chat; its deliveries wait until it can (no destination is touched). Make the bot an admin of it again."
    );
}

/// A source chat refused before reads again: its deliveries go out.
pub fn source_readable(source_chat_id: i64, channel_key: i64, relay: bool) {
    tracing::info!(
        source_chat_id,
        channel_id = telegram_id(channel_key),
        channel_key,
        relay,
        "The bot reads this source chat again; its deliveries go out."
    );
}

/// A destination failed `failures` times in a row while other chats
/// succeeded: it is paused.
pub fn destination_failing(chat_id: i64, subscription_id: i64, failures: u32) {
    r::DELIVERIES_FAILED_TOTAL
        .at(["failing".into()])
        .increment(1);
    tracing::warn!(
        chat_id,
        subscription_id,
        failures,
        error_kind = "failing_destination",
        "A destination keeps failing; pausing it."
    );
}

/// A send timed out after its request was written: it may have arrived.
pub fn send_ambiguous(chat_id: i64, subscription_id: i64, retry: bool, error: &str) {
    r::AMBIGUOUS_SENDS_TOTAL.get().increment(1);
    tracing::warn!(chat_id, subscription_id, retry, error = %error, "Send outcome unknown.");
}

/// The Bot API answered a send with 429; the limiter pauses (see
/// [`bot_flood_wait`]) and the send is made again.
pub fn send_rate_limited(chat_id: i64, retry_after: Duration) {
    r::RATE_LIMITED_TOTAL.get().increment(1);
    tracing::debug!(
        chat_id,
        retry_after_s = retry_after.as_secs(),
        "Telegram answered 429 to a send."
    );
}

/// A bot was told to wait `retry_after` (Bot API 429) and paused
/// `scope` (`chat`: that chat; `bot`: all its sends).
pub fn bot_flood_wait(bot_id: i64, chat_id: i64, scope: &'static str, retry_after: Duration) {
    r::TELEGRAM_429_TOTAL.at([scope.into()]).increment(1);
    r::BOT_FLOOD_WAIT_SECONDS_TOTAL
        .at([bot_id.to_string().into()])
        .increment(retry_after.as_secs().max(1));
    tracing::warn!(
        bot_id,
        chat_id,
        scope,
        retry_after_s = retry_after.as_secs(),
        "Flood wait from Telegram; pausing."
    );
}

/// Telegram refused a bot's token (401) while it sent: its deliveries
/// halt, the other bots go on.
pub fn bot_token_revoked(bot_id: i64, lane: usize) {
    r::BOT_TOKEN_REVOKED
        .at([bot_id.to_string().into()])
        .set(1.0);
    tracing::error!(
        bot_id,
        lane,
        "Telegram refused this bot's token (401): its deliveries are halted \
         until kuryer restarts with a valid token; other bots go on."
    );
}

/// Telegram refused a bot's token at start-up (`getMe`): that bot does
/// not run, the others do.
pub fn bot_token_refused_at_start(bot_id: i64, error: &dyn Display) {
    r::BOT_TOKEN_REVOKED
        .at([bot_id.to_string().into()])
        .set(1.0);
    tracing::error!(
        bot_id,
        error_kind = "token_refused",
        error = %error,
        "Telegram refused this bot token: replace it (BotFather) and restart kuryer; the other bots run."
    );
}

/// The Bot API answered `method` with something this version cannot read
/// (`field`: the field serde named, or what it said): Telegram changed the
/// answer's shape; the network is fine. Never the token.
pub fn bot_api_unreadable(bot_id: i64, method: &'static str, field: &str) {
    r::BOT_API_UNREADABLE_TOTAL.at([method.into()]).increment(1);
    tracing::error!(
        bot_id,
        method,
        field,
        error_kind = "bot_api_unreadable",
        "Telegram answered something this version of kuryer cannot read: the Bot API changed (method, field); upgrade kuryer."
    );
}

/// A send was not made because this instance no longer surely holds its
/// channel's lease: the owner sends it.
pub fn delivery_lease_dropped(chat_id: i64) {
    r::LEASE_DROPPED_TOTAL.get().increment(1);
    tracing::debug!(
        chat_id,
        "Lease of the channel not surely held; delivery left to its owner."
    );
}

/// Queued deliveries of channels this instance gave up, dropped unsent.
pub fn queued_lease_dropped(channels: usize, deliveries: usize) {
    r::LEASE_DROPPED_TOTAL.get().increment(deliveries as u64);
    tracing::info!(
        channels,
        deliveries,
        "Dropped queued deliveries of channels this instance no longer owns; their owner sends them."
    );
}

/// A batch of delivery outcomes written to the database.
pub fn batch_written(rows: usize, took: Duration) {
    // Once per batch, not per row: this is the hot path.
    r::DB_BATCH_ROWS.get().record(rows as f64);
    r::DB_BATCH_SECONDS.get().record(took.as_secs_f64());
    tracing::debug!(
        rows,
        took_ms = took.as_millis() as u64,
        "Delivery batch written."
    );
}

/// Series dashboards plot, registered at zero so a graph has a line from
/// the first scrape instead of "no data" until the first event. Called
/// when the recorder is installed, before anything records.
pub fn register_at_zero() {
    r::MESSAGES_FORWARDED_TOTAL.get().absolute(0);
    r::ACTIVE_CHANNELS.get().set(0.0);
    for reason in ["refused", "gone", "failing"] {
        r::DELIVERIES_FAILED_TOTAL.at([reason.into()]).absolute(0);
    }
    for scope in ["chat", "bot"] {
        r::TELEGRAM_429_TOTAL.at([scope.into()]).absolute(0);
    }
    r::DEDUP_HITS_TOTAL.at(["redis".into()]).absolute(0);
    for state in ["active", "flood_wait", "broken"] {
        r::READER_ACCOUNTS.at([state.into()]).set(0.0);
    }
}
