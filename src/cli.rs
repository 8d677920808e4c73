//! The command line: `kuryer run | migrate | check-config | login | demo | bench`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kuryer delivers every new post of Telegram channels to the people who
/// subscribed to them.
#[derive(Debug, Parser)]
#[command(name = "kuryer", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `--config` option every command shares.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Configuration file. Default: ./config.toml, else /etc/kuryer/config.toml.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(ConfigArg),
    /// Apply the database migrations in sql/ (idempotent).
    Migrate(ConfigArg),
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig(ConfigArg),
    /// Log a reader account in to Telegram (MTProto) interactively.
    Login {
        #[command(flatten)]
        config: ConfigArg,
        /// Name of the reader account.
        #[arg(long, default_value = "default")]
        account: String,
    },
    /// Run the real pipeline against a simulated Telegram and a generated population.
    Demo(DemoArgs),
    /// Benchmark the pipeline (and the seed's design) against the simulated Telegram.
    Bench(BenchArgs),
    /// The simulated Telegram as a process of its own (used by `kuryer bench`).
    #[command(hide = true)]
    FakeTelegram(FakeTelegramArgs),
}

/// Options of `kuryer demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Simulated channels.
    #[arg(long, default_value_t = 50)]
    pub channels: u32,
    /// Simulated users.
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// Subscriptions of each user.
    #[arg(long, default_value_t = 5)]
    pub subs_per_user: u32,
    /// Posts published on each channel.
    #[arg(long, default_value_t = 10)]
    pub posts_per_channel: u32,
    /// Multiplies Telegram's limits for both the fake and the daemon (1 = real
    /// numbers; 0 = no limits at all).
    #[arg(long, default_value_t = 30.0)]
    pub limit_scale: f64,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// Options of `kuryer bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Which scenario: seed, ceiling, persistence, growth, or all.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Runs of each scenario (figures are given as min / median / max).
    #[arg(long)]
    pub runs: Option<u32>,
    /// A tiny size of every scenario (seconds, not minutes): the CI smoke test.
    #[arg(long)]
    pub tiny: bool,
    /// Print only the final JSON line, not the table.
    #[arg(long)]
    pub json: bool,
    /// The seed-design baseline in Python: auto (run it when Python and its
    /// packages are there or can be installed), off.
    #[arg(long, default_value = "auto")]
    pub baseline: String,
    /// Posts a channel in the baseline's workload (default: the seed scenario's).
    #[arg(long)]
    pub baseline_posts: Option<u32>,
    /// Seconds of sending at Telegram's real limits, per bot count.
    #[arg(long)]
    pub ceiling_seconds: Option<f64>,
    /// Where the growth plot (SVG) goes.
    #[arg(long, default_value = "BENCHMARKS-growth.svg")]
    pub plot: std::path::PathBuf,
    /// Internal: run one measurement described by this JSON and print its result.
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

/// Options of the hidden `kuryer fake-telegram`.
#[derive(Debug, Args)]
pub struct FakeTelegramArgs {
    /// Address of the control API (the Bot API listens on a free port; both
    /// URLs are printed as one JSON line).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Telegram's limits × K (0 = no limits).
    #[arg(long, default_value_t = 0.0)]
    pub limit_scale: f64,
    /// Demo channels.
    #[arg(long, default_value_t = 50)]
    pub channels: u32,
    /// Demo users (private chats).
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// Group chats.
    #[arg(long, default_value_t = 0)]
    pub groups: u32,
    /// Bot tokens the fake knows.
    #[arg(long, default_value_t = 1)]
    pub bots: usize,
}
