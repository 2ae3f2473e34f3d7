//! One list of functions, everywhere it is written. A function is a folder under functions/
//! with a Cargo.toml; its name is its binary's (the `[[bin]]` name, else the package name,
//! which must be the folder's name). It is an HTTP function when its `main` serves a route
//! (`webhook_secrets::lambda::run_http`), an event function otherwise. Each must appear, and nothing else may:
//!
//! - in the root Cargo.toml `[workspace] members`, as `functions/<name>`;
//! - in the watch router (`[workspace.metadata.lambda.watch.router]`, what `make dev` serves)
//!   if it is an HTTP function, and never if it is an event function;
//! - in template.yaml, as an `AWS::Serverless::Function` resource whose
//!   `Metadata: BuildProperties: Binary:` names it (or, without one, whose `CodeUri` is its
//!   folder); an HTTP function's `HttpApi` events are the routes the watch router gives it,
//!   and an event function has none;
//! - in events/, as at least one invoke fixture `<name>.json` or `<name>-<case>.json`; and
//!   every fixture there belongs to a function;
//! - in scripts/dev-server-checks.sh, which builds every function (`cargo build … -p <name>`)
//!   before it starts `make dev`.
//!
//! scripts/openapi-check.sh names no function (it runs schemathesis against a server), so it is
//! not checked. Cargo.toml is read with a small line scanner and template.yaml line by line:
//! the template's CloudFormation tags (`!Ref`, `!Sub`) are not plain YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[test]
fn every_function_is_listed_in_every_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let problems = disagreements(&root);
    assert!(
        problems.is_empty(),
        "the list of functions disagrees between the places that name it ({} problem{}):\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A route: method and path, as `POST /v1/endpoints`.
type Route = (String, String);

struct Function {
    folder: String,
    http: bool,
}

fn disagreements(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let read = |relative: &str| {
        std::fs::read_to_string(root.join(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    };

    // The functions, from their folders.
    let mut functions: BTreeMap<String, Function> = BTreeMap::new();
    for folder in sorted_entries(&root.join("functions")) {
        let manifest = folder.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let folder_name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&manifest).unwrap();
        let package = toml_string(&section(&text, "package"), "name").unwrap_or_default();
        let bins: Vec<String> = sections(&text, "[bin]")
            .iter()
            .filter_map(|bin| toml_string(bin, "name"))
            .collect();
        let name = bins.first().cloned().unwrap_or(package);
        if name != folder_name {
            problems.push(format!(
                "functions/{folder_name}/Cargo.toml builds the binary `{name}`, not \
                 `{folder_name}`: a function's folder, package and binary share one name"
            ));
        }
        let main = std::fs::read_to_string(folder.join("src/main.rs")).unwrap_or_default();
        let http = main.contains("lambda::run_http(");
        functions.insert(
            name,
            Function {
                folder: folder_name,
                http,
            },
        );
    }
    assert!(
        !functions.is_empty(),
        "no functions found under {}",
        root.join("functions").display()
    );
    let known = |name: &str| functions.contains_key(name);

    // The root Cargo.toml: workspace members and the watch router.
    let cargo = read("Cargo.toml");
    let members: BTreeSet<String> = toml_array(&section(&cargo, "workspace"), "members")
        .into_iter()
        .filter_map(|m| m.strip_prefix("functions/").map(str::to_owned))
        .collect();
    for (name, f) in &functions {
        if !members.contains(&f.folder) {
            problems.push(format!(
                "`{name}`: missing from the root Cargo.toml `[workspace] members` \
                 (\"functions/{}\")",
                f.folder
            ));
        }
    }
    for member in &members {
        if !functions.values().any(|f| &f.folder == member) {
            problems.push(format!(
                "the root Cargo.toml `[workspace] members` lists \"functions/{member}\", \
                 which is no folder with a Cargo.toml"
            ));
        }
    }

    let router = watch_router(&section(&cargo, "workspace.metadata.lambda.watch.router"));
    for (name, f) in &functions {
        match (f.http, router.get(name)) {
            (true, None) => problems.push(format!(
                "`{name}` (an HTTP function): missing from the watch router \
                 `[workspace.metadata.lambda.watch.router]` in Cargo.toml"
            )),
            (false, Some(routes)) => problems.push(format!(
                "`{name}` (an event function): in the watch router in Cargo.toml ({}), \
                 where only HTTP functions belong",
                show(routes)
            )),
            _ => {}
        }
    }
    for (name, routes) in &router {
        if !known(name) {
            problems.push(format!(
                "the watch router in Cargo.toml routes {} to `{name}`, which is no function",
                show(routes)
            ));
        }
    }

    // template.yaml.
    let template = template_functions(&read("template.yaml"));
    for (name, f) in &functions {
        let Some(resource) = template.get(name) else {
            problems.push(format!(
                "`{name}`: missing from template.yaml (no AWS::Serverless::Function resource \
                 with `BuildProperties: Binary: {name}`)"
            ));
            continue;
        };
        if f.http {
            let routed = router.get(name).cloned().unwrap_or_default();
            if routed != resource.routes {
                problems.push(format!(
                    "`{name}`: template.yaml resource {} serves {} but the watch router in \
                     Cargo.toml gives it {}",
                    resource.id,
                    show(&resource.routes),
                    show(&routed)
                ));
            }
        } else if !resource.routes.is_empty() {
            problems.push(format!(
                "`{name}` (an event function): template.yaml resource {} has HttpApi events ({})",
                resource.id,
                show(&resource.routes)
            ));
        }
    }
    for (name, resource) in &template {
        if !known(name) {
            problems.push(format!(
                "template.yaml resource {} builds `{name}`, which is no function under \
                 functions/",
                resource.id
            ));
        }
    }

    // Invoke fixtures in events/.
    let fixtures: Vec<String> = sorted_entries(&root.join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let belongs = |fixture: &str, name: &str| {
        fixture == name
            || fixture
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-'))
    };
    for name in functions.keys() {
        if !fixtures.iter().any(|fixture| belongs(fixture, name)) {
            problems.push(format!(
                "`{name}`: no invoke fixture in events/ (events/{name}.json or \
                 events/{name}-<case>.json)"
            ));
        }
    }
    for fixture in &fixtures {
        if !functions.keys().any(|name| belongs(fixture, name)) {
            problems.push(format!(
                "events/{fixture}.json belongs to no function (its name is not a function's, \
                 alone or followed by -<case>)"
            ));
        }
    }

    // scripts/dev-server-checks.sh builds every function before `make dev` starts.
    let built = cargo_build_packages(&read("scripts/dev-server-checks.sh"));
    if !built.is_empty() {
        for name in functions.keys() {
            if !built.contains(name) {
                problems.push(format!(
                    "`{name}`: missing from scripts/dev-server-checks.sh (its `cargo build` \
                     builds the functions with -p <name> before make dev starts)"
                ));
            }
        }
    }
    problems
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries
}

fn show(routes: &BTreeSet<Route>) -> String {
    if routes.is_empty() {
        return "no route".to_owned();
    }
    routes
        .iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// TOML, as these manifests write it: `[table]` headers, `key = value` lines, arrays of strings
// and inline tables over several lines, `#` comments.

/// A line without its comment (a `#` outside a string).
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

/// The table a header line opens: `[a.b]` → `a.b`, `[[bin]]` → `[bin]`.
fn header(line: &str) -> Option<String> {
    let line = without_comment(line).trim();
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let bare = inner.trim_start_matches('[').trim_end_matches(']');
    let valid = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    valid.then(|| {
        if inner.starts_with('[') {
            format!("[{bare}]")
        } else {
            bare.to_owned()
        }
    })
}

/// Every table named `name` (several for an array of tables), each its lines without
/// comments.
fn sections(text: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(table) = header(line) {
            if let Some(done) = current.take() {
                found.push(done);
            }
            if table == name {
                current = Some(String::new());
            }
            continue;
        }
        if let Some(body) = current.as_mut() {
            body.push_str(without_comment(line));
            body.push('\n');
        }
    }
    found.extend(current);
    found
}

fn section(text: &str, name: &str) -> String {
    sections(text, name).concat()
}

/// The double-quoted strings of `text`, in order.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `key = "value"` in a table (or in an inline table's text).
fn toml_string(table: &str, key: &str) -> Option<String> {
    table.split([',', '\n', '{', '}']).find_map(|entry| {
        let (k, v) = entry.split_once('=')?;
        (k.trim() == key).then(|| quoted(v).into_iter().next())?
    })
}

/// `key = ["a", "b", …]`, over as many lines as it takes.
fn toml_array(table: &str, key: &str) -> Vec<String> {
    let Some(start) = table.lines().position(|line| {
        line.split_once('=')
            .is_some_and(|(k, v)| k.trim() == key && v.trim_start().starts_with('['))
    }) else {
        return Vec::new();
    };
    let mut text = String::new();
    for line in table.lines().skip(start) {
        text.push_str(line);
        text.push('\n');
        if line.contains(']') {
            break;
        }
    }
    let (_, values) = text.split_once('=').unwrap();
    quoted(values)
}

/// The watch router: `"<path>" = [ { method = "…", function = "…" }, … ]` → each function's
/// routes.
fn watch_router(table: &str) -> BTreeMap<String, BTreeSet<Route>> {
    let mut routes: BTreeMap<String, BTreeSet<Route>> = BTreeMap::new();
    let mut path = None;
    for line in table.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('"') {
            if let Some((key, _)) = trimmed.split_once('=') {
                path = quoted(key).into_iter().next();
            }
        }
        let mut rest = line;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let entry = &rest[open..open + close + 1];
            if let (Some(path), Some(method), Some(function)) = (
                path.clone(),
                toml_string(entry, "method"),
                toml_string(entry, "function"),
            ) {
                routes
                    .entry(function)
                    .or_default()
                    .insert((method.to_uppercase(), path));
            }
            rest = &rest[open + close + 1..];
        }
    }
    routes
}

// ---------------------------------------------------------------------------------------------
// template.yaml, line by line: the resources under `Resources:`, their binary and HttpApi events.

struct TemplateFunction {
    /// The resource's logical id, for the messages.
    id: String,
    routes: BTreeSet<Route>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A YAML scalar without its comment and quotes.
fn scalar(value: &str) -> String {
    let value = match value.find(" #") {
        Some(at) => &value[..at],
        None => value,
    };
    value.trim().trim_matches(['"', '\'']).to_owned()
}

/// `key: value` on one line, at any indentation.
fn key_value(line: &str) -> Option<(&str, String)> {
    let (key, value) = line.trim().split_once(':')?;
    (!key.is_empty() && !key.contains(' ')).then(|| (key, scalar(value)))
}

/// Each function resource of the template, by the binary it builds.
fn template_functions(text: &str) -> BTreeMap<String, TemplateFunction> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "Resources:") else {
        return BTreeMap::new();
    };
    // Resources are the keys one level in; each runs until the next at its level or less.
    let level = lines.get(start + 1).map_or(2, |l| indent(l));
    let mut found = BTreeMap::new();
    let mut at = start + 1;
    while at < lines.len() && indent(lines[at]) >= level {
        let id = lines[at].trim().trim_end_matches(':').to_owned();
        let end = (at + 1..lines.len())
            .find(|&k| indent(lines[k]) <= level)
            .unwrap_or(lines.len());
        let body = &lines[at + 1..end];
        at = end;
        let is_function = body.iter().any(|l| {
            key_value(l).is_some_and(|(k, v)| k == "Type" && v == "AWS::Serverless::Function")
        });
        if !is_function {
            continue;
        }
        let value_of = |key: &str| {
            body.iter()
                .find_map(|l| key_value(l).filter(|(k, _)| *k == key).map(|(_, v)| v))
        };
        let binary = value_of("Binary").or_else(|| {
            let code_uri = value_of("CodeUri")?;
            let name = code_uri
                .trim_end_matches('/')
                .rsplit('/')
                .next()?
                .to_owned();
            (name != "." && !name.is_empty()).then_some(name)
        });
        let Some(binary) = binary else {
            continue;
        };
        found.insert(
            binary,
            TemplateFunction {
                id,
                routes: http_api_events(body),
            },
        );
    }
    found
}

/// The `Type: HttpApi` events under a function's `Events:`, as routes.
fn http_api_events(body: &[&str]) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    let Some(events_at) = body.iter().position(|l| l.trim_end().ends_with("Events:")) else {
        return routes;
    };
    let events_level = indent(body[events_at]);
    let events: Vec<&str> = body[events_at + 1..]
        .iter()
        .take_while(|l| indent(l) > events_level)
        .copied()
        .collect();
    let Some(event_level) = events.first().map(|l| indent(l)) else {
        return routes;
    };
    let mut k = 0;
    while k < events.len() {
        let end = (k + 1..events.len())
            .find(|&j| indent(events[j]) <= event_level)
            .unwrap_or(events.len());
        let event = &events[k + 1..end];
        let get = |key: &str| {
            event
                .iter()
                .find_map(|l| key_value(l).filter(|(k, _)| *k == key).map(|(_, v)| v))
        };
        if get("Type").as_deref() == Some("HttpApi") {
            if let (Some(method), Some(path)) = (get("Method"), get("Path")) {
                routes.insert((method.to_uppercase(), path));
            }
        }
        k = end;
    }
    routes
}

// ---------------------------------------------------------------------------------------------
// Shell: the packages of every `cargo build` command (continuation lines joined).

fn cargo_build_packages(script: &str) -> BTreeSet<String> {
    let joined = script.replace("\\\n", " ");
    let mut packages = BTreeSet::new();
    for line in joined.lines() {
        let line = line.split(" #").next().unwrap_or(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(build) = words
            .windows(2)
            .position(|w| w[0] == "cargo" && w[1] == "build")
        else {
            continue;
        };
        let mut args = words[build + 2..].iter();
        while let Some(arg) = args.next() {
            if matches!(*arg, ";" | "&&" | "||" | "|") {
                break;
            }
            if *arg == "-p" || *arg == "--package" {
                packages.extend(args.next().map(|p| p.to_string()));
            } else if let Some(p) = arg.strip_prefix("--package=") {
                packages.insert(p.to_owned());
            }
        }
    }
    packages
}
