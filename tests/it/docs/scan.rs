//! Reading the project's documents for what they name: code spans, fenced
//! code lines and link targets, the repository paths in them, and the
//! `kuryer …` / `kuryer-bench …` command lines. Shared by the docs test of
//! the `kuryer` package (tests/it/docs) and of `kuryer-bench`
//! (bench/tests/docs.rs), which includes this file by path.

use std::path::{Path, PathBuf};

/// The documents checked.
pub(crate) const DOCS: &[&str] = &[
    "README.md",
    "ARCHITECTURE.md",
    "CONTRIBUTING.md",
    "BENCHMARKS.md",
];

/// Top-level directories whose paths the documents name. Fixed on purpose
/// (not read from the disk): a path under a directory that is gone must
/// still be caught.
const PATH_ROOTS: &[&str] = &[
    "src/", "tests/", "sim/", "bench/", "benches/", "actors/", "sql/", "systemd/", ".ci/",
    "locales/", "debian/", "docs/",
];

/// File endings that make a bare name (`rate_limiter.rs`) a file name.
const FILE_ENDINGS: &[&str] = &[
    ".rs", ".sql", ".toml", ".md", ".sh", ".py", ".ftl", ".json", ".lua", ".service", ".svg",
    ".txt",
];

/// The workspace root (the directory that holds `ARCHITECTURE.md`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("ARCHITECTURE.md").is_file())
        .expect("the workspace root above CARGO_MANIFEST_DIR")
        .to_path_buf()
}

/// A piece of a document that names things: a code span, a line of a
/// fenced code block, or a link target.
#[derive(Debug, Clone)]
pub(crate) struct Snippet {
    pub(crate) doc: &'static str,
    /// 1-based.
    pub(crate) line: usize,
    pub(crate) text: String,
}

impl Snippet {
    pub(crate) fn place(&self) -> String {
        format!("{}:{}", self.doc, self.line)
    }
}

/// Code spans (which may run over a line break) and fenced code lines of
/// `doc`, then its link targets.
pub(crate) fn snippets(doc: &'static str) -> Vec<Snippet> {
    let text =
        std::fs::read_to_string(root().join(doc)).unwrap_or_else(|e| panic!("reading {doc}: {e}"));
    let mut out = Vec::new();
    // The prose with fenced blocks blanked, so that offsets keep their lines.
    let mut prose = String::with_capacity(text.len());
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push(Snippet {
                doc,
                line: i + 1,
                text: line.to_owned(),
            });
            prose.push('\n');
            continue;
        } else {
            prose.push_str(line);
        }
        prose.push('\n');
    }
    let line_of = |offset: usize| prose[..offset].matches('\n').count() + 1;
    // `code` spans: a run of n backticks closes with the same run, within
    // the paragraph.
    let b = prose.as_bytes();
    let mut k = 0;
    while k < b.len() {
        if b[k] != b'`' {
            k += 1;
            continue;
        }
        let run = b[k..].iter().take_while(|&&c| c == b'`').count();
        let fence = &prose[k..k + run];
        let start = k + run;
        let paragraph_end = prose[start..]
            .find("\n\n")
            .map_or(prose.len(), |e| start + e);
        match prose[start..paragraph_end].find(fence) {
            Some(len) => {
                out.push(Snippet {
                    doc,
                    line: line_of(k),
                    text: prose[start..start + len]
                        .replace('\n', " ")
                        .trim()
                        .to_owned(),
                });
                k = start + len + run;
            }
            None => k = start,
        }
    }
    // [text](target) links.
    let mut from = 0;
    while let Some(at) = prose[from..].find("](") {
        let target_start = from + at + 2;
        let Some(len) = prose[target_start..].find(')') else {
            break;
        };
        out.push(Snippet {
            doc,
            line: line_of(target_start),
            text: format!("link:{}", &prose[target_start..target_start + len]),
        });
        from = target_start + len;
    }
    out
}

/// Every snippet of every document.
pub(crate) fn all_snippets() -> Vec<Snippet> {
    DOCS.iter().flat_map(|d| snippets(d)).collect()
}

/// Words of a snippet: split at white space and punctuation, at commas
/// only outside `{a,b}`.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut depth) = (0, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let split = c.is_whitespace() || ";()\"'<>=`".contains(c) || (c == ',' && depth == 0);
        if split {
            if start < i {
                out.push(&text[start..i]);
            }
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Repository paths (`src/reader/pool.rs`, `tests/it/faults/`) and bare
/// file names (`rate_limiter.rs`) a snippet names.
pub(crate) fn named_paths(s: &Snippet) -> Vec<String> {
    if let Some(target) = s.text.strip_prefix("link:") {
        let target = target.split('#').next().unwrap_or("");
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            return Vec::new();
        }
        return vec![target.trim_start_matches("./").to_owned()];
    }
    let mut out = Vec::new();
    // Placeholders (`<version>`) are split off by `tokens`; a path that had
    // one is checked up to it.
    for raw in tokens(&s.text) {
        let mut t = raw.trim_start_matches(['[', '*']);
        t = t.trim_end_matches([']', '.', ':', '*', '!', '?']);
        // `src/x.rs:120` and `src/x.rs:120-140`: the file.
        if let Some((file, line)) = t.split_once(':')
            && line.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            t = file;
        }
        let t = t.trim_start_matches("./");
        let under_a_root = PATH_ROOTS.iter().any(|r| t.starts_with(r));
        let bare_file = !t.contains('/')
            && !t.contains("::")
            && FILE_ENDINGS
                .iter()
                .any(|e| t.ends_with(e) && t.len() > e.len())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if under_a_root || bare_file {
            out.push(t.to_owned());
        }
    }
    out
}

/// Whether `pattern` names something in the repository at `root`: a path
/// (with `*` and `{a,b}` allowed in it), or a bare file name found anywhere
/// in the repository.
pub(crate) fn path_exists(
    root: &Path,
    pattern: &str,
    bare_names: &std::collections::BTreeSet<String>,
) -> bool {
    if !pattern.contains('/') {
        return bare_names.contains(pattern);
    }
    expand_braces(pattern)
        .iter()
        .any(|p| glob_exists(root, p.trim_end_matches('/')))
}

fn expand_braces(p: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (p.find('{'), p.find('}')) else {
        return vec![p.to_owned()];
    };
    if close < open {
        return vec![p.to_owned()];
    }
    p[open + 1..close]
        .split(',')
        .flat_map(|alt| expand_braces(&format!("{}{}{}", &p[..open], alt, &p[close + 1..])))
        .collect()
}

fn glob_exists(dir: &Path, pattern: &str) -> bool {
    let (first, rest) = match pattern.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (pattern, None),
    };
    let candidates: Vec<PathBuf> = if first.contains('*') {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| wildcard(first, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect()
    } else {
        vec![dir.join(first)]
    };
    candidates.iter().any(|c| match rest {
        Some(r) if !r.is_empty() => c.is_dir() && glob_exists(c, r),
        _ => c.exists(),
    })
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| {
                    name.is_char_boundary(head.len() + i) && wildcard(tail, &name[head.len() + i..])
                })
        }
    }
}

/// The names of every file and directory in the repository (not `target`,
/// not `.git`), for bare file names.
pub(crate) fn bare_names(root: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "target" || name == ".git" {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
            out.insert(name);
        }
    }
    out
}

/// One command line a document names: `kuryer demo --json` is program
/// `kuryer`, args `["demo", "--json"]`.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub(crate) place: String,
    pub(crate) text: String,
    pub(crate) args: Vec<String>,
}

/// Where a program's name starts a command: the snippet's start, after a
/// shell separator or `sudo`/`exec`/`time`, after `VAR=value` assignments.
fn command_position(prev: Option<&str>) -> bool {
    match prev {
        None => true,
        Some(p) => {
            [
                "&&", "||", "|", ";", "$", "sudo", "exec", "time", "then", "do", "env", "nohup",
            ]
            .contains(&p)
                || p.split_once('=').is_some_and(|(k, _)| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
        }
    }
}

/// Every command line of `program` (`kuryer`, `kuryer-bench`) in the
/// snippets: its arguments up to a shell separator or a comment, square
/// brackets of optional parts taken off.
pub(crate) fn invocations(snippets: &[Snippet], program: &str) -> Vec<Invocation> {
    let mut out = Vec::new();
    for s in snippets.iter().filter(|s| !s.text.starts_with("link:")) {
        let words: Vec<&str> = s.text.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if w.rsplit('/').next() != Some(program)
                || !command_position(i.checked_sub(1).map(|p| words[p]))
            {
                continue;
            }
            let args: Vec<String> = words[i + 1..]
                .iter()
                .take_while(|a| {
                    !["&&", "||", "|", ";", "→", "->", "#"].contains(a) && !a.starts_with('#')
                })
                .map(|a| a.trim_matches(['[', ']']).to_owned())
                .filter(|a| !a.is_empty())
                .collect();
            out.push(Invocation {
                place: s.place(),
                text: s.text.clone(),
                args,
            });
        }
    }
    out
}

/// A word that can only be a subcommand (`run`, `check-config`), not a
/// value (`PATH`, `+998…`, `(src/)`).
pub(crate) fn looks_like_subcommand(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The alternatives of a documented value: `seed\|ceiling` (in a table),
/// `mtproto|sim`.
pub(crate) fn alternatives(value: &str) -> Vec<String> {
    value
        .replace("\\|", "|")
        .split('|')
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
        .collect()
}

/// A value that stands for one (`N`, `PATH`, `R`, `…`), not a literal.
pub(crate) fn is_placeholder(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_uppercase() || c == '_' || c == '…' || c == '.')
}
