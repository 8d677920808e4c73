//! What the daemon reports, one function per thing that happened: each
//! writes its log line (fields first, then a short sentence) and records
//! its metrics from the registry, so the two never drift apart. The
//! actors' events are in `kuryer_actors::telemetry::events`.
//!
//! This module is in the foundation layer: it takes plain values (ids,
//! names, errors as `Display`), never a type of a higher module. A
//! channel is logged as the actors' events log it: `channel_id` is
//! Telegram's id (once a poller read it), `channel_key` kuryer's.

use std::fmt::{Debug, Display};
use std::time::Duration;

use kuryer_actors::telemetry::events::telegram_id;
use kuryer_actors::telemetry::registry as r;

// --- The HTTP API -----------------------------------------------------------

/// An HTTP API request answered (`route` is the matched pattern, never the
/// raw path, which would make a series per user id).
pub fn http_request(route: String, status: u16) {
    tracing::trace!(route = %route, status, "HTTP request answered.");
    r::HTTP_REQUESTS_TOTAL
        .at([route.into(), status.to_string().into()])
        .increment(1);
}

/// A subscription created through the HTTP API.
pub fn subscription_created(user_id: i64, channel: &dyn Display, subscription_id: i64) {
    r::SUBSCRIPTIONS_CREATED_TOTAL.get().increment(1);
    tracing::info!(
        user_id,
        channel = %channel,
        subscription_id,
        "Subscription created through the API."
    );
}

// --- The bots' update loops -------------------------------------------------

/// A whole getUpdates answer could not be read as updates; it is read one
/// update at a time. Never logs the answer or the parser's message: both
/// may quote users' messages.
pub fn updates_answer_unreadable(line: usize, column: usize, error_kind: &dyn Debug) {
    r::UPDATES_UNPARSABLE_TOTAL
        .at(["answer".into()])
        .increment(1);
    tracing::warn!(
        line,
        column,
        error_kind = ?error_kind,
        "getUpdates answer could not be read as updates; reading it one update at a time."
    );
}

/// An update nobody can parse, kept as a dead letter (`kind` is its field
/// name, never its content).
pub fn update_unparsable(update_id: i64, kind: &str) {
    r::UPDATES_UNPARSABLE_TOTAL
        .at([kind.to_owned().into()])
        .increment(1);
    r::DEAD_LETTERS_TOTAL.at(["update".into()]).increment(1);
    tracing::warn!(update_id, kind = %kind, "An update could not be parsed; kept as a dead letter.");
}

/// A bot-admin channel's post whose content this version cannot read: it
/// goes out by id. Counted every time; logged at WARN once per `kind` (the
/// content's field name, never its content) for the process's life, so a
/// channel posting live photos all day writes one line.
pub fn post_unreadable(kind: &str, chat_id: i64, message_id: i32) {
    static SEEN: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
        std::sync::Mutex::new(None);
    r::POSTS_UNREADABLE_TOTAL
        .at([kind.to_owned().into()])
        .increment(1);
    let first = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(Default::default)
        .insert(kind.to_owned());
    if first {
        tracing::warn!(
            kind = %kind,
            chat_id,
            message_id,
            "A channel post this version of kuryer cannot read; delivering it by id (logged once per kind)."
        );
    } else {
        tracing::debug!(kind = %kind, chat_id, message_id, "Another unreadable channel post; delivering it by id.");
    }
}

/// An update that failed for good, kept in `dead_letters` and skipped.
pub fn update_set_aside(
    update_id: i64,
    chat_id: Option<i64>,
    message_id: Option<i64>,
    error: &dyn Display,
) {
    r::DEAD_LETTERS_TOTAL.at(["update".into()]).increment(1);
    tracing::error!(
        update_id,
        chat_id,
        message_id,
        error = %error,
        "An update failed for good; kept in dead_letters and skipped."
    );
}

/// A post kuryer cannot read that Telegram refused by id too (copy,
/// forward and, for a public channel, a link all failed): kept as a dead
/// letter, once a post. `reason` is Telegram's refusal, never the post.
pub fn post_unsendable_kept(channel_id: i64, chat_id: i64, message_id: Option<i64>, reason: &str) {
    r::DEAD_LETTERS_TOTAL.at(["post".into()]).increment(1);
    tracing::error!(
        channel_id,
        chat_id,
        message_id,
        reason = %reason,
        "A channel post this version cannot read was refused by id as well; kept as a dead letter (kuryer dead-letters)."
    );
}

/// Keeping such a post failed: its deliveries' failed rows are its only
/// record.
pub fn post_unsendable_not_kept(channel_id: i64, message_id: Option<i64>, error: &dyn Display) {
    tracing::error!(
        channel_id,
        message_id,
        error = %error,
        "A post Telegram refused by id could not be kept as a dead letter; its failed deliveries are recorded."
    );
}

// --- Dead letters read back -------------------------------------------------

/// A dead letter went back through the path it came by (`how`: `recorded`
/// and published, `handed` to the update loop, `handled` by it).
pub fn dead_letter_replayed(id: i64, kind: &str, how: &str) {
    r::DEAD_LETTERS_REPLAYED_TOTAL
        .at([kind.to_owned().into()])
        .increment(1);
    tracing::info!(dead_letter_id = id, kind = %kind, how = %how, "Dead letter replayed.");
}

/// A replayed dead letter failed again and is kept again with both reasons.
pub fn dead_letter_replay_failed(id: i64, kind: &str, reason: &dyn Display) {
    r::DEAD_LETTERS_REPLAY_FAILED_TOTAL
        .at([kind.to_owned().into()])
        .increment(1);
    tracing::warn!(dead_letter_id = id, kind = %kind, reason = %reason, "A replayed dead letter failed again; kept with both reasons.");
}

/// A dead letter discarded at an operator's word.
pub fn dead_letter_discarded(id: i64, kind: &str) {
    r::DEAD_LETTERS_DISCARDED_TOTAL
        .at([kind.to_owned().into()])
        .increment(1);
    tracing::info!(dead_letter_id = id, kind = %kind, "Dead letter discarded.");
}

/// Dead letters of the installation waiting, by kind (read from the
/// database).
pub fn dead_letters_waiting(kind: &str, n: i64) {
    r::DEAD_LETTERS_WAITING
        .at([kind.to_owned().into()])
        .set(n as f64);
}

/// A `channel_post` received by a bot's update loop, `lag_s` seconds after
/// Telegram dated it.
pub fn channel_post_received(chat_id: i64, lag_s: f64) {
    r::UPDATE_LOOP_LAG_SECONDS.get().record(lag_s);
    tracing::trace!(chat_id, lag_s, "Channel post received.");
}

// --- The bot people talk to -------------------------------------------------

/// A bot command or button press handled (or dropped by the per-user
/// limit: `rate_limited`).
pub fn bot_command(command: &'static str) {
    r::BOT_COMMANDS_TOTAL.at([command.into()]).increment(1);
    tracing::debug!(command, "Bot command handled.");
}

/// A bot reply (`what`) Telegram refused or that failed after its retries.
/// The error names the failure, never the text sent.
pub fn bot_reply_failed(
    what: &'static str,
    chat_id: i64,
    reason: &'static str,
    error: &dyn Display,
) {
    r::BOT_REPLY_FAILURES_TOTAL.at([reason.into()]).increment(1);
    tracing::info!(chat_id, what, reason, error = %error, "A bot reply was not delivered.");
}

/// A destination deactivated (the bot lost the chat, or it kept failing).
pub fn destination_deactivated(destination_id: i64, chat_id: i64, reason: &str) {
    r::DESTINATIONS_DEACTIVATED_TOTAL.get().increment(1);
    tracing::warn!(
        destination_id,
        chat_id,
        reason = %reason,
        "Destination deactivated; its subscriptions are paused."
    );
}

/// A subscriber told (or not: `result`) how their channel's look-up ended.
pub fn resolve_notice(channel_id: i64, user: i64, status: &str, result: Result<(), &dyn Display>) {
    match result {
        Ok(()) => {
            r::RESOLVE_NOTICES_TOTAL.at(["sent".into()]).increment(1);
            tracing::debug!(
                channel_id = telegram_id(channel_id),
                channel_key = channel_id,
                user,
                status,
                "Told a subscriber how the channel's look-up ended."
            );
        }
        Err(e) => {
            r::RESOLVE_NOTICES_TOTAL.at(["failed".into()]).increment(1);
            tracing::info!(channel_id = telegram_id(channel_id), channel_key = channel_id, user, status, error = %e, "Could not tell a subscriber how the channel's look-up ended.");
        }
    }
}

/// A subscriber told (or not: `result`) of a problem of their channel.
pub fn channel_notice(
    channel_id: i64,
    user: i64,
    problem: &'static str,
    result: Result<(), &dyn Display>,
) {
    match result {
        Ok(()) => {
            r::CHANNEL_NOTICES_TOTAL
                .at([problem.into(), "sent".into()])
                .increment(1);
            tracing::debug!(
                channel_id = telegram_id(channel_id),
                channel_key = channel_id,
                user,
                problem,
                "Told a subscriber about their channel."
            );
        }
        Err(e) => {
            r::CHANNEL_NOTICES_TOTAL
                .at([problem.into(), "failed".into()])
                .increment(1);
            tracing::info!(channel_id = telegram_id(channel_id), channel_key = channel_id, user, problem, error = %e, "Could not tell a subscriber about their channel.");
        }
    }
}

/// A digest sent (all its parts) and recorded.
pub fn digest_sent(subscription_id: i64, posts: usize, parts: usize, recorded: u64) {
    r::DIGESTS_SENT_TOTAL.get().increment(1);
    tracing::info!(subscription_id, posts, parts, recorded, "Digest sent.");
}

// --- Owed deliveries ----------------------------------------------------------

/// The start-up resume queued every delivery recorded but not sent.
pub fn resume_done(deliveries: u64, took: Duration) {
    r::DELIVERIES_RESUMED_TOTAL.get().increment(deliveries);
    tracing::info!(
        deliveries,
        elapsed_ms = took.as_millis() as u64,
        "Resume queued every delivery recorded but not sent."
    );
}

/// The start-up resume gave up after `queued` deliveries; the sweep
/// delivers the rest.
pub fn resume_gave_up(queued: u64) {
    r::DELIVERIES_RESUMED_TOTAL.get().increment(queued);
    tracing::error!(
        queued,
        "Resume gave up; starting the held-back pollers. The periodic sweep delivers the rest, possibly after newer posts of their channels."
    );
}

/// Owed deliveries of channels this instance took over, queued.
pub fn taken_over_resumed(channels: usize, deliveries: u64) {
    r::DELIVERIES_RESUMED_TOTAL.get().increment(deliveries);
    tracing::info!(
        channels,
        deliveries,
        "Resumed deliveries the channels' previous owner had not sent."
    );
}

/// The periodic sweep queued `deliveries` owed deliveries nothing was
/// sending; `complete` is false when it stopped early on an error (which
/// its caller logs).
pub fn swept(deliveries: u64, complete: bool) {
    r::DELIVERIES_SWEPT_TOTAL.get().increment(deliveries);
    if complete {
        tracing::info!(
            deliveries,
            "Sweep found deliveries of recorded posts that nothing was sending; queued them."
        );
    } else {
        tracing::debug!(deliveries, "Sweep queued deliveries before it stopped.");
    }
}

// --- Reader accounts (MTProto) ------------------------------------------------

/// An MTProto call made by a reader account.
pub fn reader_call(account: &str, method: &'static str) {
    r::READER_CALLS_TOTAL
        .at([account.to_owned().into(), method.into()])
        .increment(1);
    tracing::trace!(account, method, "MTProto call.");
}

/// Telegram told a reader account to wait (FLOOD_WAIT); its calls of this
/// method pause that long.
pub fn reader_flood_wait(account: &str, method: &'static str, wait: Duration) {
    r::READER_FLOOD_WAITS_TOTAL
        .at([account.to_owned().into(), method.into()])
        .increment(1);
    r::READER_FLOOD_WAIT_SECONDS_TOTAL
        .at([account.to_owned().into(), method.into()])
        .increment(wait.as_secs());
    tracing::warn!(
        account,
        method,
        wait_s = wait.as_secs(),
        "Telegram asked this account to wait; its calls of this method pause that long."
    );
}

/// A new post pushed to a reader account woke its channel.
pub fn reader_post_pushed(channel_id: i64) {
    r::READER_PUSHED_POSTS_TOTAL.get().increment(1);
    tracing::trace!(
        channel_id = telegram_id(channel_id),
        channel_key = channel_id,
        "New post pushed; waking its channel."
    );
}

/// A reader account saw an edit or deletion (`kind`: `edit`, `delete`).
pub fn reader_change_seen(kind: &'static str) {
    r::READER_CHANGES_TOTAL.at([kind.into()]).increment(1);
    tracing::trace!(kind, "Channel change pushed.");
}

/// A change (`what`) dropped unstored because its queue was full; logged
/// for the first drop and every thousandth after (`dropped` so far).
pub fn reader_change_dropped(what: &str, channel_id: i64, dropped: u64, cap: usize) {
    r::READER_CHANGES_DROPPED_TOTAL.get().increment(1);
    if dropped % 1000 == 1 {
        tracing::error!(
            what,
            channel_id = telegram_id(channel_id),
            channel_key = channel_id,
            dropped,
            cap,
            "Too many source changes wait for the database; dropping the oldest (not mirrored)."
        );
    }
}

/// Telegram ended a reader account's session: its channels move to the
/// other accounts.
pub fn reader_account_lost(account: &str, reason: &str) {
    r::READER_ACCOUNTS_LOST_TOTAL.get().increment(1);
    if reason == "AUTH_KEY_DUPLICATED" {
        r::READER_KEYS_BURNED_TOTAL.get().increment(1);
        tracing::error!(
            account,
            reason,
            "Reader account's auth key burned: Telegram saw it used on two connections at once and will not accept it again. The account is marked lost and never reconnected with this key; its channels move to the other accounts. Make sure no other program or host uses this session, then log it in again with kuryer login."
        );
        return;
    }
    tracing::error!(
        account,
        reason,
        "Reader account lost: Telegram ended its session. Its channels move to the other accounts; log it in again with kuryer login."
    );
}

/// Telegram froze a reader account (`FROZEN_METHOD_INVALID` on `method`):
/// it is marked frozen and used no more; never waited out like a flood wait.
pub fn reader_account_frozen(account: &str, method: &str) {
    r::READER_ACCOUNTS_FROZEN_TOTAL.get().increment(1);
    tracing::error!(
        account,
        method,
        error = "FROZEN_METHOD_INVALID",
        "Reader account frozen by Telegram: it is no longer used and its channels move to the other accounts. Its owner can appeal through @SpamBot in an official app, then log it in again with kuryer login."
    );
}

/// Telegram refused a join with `PEER_FLOOD`: the account is limited for
/// spam; it joins nothing more today (its channels stay polled).
pub fn reader_peer_flood(account: &str, channel_id: i64) {
    r::READER_PEER_FLOOD_TOTAL.get().increment(1);
    tracing::warn!(
        account,
        channel_id = telegram_id(channel_id),
        channel_key = channel_id,
        error = "PEER_FLOOD",
        "Telegram refused the reader account's join (PEER_FLOOD: limited for spam); it joins nothing more today and its channels stay polled."
    );
}

/// A reader account's `kind` budget (`resolve`, `join`) is spent for the
/// UTC day: told once a day per account and kind.
pub fn reader_budget_spent(account: &str, kind: &'static str) {
    r::READER_BUDGETS_SPENT_TOTAL.at([kind.into()]).increment(1);
    tracing::info!(
        account,
        kind,
        "Reader account's budget for today is spent; the work waits for another account with budget or for the next UTC day."
    );
}

/// A channel name resolved to a readable channel.
pub fn channel_resolved(channel: &str, channel_id: i64) {
    r::READER_RESOLVED_TOTAL.at(["active".into()]).increment(1);
    tracing::info!(
        channel,
        channel_id = telegram_id(channel_id),
        channel_key = channel_id,
        "Channel resolved."
    );
}

/// A channel name that leads to no readable channel (`status` says why).
pub fn channel_unresolvable(channel: &str, status: &'static str) {
    r::READER_RESOLVED_TOTAL.at([status.into()]).increment(1);
    tracing::info!(
        channel,
        status,
        "Channel name does not lead to a readable channel."
    );
}

/// Channels wait for a reader account that does not exist: our bot is not
/// their admin and no account is signed in, so nothing looks them up or
/// reads them. Said at start (`channels`: how many, `examples`: some names)
/// and when a subscription to such a channel is made (`channels` = 1).
pub fn channels_wait_for_reader(channels: i64, examples: &str) {
    tracing::warn!(
        channels,
        examples,
        "Channels wait for a reader account: our bot is not their admin and no reader account is signed in. `kuryer login` adds one; or make the bot an administrator of the channel."
    );
}

/// A reader account left a channel nobody had subscribed to for
/// `reader.orphan_grace_s`.
pub fn reader_channel_left(account: &str, channel_id: i64, outcome: &str) {
    r::READER_CHANNELS_LEFT_TOTAL.get().increment(1);
    tracing::info!(
        account,
        channel_id = telegram_id(channel_id),
        channel_key = channel_id,
        outcome,
        "Reader account left a channel nobody subscribes to any more."
    );
}
