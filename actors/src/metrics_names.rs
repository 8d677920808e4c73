//! Names of the metrics kuryer exports, in one place. The first three are
//! the seed's and are kept as they are.

/// Posts delivered to a destination (counter).
pub const MESSAGES_FORWARDED_TOTAL: &str = "messages_forwarded_total";
/// Post detected → delivery accepted by Telegram (histogram, seconds).
pub const FORWARD_DURATION_SECONDS: &str = "forward_duration_seconds";
/// Channels being read: a poller runs (or is about to restart) for each;
/// channels still pending resolution are not counted (gauge).
pub const ACTIVE_CHANNELS: &str = "active_channels";
/// Channels with at least one active subscription in the registry (gauge).
pub const SUBSCRIBED_CHANNELS: &str = "kuryer_subscribed_channels";
/// Deliveries that failed for good, by `reason` (`refused`: Telegram refused
/// this message; `gone`: the bot lost the chat; `failing`: the destination
/// failed too many times in a row) (counter).
pub const DELIVERIES_FAILED_TOTAL: &str = "kuryer_deliveries_failed_total";
/// 429 answers from Telegram (counter).
pub const RATE_LIMITED_TOTAL: &str = "kuryer_rate_limited_total";
/// 429 answers by what they paused, `scope` = `chat` or `bot` (the whole
/// lane, when several chats of one bot got one within a second) (counter).
pub const TELEGRAM_429_TOTAL: &str = "kuryer_telegram_429_total";
/// Seconds Telegram told us to wait (`retry_after`), by `account`
/// (`bot<id>` for a bot token, the reader account's name for MTProto)
/// (counter).
pub const FLOOD_WAIT_SECONDS_TOTAL: &str = "kuryer_flood_wait_seconds_total";
/// Work waiting in a stage, by `stage` (`limiter`: queued deliveries,
/// `in_flight`: sends on the wire, `db_writer`: rows not yet written)
/// (gauge).
pub const QUEUE_DEPTH: &str = "kuryer_queue_depth";
/// Rows in one DbWriter batch (histogram).
pub const DB_BATCH_ROWS: &str = "kuryer_db_batch_rows";
/// Time to write one DbWriter batch (histogram, seconds).
pub const DB_BATCH_SECONDS: &str = "kuryer_db_batch_seconds";
/// MTProto reader accounts by `state` (`active`, `flood_wait`, `broken`)
/// (gauge; all zero until the reader exists).
pub const READER_ACCOUNTS: &str = "kuryer_reader_accounts";
/// Age of a `channel_post` when the update loop received it (histogram,
/// seconds): how far the bot's getUpdates loop is behind.
pub const UPDATE_LOOP_LAG_SECONDS: &str = "kuryer_update_loop_lag_seconds";
/// Resident memory of the process (gauge, bytes).
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// Seconds since the process started (gauge).
pub const UPTIME_SECONDS: &str = "kuryer_uptime_seconds";
/// Posts detected in source channels (counter).
pub const POSTS_DETECTED_TOTAL: &str = "kuryer_posts_detected_total";
/// Channel pollers restarted after a crash (counter).
pub const POLLER_RESTARTS_TOTAL: &str = "kuryer_poller_restarts_total";
/// Background workers (`worker`: `mirror`) restarted after a panic (counter).
pub const WORKER_RESTARTS_TOTAL: &str = "kuryer_worker_restarts_total";
/// Time of one poll of one channel (histogram, seconds).
pub const POLL_DURATION_SECONDS: &str = "kuryer_poll_duration_seconds";
/// HTTP API requests by route and status (counter).
pub const HTTP_REQUESTS_TOTAL: &str = "kuryer_http_requests_total";
/// Subscriptions created through any interface (counter).
pub const SUBSCRIPTIONS_CREATED_TOTAL: &str = "kuryer_subscriptions_created_total";
/// Sends whose outcome is unknown (timeout after the request was written): the one way a duplicate can happen (counter).
pub const AMBIGUOUS_SENDS_TOTAL: &str = "kuryer_ambiguous_sends_total";
/// Deliveries found already sent and not sent again, by `layer` (`redis`:
/// the key check before a send; `database`: the `ON CONFLICT` of the
/// outcome row) (counter).
pub const DEDUP_HITS_TOTAL: &str = "kuryer_dedup_hits_total";
/// Destinations paused or deactivated (counter).
pub const DESTINATIONS_DEACTIVATED_TOTAL: &str = "kuryer_destinations_deactivated_total";
/// Deliveries resumed at start-up (counter).
pub const DELIVERIES_RESUMED_TOTAL: &str = "kuryer_deliveries_resumed_total";
/// Updates or posts that still failed after their retries and were set aside
/// in the `dead_letters` table, by `kind` (`update`, `post`) (counter).
pub const DEAD_LETTERS_TOTAL: &str = "kuryer_dead_letters_total";
/// Bot updates Telegram sent that teloxide could not parse, by `kind` (the
/// update's field name, never its content) (counter).
pub const UPDATES_UNPARSABLE_TOTAL: &str = "kuryer_updates_unparsable_total";
/// 1 for a bot whose token Telegram refused (401), by `bot_id`: its lane is halted (gauge).
pub const BOT_TOKEN_REVOKED: &str = "kuryer_bot_token_revoked";
/// Deliveries without an outcome found by the periodic sweep and queued (counter).
pub const DELIVERIES_SWEPT_TOTAL: &str = "kuryer_deliveries_swept_total";
/// Deliveries not made because the subscription's filters refused the post (counter).
pub const DELIVERIES_FILTERED_TOTAL: &str = "kuryer_deliveries_filtered_total";
/// Deliveries held for the subscription's quiet hours at fan-out (counter);
/// they stay owed and the sweep queues them after.
pub const DELIVERIES_HELD_TOTAL: &str = "kuryer_deliveries_held_total";
/// Digests sent (all their parts) and recorded (counter).
pub const DIGESTS_SENT_TOTAL: &str = "kuryer_digests_sent_total";
/// Bot commands and button presses handled, by `command` (counter).
pub const BOT_COMMANDS_TOTAL: &str = "kuryer_bot_commands_total";
/// Bot replies Telegram refused or that failed after their retries, by `reason` (counter).
pub const BOT_REPLY_FAILURES_TOTAL: &str = "kuryer_bot_reply_failures_total";
/// Bot commands dropped by the per-user rate limit (counter).
pub const BOT_RATE_LIMITED_TOTAL: &str = "kuryer_bot_rate_limited_total";
/// Deliveries dropped unsent because their channel's lease was not surely
/// held by this instance any more (several instances; the owner sends them) (counter).
pub const LEASE_DROPPED_TOTAL: &str = "kuryer_lease_dropped_deliveries_total";
