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
//! In layer order, top to bottom. **No layer imports one above it**: the
//! daemon never reaches into a command, an adapter never into the daemon,
//! and `kuryer-actors` knows nothing of this crate (it defines the ports,
//! `ChannelSource` and `Persistence`, that the adapters implement).
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | commands | `main.rs`, [`cli`], `demo` (feature `demo`) | parse, load config, set up logging, run one command |
//! | daemon | [`daemon`], [`pipeline`], [`owed`], `backfill`, [`instance`], [`updates`], [`bot`], [`http`], [`notify`], [`preflight`], [`progress`] | `kuryer run`'s wiring and ordered shutdown, the actor pipeline, resume and sweep of owed deliveries, leases among several instances, the bots' update loops, the bot's commands, the HTTP API, systemd readiness and watchdog, start-up checks, progress of long work |
//! | adapters | [`store`], [`dedup`], [`destinations`], [`telemetry`], [`reader`] | PostgreSQL, Redis, what a lost destination means, logs and metrics, MTProto reader accounts |
//! | foundation | [`config`], [`secret`], [`alloc`] | configuration and its validation, redacted secrets, the allocator |
//! | actors | `kuryer-actors` | the actors and their messages, the domain model, the ports |
//!
//! `kuryer-sim` sits beside the service: only `demo` (behind the default
//! `demo` feature) and the tests use it, so `cargo build --release
//! --no-default-features` builds a service with no simulator in it.

/// The process's allocator (mimalloc) and its tuning.
pub mod alloc;
/// History on subscribe: backfills' ranges and the channels' history read.
mod backfill;
/// The bot people talk to: commands, buttons, destinations, texts.
pub mod bot;
/// The command line.
pub mod cli;
/// Configuration: structs, defaults, loading, validation.
pub mod config;
/// `kuryer run`: the daemon's wiring and ordered shutdown.
pub mod daemon;
/// The Redis layer of delivery dedup.
pub mod dedup;
/// `kuryer demo`: the pipeline against the simulated Telegram.
#[cfg(feature = "demo")]
pub mod demo;
/// `kuryer demo --reader mtproto`: the reader accounts against the fake data centre.
#[cfg(feature = "demo")]
pub mod demo_mtproto;
/// What the daemon does when a destination is lost, moved or failing.
pub mod destinations;
/// Digests: bundled posts sent once a day or an hour.
pub mod digest;
/// The management HTTP API.
pub mod http;
/// Several instances: leases of channels and bots, the heartbeat keeper.
pub mod instance;
/// Edits and deletions of source posts mirrored; history on subscribe.
pub mod mirror;
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
/// PostgreSQL: pool, typed queries, migrations, partitions.
pub mod store;
/// Subscription changes from every instance (LISTEN/NOTIFY) into the registry.
pub mod subscription_events;
/// Logging and metrics.
pub mod telemetry;
/// The bot's getUpdates loop and the source of channels where it is admin.
pub mod updates;
