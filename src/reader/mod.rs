//! # The MTProto reader
//!
//! Reader accounts (Telegram user accounts, `kuryer login`) read the
//! channels our bot does not administer, with grammers-client.
//!
//! | file | concern |
//! |---|---|
//! | `crypto.rs` | auth keys encrypted at rest (AES-256-GCM, `reader.session_key`) |
//! | `session.rs` | grammers' `Session` kept in PostgreSQL |
//! | `client.rs` | one account's connection; calls gated by its flood waits, counted |
//! | `login.rs` | `kuryer login / accounts / logout` |
//! | `mapping.rs` | grammers messages → `SourceMessage` (entities, albums, media, protected) |
//! | `pool.rs` | the accounts this process leases, pushed posts, lost accounts |
//! | `assign.rs` | which account reads a channel (the least loaded, kept while it lives); which it joins next |
//! | `hashes.rs` | each account's own access hash of a channel; resolving again after a move |
//! | `budget.rs` | each account's look-ups and joins a day, counted in PostgreSQL before each call |
//! | `joiner.rs` | joining channels one at a time per account, up to the maximum and the day's budget; `PEER_FLOOD` stops them for the day |
//! | `resolver.rs` | the resolve queue (`contacts.resolveUsername`, slow, stored for good) |
//! | `stream.rs` | one account's update stream: pushes into buffers, the update state synced into the session, flood waits slept |
//! | `source.rs` | the `ChannelSource`: pushed posts, history from the mark, polling |
//! | `history.rs` | where reading a channel starts; history read for a backfill |
//! | `orphans.rs` | channels nobody subscribes to any more: left after `reader.orphan_grace_s` |
//! | `quiet.rs` | each channel's pace: a silent channel that posts is read before the 600 s re-read |
//! | `relay.rs` | media forwarded into the relay channel (`random_id`, albums whole) |
//! | `changes.rs` | pushed edits and deletions, queued for the copies worker |
//! | `change_queue.rs` | those changes on their way to `post_events`: in order, retried while the database is away, bounded |

/// Which account reads a channel, and which it joins next.
mod assign;
/// Each account's look-ups and joins a day.
mod budget;
/// Edits and deletions on their way to the database, retried, bounded.
mod change_queue;
/// Edits and deletions pushed to reader accounts, queued to mirror.
mod changes;
/// One account's connection and its flood-wait gate.
pub mod client;
/// Auth keys encrypted at rest.
pub mod crypto;
/// Which Telegram a new session is made on: production, test or custom.
pub mod data_centre;
/// Access hashes per account; resolving again after a move.
mod hashes;
/// A channel's past: where reading starts, history for backfills.
pub mod history;
/// Joining channels, spread over time.
mod joiner;
/// The key exchange with a custom data centre's own public key.
pub mod key_exchange;
/// The lease of each account: renewals and the local deadline past which it is not used.
mod lease;
/// Login, listing and logout of reader accounts.
pub mod login;
/// Telegram messages into kuryer's source messages.
pub mod mapping;
/// Channels nobody subscribes to: left after a grace period.
mod orphans;
/// The account pool: leases, assignment, pushed posts, lost accounts.
pub mod pool;
/// Channels that stop pushing: when a silent channel is read.
mod quiet;
/// Media through the relay channel.
mod relay;
/// The resolve queue.
pub mod resolver;
/// What `auth.sendCode` answered, told to the operator.
pub mod sent_code;
/// The MTProto `ChannelSource`.
pub mod source;
/// One account's update stream and its saved state.
mod stream;

pub use history::HistoryError;
pub use pool::ReaderPool;
pub use source::MtprotoSource;
/// grammers' session in PostgreSQL.
pub mod session;
