//! # kuryer
//!
//! The daemon that delivers new posts of Telegram channels to their
//! subscribers: its command line, configuration, wiring, and the adapters to
//! PostgreSQL, Redis, Telegram and HTTP. The actors live in `kuryer-actors`,
//! the simulated Telegram in `kuryer-sim`, the benchmarks in `kuryer-bench`;
//! `ARCHITECTURE.md` is the whole map.
//!
//! # Layout
//!
//! The modules stand in layers, written once in [`LAYERS`] (bottom to top).
//! **A module imports only from its own layer or those below**, and no two
//! modules import each other, however indirectly: a lower layer that needs
//! a higher one receives what it needs when it is built (an event queue,
//! a trait object), never imports it. `tests/it/layers.rs` reads every
//! `crate::…` path in `src/` and fails on an import that runs up a layer or
//! closes a loop, and on a module missing from [`LAYERS`].
//! `kuryer-actors` sits under all of them and knows nothing of this crate
//! (it defines the ports, `ChannelSource` and `Persistence`, that the
//! adapters implement).
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | commands | `main.rs`, `cli`, `dead_letter_cli`, `demo` and `demo_mtproto` (feature `demo`) | parse, load config, set up logging, run one command |
//! | daemon | `daemon` | `kuryer run`: everything started in one pass, the ordered stop |
//! | faces | `bot`, `updates`, `http` | what people and operators talk to: the bot's commands, the bots' update loops, the HTTP API |
//! | services | `instance`, `owed`, `destination_events`, `digest`, `copies`, `pipeline`, `keeper`, `instance_snapshot`, `subscription_events`, `preflight`, `notify`, `dead_letters` | the pipeline and what it runs: owed deliveries, lost destinations, digests, edits and history on subscribe, leases among instances and what each holds in memory, the change feed, start-up checks, systemd's notify protocol, dead letters replayed and discarded |
//! | sources | `reader` | MTProto reader accounts |
//! | telegram leaves | `telegram`, `i18n`, `source_events` | bot ids and building, texts in three languages, what sources tell the daemon |
//! | infrastructure | `store`, `redis_conn`, `dedup`, `shared_limits`, `command_budget` | PostgreSQL, Redis, dedup, shared rate limits, users' command budgets |
//! | foundation | `alloc`, `config`, `secret`, `telemetry`, `progress` | configuration, redacted secrets, logs, metrics and the named events that write both, progress of long work, the allocator |
//!
//! `kuryer-sim` sits beside the service: only `demo` (behind the default
//! `demo` feature) and the tests use it, so `cargo build --release
//! --no-default-features` builds a service with no simulator in it.

/// The layers of this crate, bottom to top, each with its modules: a
/// module may import from its own layer and those below, never above.
pub const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["alloc", "config", "secret", "telemetry", "progress"],
    ),
    (
        "infrastructure",
        &[
            "store",
            "redis_conn",
            "dedup",
            "shared_limits",
            "command_budget",
        ],
    ),
    ("telegram leaves", &["telegram", "i18n", "source_events"]),
    ("sources", &["reader"]),
    (
        "services",
        &[
            "instance",
            "owed",
            "destination_events",
            "digest",
            "copies",
            "pipeline",
            "keeper",
            "instance_snapshot",
            "subscription_events",
            "preflight",
            "notify",
            "dead_letters",
        ],
    ),
    ("faces", &["bot", "updates", "http"]),
    ("daemon", &["daemon"]),
    (
        "commands",
        &["cli", "dead_letter_cli", "demo", "demo_mtproto"],
    ),
];

/// The process's allocator (mimalloc) and its tuning.
pub mod alloc;
/// The bot people talk to: commands, buttons, destinations, texts.
pub mod bot;
/// The command line.
pub mod cli;
/// Each user's bot command budget, shared through Redis.
pub mod command_budget;
/// Configuration: structs, defaults, loading, validation.
pub mod config;
/// Subscribers' copies after the first delivery: edits and deletions
/// mirrored, history on subscribe.
pub mod copies;
/// `kuryer run`: the daemon's wiring and ordered shutdown.
pub mod daemon;
/// `kuryer dead-letters`: list, show, replay, discard.
pub mod dead_letter_cli;
/// Dead letters replayed, discarded and shown redacted.
pub mod dead_letters;
/// The Redis layer of delivery dedup.
pub mod dedup;
/// `kuryer demo`: the pipeline against the simulated Telegram.
#[cfg(feature = "demo")]
pub mod demo;
/// `kuryer demo --reader mtproto`: the reader accounts against the fake data centre.
#[cfg(feature = "demo")]
pub mod demo_mtproto;
/// What the daemon does when a destination is lost, moved or failing.
pub mod destination_events;
/// Digests: bundled posts sent once a day or an hour.
pub mod digest;
/// The management HTTP API.
pub mod http;
/// The bot's texts in uz/ru/en, from the Fluent files in `locales/`.
pub mod i18n;
/// Several instances: what this instance owns, its id, the process checks.
pub mod instance;
/// Each instance's queue depths and flood waits, written for the status page.
pub mod instance_snapshot;
/// The lease keeper: the heartbeat loop, take-overs, fair shares.
pub mod keeper;
/// systemd's notify protocol: readiness, status, the earned watchdog ping.
pub mod notify;
/// Deliveries the database owes: the start-up resume and the periodic sweep.
pub mod owed;
/// Wiring of the actor pipeline and its ordered shutdown.
pub mod pipeline;
/// Start-up checks: each bot token's getMe, webhooks, `check-config --connect`.
pub mod preflight;
/// Progress of long one-off work: a bar on a terminal, lines otherwise.
pub mod progress;
/// MTProto reader accounts: sessions, login, the channel source, resolving.
pub mod reader;
/// One lazily made Redis connection with a throttled retry, and Redis' health (dedup, shared limits).
mod redis_conn;
/// Secrets that print themselves redacted.
pub mod secret;
/// Telegram's rate limits shared between instances through Redis.
pub mod shared_limits;
/// What the channel sources tell the daemon, queued until it listens.
pub mod source_events;
/// PostgreSQL: pool, typed queries, migrations, partitions.
pub mod store;
/// Subscription changes and inbox wakes from every instance (LISTEN/NOTIFY).
pub mod subscription_events;
/// Bot API leaves: a bot's id from its token, building the bots.
pub mod telegram;
/// Logging and metrics set-up, and the daemon's named events (a log line and its metrics in one call).
pub mod telemetry;
/// The bot's getUpdates loop and the source of channels where it is admin.
pub mod updates;
