//! kuryer's integration tests, one binary (it links once): each module
//! against the real PostgreSQL (a fresh database per test) and Redis (its
//! own key prefix or a private server), Telegram faked at the wire.

/// The bot: commands, buttons, destinations, settings, several bots.
mod bot;
mod bot_more;
/// The status page in headless Chromium (selenium, chromedriver).
mod browser;
/// `kuryer-sim chat` against a real `kuryer run` and `kuryer-sim`.
mod chat;
/// The command line of the real binary.
mod cli;
/// Each user's bot command budget shared through Redis, and without it.
mod command_budget;
/// Helpers: throw-away databases, the real binary as a child, a private Redis.
mod common;
/// Configuration loading, layering and validation.
mod config;
/// The status page (`/status`) of `kuryer run`.
mod console;
/// `kill -9` and chaos runs of the real binary.
mod crash;
/// `kuryer run` end to end against the fake Bot API.
mod daemon;
/// Dead letters listed, shown, replayed and discarded (API and command line).
mod dead_letters;
/// The documents against the code: paths, `kuryer` command lines, module maps.
mod docs;
/// Never lost, never twice, part two: each test names what broke.
mod durability;
/// Text transforms, quiet hours, forum topics, owners told once.
mod extras;
/// Faults on purpose: Telegram's errors, outages, odd input.
mod faults;
/// Fencing at the store: a stale lease generation records nothing.
mod fencing;
/// The in-process pipeline harness of the fault and durability tests.
mod harness;
mod history;
/// One hostile user hurts no one: CPU-heavy settings, update handling.
mod hostile;
/// One hostile user hurts no one: link codes, chats you no longer admin, per-user budgets.
mod hostile_budgets;
/// One hostile user hurts no one: channel notices and digests within the limits.
mod hostile_notices;
/// The HTTP API with a real client.
mod http;
mod http_routes;
/// Several `kuryer run` instances: leases, take-overs, fencing.
mod instances;
/// `kill -9` mid-burst with sends in flight, at Telegram's limits.
mod instances_burst;
/// Faults on the production intake path (`kuryer run`, getUpdates).
mod intake;
/// Imports inside `src/` run down the layers, with no loops.
mod layers;
/// Instances on several simulated machines: identity, who is judged dead.
mod machines;
/// Three machines through two kills and a pause: one bot, three reader accounts.
mod machines_scenario;
/// Edits and deletions mirrored, history on subscribe.
mod mirror;
mod mirror_reader;
/// What operators rely on (`ops/`): systemd notify and watchdog, start-up checks,
/// metrics against the fake's counts, log fields, no secrets.
mod ops;
/// Paid broadcast holds the free limits for the calls that cannot carry its flag.
mod paid_broadcast;
/// A waiting channel says why: the API's reason, the start WARN, `check-config`, the bot.
mod pending_reason;
/// The actor pipeline end to end.
mod pipeline;
/// The MTProto reader against the fake data centre.
mod reader;
mod reader_album;
/// Each reader account's look-ups and joins a day; frozen and spam-limited accounts.
mod reader_budgets;
/// Pushed posts wait in a bounded buffer, dropped with their poller; nothing is lost.
mod reader_buffers;
mod reader_hashes;
/// A reader account's lease: the local deadline, the taker's wait.
mod reader_lease;
mod reader_login;
/// Channels nobody subscribes to (left after a grace), the keeper's share, burned keys.
mod reader_orphans;
/// An account reading many channels re-reads silent ones within half its history pace.
mod reader_pace;
mod reader_pages;
mod reader_relay;
/// `kuryer run` reading channels through reader accounts, as a black box.
mod reader_run;
/// Three accounts, 30 channels, two instances, a kill -9 and a restart.
mod reader_scenario;
mod reader_state;
// The bot removed from the relay channel: the source's problem, not the destinations'.
mod relay_refused;
/// Read replicas: a real streaming replica, and one that is down.
mod replica;
/// Telling a user how the look-up of a channel they added ended.
mod resolve_notice;
/// Changes reach every instance (LISTEN/NOTIFY).
mod scale_changes;
/// Posts of shapes kuryer cannot read, and updates built from the Bot API specification.
mod shapes;
/// Rate limits shared between instances through Redis.
mod shared_limits;
/// The shared-limit script on a Redis Cluster.
mod shared_limits_cluster;
/// The PostgreSQL store.
mod store;
/// A Bot API answer kuryer cannot read, named as such.
mod unreadable;
