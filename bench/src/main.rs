//! `kuryer-bench`: the benchmark suite, beside the service and not inside it
//! (the service binary knows nothing of it).
//!
//! Scenarios (each run in a child process of its own, so that peak memory
//! and CPU are the run's alone; the fake Telegram is yet another process):
//!
//! - **seed**: the seed's scale, 1,000 channels, 10,000 users × 5
//!   subscriptions, 5 posts a channel, limits off: poll cycle, throughput
//!   with every delivery persisted, latency, registry load, memory, database
//!   and Redis averages, with the channels read from an in-process copy (no
//!   network call); then the seed's own design
//!   (`bench/baseline/seed_baseline.py`) on the same workload, as a ratio
//!   measured like with like: kuryer run again reading the channels over
//!   HTTP from the fake's history route, as the baseline reads them, and the
//!   baseline without the seed's `sleep(0.05)` after each send (with it too
//!   under `--baseline-as-written`).
//! - **ceiling**: Telegram's real limits with 1 and 3 bot tokens: achieved
//!   rate as a fraction of the allowed one, 429s, the limits audited from
//!   arrival times.
//! - **persistence**: the DbWriter against one INSERT + commit a row and a
//!   binary COPY.
//! - **growth**: 100 / 1,000 / 10,000 channels with users scaled alike.
//! - **mtproto-fake**: the simulated data centre's own capacity: pushed
//!   updates per second to grammers clients at 10,000 channels, and its CPU
//!   per update, so that the reader benchmarks know it is not their limit.
//! - **reader** (not in `all`; `reader-1k`, `reader-10k`, `reader-catch-up` run one size):
//!   the MTProto reader against the fake data centre at its Telegram-like
//!   limits (getHistory 10 per 30 s an account) with kuryer's daily
//!   budgets, 1,000 channels over 3 accounts (and a catch-up of 250 posts
//!   on each of 100 channels after a restart, in order) and 10,000 over 23:
//!   first read of every channel, publish → recorded p50/p99, CPU per post,
//!   peak RSS, calls per account per minute, flood waits and calls during
//!   them, and the days the budgets need without pre-joined accounts.
//! - **resume** (not in `all`): 500,000 owed deliveries at start-up (100
//!   channels × 1,000 subscribers × 5 posts), limits off: time to the first
//!   send, until every outcome is committed, peak memory.
//! - **api-load** (not in `all`): the seed's Locust test in Rust, 1,000
//!   clients of `POST /add_channel` + `GET /subscriptions/{id}` against
//!   `kuryer run`: throughput, p50/p95/p99, failures.
//! - **bot-load** (not in `all`): 1,000 commands a second from 10,000
//!   simulated people through the fake Bot API: replies a second, reply
//!   latency, commands lost.
//! - **bot-load-2k** (not in `all`): the bot's target load, 200 commands a
//!   second from 2,000 people, with a per-call latency in the fake: reply
//!   p50/p99 and whether each user's replies came in order.
//! - **abuse** (not in `all`): 1,000 ordinary users with and without one
//!   hostile user doing everything a stranger can at once, against a real
//!   `kuryer run` process at Telegram's limits: the ordinary users'
//!   delivery and reply p50/p99 in both runs and their ratio, the process's
//!   CPU, peak RSS and watchdog pings.
//! - **instances** (not in `all`): 1, 2 and 3 `kuryer run` processes with a
//!   bot each and sharing one bot, at Telegram's limits, and with limits
//!   off; failover time (`kill -9` → first delivery of a moved channel)
//!   over ten kills, and with reader accounts (`kill -9` of an account's
//!   holder → first post read and delivered; calls from two holders).
//!
//! It prints a table (figures as min / median / max over the runs) and, last,
//! one JSON line with everything; the growth plot goes to an SVG file.
//!
//! Layout: [`suite`] (the plan and the child processes), the scenarios
//! ([`pipeline_run`], [`persistence`], [`baseline`]), [`report`] (summary and
//! targets), [`table`] and [`plot`] (output), [`util`] (readings).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kuryer::config;
use kuryer_sim::process::FakeSpec;

/// The abuse scenario: ordinary users with and without a hostile one.
mod abuse;
/// The abuse scenario's hostile user.
mod abuse_hostile;
/// The abuse scenario's world: database, fake and a real `kuryer run`.
mod abuse_world;
/// The seed-design baseline program and its runner.
mod baseline;
/// The Telegram-ceiling runs' workload (albums, forwards) and plan (paid broadcast).
mod ceiling_mix;
/// A channel source over the fake's HTTP history route, as the baseline reads.
mod http_source;
/// The instances scenario: several `kuryer run` processes, failover.
mod instances;
/// The api-load and bot-load scenarios: `kuryer run` under load.
mod load;
/// The MTProto fake's own capacity (pushed updates to grammers clients).
mod mtproto_fake;
/// The persistence scenario.
mod persistence;
/// One run of the real pipeline (seed, growth, ceiling).
mod pipeline_run;
/// What a pipeline run is asked for and what it reports.
mod pipeline_spec;
/// The growth plot.
mod plot;
/// The reader scenario: the MTProto reader against the fake data centre.
mod reader;
/// The reader scenario's commit observer: when each post row committed.
mod reader_observer;
/// The `reader` scenario's sizes and printed lines.
mod reader_plan;
/// What a reader run measured.
mod reader_result;
/// Replies matched to their commands, chat by chat, and their order.
mod reply_order;
/// The report, its summary and the targets.
mod report;
/// The resume scenario: a large backlog of owed deliveries at start-up.
mod resume;
/// The plan and the child processes.
mod suite;
/// What the suite runs: the plan of scenarios and their sizes.
mod suite_plan;
/// The table for people.
mod table;
/// CPU and memory readings, Redis clean-up, the machine.
mod util;

/// Benchmark kuryer's pipeline (and the seed's design) against the simulated Telegram.
#[derive(Debug, Parser)]
#[command(
    name = "kuryer-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
    #[command(subcommand)]
    serve: Option<Serve>,
}

/// Helper processes the suite starts of itself.
#[derive(Debug, Subcommand)]
enum Serve {
    /// The simulated Telegram as a process of its own.
    #[command(hide = true)]
    FakeTelegram(FakeSpec),
}

/// Options of `kuryer-bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Configuration file (database and Redis servers). Default:
    /// ./config.toml, else /etc/kuryer/config.toml.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Which scenario: seed, ceiling, persistence, growth, mtproto-fake,
    /// resume, api-load, bot-load, bot-load-2k, abuse, instances, reader
    /// (reader-1k, reader-10k, reader-catch-up: one size), or all (the first five).
    #[arg(long, default_value = "all")]
    pub(crate) scenario: String,
    /// Runs of each scenario (figures are given as min / median / max).
    #[arg(long)]
    pub(crate) runs: Option<u32>,
    /// A tiny size of every scenario (seconds, not minutes): the CI smoke test.
    #[arg(long)]
    pub(crate) tiny: bool,
    /// Print only the final JSON line, not the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// The seed-design baseline in Python: auto (run it when Python and its
    /// packages are there or can be installed), off.
    #[arg(long, default_value = "auto")]
    pub(crate) baseline: String,
    /// Posts a channel in the baseline's workload (default: the seed scenario's).
    #[arg(long)]
    pub(crate) baseline_posts: Option<u32>,
    /// Also run the seed's design as written, with its `sleep(0.05)` after
    /// each send (7-8 minutes at the seed scale; the sleep caps it at 600
    /// sends a second). The ratio against kuryer is always also given
    /// against the baseline without the sleep.
    #[arg(long)]
    pub(crate) baseline_as_written: bool,
    /// Seconds of sending at Telegram's real limits, per bot count.
    #[arg(long)]
    pub(crate) ceiling_seconds: Option<f64>,
    /// Commands a second bot-load offers (default 1,000).
    #[arg(long)]
    pub(crate) bot_load_rate: Option<f64>,
    /// Seconds of load in api-load and bot-load (default 30) and in each
    /// run of abuse (default 60).
    #[arg(long)]
    pub(crate) load_seconds: Option<f64>,
    /// Where the growth plot (SVG) goes. Not the tracked
    /// `BENCHMARKS-growth.svg` by default: a run (a `--tiny` one above all)
    /// must not overwrite the figures BENCHMARKS.md shows; give
    /// `--plot BENCHMARKS-growth.svg` to refresh them.
    #[arg(long, default_value = "kuryer-bench-growth.svg")]
    pub(crate) plot: std::path::PathBuf,
    #[command(flatten)]
    pub(crate) abuse: abuse::AbuseArgs,
    /// Internal: run one measurement described by this JSON and print its result.
    #[arg(long, hide = true)]
    pub(crate) child: Option<String>,
}

fn main() -> ExitCode {
    kuryer::alloc::tune();
    let cli = Cli::parse();
    if let Some(Serve::FakeTelegram(spec)) = cli.serve {
        return match actix_rt::System::new().block_on(kuryer_sim::control_api::run(spec)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kuryer-bench fake-telegram: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = cli.bench;
    let loaded = match config::load(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kuryer-bench: {e}");
            return ExitCode::from(2);
        }
    };
    kuryer::telemetry::init_tracing(&loaded.config.log);
    match actix_rt::System::new().block_on(suite::run(&args, &loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kuryer-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
