//! `kuryer`: parse the command line, load the configuration, set up logging,
//! and run the chosen command. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use kuryer::cli::{Cli, Command, ConfigArg};
use kuryer::config::{self, Loaded};
use kuryer::store::{Open, Store};
use kuryer::telemetry;

/// Exit code for a bad configuration or a command that cannot run.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    kuryer::alloc::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => check_config(&args.config, args.connect),
        Command::Migrate(arg) => with_config("migrate", &arg, |loaded| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run_migrate(loaded))
        }),
        Command::Run(arg) => with_config("run", &arg, |loaded| {
            if let Some(p) = &loaded.path {
                tracing::info!(config = %p.display(), "Configuration loaded.");
            }
            actix_rt::System::new().block_on(kuryer::daemon::run(
                loaded.config,
                kuryer::daemon::wait_for_signal(),
            ))
        }),
        Command::Login {
            config,
            account,
            phone,
        } => with_config("login", &config, |loaded| {
            block_on(async move {
                // What the operator must fix in the configuration is said
                // before anything touches the database.
                kuryer::reader::login::check_app(&loaded.config)?;
                let store = open_store(&loaded.config).await?;
                let done = kuryer::reader::login::login(
                    &store,
                    &loaded.config,
                    &account,
                    phone,
                    &mut kuryer::reader::login::TerminalPrompt,
                )
                .await?;
                println!(
                    "signed in as {} (user id {}); reader account {:?} is active",
                    done.first_name, done.user_id, done.account
                );
                Ok(())
            })
        }),
        Command::Accounts(arg) => with_config("accounts", &arg, |loaded| {
            block_on(async move {
                let store = open_existing(&loaded.config).await?;
                print!(
                    "{}",
                    kuryer::reader::login::accounts_table(
                        &kuryer::reader::login::accounts(&store).await?
                    )
                );
                Ok(())
            })
        }),
        Command::Instances(arg) => with_config("instances", &arg, |loaded| {
            block_on(async move {
                let store = open_existing(&loaded.config).await?;
                print!(
                    "{}",
                    kuryer::instance::instances_table(&store.instances().await?)
                );
                Ok(())
            })
        }),
        Command::Logout { config, account } => with_config("logout", &config, |loaded| {
            block_on(async move {
                let store = open_existing(&loaded.config).await?;
                let note = kuryer::reader::login::logout(&store, &loaded.config, &account).await?;
                println!("reader account {account:?} is logged out");
                if let Some(note) = note {
                    println!("note: {note}");
                }
                Ok(())
            })
        }),
        Command::DeadLetters(cmd) => {
            let arg = cmd.config().clone();
            with_config("dead-letters", &arg, |loaded| {
                block_on(async move { kuryer::dead_letter_cli::run(&cmd, &loaded.config).await })
            })
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            let arg = args.config.clone();
            with_config("demo", &arg, |loaded| {
                let summary =
                    actix_rt::System::new().block_on(kuryer::demo::run(&args, &loaded.config))?;
                kuryer::demo::print(&summary, args.json);
                if summary.lost > 0 || summary.duplicates > 0 {
                    anyhow::bail!(
                        "{} deliveries lost, {} duplicated",
                        summary.lost,
                        summary.duplicates
                    );
                }
                Ok(())
            })
        }
    }
}

/// The demo logs at WARN unless asked otherwise (`RUST_LOG`,
/// `KURYER_LOG_LEVEL`, or `log.level` in its file): its progress line and
/// summary are its output, and INFO lines (a post fanned out, the MTProto
/// library's notes) would break the line and bury the summary.
fn quiet_demo(loaded: &mut Loaded) {
    let asked = std::env::var_os("RUST_LOG").is_some()
        || std::env::var_os("KURYER_LOG_LEVEL").is_some()
        || loaded.config.log.level != config::LogConfig::default().level;
    if !asked {
        loaded.config.log.level = "warn".to_owned();
    }
}

/// Runs a command's future on a small runtime of its own.
fn block_on(f: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(f)
}

/// Loads the configuration (exit 2 with the message when it is bad), sets up
/// logging, and runs `f`; an error from `f` exits 1.
fn with_config(
    command: &str,
    arg: &ConfigArg,
    f: impl FnOnce(Loaded) -> anyhow::Result<()>,
) -> ExitCode {
    let mut loaded = match config::load(arg.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kuryer {command}: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if command == "demo" {
        quiet_demo(&mut loaded);
    }
    if command == "run"
        && let Some(why) = no_bot_token(&loaded)
    {
        eprintln!("kuryer run: {why}");
        return ExitCode::FAILURE;
    }
    telemetry::init_tracing(&loaded.config.log);
    match f(loaded) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kuryer {command}: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: many errors (tokio-postgres',
/// ours that name their cause) already include their source's text, and
/// `{:#}` would repeat it ("error connecting to server: error connecting to
/// server: Connection refused").
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Why `kuryer run` cannot start for want of a bot token, saying where the
/// configuration came from and every way to give one; `None` when it has one.
fn no_bot_token(loaded: &Loaded) -> Option<String> {
    if !loaded.config.telegram.bot_tokens.is_empty() {
        return None;
    }
    let from = match &loaded.path {
        Some(p) => format!("the configuration file {}", p.display()),
        None => format!(
            "no configuration file was found ({}; give one with --config)",
            config::DEFAULT_PATHS.join(", ")
        ),
    };
    Some(format!(
        "key `telegram.bot_tokens` is empty: kuryer needs at least one bot token from @BotFather. \
         Read: {from}. Give the token as `bot_tokens = [\"<bot id>:<secret>\"]` under [telegram], \
         in KURYER_TELEGRAM_BOT_TOKENS (a TOML list), or in the `bot_tokens` systemd credential \
         (one a line)"
    ))
}

fn check_config(arg: &ConfigArg, connect: bool) -> ExitCode {
    match config::load(arg.config.as_deref()) {
        Ok(loaded) if connect => {
            let lines = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(kuryer::preflight::check_connections(&loaded.config)),
                Err(e) => {
                    eprintln!("kuryer check-config: {e}");
                    return ExitCode::FAILURE;
                }
            };
            for line in &lines {
                println!("{line}");
            }
            if lines.iter().all(|l| l.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(loaded) => {
            // Valid for `kuryer run` or not at all: `run` refuses this.
            if let Some(why) = no_bot_token(&loaded) {
                eprintln!("kuryer check-config: {why}");
                return ExitCode::from(EXIT_USAGE);
            }
            match &loaded.path {
                Some(p) => println!("# configuration is valid: {}", p.display()),
                None => println!(
                    "# configuration is valid: no file found ({}), built-in defaults and environment",
                    config::DEFAULT_PATHS.join(", ")
                ),
            }
            println!("# secrets are shown as ***\n");
            print!("{}", loaded.config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kuryer: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn run_migrate(loaded: Loaded) -> anyhow::Result<()> {
    let db = &loaded.config.database;
    let opened = Store::open_with(
        db,
        Open::everything(db),
        kuryer::store::migrate_with_progress,
    )
    .await?;
    if opened.created {
        println!("created the database");
    }
    let report = opened.migrations.unwrap_or_default();
    let parts = opened.partitions.unwrap_or_default();
    if report.applied.is_empty() {
        println!(
            "schema is up to date ({} migrations applied before)",
            report.already
        );
    } else {
        // One line: each step was already told as it ran (the progress
        // lines), so the summary names only the range.
        let first = report.applied.first().copied().unwrap_or_default();
        let last = report.applied.last().copied().unwrap_or_default();
        match report.applied.len() {
            1 => println!("applied 1 migration: {first}"),
            n => println!("applied {n} migrations: {first} to {last}"),
        }
    }
    println!(
        "forwarded_messages partitions: {} created, {} dropped",
        parts.created.len(),
        parts.dropped.len()
    );
    Ok(())
}

/// The store of `login`: created if missing, schema applied, as `kuryer
/// run` would at start (a login is the first step of a new installation).
async fn open_store(config: &config::Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.database, Open::schema()).await?.store)
}

/// The store of the commands that only read or change rows (`accounts`,
/// `logout`, `instances`): never created, never migrated; a missing
/// database or an older schema names `kuryer migrate`.
async fn open_existing(config: &config::Config) -> anyhow::Result<Store> {
    Ok(Store::open_existing(&config.database).await?)
}
