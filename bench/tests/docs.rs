//! Every `kuryer-bench …` command line that README.md, ARCHITECTURE.md,
//! CONTRIBUTING.md and BENCHMARKS.md name, against the built binary: each
//! flag and subcommand is one it has, each scenario one its `--scenario`
//! help lists. (Paths and `kuryer` command lines: tests/it/docs, whose
//! reading of the documents this test shares.)

use std::collections::BTreeSet;
use std::process::Command;

#[allow(dead_code)]
#[path = "../../tests/it/docs/scan.rs"]
mod scan;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kuryer-bench"))
}

/// Whether the binary's command line has `word`, a flag or a subcommand,
/// hidden ones included: clap calls one it does not know an "unexpected
/// argument"; a known one followed by `--help` prints the help (or, for a
/// flag that takes a value, asks for it). Nothing runs either way.
fn known(word: &str) -> bool {
    let out = bench()
        .arg(word)
        .arg("--help")
        .output()
        .expect("run kuryer-bench");
    !String::from_utf8_lossy(&out.stderr).contains("unexpected argument")
}

/// The scenarios `--help` lists under `--scenario`.
fn scenarios() -> BTreeSet<String> {
    let out = bench()
        .arg("--help")
        .output()
        .expect("run kuryer-bench --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = help.lines().skip_while(|l| !l.contains("--scenario"));
    let mut text = lines.next().expect("--scenario in --help").to_owned();
    text.extend(
        lines
            .take_while(|l| !l.trim_start().starts_with('-'))
            .map(|l| format!(" {l}")),
    );
    let text = text.split_once("--scenario").map_or("", |(_, t)| t);
    let text = text.split("[default").next().unwrap_or("");
    // The paragraph's own words around the names.
    const PROSE: &[&str] = &[
        "scenario", "which", "or", "but", "the", "last", "first", "five", "one", "size",
    ];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| scan::looks_like_subcommand(w) && !PROSE.contains(w))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_kuryer_bench_command_the_documents_name_exists() {
    let snippets = scan::all_snippets();
    let invocations = scan::invocations(&snippets, "kuryer-bench");
    assert!(
        invocations.len() > 5,
        "only {} `kuryer-bench …` command lines found",
        invocations.len()
    );
    let scenarios = scenarios();
    assert!(
        ["seed", "ceiling", "reader", "instances"]
            .iter()
            .all(|s| scenarios.contains(*s)),
        "the scenarios read from --help: {scenarios:?}"
    );
    let mut problems = Vec::new();
    let mut cache = std::collections::HashMap::new();
    for inv in &invocations {
        let mut args = inv.args.iter().peekable();
        if let Some(first) = args.peek()
            && !first.starts_with('-')
        {
            if scan::looks_like_subcommand(first)
                && !*cache
                    .entry(first.to_string())
                    .or_insert_with(|| known(first))
            {
                problems.push(format!(
                    "{}: `kuryer-bench {first}` is not a subcommand of kuryer-bench (in `{}`)",
                    inv.place, inv.text
                ));
            }
            // A subcommand's own options are not checked; prose is not a command line.
            continue;
        }
        while let Some(word) = args.next() {
            if !word.starts_with('-') {
                continue;
            }
            let flag = word.split('=').next().unwrap_or("");
            if !*cache.entry(flag.to_owned()).or_insert_with(|| known(flag)) {
                problems.push(format!(
                    "{}: `{flag}` is not an option of kuryer-bench (in `{}`)",
                    inv.place, inv.text
                ));
                continue;
            }
            if flag != "--scenario" {
                continue;
            }
            let value = match word.split_once('=') {
                Some((_, v)) => v.to_owned(),
                None => match args.next() {
                    Some(v) => v.clone(),
                    None => continue,
                },
            };
            if scan::is_placeholder(&value) {
                continue;
            }
            for v in scan::alternatives(&value) {
                if !scenarios.contains(&v) {
                    problems.push(format!(
                        "{}: `{v}` is not a scenario of kuryer-bench (--help lists {}) (in `{}`)",
                        inv.place,
                        scenarios.iter().cloned().collect::<Vec<_>>().join(", "),
                        inv.text
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "`kuryer-bench` command lines in the documents that the binary does not have:\n  {}",
        problems.join("\n  ")
    );
}
