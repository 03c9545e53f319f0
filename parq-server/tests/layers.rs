//! The server's modules form layers: no top-level module of `src/` reaches, through `crate::`
//! (or `super::` out of itself), a module that reaches back to it. This reads every file of
//! `src/` and fails on any cycle between top-level modules, printing it with the lines that make
//! each of its edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One reference from a file to a top-level module.
#[derive(Debug, Clone)]
struct Edge {
    file: String,
    line: usize,
    text: String,
}

/// `src/…` files, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("src is readable").map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/a.rs` and `src/a/mod.rs` are `[a]`, `src/a/b.rs` is `[a, b]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The text without comments (doc links are not dependencies) and without string literals.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                } else if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal such as '"' (lifetimes have no closing quote).
            out.push_str("' '");
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each path a `{…}` group names: `{a::b, c, d::{e, f}}` gives a, c, d.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    start = true;
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                start = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && start && !c.is_whitespace() {
            start = false;
            let id = ident_at(&s[i..]);
            if !id.is_empty() {
                heads.push(id.to_owned());
            }
        }
    }
    heads
}

/// The top-level modules `code` (of a file at `path`) refers to, with the lines.
fn references(code: &str, path: &[String]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::") {
        let i = at + found;
        at = i + 7;
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at..];
        if rest.starts_with('{') {
            out.extend(group_heads(rest).into_iter().map(|h| (h, line_of(i))));
        } else {
            out.push((ident_at(rest).to_owned(), line_of(i)));
        }
    }
    // `super::` that leaves the file's top-level module.
    let mut at = 0;
    while let Some(found) = code[at..].find("super::") {
        let i = at + found;
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            at = i + 7;
            continue;
        }
        let mut rest = &code[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        at = code.len() - rest.len();
        if up >= path.len() {
            if rest.starts_with('{') {
                out.extend(group_heads(rest).into_iter().map(|h| (h, line_of(i))));
            } else {
                out.push((ident_at(rest).to_owned(), line_of(i)));
            }
        }
    }
    out
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeSet<String> =
        all.iter().filter_map(|p| module_path(p.strip_prefix(&src).unwrap()).first().cloned()).collect();
    assert!(modules.len() > 5, "the modules of {}: {modules:?}", src.display());

    // Names the crate root re-exports (`pub use app::{App, …}`), and whose module they are.
    let lib = code_of(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut reexports = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else { continue };
        let module = ident_at(rest).to_owned();
        let after = &rest[module.len()..];
        let names: Vec<String> = match after.strip_prefix("::") {
            Some(g) if g.starts_with('{') => group_heads(g),
            Some(n) => vec![ident_at(n).to_owned()],
            None => Vec::new(),
        };
        for n in names {
            reexports.insert(n, module.clone());
        }
    }

    let mut edges: BTreeMap<(String, String), Vec<Edge>> = BTreeMap::new();
    for file in &all {
        let rel = file.strip_prefix(&src).unwrap();
        let path = module_path(rel);
        let Some(from) = path.first().cloned() else { continue }; // lib.rs, main.rs
        let text = std::fs::read_to_string(file).unwrap();
        let code = code_of(&text);
        for (name, line) in references(&code, &path) {
            let to = if modules.contains(&name) {
                name
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                continue;
            };
            if to == from {
                continue;
            }
            let text = text.lines().nth(line - 1).unwrap_or("").trim().to_owned();
            edges.entry((from.clone(), to)).or_default().push(Edge {
                file: format!("src/{}", rel.display()),
                line,
                text,
            });
        }
    }

    // A cycle, if any: depth-first search, printing the path back to where it closes.
    let graph: BTreeMap<&str, Vec<&str>> = modules
        .iter()
        .map(|m| {
            let next = edges.keys().filter(|(f, _)| f == m).map(|(_, t)| t.as_str()).collect();
            (m.as_str(), next)
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit<'a>(
        m: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        marks.insert(m, Mark::Open);
        stack.push(m);
        for &n in &graph[m] {
            match marks[n] {
                Mark::Open => {
                    let from = stack.iter().position(|s| *s == n).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(n);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(n, graph, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(m, Mark::Done);
        None
    }
    let mut marks: BTreeMap<&str, Mark> = graph.keys().map(|m| (*m, Mark::New)).collect();
    for m in graph.keys() {
        if marks[m] != Mark::New {
            continue;
        }
        if let Some(cycle) = visit(m, &graph, &mut marks, &mut Vec::new()) {
            let mut report = format!("import cycle between top-level modules: {}\n", cycle.join(" -> "));
            for pair in cycle.windows(2) {
                let key = (pair[0].to_owned(), pair[1].to_owned());
                report.push_str(&format!("  {} -> {}:\n", pair[0], pair[1]));
                for e in &edges[&key] {
                    report.push_str(&format!("    {}:{}: {}\n", e.file, e.line, e.text));
                }
            }
            panic!("{report}");
        }
    }
}

#[test]
fn the_reader_sees_grouped_imports_and_super_paths() {
    let code = code_of(
        "use crate::{a::X, b, c::{d, e}};\n// crate::comment\nlet s = \"crate::string\";\nsuper::super::f::g();\nsuper::h();\n",
    );
    let refs: Vec<String> = references(&code, &["m".into(), "n".into()]).into_iter().map(|r| r.0).collect();
    assert_eq!(refs, ["a", "b", "c", "f"], "{code}");
    let refs: Vec<String> = references(&code, &["m".into()]).into_iter().map(|r| r.0).collect();
    assert_eq!(refs, ["a", "b", "c", "f", "h"]);
}
