//! # kuryer-sim
//!
//! The simulated Telegram and the fixtures that `kuryer demo`, the
//! benchmarks and the tests share. It knows nothing of the daemon (it never
//! imports `kuryer`); the daemon links it only through its default `demo`
//! feature, so `cargo build --no-default-features` leaves it out.
//!
//! | module | what it is |
//! |---|---|
//! | [`chat`] | `kuryer-sim chat`: a person talking to the bot over the control API, on lines of a terminal |
//! | [`fake_bot_api`] | an HTTP fake of the Bot API speaking the real wire protocol, recording everything it receives |
//! | [`mtproto`] | the MTProto face: a fake data centre speaking MTProto 2.0 over TCP (Full transport) that grammers-client connects to unmodified |
//! | [`spec_updates`] | updates generated from the vendored Bot API specification (`sim/spec/`): every content and service field, optional fields absent and present |
//! | [`source`] | [`SimSource`](source::SimSource): a `ChannelSource` reading the fake's channel history, as a reader account would |
//! | [`control_api`] | the fake as a process of its own, serving both faces and a control HTTP API that drives them (`kuryer-sim`, and `kuryer-bench`'s child) |
//! | [`process`] | [`FakeSpec`](process::FakeSpec), what such a process simulates, and [`FakeProcess`](process::FakeProcess), a client that starts one |
//! | [`fixtures`] | the generated population (users, channels, subscriptions), the demo's posts, expected deliveries |
//! | [`throwaway_db`] | [`ThrowawayDb`](throwaway_db::ThrowawayDb): a PostgreSQL database that exists for one run or test |

/// The fake as a process of its own, serving both faces and a control HTTP API.
/// `kuryer-sim chat`: a person talking to the bot over the control API.
pub mod chat;
pub mod control_api;
/// An HTTP fake of the Telegram Bot API that records every message it receives.
pub mod fake_bot_api;
/// The generated population and posts of demo, bench and tests.
pub mod fixtures;
/// The MTProto face of the simulated Telegram: a fake data centre over TCP.
pub mod mtproto;
/// What a fake process simulates, and a client that starts one.
pub mod process;
/// A `ChannelSource` reading the fake Telegram's channel history.
pub mod source;
/// Updates of every shape the Bot API specification allows.
pub mod spec_updates;
/// A PostgreSQL database that exists for one run or one test.
pub mod throwaway_db;

/// Peak resident set size of this process, MiB (`VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
