//! # kuryer-actors
//!
//! The actors of kuryer and the typed messages between them. The daemon
//! (`kuryer`) implements the ports (PostgreSQL persistence, channel sources)
//! and wires these actors together; `ARCHITECTURE.md` has the whole map.
//!
//! ## Actors and who owns what
//!
//! | actor | owns | receives | sends |
//! |---|---|---|---|
//! | [`ChannelSupervisor`](channel_supervisor) | channel → poller map; restarts pollers that die of a panic | `StartChannel`, `StopChannel`, `WakeChannel`, `StopAll` | starts/stops `ChannelPoller`s |
//! | [`ChannelPoller`](channel_poller) | one channel's high-water mark and source | `Wake`, `StopPoller` | records posts via `Persistence`, `PublishPost` → registry |
//! | [`SubscriberRegistry`](subscriber_registry) | index channel → active subscriptions | `LoadSubscriptions`, `AddSubscription`, `RemoveSubscription`, `PublishPost` | claims the fan-out in [`InFlight`](in_flight), `Enqueue` → limiter |
//! | [`RateLimiter`](rate_limiter) | queued deliveries per chat; rate state per bot and chat; halted bots | `Enqueue`, `SendFinished`, `Drain`, `Halt` | `SendDelivery` → sender pool |
//! | [`SenderPool`](sender_pool) | one teloxide `Bot` per token | `SendDelivery` | `SendFinished` → limiter, `RecordDeliveries` → writer |
//! | [`DbWriter`](db_writer) | finished deliveries not yet written | `RecordDeliveries`, `Flush` | writes via `Persistence` |
//!
//! ```text
//! ChannelPoller --PublishPost--> SubscriberRegistry --Enqueue--> RateLimiter
//!     --SendDelivery--> SenderPool --SendFinished--> RateLimiter
//!                                  --RecordDeliveries--> DbWriter
//! ```
//!
//! Besides the actors: [`model`] (domain types), [`in_flight`] (what this process holds), [`ports`] (the traits the
//! daemon implements), [`backoff`] (the one retry policy of every loop) and
//! [`telemetry`] (every metric's declaration, and the events that write a
//! log line and its metrics in one call). The rate limiter is a directory module: its policy
//! (`rate_limiter/schedule.rs`) is plain data driven by explicit instants,
//! the actor around it owns the timer.
//!
//! Test-only messages (`channel_poller::PanicForTest`,
//! `channel_supervisor::GetPoller`) exist only with the `test-hooks` feature.
//!
//! Back-pressure runs the other way: the limiter answers `Enqueue` only while
//! its queue is under capacity, the registry answers `PublishPost` only after
//! the limiter did, and a poller awaits that answer before its next post; the
//! limiter stops dispatching while the DbWriter's backlog is over its bound.

#![warn(missing_docs)]

/// The backoff policy of every retry loop: capped exponential, optional jitter.
pub mod backoff;
/// One actor per channel: reads new posts and records them.
pub mod channel_poller;
/// Supervises the channel pollers; restarts a poller that panicked.
pub mod channel_supervisor;
/// CPU-heavy work (transforms, regex compilation) off the actor thread,
/// on a bounded pool of worker threads.
pub mod cpu;
/// Writes finished deliveries to the database in batches.
pub mod db_writer;
pub mod digest;
/// Per-subscription filters (keywords, regex, media kinds), applied in the fan-out.
pub mod filters;
/// The deliveries this process holds (queued, being sent, outcome not yet
/// committed), so a sweep never queues one twice.
pub mod in_flight;
/// The Bot API calls that mirror an edit or deletion onto the copies.
mod mirror_calls;
/// Domain types shared by the actors and the daemon's adapters.
pub mod model;
/// What a delivery's Bot API calls produced and what a Telegram error means.
pub mod outcome;
/// The traits the daemon implements: channel sources and persistence.
pub mod ports;
/// Quiet hours: when a subscription's posts are held, as a pure function of `now`.
pub mod quiet;
/// Telegram's rate limits: sends each delivery at the earliest allowed moment.
pub mod rate_limiter;
/// The Bot API calls of one delivery and what their errors mean.
mod sender_calls;
/// Makes the Bot API calls with teloxide.
pub mod sender_pool;
/// What a subscription's settings change in a send: transforms, forum
/// topic; the bounded cache of compiled transforms the sender and the
/// registry share.
pub mod shaping;
/// Source chats the bots can no longer read: their deliveries wait, one tries again.
mod source_pauses;
/// The in-memory index of active subscriptions; fans a post out into deliveries.
pub mod subscriber_registry;
/// Runs a long-running task again after it panicked, with a backoff.
pub mod supervise;
/// Every metric declared once, and the events that log and count together.
pub mod telemetry;
/// Messages only tests send (stop an actor as if it had died).
#[cfg(any(test, feature = "test-hooks"))]
pub mod test_hooks;
/// Deliveries the unit tests share.
#[cfg(test)]
mod testing;
/// Per-subscription text transforms (header, footer, replacements) keeping entities right.
pub mod transform;
