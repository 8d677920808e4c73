//! The simulated Telegram: a fake Bot API server speaking the real wire
//! protocol (so teloxide's real client code runs against it), and a simulated
//! channel source. Used by `kuryer demo`, the benchmarks and the tests.

/// The fake Telegram as a process of its own, with a control API (`kuryer fake-telegram`).
pub mod control;
/// An HTTP fake of the Telegram Bot API that records every message it receives.
pub mod fake_bot_api;
/// A `ChannelSource` reading the fake Telegram's channel history.
pub mod source;
