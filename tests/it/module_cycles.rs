//! Dependencies point one way (STYLE.md, habit 8): no module of the library (shared/src)
//! imports a module that imports it back, directly or through others. Checked twice: between
//! the top-level layers (the first segment of a module path: `vault::endpoints` is in layer
//! `vault`) and between individual modules. The failure names every cycle, hop by hop, with
//! the file and line of one import behind each hop.
//!
//! Read from the source, so that it follows any restructure with nothing to update:
//!
//! - every `.rs` file under shared/src is a module: `lib.rs` is the crate root, `a/mod.rs` and
//!   `a.rs` are `a`, `a/b.rs` is `a::b`;
//! - an import is a path to a module of the crate: in a `use` (groups, `self`, `as` and globs
//!   expanded) or written inline in code, spelled from `crate::`, from `super::` or `self::`
//!   (resolved from the module it is written in, inline modules included), from a child
//!   module's name, or from a module name an earlier `use` brought in;
//! - a path names the longest module it starts with, and an item a module re-exports
//!   (`pub use`) is followed to the module that re-exports it from: `crate::App`, re-exported
//!   by lib.rs from `config`, is an import of `config`;
//! - a module that declares, uses or re-exports its own descendants is their parent, not a
//!   peer: those imports are not counted (every module descends from the crate root, which
//!   therefore imports nothing). A child importing from its parent (`super::`) is counted;
//! - code under `#[cfg(test)]` is a unit test's, not the library's, and is not counted;
//!   `$crate::` paths are macros' (they name the crate where the macro is expanded).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    if let Err(cycles) = import_cycles(&src, "shared/src") {
        panic!("{cycles}");
    }
}

/// The reader on a small crate with two cycles, each import spelled another way: a `use`
/// group, `super::super::`, a path inline in code, an item re-exported twice over; and what
/// is not an import: comments, strings, a unit test's `use`.
#[test]
fn the_reader_finds_cycles_however_the_imports_are_spelled() {
    let files = [
        (
            "lib.rs",
            "pub mod api;\npub mod domain;\npub mod store;\npub use store::Store;\n",
        ),
        ("domain/mod.rs", "pub mod ids;\n"),
        (
            "domain/ids.rs",
            "//! Not an import: crate::api::handlers.\n\
             pub struct Id;\n\
             pub fn open() -> super::super::Store {\n\
             \x20   todo!()\n\
             }\n\
             pub const NOTE: &str = r#\"crate::api::handlers \"quoted\"\"#;\n\
             pub fn quote<'a>(s: &'a str) -> char {\n\
             \x20   s.chars().next().unwrap_or('\"')\n\
             }\n\
             #[cfg(test)]\n\
             mod tests {\n\
             \x20   use crate::api::handlers::LIMIT;\n\
             }\n",
        ),
        ("store/mod.rs", "mod backend;\npub use backend::Store;\n"),
        (
            "store/backend.rs",
            "use super::super::domain::{ids::{self, Id}};\n\
             pub struct Store;\n\
             fn limit() -> u8 {\n\
             \x20   crate::api::handlers::LIMIT\n\
             }\n",
        ),
        ("api/mod.rs", "pub mod handlers;\n"),
        (
            "api/handlers.rs",
            "use crate::{domain::ids::Id, Store};\npub const LIMIT: u8 = 1;\n",
        ),
    ];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("module-cycles-{}-{nanos}", std::process::id()));
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let found = import_cycles(&dir, "src");
    std::fs::remove_dir_all(&dir).unwrap();
    let message = found.expect_err("two cycles");
    for line in [
        "\nlayer cycle: api -> store -> api\n",
        "\n    api -> store: src/api/handlers.rs:1 uses crate::Store\n",
        "\n    store -> api: src/store/backend.rs:4 uses crate::api::handlers::LIMIT\n",
        "\nlayer cycle: domain -> store -> domain\n",
        "\n    domain -> store: src/domain/ids.rs:3 uses super::super::Store\n",
        "\n    store -> domain: src/store/backend.rs:1 uses super::super::domain::ids\n",
        "\nmodule cycle: api::handlers -> store::backend -> api::handlers\n",
        "\nmodule cycle: domain::ids -> store::backend -> domain::ids\n",
    ] {
        assert!(message.contains(line), "expected {line:?} in:\n{message}");
    }
    assert_eq!(message.matches("cycle:").count(), 4, "{message}");
}

/// A module path, segments from the crate root (the root itself is empty).
type ModPath = Vec<String>;

/// One import as written: where, and the path it names, made absolute.
#[derive(Clone, Debug)]
struct Import {
    file: String,
    line: usize,
    written: String,
    path: ModPath,
}

/// Checks the crate whose `lib.rs` is in `src` (shown as `shown` in messages). `Err` holds
/// the message naming every cycle.
pub(crate) fn import_cycles(src: &Path, shown: &str) -> Result<(), String> {
    let mut files = Vec::new();
    collect_rs_files(src, &mut files);
    assert!(
        !files.is_empty(),
        "no .rs files under {} to check for import cycles",
        src.display()
    );
    let mut by_module: BTreeMap<ModPath, PathBuf> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(src).unwrap();
        if relative.starts_with("bin") || relative == Path::new("main.rs") {
            continue; // binaries are crates of their own
        }
        by_module.insert(module_of(relative), file.clone());
    }
    // Every ancestor of a file's module is a module too, even without a file of its own.
    let mut modules: BTreeSet<ModPath> = BTreeSet::new();
    for module in by_module.keys() {
        for len in 0..=module.len() {
            modules.insert(module[..len].to_vec());
        }
    }

    let mut parsed = BTreeMap::new();
    let mut reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>> = BTreeMap::new();
    let mut test_only: BTreeSet<ModPath> = BTreeSet::new();
    for (module, file) in &by_module {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let name = format!("{shown}/{}", file.strip_prefix(src).unwrap().display());
        let scan = scan_file(&name, &text, module, &modules);
        for (in_module, item, target) in &scan.reexports {
            reexports
                .entry(in_module.clone())
                .or_default()
                .insert(item.clone(), target.clone());
        }
        test_only.extend(scan.test_modules.iter().cloned());
        parsed.insert(module.clone(), scan.imports);
    }

    // Module edges, each with the first import behind it.
    let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, Import>> = BTreeMap::new();
    for (module, imports) in &parsed {
        if test_only.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        let from = edges.entry(module.clone()).or_default();
        for import in imports {
            let target = resolve(&import.path, &modules, &reexports);
            if target.starts_with(module) {
                continue; // itself, or one of its own descendants
            }
            from.entry(target).or_insert_with(|| import.clone());
        }
    }

    // Layer edges: between different first segments; the crate root is in no layer.
    let mut layer_edges: BTreeMap<ModPath, BTreeMap<ModPath, Import>> = BTreeMap::new();
    for (from, targets) in &edges {
        for (to, import) in targets {
            if from.is_empty() || to.is_empty() || from[0] == to[0] {
                continue;
            }
            layer_edges
                .entry(vec![from[0].clone()])
                .or_default()
                .entry(vec![to[0].clone()])
                .or_insert_with(|| import.clone());
        }
    }

    let mut report = String::new();
    for (kind, graph) in [("layer", &layer_edges), ("module", &edges)] {
        for cycle in cycles(graph) {
            report.push_str(&describe(kind, &cycle, graph));
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "import cycles in {shown}: a module imports one that imports it back (STYLE.md, \
             habit 8: dependencies point one way)\n{report}"
        ))
    }
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs` → root, `a/mod.rs` and `a.rs` → `a`, `a/b.rs` → `a::b`.
fn module_of(relative: &Path) -> ModPath {
    let mut segments: ModPath = relative
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let file = segments.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if !(stem == "mod" || (segments.is_empty() && stem == "lib")) {
        segments.push(stem.to_owned());
    }
    segments
}

/// The module a path names: the longest module it starts with, after following re-exports.
fn resolve(
    path: &[String],
    modules: &BTreeSet<ModPath>,
    reexports: &BTreeMap<ModPath, BTreeMap<String, ModPath>>,
) -> ModPath {
    let mut path = path.to_vec();
    let mut seen = BTreeSet::new();
    loop {
        let len = (0..=path.len())
            .rev()
            .find(|&len| modules.contains(&path[..len]))
            .unwrap_or(0);
        let module = path[..len].to_vec();
        let forwarded = path
            .get(len)
            .and_then(|item| reexports.get(&module)?.get(item));
        match forwarded {
            Some(target) if seen.insert(path.clone()) => {
                let mut next = target.clone();
                next.extend_from_slice(&path[len + 1..]);
                path = next;
            }
            _ => return module,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cycles.

/// Cycles enough that every module on one is shown: for each such module not yet shown, the
/// shortest cycle through it. Sorted, so the message is stable.
fn cycles(graph: &BTreeMap<ModPath, BTreeMap<ModPath, Import>>) -> Vec<Vec<ModPath>> {
    let nodes: BTreeSet<&ModPath> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to.keys()))
        .collect();
    let reach = |start: &ModPath| -> BTreeSet<ModPath> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.clone()];
        while let Some(node) = todo.pop() {
            for next in graph.get(&node).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&ModPath, BTreeSet<ModPath>> =
        nodes.iter().map(|&n| (n, reach(n))).collect();
    let mut shown: BTreeSet<ModPath> = BTreeSet::new();
    let mut found = Vec::new();
    for &start in &nodes {
        if shown.contains(start) || !reachable[start].contains(start) {
            continue;
        }
        let cycle = shortest_cycle(graph, start);
        shown.extend(cycle.iter().cloned());
        found.push(cycle);
    }
    found
}

/// The shortest cycle from `start` back to it (one exists): `start`, …, `start`.
fn shortest_cycle(
    graph: &BTreeMap<ModPath, BTreeMap<ModPath, Import>>,
    start: &ModPath,
) -> Vec<ModPath> {
    let mut previous: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                let mut cycle = vec![start.clone(), node.clone()];
                let mut at = node;
                while at != start {
                    at = previous[at];
                    cycle.push(at.clone());
                }
                cycle.reverse();
                return cycle;
            }
            if !previous.contains_key(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    unreachable!("{} is on no cycle", name(start))
}

fn name(module: &ModPath) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

fn describe(
    kind: &str,
    cycle: &[ModPath],
    graph: &BTreeMap<ModPath, BTreeMap<ModPath, Import>>,
) -> String {
    let names: Vec<String> = cycle.iter().map(name).collect();
    let mut text = format!("\n{kind} cycle: {}\n", names.join(" -> "));
    for hop in cycle.windows(2) {
        let import = &graph[&hop[0]][&hop[1]];
        text.push_str(&format!(
            "    {} -> {}: {}:{} uses {}\n",
            name(&hop[0]),
            name(&hop[1]),
            import.file,
            import.line,
            import.written
        ));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Reading one file: comments and literals blanked, then tokens, then its imports.

struct FileScan {
    imports: Vec<Import>,
    /// (module, item, absolute path) for each item a `pub use` re-exports.
    reexports: Vec<(ModPath, String, ModPath)>,
    /// Out-of-line modules declared under `#[cfg(test)]` (`#[cfg(test)] mod tests;`).
    test_modules: Vec<ModPath>,
}

/// The source with every comment, string and character literal replaced by spaces (newlines
/// kept, so line numbers hold): a path in a doc comment or a string is not an import.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if !prev_ident && (c == 'r' || (c == 'b' && next == Some('r'))) && {
            // A raw string: r"…", r#"…"#, br"…"; not a raw identifier (r#type).
            let mut j = i + if c == 'b' { 2 } else { 1 };
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            chars.get(j) == Some(&'"')
        } {
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while chars[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1; // the opening quote
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &skipped in &chars[i..j.min(chars.len())] {
                out.push(blank(skipped));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or else a lifetime ('a), kept.
            let end = if next == Some('\\') {
                (i + 2..chars.len()).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokenize(text: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let mut word: String = chars[start..i].iter().collect();
            if word == "r" && chars.get(i) == Some(&'#') {
                // A raw identifier: r#type is `type`.
                i += 1;
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                word = chars[start..i].iter().collect();
            }
            tokens.push((Tok::Ident(word), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push((Tok::PathSep, line));
            i += 2;
        } else {
            tokens.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

fn ident(tok: Option<&(Tok, usize)>) -> Option<&str> {
    match tok {
        Some((Tok::Ident(word), _)) => Some(word),
        _ => None,
    }
}

fn is_punct(tok: Option<&(Tok, usize)>, c: char) -> bool {
    matches!(tok, Some((Tok::Punct(p), _)) if *p == c)
}

fn is_sep(tok: Option<&(Tok, usize)>) -> bool {
    matches!(tok, Some((Tok::PathSep, _)))
}

/// One leaf of a `use` tree: its full path as written, its name in scope, a glob or not.
struct UseLeaf {
    path: Vec<String>,
    alias: Option<String>,
    glob: bool,
}

/// Parses the `use` tree starting at `tokens[*at]`, up to (not including) the `;`.
fn parse_use_tree(tokens: &[(Tok, usize)], at: &mut usize, prefix: &[String]) -> Vec<UseLeaf> {
    let mut path = prefix.to_vec();
    if is_sep(tokens.get(*at)) {
        // `::name`: an extern crate, never this one.
        *at += 1;
        path.push("::".to_owned());
    }
    loop {
        match tokens.get(*at) {
            Some((Tok::Ident(word), _)) => {
                path.push(word.clone());
                *at += 1;
                if is_sep(tokens.get(*at)) {
                    *at += 1;
                    continue;
                }
                let mut alias = None;
                if ident(tokens.get(*at)) == Some("as") {
                    alias = ident(tokens.get(*at + 1)).map(str::to_owned);
                    *at += 2;
                }
                return vec![UseLeaf {
                    path,
                    alias,
                    glob: false,
                }];
            }
            Some((Tok::Punct('*'), _)) => {
                *at += 1;
                return vec![UseLeaf {
                    path,
                    alias: None,
                    glob: true,
                }];
            }
            Some((Tok::Punct('{'), _)) => {
                *at += 1;
                let mut leaves = Vec::new();
                while !is_punct(tokens.get(*at), '}') && *at < tokens.len() {
                    if is_punct(tokens.get(*at), ',') {
                        *at += 1;
                        continue;
                    }
                    if ident(tokens.get(*at)) == Some("self") && !is_sep(tokens.get(*at + 1)) {
                        // `a::{self}` is `a` itself.
                        *at += 1;
                        let mut alias = None;
                        if ident(tokens.get(*at)) == Some("as") {
                            alias = ident(tokens.get(*at + 1)).map(str::to_owned);
                            *at += 2;
                        }
                        leaves.push(UseLeaf {
                            path: path.clone(),
                            alias,
                            glob: false,
                        });
                        continue;
                    }
                    let before = *at;
                    leaves.extend(parse_use_tree(tokens, at, &path));
                    if *at == before {
                        *at += 1; // not a tree: skip it rather than loop
                    }
                }
                *at += 1; // the closing brace
                return leaves;
            }
            _ => return Vec::new(),
        }
    }
}

/// Where a scan is in the file: the inline modules it is inside, and test-only code.
struct Scope {
    /// (name, brace depth of its body) of each inline `mod name { … }` the scan is inside.
    inline: Vec<(String, usize)>,
    /// The brace depth of the `#[cfg(test)]` item whose body the scan is inside.
    test_body: Option<usize>,
}

fn scan_file(file: &str, text: &str, module: &ModPath, modules: &BTreeSet<ModPath>) -> FileScan {
    let tokens = tokenize(&blank_comments_and_literals(text));
    let mut scan = FileScan {
        imports: Vec::new(),
        reexports: Vec::new(),
        test_modules: Vec::new(),
    };
    // Names a `use` of this file brought into scope for a module (`use crate::domain::ids;`).
    let mut module_aliases: BTreeMap<String, ModPath> = BTreeMap::new();
    let mut scope = Scope {
        inline: Vec::new(),
        test_body: None,
    };
    let mut depth = 0usize;
    // Nesting of ( and [, for telling a `,` that ends an item (a field) from one inside it.
    let mut parens = 0usize;
    // A `#[cfg(test)]` was just read (at this brace depth and paren nesting): the next item,
    // up to its `;`, its `,` or its body's end, is a test's.
    let mut test_item: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < tokens.len() {
        let current: ModPath = module
            .iter()
            .cloned()
            .chain(scope.inline.iter().map(|(name, _)| name.clone()))
            .collect();
        let in_test = scope.test_body.is_some() || test_item.is_some();
        match &tokens[i].0 {
            Tok::Punct('#') if is_cfg_test(&tokens, i) => {
                if scope.test_body.is_none() {
                    test_item = Some((depth, parens));
                }
                i += CFG_TEST.len();
            }
            Tok::Punct('{') => {
                if test_item.is_some_and(|(at, _)| at == depth) {
                    test_item = None;
                    scope.test_body = Some(depth + 1);
                }
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scope.test_body == Some(depth) {
                    scope.test_body = None;
                }
                if scope.inline.last().is_some_and(|(_, d)| *d == depth) {
                    scope.inline.pop();
                }
                if test_item.is_some_and(|(at, _)| at >= depth) {
                    test_item = None; // the block holding the item ends, so does the item
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Punct('(' | '[') => {
                parens += 1;
                i += 1;
            }
            Tok::Punct(')' | ']') => {
                parens = parens.saturating_sub(1);
                i += 1;
            }
            Tok::Punct(c @ (';' | ',')) => {
                let ends = *c == ';' || test_item.is_some_and(|(_, p)| p == parens);
                if ends && test_item.is_some_and(|(at, _)| at == depth) {
                    test_item = None;
                }
                i += 1;
            }
            Tok::Ident(word) if word == "mod" => {
                // `mod name { … }` opens an inline module; `mod name;` declares a file's.
                if let Some(name) = ident(tokens.get(i + 1)) {
                    if is_punct(tokens.get(i + 2), '{') {
                        scope.inline.push((name.to_owned(), depth + 1));
                    } else if in_test && scope.test_body.is_none() {
                        let mut test_module = current.clone();
                        test_module.push(name.to_owned());
                        scan.test_modules.push(test_module);
                    }
                }
                i += 1;
            }
            Tok::Ident(word) if word == "use" => {
                let is_pub = preceded_by_pub(&tokens, i);
                let line = tokens[i].1;
                i += 1;
                let leaves = parse_use_tree(&tokens, &mut i, &[]);
                if in_test {
                    continue;
                }
                for leaf in leaves {
                    let Some(path) = absolute(&leaf.path, &current, modules, &module_aliases)
                    else {
                        continue;
                    };
                    let scope_name = leaf.alias.clone().or_else(|| {
                        let last = leaf.path.last()?;
                        (last != "self" && last != "super" && last != "crate").then(|| last.clone())
                    });
                    if !leaf.glob {
                        if let Some(scope_name) = &scope_name {
                            if modules.contains(&path) {
                                module_aliases.insert(scope_name.clone(), path.clone());
                            }
                            if is_pub && scope_name != "_" {
                                scan.reexports.push((
                                    current.clone(),
                                    scope_name.clone(),
                                    path.clone(),
                                ));
                            }
                        }
                    }
                    let mut written = leaf.path.join("::");
                    if leaf.glob {
                        written.push_str("::*");
                    }
                    scan.imports.push(Import {
                        file: file.to_owned(),
                        line,
                        written,
                        path,
                    });
                }
            }
            Tok::Ident(word) if !in_test && starts_a_path(&tokens, i, word, &module_aliases) => {
                let line = tokens[i].1;
                let mut written = vec![word.clone()];
                let mut j = i + 1;
                while is_sep(tokens.get(j)) {
                    match ident(tokens.get(j + 1)) {
                        Some(next) => {
                            written.push(next.to_owned());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if let Some(path) = absolute(&written, &current, modules, &module_aliases) {
                    scan.imports.push(Import {
                        file: file.to_owned(),
                        line,
                        written: written.join("::"),
                        path,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    scan
}

const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];

/// `#[cfg(test)]` starts at `tokens[i]`.
fn is_cfg_test(tokens: &[(Tok, usize)], i: usize) -> bool {
    CFG_TEST
        .iter()
        .enumerate()
        .all(|(k, want)| match tokens.get(i + k) {
            Some((Tok::Ident(word), _)) => word == want,
            Some((Tok::Punct(c), _)) => want.len() == 1 && want.starts_with(*c),
            _ => false,
        })
}

/// `pub use`, `pub(crate) use`, `pub(super) use`, `pub(in path) use`.
fn preceded_by_pub(tokens: &[(Tok, usize)], use_at: usize) -> bool {
    if use_at == 0 {
        return false;
    }
    if ident(tokens.get(use_at - 1)) == Some("pub") {
        return true;
    }
    if is_punct(tokens.get(use_at - 1), ')') {
        let mut k = use_at - 1;
        while k > 0 && !is_punct(tokens.get(k), '(') {
            k -= 1;
        }
        return k > 0 && ident(tokens.get(k - 1)) == Some("pub");
    }
    false
}

/// Whether `tokens[i]` (`word`) begins a path to a module of the crate, in code: `crate::`,
/// `super::`, `self::`, or a module name a `use` brought in, followed by `::` — and not in
/// the middle of a path, after a `.`, after `$` (`$crate`) or in `pub(in …)`.
fn starts_a_path(
    tokens: &[(Tok, usize)],
    i: usize,
    word: &str,
    aliases: &BTreeMap<String, ModPath>,
) -> bool {
    if !is_sep(tokens.get(i + 1)) {
        return false;
    }
    if !(matches!(word, "crate" | "super" | "self") || aliases.contains_key(word)) {
        return false;
    }
    if i == 0 {
        return true;
    }
    let before = tokens.get(i - 1);
    !(is_sep(before)
        || is_punct(before, '.')
        || is_punct(before, '$')
        || ident(before) == Some("in"))
}

/// A path as written, made absolute from the module it is written in; `None` for a path
/// outside the crate (std, a dependency).
fn absolute(
    written: &[String],
    current: &ModPath,
    modules: &BTreeSet<ModPath>,
    aliases: &BTreeMap<String, ModPath>,
) -> Option<ModPath> {
    let first = written.first()?;
    let mut rest = &written[1..];
    let base = match first.as_str() {
        "::" => return None,
        "crate" => Vec::new(),
        "self" => current.clone(),
        "super" => {
            let mut base = current.clone();
            base.pop();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base
        }
        name => {
            let mut child = current.clone();
            child.push(name.to_owned());
            if modules.contains(&child) {
                child
            } else if let Some(module) = aliases.get(name) {
                module.clone()
            } else {
                return None;
            }
        }
    };
    let mut path = base;
    path.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(path)
}
