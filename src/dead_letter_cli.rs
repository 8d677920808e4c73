//! `kuryer dead-letters list | show | replay | discard`: the store opened
//! as it is (never created or migrated), one answer printed per command.

use anyhow::Context;

use crate::cli::DeadLetterCommand;
use crate::config::Config;
use crate::dead_letters::{self, ReplayError, Replayed};
use crate::store::{DeadLetter, DeadLetterQuery, Store};

/// Runs one `dead-letters` subcommand.
pub async fn run(cmd: &DeadLetterCommand, config: &Config) -> anyhow::Result<()> {
    let store = Store::open_existing(&config.database).await?;
    match cmd {
        DeadLetterCommand::List {
            kind,
            state,
            since,
            limit,
            ..
        } => {
            let since = since
                .as_deref()
                .map(dead_letters::parse_since)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let rows = store
                .dead_letter_list(&DeadLetterQuery {
                    kind: kind.clone(),
                    state: state.clone(),
                    since,
                    before_id: None,
                    limit: *limit,
                })
                .await?;
            print!("{}", table(&rows));
        }
        DeadLetterCommand::Show { id, redact, .. } => {
            let (d, raw) = store
                .dead_letter_get(*id)
                .await?
                .with_context(|| format!("no dead letter {id}"))?;
            print!("{}", details(&d));
            println!("{}:", if *redact { "raw (redacted)" } else { "raw" });
            println!("{}", dead_letters::render(&raw, *redact));
        }
        DeadLetterCommand::Replay { id, all, kind, .. } => {
            let ids = match (id, all, kind) {
                (Some(id), _, _) => vec![*id],
                (None, true, Some(kind)) => store.dead_letter_waiting_ids(kind, 500).await?,
                _ => anyhow::bail!("give an id, or --all with --kind"),
            };
            let mut failed = 0;
            for id in &ids {
                match dead_letters::replay(&store, None, *id).await {
                    Ok(done) => println!("{id}: {}", replayed_text(&done)),
                    Err(e @ ReplayError::FailedAgain { .. }) => {
                        failed += 1;
                        println!("{id}: {e}; it waits again");
                    }
                    Err(e) if ids.len() == 1 => return Err(e.into()),
                    Err(e) => println!("{id}: {e}"),
                }
            }
            if *all {
                println!("{} replayed, {failed} failed again", ids.len() - failed);
            }
            if failed > 0 {
                anyhow::bail!("{failed} replay(s) failed again");
            }
        }
        DeadLetterCommand::Discard { id, .. } => {
            dead_letters::discard(&store, *id).await?;
            println!("{id}: discarded");
        }
    }
    Ok(())
}

fn replayed_text(r: &Replayed) -> &'static str {
    match r {
        Replayed::Post {
            owed_again: 1.., ..
        } => {
            "replayed: the deliveries Telegram refused are owed again; the owning kuryer sends them at its next start (a replay from the console sends them within a delivery.sweep_interval_s)"
        }
        Replayed::Post {
            recorded: false, ..
        } => "replayed: the post was already recorded; its owed deliveries go out with the sweep",
        Replayed::Post { .. } => {
            "replayed: the post is recorded again; the running kuryer's sweep delivers it (within two delivery.sweep_interval_s)"
        }
        Replayed::UpdateHanded => {
            "replay asked: the running kuryer's update loop handles it before its next getUpdates"
        }
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The list as a table, one dead letter a line.
pub fn table(rows: &[DeadLetter]) -> String {
    if rows.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let mut out = format!(
        "{:>8}  {:<6}  {:<9}  {:<20}  {:>15}  {:>10}  {:>12}  {:>7}  REASON\n",
        "ID", "KIND", "STATE", "KEPT (UTC)", "CHAT", "MESSAGE", "UPDATE", "REPLAYS"
    );
    for d in rows {
        out.push_str(&format!(
            "{:>8}  {:<6}  {:<9}  {:<20}  {:>15}  {:>10}  {:>12}  {:>7}  {}\n",
            d.id,
            d.kind,
            d.state,
            d.created_at.format("%Y-%m-%d %H:%M:%S"),
            opt(d.chat_id),
            opt(d.message_id),
            opt(d.update_id),
            d.replays,
            d.reason.lines().next().unwrap_or_default(),
        ));
    }
    out
}

fn details(d: &DeadLetter) -> String {
    let mut out = format!(
        "id: {}\nkind: {}\nstate: {}\nkept: {}\nchannel id: {}\nchat id: {}\nmessage id: {}\nupdate id: {}\nreplays: {}\nreason: {}\n",
        d.id,
        d.kind,
        d.state,
        d.created_at.to_rfc3339(),
        opt(d.channel_id),
        opt(d.chat_id),
        opt(d.message_id),
        opt(d.update_id),
        d.replays,
        d.reason,
    );
    for (i, r) in d.earlier_reasons.iter().enumerate() {
        out.push_str(&format!("earlier reason {}: {r}\n", i + 1));
    }
    if let Some(t) = d.settled_at {
        out.push_str(&format!("settled: {}\n", t.to_rfc3339()));
    }
    out
}
