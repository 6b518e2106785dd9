//! The docs check (`make test`, hermetic): what the docs name exists in the code, and what the
//! code has is in the docs. Docs are README.md, ARCHITECTURE.md, docs/*.md and the crates'
//! READMEs; the code is the CDK app (infra/lib, infra/bin), the crates' sources, the Makefile
//! and the `fanout-ops` binary's own `--help`.
//!
//! - `fanout:<key>` named in docs is a string the code has; every key the code reads
//!   (`context`, `optionalContext`, `tryGetContext`, fanout-ops' `fanout("..")`) is documented;
//! - every variable a consumer reads (core's `required`/`optional`/`parsed_or`, the log
//!   variables) is documented, and every row of the variables table is one the code reads;
//! - `make <target>` named in docs is a Makefile target, and every `.PHONY` target is named;
//! - `fanout-ops <subcommand>` named is one it has, a `--flag` on that line is one of that
//!   subcommand's, and every subcommand and flag is named somewhere;
//! - a file path in backticks or a relative link exists;
//! - a Rust path in backticks (`fanout_core::ledger::LedgerStore`, or `ledger::LedgerStore`
//!   inside a crate) names a workspace crate, its modules as files under `src/`, and an item the
//!   crate defines (a variant or associated item after it must be a name the crate has);
//! - every `make` and `fanout-ops` line of a `sh` block runs as far as it can without acting:
//!   `make -n` (the Makefile parses, the target exists, its recipe expands), and fanout-ops with
//!   `FANOUT_OPS_PARSE_ONLY` (its arguments parse). Lines with a `<placeholder>` or `[optional]`
//!   part are skipped.
//!
//! Not checked: other commands in shell blocks (`aws`, `npx cdk`, `cargo`) are not run, and a
//! type named alone (`DynamoDbLedger`, without a path) is not looked up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the code has, as the check compares it with the docs.
#[derive(Debug, Clone, Default)]
struct Code {
    /// Every `fanout:<key>` string in the code (read, refused or published).
    context_named: BTreeSet<String>,
    /// The keys the code reads.
    context_read: BTreeSet<String>,
    /// The variables a consumer reads.
    variables: BTreeSet<String>,
    make_targets: BTreeSet<String>,
    make_phony: BTreeSet<String>,
    /// fanout-ops' subcommands and each one's flags.
    ops: BTreeMap<String, BTreeSet<String>>,
    /// Each workspace crate by its name as Rust spells it (`fanout_core`).
    crates: BTreeMap<String, CrateSource>,
}

/// A workspace crate's `src/` folder and the text of every file under it, read once.
#[derive(Debug, Clone)]
struct CrateSource {
    src: PathBuf,
    text: String,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() && !["target", "node_modules", "dist", "templates"].contains(&name) {
            files_under(&path, ext, out);
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

fn captures(re: &Regex, text: &str) -> Vec<String> {
    re.captures_iter(text).map(|c| c[1].to_owned()).collect()
}

fn ops_help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fanout-ops"))
        .args(args)
        .output()
        .expect("fanout-ops runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn code() -> Code {
    let mut code = Code::default();
    let mut ts = Vec::new();
    files_under(&root().join("infra/lib"), ".ts", &mut ts);
    files_under(&root().join("infra/bin"), ".ts", &mut ts);
    let mut rs = Vec::new();
    files_under(&root().join("crates"), ".rs", &mut rs);
    let named = Regex::new(r"fanout:([a-zA-Z]+)").unwrap();
    let ts_read = Regex::new(
        r#"(?:\bcontext|optionalContext)\(\s*\w+\s*,\s*'([a-zA-Z]+)'|tryGetContext\('fanout:([a-zA-Z]+)'\)"#,
    )
    .unwrap();
    let rs_read = Regex::new(r#"\.fanout\("([a-zA-Z]+)"\)"#).unwrap();
    let variable = Regex::new(
        r#"(?:required|optional|parsed_or)\("([A-Z][A-Z0-9_]+)"|env::var\("(AWS_LAMBDA_[A-Z_]+|RUST_LOG)"\)"#,
    )
    .unwrap();
    for path in &ts {
        let text = read(path);
        code.context_named.extend(captures(&named, &text));
        for c in ts_read.captures_iter(&text) {
            let key = c.get(1).or(c.get(2)).unwrap().as_str().to_owned();
            code.context_named.insert(key.clone());
            code.context_read.insert(key);
        }
    }
    // The alarm topics' keys are built from the severity (`fanout:${severity}Subscriptions`).
    for severity in ["page", "ticket"] {
        code.context_named
            .insert(format!("{severity}Subscriptions"));
        code.context_read.insert(format!("{severity}Subscriptions"));
    }
    for path in &rs {
        let text = read(path);
        code.context_named.extend(captures(&named, &text));
        code.context_read.extend(captures(&rs_read, &text));
        let src = path.to_string_lossy();
        let consumer_side = ![
            "fanout-devstack",
            "fanout-testkit",
            "fanout-bench",
            "/tests/",
        ]
        .iter()
        .any(|p| src.contains(p));
        if consumer_side {
            for c in variable.captures_iter(&text) {
                code.variables
                    .insert(c.get(1).or(c.get(2)).unwrap().as_str().to_owned());
            }
        }
    }
    let makefile = read(&root().join("Makefile"));
    let target = Regex::new(r"(?m)^([a-z][a-z0-9-]*):").unwrap();
    code.make_targets = captures(&target, &makefile).into_iter().collect();
    if let Some(line) = makefile.lines().find(|l| l.starts_with(".PHONY:")) {
        code.make_phony = line[".PHONY:".len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    for entry in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if let Some(name) = manifest.exists().then(|| read(&manifest)).and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("name = \"").map(str::to_owned))
        }) {
            let src = entry.path().join("src");
            let mut files = Vec::new();
            files_under(&src, ".rs", &mut files);
            let text = files.iter().map(|f| read(f)).collect::<Vec<_>>().join("\n");
            code.crates.insert(
                name.trim_end_matches('"').replace('-', "_"),
                CrateSource { src, text },
            );
        }
    }
    code.ops = subcommands(&ops_help(&["--help"]))
        .into_iter()
        .map(|sub| {
            let flags = flags(&ops_help(&[&sub, "--help"]));
            (sub, flags)
        })
        .collect();
    code
}

/// The subcommands clap lists under "Commands:".
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_owned)
        .collect()
}

fn flags(help: &str) -> BTreeSet<String> {
    let flag = Regex::new(r"(--[a-z][a-z0-9-]+)").unwrap();
    captures(&flag, help)
        .into_iter()
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The docs: (path from the root, text).
fn docs() -> Vec<(String, String)> {
    let mut files = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    files_under(&root().join("docs"), ".md", &mut files);
    for entry in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let readme = entry.path().join("README.md");
        if readme.exists() {
            files.push(readme);
        }
    }
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root())
                .unwrap_or(&p)
                .to_string_lossy()
                .replace("/../..", "");
            (rel.trim_start_matches("./").to_owned(), read(&p))
        })
        .collect()
}

/// The text inside backticks and code blocks: where docs name commands, keys and paths.
fn code_spans(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            spans.push(line.to_owned());
        } else {
            spans.extend(
                line.split('`')
                    .enumerate()
                    .filter(|(i, _)| i % 2 == 1)
                    .map(|(_, s)| s.to_owned()),
            );
        }
    }
    spans
}

/// Why a Rust path named in docs (`fanout_core::ledger::LedgerStore`) does not resolve, or
/// `None` when it does. A path that does not start with a crate starts inside one: its first
/// module is looked up in every crate.
fn unresolved_rust_path(path: &str, crates: &BTreeMap<String, CrateSource>) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    let candidates: Vec<(&CrateSource, &[&str])> = match crates.get(segments[0]) {
        Some(krate) => vec![(krate, &segments[1..])],
        None => crates
            .values()
            .filter(|krate| {
                krate.src.join(format!("{}.rs", segments[0])).exists()
                    || krate.src.join(segments[0]).join("mod.rs").exists()
            })
            .map(|krate| (krate, &segments[..]))
            .collect(),
    };
    if candidates.is_empty() {
        return Some(format!("no crate has a module `{}`", segments[0]));
    }
    let mut why = String::new();
    for (krate, rest) in candidates {
        match resolve_in_crate(krate, rest) {
            Ok(()) => return None,
            Err(e) => why = e,
        }
    }
    Some(why)
}

/// Walks `rest` from the crate root: modules while a file for them exists, then an item the
/// module's file names and the crate defines, then names (variants, associated items) the
/// crate has.
fn resolve_in_crate(krate: &CrateSource, rest: &[&str]) -> Result<(), String> {
    let crate_text = &krate.text;
    let mut dir = krate.src.clone();
    let mut file = krate.src.join("lib.rs");
    let mut i = 0;
    while i < rest.len() {
        let flat = dir.join(format!("{}.rs", rest[i]));
        let nested = dir.join(rest[i]).join("mod.rs");
        if flat.exists() || nested.exists() {
            file = if flat.exists() { flat } else { nested };
            dir = dir.join(rest[i]);
            i += 1;
        } else {
            break;
        }
    }
    let Some(item) = rest.get(i) else {
        return Ok(());
    };
    let word = |name: &str| Regex::new(&format!(r"\b{}\b", regex::escape(name))).unwrap();
    let defined = Regex::new(&format!(
        r"\b(?:struct|enum|fn|trait|type|const|static|mod|union|as)\s+{}\b",
        regex::escape(item)
    ))
    .unwrap();
    let module_text = read(&file);
    if !(defined.is_match(crate_text) && word(item).is_match(&module_text)) {
        return Err(format!(
            "`{item}` is not an item of {}",
            file.strip_prefix(root()).unwrap_or(&file).display()
        ));
    }
    for name in &rest[i + 1..] {
        if !word(name).is_match(crate_text) {
            return Err(format!("`{item}` has no `{name}` in its crate"));
        }
    }
    Ok(())
}

/// Every disagreement between `docs` and `code`, one line each, naming the page.
fn drift(docs: &[(String, String)], code: &Code, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let key = Regex::new(r"fanout:([a-zA-Z]+)").unwrap();
    let make = Regex::new(r"\bmake ([a-z][a-z0-9-]+)").unwrap();
    let ops = Regex::new(r"\bfanout-ops ([a-z][a-z-]+)").unwrap();
    let flag = Regex::new(r"(--[a-z][a-z0-9-]+)").unwrap();
    let path_like =
        Regex::new(r"^(?:crates|infra|docs|events|bench|\.github|\.ci)/[A-Za-z0-9_./-]+$").unwrap();
    let link = Regex::new(r"\]\(([^)#\s]+)(?:#[^)]*)?\)").unwrap();
    let variable_row = Regex::new(r"(?m)^\| `([A-Z][A-Z0-9_]+)` \|").unwrap();
    let rust_path = Regex::new(r"^([a-z][a-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)$").unwrap();
    let all_text: String = docs.iter().map(|(_, t)| t.as_str()).collect();

    for (page, text) in docs {
        for k in captures(&key, text) {
            if !code.context_named.contains(&k) {
                problems.push(format!(
                    "{page}: names fanout:{k}, which the code does not have"
                ));
            }
        }
        for span in code_spans(text) {
            for target in captures(&make, &span) {
                if !code.make_targets.contains(&target) {
                    problems.push(format!(
                        "{page}: names `make {target}`, which the Makefile does not have"
                    ));
                }
            }
            for line in span.lines() {
                for sub in captures(&ops, line) {
                    match code.ops.get(&sub) {
                        None => problems.push(format!(
                            "{page}: names `fanout-ops {sub}`, which fanout-ops does not have"
                        )),
                        Some(known) => {
                            for f in captures(&flag, line) {
                                if !known.contains(&f)
                                    && !["--help", "--version"].contains(&f.as_str())
                                {
                                    problems.push(format!(
                                        "{page}: names `fanout-ops {sub} ... {f}`, a flag {sub} does not have"
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            let trimmed = span.trim();
            if let Some(path) = rust_path.captures(trimmed).map(|c| c[1].to_owned())
                && let Some(why) = unresolved_rust_path(&path, &code.crates)
            {
                problems.push(format!("{page}: names `{path}`: {why}"));
            }
            if path_like.is_match(trimmed) {
                let path = trimmed.trim_end_matches('/');
                if !root.join(path).exists() {
                    problems.push(format!("{page}: names `{trimmed}`, which does not exist"));
                }
            }
        }
        let dir = Path::new(page).parent().unwrap_or(Path::new(""));
        for target in captures(&link, text) {
            if target.starts_with("http") || target.starts_with("mailto:") {
                continue;
            }
            if !root.join(dir).join(&target).exists() {
                problems.push(format!("{page}: links {target}, which does not exist"));
            }
        }
        if page.ends_with("deploy.md") {
            for v in captures(&variable_row, text) {
                if !code.variables.contains(&v) {
                    problems.push(format!(
                        "{page}: the variables table has {v}, which no consumer reads"
                    ));
                }
            }
        }
    }
    for k in &code.context_read {
        if !all_text.contains(&format!("fanout:{k}")) {
            problems.push(format!(
                "fanout:{k} is read by the code and named in no doc (docs/deploy.md \"Settings of a deployment\")"
            ));
        }
    }
    for v in &code.variables {
        if !all_text.contains(&format!("`{v}`")) {
            problems.push(format!(
                "{v} is read by a consumer and named in no doc (docs/deploy.md \"Configuration\")"
            ));
        }
    }
    for t in &code.make_phony {
        if !all_text.contains(&format!("make {t}")) {
            problems.push(format!("`make {t}` is a Makefile target named in no doc"));
        }
    }
    for (sub, flags) in &code.ops {
        if !all_text.contains(&format!("fanout-ops {sub}")) {
            problems.push(format!("`fanout-ops {sub}` is named in no doc"));
        }
        for f in flags {
            if !all_text.contains(f.as_str()) {
                problems.push(format!("`fanout-ops {sub} {f}` is a flag named in no doc"));
            }
        }
    }
    problems
}

#[test]
fn the_docs_name_only_what_the_code_has_and_the_code_has_nothing_undocumented() {
    let problems = drift(&docs(), &code(), &root());
    assert!(
        problems.is_empty(),
        "docs and code disagree ({}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The `make` and `fanout-ops` lines of the docs' `sh` blocks: (page, line).
fn runnable_lines(docs: &[(String, String)]) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for (page, text) in docs {
        let mut in_sh = false;
        for line in text.lines() {
            let fence = line.trim_start();
            if fence.starts_with("```") {
                in_sh = !in_sh && fence == "```sh";
                continue;
            }
            let command = line.split(" #").next().unwrap_or("").trim();
            let command = command.split(" && ").next().unwrap_or("").trim();
            let runnable = command.starts_with("make ") || command.starts_with("fanout-ops ");
            if in_sh && runnable && !command.contains('<') && !command.contains('[') {
                lines.push((page.clone(), command.to_owned()));
            }
        }
    }
    lines
}

/// A documented command line that does not run, with why.
fn run_failure(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (program, args) = words.split_first()?;
    let output = if *program == "make" {
        Command::new("make")
            .arg("-n")
            .args(args)
            .current_dir(root())
            .env_remove("MAKEFLAGS")
            .output()
    } else {
        Command::new(env!("CARGO_BIN_EXE_fanout-ops"))
            .args(args)
            .env("FANOUT_OPS_PARSE_ONLY", "1")
            .output()
    }
    .ok()?;
    (!output.status.success()).then(|| {
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

#[test]
fn every_make_and_fanout_ops_line_of_a_shell_block_runs() {
    let lines = runnable_lines(&docs());
    assert!(lines.len() >= 10, "too few command lines found: {lines:?}");
    let failures: Vec<String> = lines
        .iter()
        .filter_map(|(page, command)| {
            run_failure(command).map(|why| format!("{page}: `{command}` does not run: {why}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        run_failure("fanout-ops redrive crm-sync --everything").is_some(),
        "a flag fanout-ops does not have must fail"
    );
    assert!(
        run_failure("make deploy-everything").is_some(),
        "a target the Makefile does not have must fail"
    );
}

#[test]
fn a_renamed_setting_is_caught_both_ways() {
    let mut renamed = code();
    assert!(
        renamed.context_read.contains("stage"),
        "the code reads fanout:stage"
    );
    for set in [&mut renamed.context_named, &mut renamed.context_read] {
        set.remove("stage");
        set.insert("deploymentStage".to_owned());
    }
    let problems = drift(&docs(), &renamed, &root());
    assert!(
        problems
            .iter()
            .any(|p| p.ends_with("names fanout:stage, which the code does not have")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(
            |p| p.starts_with("fanout:deploymentStage is read by the code and named in no doc")
        ),
        "{problems:#?}"
    );
}

#[test]
fn a_removed_flag_a_missing_path_and_a_make_target_are_caught() {
    let docs = vec![(
        "docs/x.md".to_owned(),
        "Run `fanout-ops redrive crm-sync --everything`, `make deploy-all`, then read `crates/fanout-core/src/watch.rs`.\n".to_owned(),
    )];
    let problems = drift(&docs, &code(), &root());
    for expected in [
        "docs/x.md: names `fanout-ops redrive ... --everything`, a flag redrive does not have",
        "docs/x.md: names `make deploy-all`, which the Makefile does not have",
        "docs/x.md: names `crates/fanout-core/src/watch.rs`, which does not exist",
    ] {
        assert!(
            problems.iter().any(|p| p == expected),
            "{expected}\n{problems:#?}"
        );
    }
}

#[test]
fn a_rust_path_to_a_missing_module_item_or_variant_is_caught() {
    let docs = vec![(
        "docs/x.md".to_owned(),
        "See `fanout_core::watch`, `fanout_core::ledger::LedgerShelf`, `fanout_esm::RecordShape::Firehose`, `dlq::ParkingLot`, and `fanout_core::ledger::LedgerStore`, `search_warm::DocumentVersion`, `dlq::ParkingQueue`.\n".to_owned(),
    )];
    let problems: Vec<String> = drift(&docs, &code(), &root())
        .into_iter()
        .filter(|p| p.starts_with("docs/x.md"))
        .collect();
    assert_eq!(
        problems,
        [
            "docs/x.md: names `fanout_core::watch`: `watch` is not an item of crates/fanout-core/src/lib.rs",
            "docs/x.md: names `fanout_core::ledger::LedgerShelf`: `LedgerShelf` is not an item of crates/fanout-core/src/ledger.rs",
            "docs/x.md: names `fanout_esm::RecordShape::Firehose`: `RecordShape` has no `Firehose` in its crate",
            "docs/x.md: names `dlq::ParkingLot`: `ParkingLot` is not an item of crates/fanout-core/src/dlq.rs",
        ]
    );
}
