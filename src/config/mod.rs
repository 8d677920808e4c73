//! Configuration: the structs, their defaults, loading, and validation.
//!
//! Loading order, later wins: built-in defaults < the TOML file < environment
//! variables `KURYER_<SECTION>_<KEY>` < systemd credentials for secrets
//! (`$CREDENTIALS_DIRECTORY/<name>`). Every key is documented in the
//! repository's `config.toml`; unknown keys are an error that names the key.
//!
//! `load()` only reads and checks; nothing here connects to anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use kuryer_actors::channel_poller::PollerConfig;
use kuryer_actors::db_writer::DbWriterConfig;
use kuryer_actors::rate_limiter::LimiterConfig;
use kuryer_actors::sender_pool::SenderConfig;

use crate::secret::{Secret, SecretUrl};

/// The database connection parsed once: URL, TLS mode, timeouts.
pub mod data_centre;
mod database;
/// Reading the file, the environment and the credentials.
mod load;
/// `Config::validate`: ranges, URLs, what this build can serve.
mod validate;

/// Where `kuryer` looks for its file when `--config` is not given, in order.
pub const DEFAULT_PATHS: [&str; 2] = ["./config.toml", "/etc/kuryer/config.toml"];

/// How errors name the built-in defaults as a source.
const BUILT_IN: &str = "built-in defaults";

/// Prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "KURYER_";

/// systemd credentials kuryer reads, and the key each one sets.
pub const CREDENTIALS: [(&str, &str); 7] = [
    ("bot_tokens", "telegram.bot_tokens"),
    ("api_hash", "telegram.api_hash"),
    ("database_url", "database.url"),
    ("redis_url", "redis.url"),
    ("api_token", "http.api_token"),
    ("replica_urls", "database.replica_urls"),
    ("session_key", "reader.session_key"),
];

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Redis: dedup keys and shared caches.
    pub redis: RedisConfig,
    /// Telegram: Bot API, bot tokens, admins, the MTProto reader's app credentials.
    pub telegram: TelegramConfig,
    /// Telegram's rate limits as the daemon obeys them.
    pub limits: LimitsConfig,
    /// The management HTTP API.
    pub http: HttpConfig,
    /// The delivery pipeline.
    pub delivery: DeliveryConfig,
    /// MTProto reader accounts: channels our bot does not administer.
    pub reader: ReaderConfig,
    /// This process among several instances: its name and its leases.
    pub instance: InstanceConfig,
    /// Logging.
    pub log: LogConfig,
}

/// The delivery pipeline's tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Shortest interval between polls of a busy channel (ms).
    pub poll_min_interval_ms: u64,
    /// Longest interval between polls of a quiet channel (ms).
    pub poll_max_interval_ms: u64,
    /// Bot API calls in flight at once, all bots together.
    pub max_in_flight: usize,
    /// Deliveries queued in the rate limiter before pollers wait.
    pub queue_capacity: usize,
    /// Deliveries queued in the rate limiter for one destination chat; past
    /// it that chat's further deliveries stay owed in the database and are
    /// queued, in order, as it drains.
    pub queue_per_destination: usize,
    /// Delivery rows written to PostgreSQL in one batch at most.
    pub db_batch_size: usize,
    /// Longest a delivery row waits for its batch to fill (ms).
    pub db_flush_interval_ms: u64,
    /// Batches written at once, each on its own connection.
    pub db_writes_in_flight: usize,
    /// Delivery rows waiting for PostgreSQL before sending pauses.
    pub max_db_backlog: usize,
    /// Time the ordered shutdown may take before it is forced (ms).
    pub shutdown_deadline_ms: u64,
    /// At start, posts detected this long ago or less whose deliveries have
    /// no recorded outcome are delivered (s).
    pub resume_window_s: u64,
    /// How often the running daemon looks for recorded posts (within
    /// `resume_window_s`, at least this old) whose deliveries have no
    /// outcome and are not held by the pipeline, and delivers them (s).
    pub sweep_interval_s: u64,
    /// What to do after a send whose outcome is unknown (timeout after the
    /// request was written): `retry` (may duplicate) or `skip` (may lose).
    pub on_ambiguous: OnAmbiguous,
    /// Failed sends in a row after which a destination is paused.
    pub max_failures: u32,
    /// A channel's state notices (made private or public, renamed, our
    /// bot's rights) wait this long for the channel to settle; what it
    /// settled on is told once (ms).
    pub notice_debounce_ms: u64,
}

/// Policy for sends whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnAmbiguous {
    /// Send again: never lost, possibly duplicated.
    Retry,
    /// Record and move on: never duplicated, possibly lost.
    Skip,
}

// Defaults are defined once. A key that sets an actor's behaviour takes the
// actor's own default (`kuryer_actors::*::Config::default()`), so the two
// cannot drift apart; keys only the daemon reads have theirs here.
// `config.toml` repeats them all, and a test checks it does.

impl Default for DeliveryConfig {
    fn default() -> Self {
        let poller = PollerConfig::default();
        let limiter = LimiterConfig::default();
        let writer = DbWriterConfig::default();
        let sender = SenderConfig::default();
        Self {
            poll_min_interval_ms: millis(poller.min_interval),
            poll_max_interval_ms: millis(poller.max_interval),
            max_in_flight: limiter.max_in_flight,
            queue_capacity: limiter.queue_capacity,
            queue_per_destination: limiter.queue_per_chat,
            db_batch_size: writer.batch_size,
            db_flush_interval_ms: millis(writer.flush_interval),
            db_writes_in_flight: writer.writes_in_flight,
            max_db_backlog: limiter.max_db_backlog,
            shutdown_deadline_ms: 30_000,
            resume_window_s: 24 * 3600,
            sweep_interval_s: 60,
            on_ambiguous: if sender.retry_ambiguous {
                OnAmbiguous::Retry
            } else {
                OnAmbiguous::Skip
            },
            max_failures: sender.max_failures,
            notice_debounce_ms: 10_000,
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Primary database URL (`postgres://user:password@host:port/db`) or libpq key-value string.
    pub url: SecretUrl,
    /// Read replicas for read-only queries; empty means all reads go to the primary.
    pub replica_urls: Vec<SecretUrl>,
    /// Most connections in the pool. The seed's "20 + 40 overflow" is a ceiling of 60.
    pub pool_max: usize,
    /// How long a caller waits for a free connection before the call fails (ms).
    pub pool_wait_timeout_ms: u64,
    /// How long opening a new connection may take (ms).
    pub connect_timeout_ms: u64,
    /// Server-side statement timeout for every connection (ms); 0 disables.
    pub statement_timeout_ms: u64,
    /// Days of `forwarded_messages` history kept; older daily partitions are dropped.
    pub retention_days: u32,
    /// Daily partitions of `forwarded_messages` created ahead of today.
    pub partitions_ahead_days: u32,
    /// PEM file of certificate authorities trusted for TLS to PostgreSQL, in
    /// addition to the public web roots (for a private CA or a self-signed
    /// server certificate). TLS is used when a URL says `sslmode=require`
    /// (always, verified) or `sslmode=prefer` (when the server offers it,
    /// verified); without `sslmode`, connections are plain, as before.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("postgres://postgres@127.0.0.1:5432/kuryer"),
            replica_urls: Vec::new(),
            pool_max: 60,
            pool_wait_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            retention_days: 30,
            partitions_ahead_days: 7,
            tls_ca_file: None,
        }
    }
}

/// Redis settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Redis URL (`redis://[:password@]host:port/db`, `rediss://` for TLS).
    pub url: SecretUrl,
    /// Prefix of every key kuryer writes, so several deployments can share a server.
    pub key_prefix: String,
    /// Lifetime of a dedup key `{key_prefix}{installation}:fwd:{subscription_id}:{message_id}` (s). Seed: 24 h.
    pub dedup_ttl_s: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379/0"),
            key_prefix: "kuryer:".to_owned(),
            dedup_ttl_s: 24 * 3600,
        }
    }
}

/// Telegram settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// Base URL of the Bot API server.
    pub bot_api_url: String,
    /// Bot tokens from @BotFather; deliveries are spread over them.
    pub bot_tokens: Vec<Secret>,
    /// Telegram user ids allowed to use admin commands such as `/stats`.
    pub admins: Vec<i64>,
    /// MTProto application id from my.telegram.org (for reader accounts); 0 = none.
    pub api_id: i32,
    /// MTProto application hash from my.telegram.org.
    pub api_hash: Option<Secret>,
    /// Private relay channel (bot is admin) into which reader accounts forward media posts.
    pub relay_chat_id: Option<i64>,
    /// Timeout of one Bot API request (ms).
    pub request_timeout_ms: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            bot_api_url: "https://api.telegram.org".to_owned(),
            bot_tokens: Vec::new(),
            admins: Vec::new(),
            api_id: 0,
            api_hash: None,
            relay_chat_id: None,
            request_timeout_ms: millis(SenderConfig::default().request_timeout),
        }
    }
}

/// Telegram's rate limits, as the daemon's own limiter enforces them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Messages a second one bot token may send overall (Telegram: about 30).
    pub per_bot_per_second: f64,
    /// Messages a second to one chat (Telegram: 1, short bursts tolerated).
    pub per_chat_per_second: f64,
    /// Messages a minute to one group or channel (Telegram: 20).
    pub per_group_per_minute: f64,
    /// Use `allow_paid_broadcast` (up to 1,000 messages/s, paid in Stars). Opt-in.
    pub allow_paid_broadcast: bool,
    /// The overall per-bot rate while `allow_paid_broadcast` is on. Calls that
    /// cannot carry the flag (albums, forwards) stay at `per_bot_per_second`.
    pub paid_per_bot_per_second: f64,
    /// Subscriptions one user may have (not counting removed ones).
    pub max_subscriptions_per_user: u32,
    /// Bot commands and button presses one user may send a minute (bursts
    /// of a third of it, at least 10); past it one "too fast" reply, then
    /// silence until the bucket refills. Each name /add asks Telegram
    /// about counts as one.
    pub bot_commands_per_minute: u32,
    /// New channels one user may make kuryer look up through the bot in a
    /// day (names no one had added before); past it `/add` of a new name
    /// waits for tomorrow.
    pub new_channels_per_user_per_day: u32,
    /// A user's subscriptions whose channel is still being looked up; past
    /// it `/add` of another such name waits until some are settled.
    pub pending_names_per_user: u32,
    /// `/add … last N` history sends one user may ask for in a day (and
    /// one at a time per subscription).
    pub backfills_per_user_per_day: u32,
    /// Share the per-bot, per-chat and per-group limits between instances
    /// through Redis: `auto` (while more than one instance is live), `on`
    /// (always) or `off` (each instance limits itself alone).
    pub shared: SharedMode,
}

/// When the rate limits are shared between instances through Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedMode {
    /// While more than one instance is live (by the `instances` table's heartbeats).
    Auto,
    /// Always (one Redis call a scheduling round even when alone).
    On,
    /// Never.
    Off,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limiter = LimiterConfig::default();
        Self {
            per_bot_per_second: limiter.per_bot_per_second,
            per_chat_per_second: limiter.per_chat_per_second,
            per_group_per_minute: limiter.per_group_per_minute,
            allow_paid_broadcast: false,
            paid_per_bot_per_second: 1000.0,
            max_subscriptions_per_user: 200,
            bot_commands_per_minute: 30,
            new_channels_per_user_per_day: 20,
            pending_names_per_user: 10,
            backfills_per_user_per_day: 10,
            shared: SharedMode::Auto,
        }
    }
}

/// The management HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the API listens on; loopback by default.
    pub listen: SocketAddr,
    /// Bearer token for management routes; when unset those routes answer 404.
    pub api_token: Option<Secret>,
    /// Largest request body accepted (bytes).
    pub body_limit_bytes: usize,
    /// Time a client has to send its request head (ms).
    pub request_timeout_ms: u64,
    /// Time one request may spend in a handler, database included (ms).
    pub handler_timeout_ms: u64,
    /// HTTP worker threads; 0 = one per CPU core.
    pub workers: usize,
    /// The Grafana dashboard's address, linked from the status page
    /// (`/status`); none when unset.
    pub grafana_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_token: None,
            body_limit_bytes: 16 * 1024,
            request_timeout_ms: 5_000,
            handler_timeout_ms: 10_000,
            workers: 0,
            grafana_url: None,
        }
    }
}

/// MTProto reader accounts (`kuryer login`), which read the channels our
/// bot does not administer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderConfig {
    /// Key that encrypts the sessions' auth keys at rest (any long random
    /// string; SHA-256 of it is the AES-256-GCM key). Required once a reader
    /// account exists; prefer the `session_key` systemd credential.
    pub session_key: Option<Secret>,
    /// Channels one account joins at most (Telegram allows 500).
    pub max_channels_per_account: u32,
    /// Time between two username look-ups (contacts.resolveUsername earns
    /// Telegram's longest flood waits), over all accounts (ms).
    pub resolve_interval_ms: u64,
    /// Time between two channel joins of one account (ms).
    pub join_interval_ms: u64,
    /// Username look-ups one account makes a UTC day at most (counted in
    /// PostgreSQL, whichever instance holds the account).
    pub resolves_per_day: u32,
    /// Joins one account makes on its first day in kuryer.
    pub joins_first_day: u32,
    /// Joins one account makes a day once ramped up.
    pub joins_per_day: u32,
    /// Days over which an account's joins a day grow from
    /// `joins_first_day` to `joins_per_day` (0: no ramp).
    pub join_ramp_days: u32,
    /// How often a channel no account could join is read with
    /// messages.getHistory (s).
    pub poll_interval_s: u64,
    /// messages.getHistory calls one account makes a second at most.
    pub history_per_second: f64,
    /// A joined channel with no pushed post for this long has its history
    /// checked once, in case a push was lost (s); longer for an account
    /// reading so many channels that these checks would take more than
    /// half its `history_per_second`.
    pub verify_interval_s: u64,
    /// A joined channel that posts has its history read once when it stays
    /// silent for four of its usual gaps between posts, but never sooner
    /// than this (s; capped at `verify_interval_s`): Telegram may stop
    /// pushing a channel's updates without a word.
    pub quiet_check_min_s: u64,
    /// Pushed posts one channel's buffer holds at most while its poller
    /// has not read them; past it the buffer is dropped and the channel's
    /// history is read instead (nothing lost).
    pub max_buffered_per_channel: usize,
    /// A channel nobody subscribes to any more is left by its reader
    /// account after this long (s); subscribing again within it keeps the
    /// membership, after it the channel is joined again within the day's
    /// join budget.
    pub orphan_grace_s: u64,
    /// Lifetime of an account's lease; renewed every third of it (s).
    pub lease_ttl_s: u64,
    /// Updates grammers may hold for kuryer before it must drop them.
    pub updates_capacity: usize,
    /// The relay channel's access hash as the reader accounts know it, when
    /// their sessions have not cached it (`telegram.relay_chat_id`).
    pub relay_access_hash: Option<i64>,
    /// Which Telegram `kuryer login` makes new sessions on: `production`,
    /// `test` (Telegram's test data centres, for developers) or `custom`
    /// (`custom_dcs` with `custom_public_key`).
    pub data_centre: String,
    /// `custom`: the data centres, `ID=IP:PORT` comma-separated; a login
    /// starts at the first.
    pub custom_dcs: Option<String>,
    /// `custom`: their RSA public key, PKCS#1 PEM.
    pub custom_public_key: Option<String>,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            session_key: None,
            max_channels_per_account: 450,
            resolve_interval_ms: 120_000,
            join_interval_ms: 600_000,
            resolves_per_day: 30,
            joins_first_day: 10,
            joins_per_day: 40,
            join_ramp_days: 14,
            poll_interval_s: 60,
            history_per_second: 0.3,
            verify_interval_s: 600,
            quiet_check_min_s: 60,
            max_buffered_per_channel: 1_000,
            orphan_grace_s: 86_400,
            lease_ttl_s: 30,
            updates_capacity: 100_000,
            relay_access_hash: None,
            data_centre: "production".to_owned(),
            custom_dcs: None,
            custom_public_key: None,
        }
    }
}

/// This process among several `kuryer run` instances over one database:
/// channels, reader accounts and bot tokens' `getUpdates` are leased to one
/// instance at a time (see `crate::instance`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceConfig {
    /// This instance's name on its leases and in `kuryer instances`; unset:
    /// the host name and the process id.
    pub id: Option<String>,
    /// An instance that has not renewed its heartbeat for this long loses
    /// its leases to the others (s); it renews every third of it.
    pub lease_ttl_s: u64,
    /// The host name recorded for this instance; unset: `gethostname(2)`.
    pub host_name: Option<String>,
    /// This machine's id; unset: `/etc/machine-id`.
    pub machine_id: Option<String>,
    /// This boot's id; unset: `/proc/sys/kernel/random/boot_id` (the
    /// shipped unit passes systemd's `%b`, as that file is hidden there).
    pub boot_id: Option<String>,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self {
            id: None,
            lease_ttl_s: 30,
            host_name: None,
            machine_id: None,
            boot_id: None,
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when started by systemd with the journal attached, else pretty.
    Auto,
    /// Native journald fields.
    Journald,
    /// One JSON object a line on stderr.
    Json,
    /// Human-readable lines on stderr.
    Pretty,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto`, `journald`, `json` or `pretty`.
    pub format: LogFormat,
    /// A tracing filter: `info`, or per target, e.g. `info,kuryer=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".to_owned(),
        }
    }
}

/// Why the configuration cannot be used. Every variant names where the bad
/// value came from and the key it belongs to; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        /// The file, environment variable or credential the value came from.
        origin: String,
        /// The dotted key, e.g. `database.pool_max`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("systemd credential {name}: cannot read it: {source}")]
    Credential {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// A loaded, validated configuration and the file it came from (if any).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file read, or `None` when none existed and defaults were used.
    pub path: Option<PathBuf>,
}

pub use database::{DbConnect, DbUrlError};
pub use load::{find_file, load, load_from};

impl Config {
    /// The effective configuration as TOML, every secret shown as `***`.
    pub fn to_redacted_toml(&self) -> String {
        // The secret types serialise themselves redacted, so plain
        // serialisation is already safe.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}
