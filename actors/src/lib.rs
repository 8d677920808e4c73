//! # kuryer-actors
//!
//! The actors of kuryer and the typed messages between them. The daemon binary
//! (`kuryer`) owns the adapters (PostgreSQL, Redis, Telegram, HTTP) and wires
//! them into these actors.
//!
//! ## What is here now
//!
//! - [`model`]: the domain types every actor and adapter shares — channel
//!   usernames as Telegram accepts them, delivery modes, destination kinds,
//!   and the shape of an active subscription as the registry holds it.
//!
//! ## The pipeline (see `ARCHITECTURE.md`)
//!
//! ```text
//! ChannelPoller --Post--> SubscriberRegistry --Delivery--> RateLimiter
//!     --> SenderPool --DeliveryResult--> DbWriter
//! ```
//!
//! Each actor lives in a file of its own and holds its message types. The
//! actors are added as the pipeline is built; this map lists only what exists.

/// Domain types shared by the actors and the daemon's adapters.
pub mod model;
