//! The layering ARCHITECTURE.md describes, checked on the source text.
//!
//! Every module of `src/` sits on a layer; a module may name (`crate::…`, `super::…`) only
//! modules on lower layers. That makes the import graph acyclic and keeps the pure layers (the
//! domain model, policy, the remediation plan, report rendering, output) away from the network,
//! the database and the clock. `#[cfg(test)]` code is exempt: tests may build their inputs with
//! anything. A few leaf files of a module are their own node (a vocabulary type the
//! configuration needs, or the part of `remediate` that makes the calls).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import modules on strictly lower layers.
const LAYERS: &[&[&str]] = &[
    // Vocabulary: no imports from the crate at all.
    &[
        "clock",
        "org",
        "order",
        "policy::severity",
        "policy::exemption",
        "remediate::mode",
    ],
    &["config"],
    &["policy"],
    // Pure: what may be done, and how it reads.
    &["remediate"],
    &["output"],
    &["report", "metrics"],
    // Pure: what an alert says (payload building imports only org, config and policy).
    &["alerts"],
    // The edges of the world, each alone with its protocol.
    &["admin_api", "directory", "telemetry", "schedule"],
    &["store"],
    &[
        "snapshot",
        "usage_ingest",
        "mail",
        "remediate::execute",
        "alerts::deliver",
    ],
    &["jobs"],
    // Metrics out of the process: HTTP for Prometheus, the textfile for node_exporter; the
    // event stream's sinks.
    &["exporter", "events"],
    &["daemon", "status", "demo"],
    &["cli"],
];

/// Modules that must do no I/O and read no clock: rendering and decisions are pure functions.
const PURE: &[&str] = &[
    "org",
    "order",
    "policy",
    "policy::severity",
    "policy::exemption",
    "remediate",
    "remediate::mode",
    "output",
    "report",
    "metrics",
    "alerts",
];

/// Names a pure module must not mention.
const IMPURE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "tokio::",
    "reqwest::",
    "rusqlite::",
    "lettre::",
    "crate::clock",
    "SystemTime",
    "Instant::now",
];

/// Files that are a node of their own instead of part of their module.
const OWN_NODES: &[(&str, &str)] = &[
    ("policy/severity.rs", "policy::severity"),
    ("policy/exemption.rs", "policy::exemption"),
    ("remediate/mode.rs", "remediate::mode"),
    ("remediate/execute.rs", "remediate::execute"),
    ("alerts/deliver.rs", "alerts::deliver"),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
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

/// The node a file belongs to, or `None` for the crate root and test-only files.
fn node_of(relative: &str) -> Option<String> {
    if relative == "lib.rs" || relative == "main.rs" || relative.ends_with("/tests.rs") {
        return None;
    }
    if let Some((_, node)) = OWN_NODES.iter().find(|(file, _)| *file == relative) {
        return Some((*node).to_owned());
    }
    let first = relative.split('/').next().unwrap();
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The code of a file without comments and without its `#[cfg(test)]` items.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the next item: a one-line `mod x;` or a braced block.
            let mut depth = 0i32;
            let mut opened = false;
            for next in lines.by_ref() {
                depth += next.matches('{').count() as i32 - next.matches('}').count() as i32;
                opened |= next.contains('{');
                if (opened && depth <= 0) || (!opened && next.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = match line.find(" // ") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The nodes a file's code names: `crate::a::b` is `a::b` when that is a node of its own, else
/// `a`; `super::` in a file below a module directory is that module.
fn references(relative: &str, code: &str) -> BTreeSet<String> {
    let own: BTreeSet<&str> = OWN_NODES.iter().map(|(_, node)| *node).collect();
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        if at > 0 {
            let before = code[..at].chars().next_back().unwrap();
            if before.is_ascii_alphanumeric() || before == '_' {
                continue; // e.g. `orgwarden_crate::`
            }
        }
        let rest = &code[at + "crate::".len()..];
        let first = ident(rest);
        if first.is_empty() {
            continue;
        }
        let after = &rest[first.len()..];
        let second = after.strip_prefix("::").map(ident).unwrap_or_default();
        let pair = format!("{first}::{second}");
        if own.contains(pair.as_str()) {
            found.insert(pair);
        } else {
            found.insert(first);
        }
    }
    let parts: Vec<&str> = relative.split('/').collect();
    if parts.len() > 1 && code.contains("super::") {
        let parent = parts[..parts.len() - 1].join("::");
        let is_mod_rs = parts.last() == Some(&"mod.rs");
        if !is_mod_rs {
            found.insert(parent.split("::").next().unwrap().to_owned());
        }
    }
    found
}

struct Graph {
    /// node -> (named node -> a file that names it)
    edges: BTreeMap<String, BTreeMap<String, String>>,
    /// node -> its production code, file by file
    code: BTreeMap<String, Vec<(String, String)>>,
}

fn graph() -> Graph {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut code: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for path in files {
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some(node) = node_of(&relative) else {
            continue;
        };
        let text = production_code(&std::fs::read_to_string(&path).unwrap());
        let entry = edges.entry(node.clone()).or_default();
        for target in references(&relative, &text) {
            if target != node {
                entry.entry(target).or_insert_with(|| relative.clone());
            }
        }
        code.entry(node).or_default().push((relative, text));
    }
    Graph { edges, code }
}

fn layer_of(node: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&node))
}

#[test]
fn every_module_has_a_layer() {
    let graph = graph();
    let missing: Vec<&String> = graph
        .edges
        .keys()
        .filter(|node| layer_of(node).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/architecture.rs (and ARCHITECTURE.md): {missing:?}"
    );
}

#[test]
fn modules_import_only_lower_layers() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (node, targets) in &graph.edges {
        let Some(from) = layer_of(node) else { continue };
        for (target, file) in targets {
            match layer_of(target) {
                Some(to) if to < from => {}
                Some(_) => wrong.push(format!("{node} (src/{file}) imports {target}")),
                None => wrong.push(format!("{node} (src/{file}) imports unknown {target}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn pure_modules_do_no_io_and_read_no_clock() {
    let graph = graph();
    let mut wrong = Vec::new();
    for node in PURE {
        let files = graph
            .code
            .get(*node)
            .unwrap_or_else(|| panic!("pure module {node} not found"));
        for (file, text) in files {
            for name in IMPURE {
                if text.contains(name) {
                    wrong.push(format!("src/{file} ({node}) mentions {name}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "I/O in pure modules:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_pure_layers_never_name_the_outer_ones() {
    // The invariant the issue states in so many words, independent of the layer table.
    let graph = graph();
    for node in ["policy", "report", "remediate", "output", "org"] {
        let targets = &graph.edges[node];
        for outer in [
            "admin_api",
            "snapshot",
            "store",
            "cli",
            "daemon",
            "jobs",
            "mail",
        ] {
            assert!(
                !targets.contains_key(outer),
                "{node} imports {outer} (in src/{})",
                targets[outer]
            );
        }
    }
}

#[test]
fn the_checker_sees_imports() {
    // The checks above are only as good as the parser: make sure it finds what it must.
    let code = production_code(
        "use crate::store::Store;\n// use crate::cli::x;\nfn f() { crate::policy::severity::Severity::High; }\n#[cfg(test)]\nmod tests {\n    use crate::daemon;\n}\n",
    );
    let refs = references("jobs.rs", &code);
    assert_eq!(
        refs,
        BTreeSet::from(["store".to_owned(), "policy::severity".to_owned()])
    );
    let refs = references("remediate/execute.rs", "use super::Plan;\n");
    assert_eq!(refs, BTreeSet::from(["remediate".to_owned()]));
}
