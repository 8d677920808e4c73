//! `kuryer-sim`: the simulated Telegram as a process of its own, so a real
//! `kuryer run` can be pointed at it from outside: the Bot API face, the
//! MTProto face (unless `--no-mtproto`) and the control API
//! (`kuryer_sim::control_api`). Prints
//! `{"bot_api": URL, "control": URL, "mtproto": "127.0.0.1:PORT"}` once it
//! listens; ends on `POST /quit` or when its standard input closes.

use std::process::ExitCode;

use clap::Parser;
use kuryer_sim::process::FakeSpec;

/// The simulated Telegram: fake Bot API, fake MTProto data centre, control API.
#[derive(Debug, Parser)]
#[command(name = "kuryer-sim", version, about)]
struct Args {
    #[command(flatten)]
    spec: FakeSpec,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match actix_rt::System::new().block_on(kuryer_sim::control_api::run(args.spec)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kuryer-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
