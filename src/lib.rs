//! The kuryer daemon: CLI, configuration, wiring, and the adapters to
//! PostgreSQL, Redis, Telegram and HTTP. The actors live in `kuryer-actors`;
//! `ARCHITECTURE.md` is the map.

/// `kuryer bench`: the pipeline's benchmarks and the seed-design baseline.
pub mod bench;
/// The command line.
pub mod cli;
/// Configuration: structs, defaults, loading, validation.
pub mod config;
/// `kuryer run`: the daemon's wiring and ordered shutdown.
pub mod daemon;
/// The Redis layer of delivery dedup.
pub mod dedup;
/// `kuryer demo`: the pipeline against the simulated Telegram.
pub mod demo;
/// What the daemon does when a destination is lost, moved or failing.
pub mod destinations;
/// The management HTTP API.
pub mod http;
/// Wiring of the actor pipeline and its ordered shutdown.
pub mod pipeline;
/// Secrets that print themselves redacted.
pub mod secret;
/// The simulated Telegram (fake Bot API server) for demo, benchmarks and tests.
pub mod sim;
/// PostgreSQL: pool, typed queries, migrations, partitions.
pub mod store;
/// Logging and metrics.
pub mod telemetry;
/// The bot's getUpdates loop and the source of channels where it is admin.
pub mod updates;
