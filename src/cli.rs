//! The command line: `kuryer run | migrate | check-config | login | accounts | logout | instances | dead-letters | demo`.

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

/// Options of `kuryer check-config`.
#[derive(Debug, Args, Clone)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also connect: the database, Redis, and each bot token (getMe); one
    /// line per check, exit 1 when one fails.
    #[arg(long)]
    pub connect: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(ConfigArg),
    /// Apply the database migrations in sql/ (idempotent).
    Migrate(ConfigArg),
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig(CheckConfigArgs),
    /// Log a reader account in to Telegram (MTProto): phone, login code,
    /// 2FA password. With stdin not a terminal, the code and password are
    /// read from it a line each, so it can be scripted.
    Login {
        #[command(flatten)]
        config: ConfigArg,
        /// Name of the reader account.
        #[arg(long, default_value = "default")]
        account: String,
        /// Phone number in international form; asked when absent.
        #[arg(long)]
        phone: Option<String>,
    },
    /// List reader accounts and their state.
    Accounts(ConfigArg),
    /// End a reader account's session (Telegram is told when reachable).
    Logout {
        #[command(flatten)]
        config: ConfigArg,
        /// Name of the reader account.
        #[arg(long)]
        account: String,
    },
    /// List the instances sharing the database: their heartbeats and what
    /// each leases (channels, reader accounts, bots' getUpdates).
    Instances(ConfigArg),
    /// Dead letters: updates and posts kuryer set aside because they still
    /// failed after their retries — list, show, replay, discard.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Run the real pipeline against a simulated Telegram and a generated population.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
}

/// `kuryer dead-letters …`.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// Dead letters, newest first: id, kind, state, when, where, why.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this kind: `update` or `post`.
        #[arg(long, value_parser = ["update", "post"])]
        kind: Option<String>,
        /// Only this state: `waiting`, `replaying`, `replayed`, `discarded`.
        #[arg(long, value_parser = ["waiting", "replaying", "replayed", "discarded"])]
        state: Option<String>,
        /// Only those kept since: an RFC 3339 time, or an age (`30m`, `6h`, `2d`).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// At most this many (up to 500).
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One dead letter, with the update or post as it was kept.
    Show {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
        /// Hide what people wrote and who they are (texts, names, user ids).
        #[arg(long)]
        redact: bool,
    },
    /// Send dead letters back through the path they came by: a post is
    /// recorded again and delivered (never twice), an update is handed to
    /// the running update loop. One that fails again waits again, with both
    /// reasons.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// The dead letter to replay.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every waiting dead letter of `--kind` (up to 500 a run).
        #[arg(long, requires = "kind")]
        all: bool,
        /// With `--all`: `update` or `post`.
        #[arg(long, value_parser = ["update", "post"])]
        kind: Option<String>,
    },
    /// Let a waiting dead letter go (it stays listed, as discarded).
    Discard {
        #[command(flatten)]
        config: ConfigArg,
        id: i64,
    },
}

impl DeadLetterCommand {
    /// The `--config` of whichever subcommand.
    pub fn config(&self) -> &ConfigArg {
        match self {
            Self::List { config, .. }
            | Self::Show { config, .. }
            | Self::Replay { config, .. }
            | Self::Discard { config, .. } => config,
        }
    }
}

/// Options of `kuryer demo`.
#[cfg(feature = "demo")]
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
    /// How channels are read: `sim` (the simulated source) or `mtproto`
    /// (grammers from the fake data centre over TCP, reader accounts,
    /// polling past their join capacity, media through a relay channel).
    #[arg(long, value_enum, default_value_t = DemoReader::Sim)]
    pub reader: DemoReader,
}

/// How `kuryer demo` reads its channels.
#[cfg(feature = "demo")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoReader {
    /// The simulated source (reads the fake Bot API's channel log).
    Sim,
    /// Reader accounts over MTProto against the fake data centre.
    Mtproto,
}
