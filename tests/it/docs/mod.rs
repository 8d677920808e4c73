//! Documents that cannot drift from the code: every repository path that
//! README.md, ARCHITECTURE.md, CONTRIBUTING.md and BENCHMARKS.md name
//! exists, every `kuryer` subcommand, flag and listed value they name is in
//! the command line's definition, and each crate's module map in its
//! `lib.rs` lists every module declared there. (`kuryer-bench`'s command
//! lines are checked against its binary by bench/tests/docs.rs.)

pub(crate) mod scan;

use clap::CommandFactory as _;

use scan::{Snippet, all_snippets};

fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}:\n  {}\n({} in all)",
        problems.join("\n  "),
        problems.len()
    );
}

#[test]
fn every_path_the_documents_name_exists() {
    let root = scan::root();
    let names = scan::bare_names(&root);
    let mut problems = Vec::new();
    let mut checked = 0;
    for s in all_snippets() {
        for p in scan::named_paths(&s) {
            checked += 1;
            if !scan::path_exists(&root, &p, &names) {
                problems.push(format!(
                    "{} names `{p}`, which is not in the repository ({})",
                    s.place(),
                    if p.contains('/') {
                        "no such path"
                    } else {
                        "no file of that name anywhere"
                    }
                ));
            }
        }
    }
    // The scan found the paths at all (a broken scan would pass vacuously).
    assert!(checked > 100, "only {checked} paths found in the documents");
    report("paths named in the documents that do not exist", &problems);
}

/// The problems of one `kuryer …` command line against the clap definition.
fn check_kuryer(root: &clap::Command, inv: &scan::Invocation) -> Vec<String> {
    let mut problems = Vec::new();
    let mut args = inv.args.iter().peekable();
    let mut cmd = root;
    if let Some(first) = args.peek() {
        if scan::looks_like_subcommand(first) {
            match root.find_subcommand(first.as_str()) {
                Some(sub) => {
                    cmd = sub;
                    args.next();
                    // A command of commands (`dead-letters list`): one more level.
                    if cmd.has_subcommands()
                        && let Some(next) = args.peek()
                        && let Some(leaf) = cmd.find_subcommand(next.as_str())
                    {
                        cmd = leaf;
                        args.next();
                    }
                }
                None => {
                    problems.push(format!(
                        "{}: `kuryer {first}` is not a subcommand of kuryer (in `{}`)",
                        inv.place, inv.text
                    ));
                    return problems;
                }
            }
        } else if !first.starts_with('-') {
            // `kuryer (src/)` and the like: the name, not a command line.
            return problems;
        }
    }
    let globals: Vec<&clap::Arg> = root.get_arguments().filter(|a| a.is_global_set()).collect();
    while let Some(word) = args.next() {
        let Some(flag) = word.strip_prefix('-') else {
            continue;
        };
        let flag = flag.split('=').next().unwrap_or("");
        let arg = cmd
            .get_arguments()
            .chain(globals.iter().copied())
            .find(|a| match flag.strip_prefix('-') {
                Some(long) => {
                    a.get_long() == Some(long)
                        || a.get_all_aliases().is_some_and(|al| al.contains(&long))
                }
                None => flag.len() == 1 && a.get_short() == flag.chars().next(),
            });
        let Some(arg) = arg else {
            problems.push(format!(
                "{}: `{word}` is not an option of `{}` (in `{}`)",
                inv.place,
                cmd.get_bin_name().unwrap_or(cmd.get_name()),
                inv.text
            ));
            continue;
        };
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        if possible.is_empty() || !word.contains('=') && args.peek().is_none() {
            continue;
        }
        let value = match word.split_once('=') {
            Some((_, v)) => v.to_owned(),
            None => match args.peek() {
                Some(v) if !v.starts_with('-') => args.next().cloned().unwrap_or_default(),
                _ => continue,
            },
        };
        if scan::is_placeholder(&value) {
            continue;
        }
        for v in scan::alternatives(&value) {
            if !possible.contains(&v) {
                problems.push(format!(
                    "{}: `{v}` is not a value of `{word}` (it takes {}) (in `{}`)",
                    inv.place,
                    possible.join(", "),
                    inv.text
                ));
            }
        }
    }
    problems
}

#[test]
fn every_kuryer_command_the_documents_name_exists() {
    let mut cli = kuryer::cli::Cli::command();
    cli.build();
    let snippets: Vec<Snippet> = all_snippets();
    let invocations = scan::invocations(&snippets, "kuryer");
    assert!(
        invocations.len() > 20,
        "only {} `kuryer …` command lines found",
        invocations.len()
    );
    let problems: Vec<String> = invocations
        .iter()
        .flat_map(|inv| check_kuryer(&cli, inv))
        .collect();
    report(
        "`kuryer` command lines in the documents that the binary does not have",
        &problems,
    );
}

/// The modules `lib` declares (`mod x;`, `pub mod x;`, behind a `cfg` or
/// not), and the names its `//!` tables mention in backticks.
fn declared_and_mapped(lib: &str) -> (Vec<String>, Vec<String>) {
    let mut declared = Vec::new();
    let mut mapped = Vec::new();
    for line in lib.lines() {
        let t = line.trim();
        if let Some(doc) = t.strip_prefix("//!") {
            if doc.trim_start().starts_with('|') {
                mapped.extend(
                    doc.split('`')
                        .skip(1)
                        .step_by(2)
                        .map(|n| n.trim_end_matches(".rs").to_owned()),
                );
            }
            continue;
        }
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            declared.push(name.trim().to_owned());
        }
    }
    (declared, mapped)
}

#[test]
fn each_module_map_lists_every_module_its_lib_rs_declares() {
    let root = scan::root();
    let mut problems = Vec::new();
    for lib in ["src/lib.rs", "sim/src/lib.rs"] {
        let text = std::fs::read_to_string(root.join(lib)).unwrap();
        let (declared, mapped) = declared_and_mapped(&text);
        assert!(
            declared.len() > 5 && !mapped.is_empty(),
            "{lib}: {} modules declared, {} names mapped",
            declared.len(),
            mapped.len()
        );
        for m in &declared {
            if !mapped.contains(m) {
                problems.push(format!(
                    "{lib} declares `mod {m}`, but its module map (the `//!` table) does not list it"
                ));
            }
        }
        for m in &mapped {
            let is_module_name = m.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            let other = ["main", "kuryer-actors", "kuryer_actors"].contains(&m.as_str());
            if is_module_name && !other && !declared.contains(m) {
                problems.push(format!(
                    "{lib}'s module map lists `{m}`, which it does not declare"
                ));
            }
        }
    }
    report("module maps out of step with their lib.rs", &problems);
}

#[test]
fn readme_names_every_systemd_credential_the_loader_reads() {
    let spans: Vec<String> = scan::snippets("README.md")
        .into_iter()
        .map(|s| s.text)
        .collect();
    let missing: Vec<String> = kuryer::config::CREDENTIALS
        .iter()
        .filter(|(name, _)| !spans.iter().any(|s| s == name))
        .map(|(name, key)| format!("README.md does not name the credential `{name}` (for `{key}`)"))
        .collect();
    report("systemd credentials the README does not list", &missing);
}
