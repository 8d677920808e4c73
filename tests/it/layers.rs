//! The crate's imports run one way: every `crate::…` path in `src/` names
//! a module in the same layer of `kuryer::LAYERS` or one below, and no two
//! modules import each other, however indirectly. The same loop check for
//! `kuryer-actors`, whose modules have no layers but no loops either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → the modules it imports (top-level modules of one crate).
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The code of a Rust file without its comments and string literals (a
/// doc link or a log message naming `crate::x` is no import).
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if b[i] == b'r' && b[i..].starts_with(b"r#\"") {
            let end = src[i + 3..].find("\"#").map_or(b.len(), |e| i + 3 + e + 2);
            i = end;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\n'); a lifetime has no closing quote.
            i += if b[i + 1] == b'\\' { 4 } else { 3 };
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The first segments of every path a file's code takes from its crate
/// root: `crate::a::b`, `crate::{a, b::c}`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `kuryer_actors::…` or `my_crate::` are other paths.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    push_first_segment(&mut found, &item);
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            push_first_segment(&mut found, rest);
        }
    }
    found
}

fn push_first_segment(found: &mut BTreeSet<String>, path: &str) {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !name.is_empty() && name != "self" && name.chars().next().is_some_and(char::is_lowercase) {
        found.insert(name);
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module graph of the crate whose sources are in `src`: each file
/// belongs to the top-level module it is in (`src/a.rs`, `src/a/…`);
/// the crate root and `main.rs` are left out.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = top.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let imports = graph.entry(module.clone()).or_default();
        imports.extend(crate_imports(&code).into_iter().filter(|m| *m != module));
    }
    graph
}

/// Imports that run up: (from, to, from's layer, to's layer).
fn upward(graph: &Graph, layers: &[(&str, &[&str])]) -> Vec<String> {
    let layer_of = |m: &str| layers.iter().position(|(_, ms)| ms.contains(&m));
    let mut found = Vec::new();
    for (from, imports) in graph {
        for to in imports {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && b > a
            {
                found.push(format!(
                    "{from} ({}) imports {to} ({})",
                    layers[a].0, layers[b].0
                ));
            }
        }
    }
    found
}

/// Every import loop, as the modules on it (one per strongly connected
/// group of more than one module).
fn loops(graph: &Graph) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then groups on its reverse.
    fn visit(g: &Graph, m: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(m.to_owned()) {
            return;
        }
        for n in g.get(m).into_iter().flatten() {
            visit(g, n, seen, order);
        }
        order.push(m.to_owned());
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for m in graph.keys() {
        visit(graph, m, &mut seen, &mut order);
    }
    let mut reverse = Graph::new();
    for (from, imports) in graph {
        for to in imports {
            reverse.entry(to.clone()).or_default().insert(from.clone());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut groups = Vec::new();
    for m in order.iter().rev() {
        if assigned.contains(m) {
            continue;
        }
        let mut group = Vec::new();
        visit(&reverse, m, &mut assigned, &mut group);
        if group.len() > 1 {
            group.sort();
            groups.push(group);
        }
    }
    groups
}

/// The modules `lib.rs` declares (`mod x;`, `pub mod x;`).
fn declared_modules(lib: &str) -> BTreeSet<String> {
    code_only(lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(|m| m.trim().to_owned())
        })
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn imports_inside_src_run_down_the_layers_and_never_in_a_loop() {
    let graph = module_graph(&root().join("src"));
    let up = upward(&graph, kuryer::LAYERS);
    assert!(
        up.is_empty(),
        "imports that run up a layer:\n{}",
        up.join("\n")
    );
    let cycles = loops(&graph);
    assert!(cycles.is_empty(), "import loops: {cycles:?}");
}

#[test]
fn every_module_of_the_crate_has_exactly_one_layer() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let declared = declared_modules(&lib);
    let mut layered = BTreeSet::new();
    for (_, modules) in kuryer::LAYERS {
        for m in *modules {
            assert!(layered.insert(m.to_string()), "{m} is in two layers");
        }
    }
    assert_eq!(declared, layered, "lib.rs's modules and LAYERS differ");
}

#[test]
fn the_actors_crate_has_no_import_loop() {
    let graph = module_graph(&root().join("actors/src"));
    assert!(graph.contains_key("sender_pool"), "{graph:?}");
    let cycles = loops(&graph);
    assert!(
        cycles.is_empty(),
        "import loops in kuryer-actors: {cycles:?}"
    );
}

/// The check itself finds what it must: an import up a layer, a loop, and
/// no import in a comment or a string.
#[test]
fn the_layer_check_finds_upward_imports_and_loops() {
    let code = code_only(
        r#"
        use crate::{store::Store, pipeline::{Pipeline, PipelineParts}, self};
        // use crate::daemon::run;
        /// See [`crate::http`].
        let s = "crate::bot";
        let c = '"'; let x = crate::config::load();
        other_crate::daemon::x();
    "#,
    );
    let imports = crate_imports(&code);
    assert_eq!(
        imports.into_iter().collect::<Vec<_>>(),
        ["config", "pipeline", "store"]
    );
    let layers: &[(&str, &[&str])] = &[("low", &["a", "b"]), ("high", &["c"])];
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("c".into());
    graph.entry("b".into()).or_default().insert("a".into());
    graph.entry("a".into()).or_default().insert("b".into());
    assert_eq!(upward(&graph, layers), ["a (low) imports c (high)"]);
    assert_eq!(loops(&graph), [vec!["a".to_owned(), "b".to_owned()]]);
}
