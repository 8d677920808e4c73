//! `kuryer-sim`: the simulated Telegram as a process of its own, so a real
//! `kuryer run` can be pointed at it from outside: the Bot API face, the
//! MTProto face (unless `--no-mtproto`) and the control API
//! (`kuryer_sim::control_api`). Prints
//! `{"bot_api": URL, "control": URL, "mtproto": "127.0.0.1:PORT"}` once it
//! listens (or, with `--print-config`, a config.toml for `kuryer run`);
//! ends on `POST /quit` or when its standard input closes (unless
//! `--ignore-stdin`).
//!
//! `kuryer-sim chat --control URL --user 42` is a person talking to the bot
//! through a running kuryer-sim (`kuryer_sim::chat`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kuryer_sim::chat::ChatArgs;
use kuryer_sim::control_api::RunOptions;
use kuryer_sim::process::FakeSpec;

/// The simulated Telegram: fake Bot API, fake MTProto data centre, control API.
#[derive(Debug, Parser)]
#[command(
    name = "kuryer-sim",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    spec: FakeSpec,
    /// Print a config.toml for `kuryer run` against this process (its Bot
    /// API URL and bot token) instead of the JSON line of addresses.
    #[arg(long)]
    print_config: bool,
    /// Keep running when standard input closes; stop with `POST /quit`.
    #[arg(long)]
    ignore_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to the bot as a person, over a running kuryer-sim's control API.
    Chat(ChatArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Chat(chat)) = args.command {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("kuryer-sim chat: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match rt.block_on(kuryer_sim::chat::main(chat)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kuryer-sim chat: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = RunOptions {
        print_config: args.print_config,
        ignore_stdin: args.ignore_stdin,
    };
    match actix_rt::System::new().block_on(kuryer_sim::control_api::run_with(args.spec, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kuryer-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
