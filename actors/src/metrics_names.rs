//! Names of the metrics kuryer exports, in one place. The first three are
//! the seed's and are kept as they are.

/// Posts delivered to a destination (counter).
pub const MESSAGES_FORWARDED_TOTAL: &str = "messages_forwarded_total";
/// Post detected → delivery accepted by Telegram (histogram, seconds).
pub const FORWARD_DURATION_SECONDS: &str = "forward_duration_seconds";
/// Channels with at least one active subscription (gauge).
pub const ACTIVE_CHANNELS: &str = "active_channels";
/// Deliveries that failed for good (counter).
pub const SEND_FAILED_TOTAL: &str = "kuryer_send_failed_total";
/// 429 answers from Telegram (counter).
pub const RATE_LIMITED_TOTAL: &str = "kuryer_rate_limited_total";
/// Posts detected in source channels (counter).
pub const POSTS_DETECTED_TOTAL: &str = "kuryer_posts_detected_total";
/// Channel pollers restarted after a crash (counter).
pub const POLLER_RESTARTS_TOTAL: &str = "kuryer_poller_restarts_total";
/// Time of one poll of one channel (histogram, seconds).
pub const POLL_DURATION_SECONDS: &str = "kuryer_poll_duration_seconds";
/// HTTP API requests by route and status (counter).
pub const HTTP_REQUESTS_TOTAL: &str = "kuryer_http_requests_total";
/// Subscriptions created through any interface (counter).
pub const SUBSCRIPTIONS_CREATED_TOTAL: &str = "kuryer_subscriptions_created_total";
/// Sends whose outcome is unknown (timeout after the request was written): the one way a duplicate can happen (counter).
pub const AMBIGUOUS_SENDS_TOTAL: &str = "kuryer_ambiguous_sends_total";
/// Deliveries found already sent in the dedup layer and not sent again (counter).
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
/// Bot commands and button presses handled, by `command` (counter).
pub const BOT_COMMANDS_TOTAL: &str = "kuryer_bot_commands_total";
/// Bot replies Telegram refused or that failed after their retries, by `reason` (counter).
pub const BOT_REPLY_FAILURES_TOTAL: &str = "kuryer_bot_reply_failures_total";
/// Bot commands dropped by the per-user rate limit (counter).
pub const BOT_RATE_LIMITED_TOTAL: &str = "kuryer_bot_rate_limited_total";
