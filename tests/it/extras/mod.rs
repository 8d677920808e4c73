//! The per-subscription extras against the simulated Telegram: text transforms,
//! quiet hours across a restart of the real binary, forum topics, owners
//! told once. Each test checks the exact Bot API calls the fake received.

/// Digests: held posts bundled into one message, across restarts.
mod digest;
/// Subscriptions paused by an unreadable channel (private, deleted, our bot
/// no longer its admin), told once each way, across restarts.
mod paused;
/// The store's side of pausing, and the protected notices' move.
mod paused_store;
/// Held posts of quiet hours across a restart of `kuryer run`.
mod quiet;
/// Channels made private or renamed: their subscribers told once, with buttons.
mod told;
/// Forum topics as destinations; a deleted topic.
mod topics;
/// Header, footer and replacements as the fake receives them.
mod transforms;
