//! RateLimiter: sends each delivery at the earliest moment Telegram's limits
//! allow, fairly between people and, for each, between channels.
//!
//! | file | what it holds |
//! |---|---|
//! | `limits.rs` | [`LimiterConfig`](crate::rate_limiter::LimiterConfig): Telegram's numbers, and the intervals that follow from them |
//! | `schedule.rs` | the policy as plain data, every step taking `now`: GCRA per bot, arrival window, per-chat spacing, flood waits |
//! | `schedule/turns.rs` | whose turn is next: rounds with one turn per person (the subscriber), round-robin over channels within a round |
//! | `schedule/replies.rs` | the bot's replies to commands: the bot's budget and the chat's spacing, ahead of every delivery, in order per chat |
//! | `schedule/people.rs` | the cap on one person's sends in flight (a slow destination's send holds its window slot while in flight) |
//! | `halted.rs` | [`HaltedLanes`](crate::rate_limiter::HaltedLanes): the bots whose token was refused, shared with the daemon |
//! | `shared.rs` | the limits shared with other instances: candidates admitted by one call a round, the fallback share |
//! | `actor.rs` | [`RateLimiter`](crate::rate_limiter::RateLimiter), the actor: its messages, its timer, back-pressure on `Enqueue` |
//! | `room.rs` | [`QueueRoom`](crate::rate_limiter::QueueRoom): the queue's size shared with the registry, which waits for room before a fan-out |

mod actor;
mod budget;
mod halted;
mod limits;
mod room;
mod schedule;
mod shared;

pub use actor::{
    Drain, DropChannels, Enqueue, GetLimiterStats, Halt, LimiterStats, MoveChat, RateLimiter,
    SendDelivery, SendFinished,
};
pub use halted::HaltedLanes;
pub use limits::{LimiterConfig, SharedRates};
pub use room::QueueRoom;
pub use schedule::SendOutcome;
