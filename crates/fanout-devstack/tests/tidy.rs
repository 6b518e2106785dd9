//! The workspace's shape, checked: folder = package name, lint policy inherited, internal
//! crates declared once and depended on downward only, and fanout-core's modules layered.
//! Hermetic: it reads manifests and sources, nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Value;

fn root() -> PathBuf {
    fanout_testkit::workspace_root()
}

fn manifest(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Value::Table(table)
}

/// Every member: folder name -> its manifest.
fn members() -> BTreeMap<String, Value> {
    let mut members = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let cargo = dir.join("Cargo.toml");
        if cargo.is_file() {
            members.insert(
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                manifest(&cargo),
            );
        }
    }
    members
}

/// Where each crate sits: a crate may depend (dev-dependencies included) only on crates of a
/// lower layer. Consumers are whatever `infra/consumers/` registers.
fn layer(name: &str, consumers: &[String]) -> Option<u8> {
    match name {
        "fanout-registry" => Some(0),
        "fanout-testkit" => Some(1),
        "fanout-esm" | "fanout-core" => Some(2),
        _ if consumers.iter().any(|c| c == name) => Some(3),
        "fanout-devstack" | "fanout-ops" | "fanout-bench" => Some(4),
        _ => None,
    }
}

fn dependency_tables(manifest: &Value) -> Vec<(&'static str, &toml::Table)> {
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .into_iter()
        .filter_map(|kind| {
            manifest
                .get(kind)
                .and_then(Value::as_table)
                .map(|t| (kind, t))
        })
        .collect()
}

#[test]
fn every_folder_is_named_for_its_package_and_inherits_the_lint_policy() {
    for (folder, manifest) in members() {
        assert_eq!(
            manifest["package"]["name"].as_str(),
            Some(folder.as_str()),
            "crates/{folder}"
        );
        assert_eq!(
            manifest
                .get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(Value::as_bool),
            Some(true),
            "crates/{folder}: add `[lints] workspace = true`"
        );
        assert_eq!(
            manifest["package"]["edition"]
                .get("workspace")
                .and_then(Value::as_bool),
            Some(true),
            "crates/{folder}: edition.workspace = true"
        );
    }
}

#[test]
fn internal_crates_are_declared_once_and_used_through_the_workspace() {
    let root_manifest = manifest(&root().join("Cargo.toml"));
    let declared = root_manifest["workspace"]["dependencies"]
        .as_table()
        .unwrap();
    let members = members();
    for (folder, manifest) in &members {
        for (kind, table) in dependency_tables(manifest) {
            for (name, spec) in table {
                assert!(
                    spec.get("path").is_none(),
                    "crates/{folder} {kind}.{name}: a path dependency; declare it in [workspace.dependencies]"
                );
                if members.contains_key(name) {
                    assert_eq!(
                        spec.get("workspace").and_then(Value::as_bool),
                        Some(true),
                        "crates/{folder} {kind}.{name}: use `{name}.workspace = true`"
                    );
                }
            }
        }
    }
    for (name, spec) in declared {
        if let Some(path) = spec.get("path").and_then(Value::as_str) {
            assert_eq!(
                path,
                format!("crates/{name}"),
                "[workspace.dependencies] {name}"
            );
            assert!(
                members.contains_key(name),
                "{name} is declared but is not a member"
            );
        }
    }
}

#[test]
fn dependencies_point_down_and_product_crates_never_link_dev_crates() {
    let consumers: Vec<String> = fanout_testkit::registry::consumers()
        .unwrap()
        .into_iter()
        .map(|c| c.crate_name)
        .collect();
    let members = members();
    for (folder, manifest) in &members {
        let own = layer(folder, &consumers)
            .unwrap_or_else(|| panic!("crates/{folder} has no layer: add it to tidy.rs `layer`"));
        for (kind, table) in dependency_tables(manifest) {
            for name in table.keys().filter(|n| members.contains_key(*n)) {
                let theirs = layer(name, &consumers).unwrap();
                assert!(
                    theirs < own,
                    "crates/{folder} ({kind}) depends on {name}, which is not below it"
                );
                // A consumer is one folder: no other crate names it (its reconcile check runs
                // in its function, check-items reads its entry's `decodes`).
                assert!(
                    !consumers.contains(name),
                    "crates/{folder} ({kind}) depends on the consumer {name}: a new consumer would have to edit it"
                );
                let product = folder == "fanout-core" || consumers.contains(folder);
                let dev_crate =
                    ["fanout-testkit", "fanout-esm", "fanout-devstack"].contains(&name.as_str());
                assert!(
                    !(product && dev_crate && kind == "dependencies"),
                    "crates/{folder} links {name}: product crates may use it as a dev-dependency only"
                );
            }
        }
    }
}

/// fanout-core's modules, bottom first: each may import only modules before it. (rustfmt
/// sorts the declarations in lib.rs, so the order lives here and in lib.rs's docs.)
const CORE_LAYERS: &[&str] = &[
    "time",
    "telemetry",
    "port",
    "change",
    "source",
    "domain",
    "outcome",
    "failure",
    "effect_retry",
    "ledger",
    "dlq",
    "reconcile",
    "batch",
    "config",
    "lambda",
];

#[test]
fn core_modules_import_only_modules_below_them() {
    let src = root().join("crates/fanout-core/src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    for module in &declared {
        assert!(
            CORE_LAYERS.contains(module),
            "fanout-core: give module `{module}` its place in CORE_LAYERS"
        );
    }
    let order: Vec<&str> = CORE_LAYERS
        .iter()
        .copied()
        .filter(|m| declared.contains(m))
        .collect();
    assert_eq!(
        order.len(),
        CORE_LAYERS.len(),
        "CORE_LAYERS names a module lib.rs does not declare"
    );
    for (position, module) in order.iter().enumerate() {
        // The module's file and its submodules' (`ledger/dynamodb.rs`).
        let mut files = vec![src.join(format!("{module}.rs"))];
        if let Ok(dir) = std::fs::read_dir(src.join(module)) {
            // A submodule of unit tests (`change/tests.rs`) may reach anywhere.
            files.extend(
                dir.map(|e| e.unwrap().path())
                    .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs")),
            );
        }
        // Only the module's own code: its unit tests may reach anywhere.
        let code: String = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                text.split("#[cfg(test)]").next().unwrap_or("").to_owned()
            })
            .collect();
        let code = code.as_str();
        for (other_position, other) in order.iter().enumerate() {
            // A submodule naming its own parent (`crate::change::...`) is not a layer above.
            if other == module {
                continue;
            }
            let imports = code.contains(&format!("crate::{other}::"))
                || code.contains(&format!("crate::{other};"));
            assert!(
                !(imports && other_position >= position),
                "fanout-core: `{module}` imports `{other}`, which is not below it in lib.rs"
            );
        }
        // Items re-exported at the root (`crate::Ledger`) would hide which module is used.
        for (at, _) in code.match_indices("crate::") {
            let next = code[at + "crate::".len()..].chars().next().unwrap_or(' ');
            assert!(
                next.is_ascii_lowercase(),
                "fanout-core: `{module}` imports through the crate root (`crate::{next}…`); name the module"
            );
        }
    }
}

// Every consumer folder's owning team (CODEOWNERS) is checked with the pipelines it drives:
// infra/lib/pipeline.ts `pipelineParts`, infra/test/pipeline.test.ts.

/// Every action `crates/fanout-ops/iam-actions.json` lists (what the operator policies grant)
/// is taken by a call in fanout-ops or in the consumer crates whose checks it runs; a call
/// listed that no code makes would be a grant nobody uses.
#[test]
fn every_operator_action_is_a_call_fanout_ops_makes() {
    let listed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("crates/fanout-ops/iam-actions.json")).unwrap(),
    )
    .unwrap();
    let consumers = fanout_testkit::registry::consumers().unwrap();
    let mut code = String::new();
    let mut dirs = vec![
        root().join("crates/fanout-ops/src"),
        root().join("crates/fanout-core/src"),
    ];
    dirs.extend(
        consumers
            .iter()
            .map(|c| root().join("crates").join(&c.crate_name).join("src")),
    );
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                code.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let actions = listed["actions"].as_array().unwrap();
    assert!(actions.len() > 10, "{listed}");
    for action in actions {
        let name = action["action"].as_str().unwrap();
        assert!(
            action["why"].as_str().is_some_and(|w| w.len() > 10),
            "{name}: say which command takes it and why"
        );
        match action["call"].as_str() {
            Some(call) if call.starts_with("Method::") => {
                assert!(code.contains(call), "{name}: no {call} in the code")
            }
            Some(call) => assert!(
                code.contains(&format!(".{call}()")),
                "{name}: no .{call}() call in fanout-ops or the consumer crates: drop it from iam-actions.json"
            ),
            // Taken on the operator's behalf by another service (kms:Decrypt by SQS).
            None => assert!(
                name == "kms:Decrypt",
                "{name}: only kms:Decrypt is taken implicitly"
            ),
        }
    }
}

/// fanout-ops and the local stack name a deployment's stacks and parameters as the CDK app
/// does (`infra/lib/names.ts` beside `crates/fanout-registry/src/names.rs`).
#[test]
fn deployment_names_agree_across_the_two_languages() {
    use fanout_testkit::registry::names::{Parameter, Stage};
    let names_ts = std::fs::read_to_string(root().join("infra/lib/names.ts")).unwrap();
    for parameter in Parameter::ALL {
        assert!(
            names_ts.contains(&format!("'{}'", parameter.path())),
            "infra/lib/names.ts has no parameter path {}",
            parameter.path()
        );
    }
    let ts_paths = names_ts.matches(": 'tables/").count();
    assert_eq!(
        ts_paths,
        Parameter::ALL.len(),
        "the two lists of parameters differ in length"
    );
    // The shapes: <base>-<stage>, fanout-<stage>-<name>, /fanout/<stage>/..., consumers/<crate>.
    for shape in [
        "`${base}-${s}`",
        "`fanout-${s}-${name}`",
        "`/fanout/${s}/`",
        "consumers/${crate}",
    ] {
        assert!(
            names_ts.contains(shape),
            "infra/lib/names.ts no longer builds {shape}"
        );
    }
    let dev = Stage::new(Some("dev")).unwrap();
    assert_eq!(dev.stack("CrmSync"), "CrmSync-dev");
    assert_eq!(dev.physical("crm-sync"), "fanout-dev-crm-sync");
    assert_eq!(
        dev.consumer_parameter("crm-sync"),
        "/fanout/dev/consumers/crm-sync"
    );
}

/// Product and tool code (tests and `#[cfg(test)]` units aside) under `dir` with `extension`.
fn sources(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "tests" | "node_modules" | "target" | "cdk.out" | "dist"
            ) {
                sources(&path, extension, found);
            }
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
}

/// What differs between consumers lives in each one's registry entry and crate (its code and
/// its descriptor, `[package.metadata.fanout]`): no code elsewhere switches on a consumer's
/// name, so a fifth consumer needs no edit outside its folder, its registry file and its
/// CODEOWNERS line. A match arm, a `case` or an equality test on a registered crate or stack
/// name counts; each consumer's own crate may name itself.
#[test]
fn no_code_switches_on_a_consumer_name_outside_its_own_crate() {
    let consumers = fanout_testkit::registry::consumers().unwrap();
    let mut files = Vec::new();
    sources(&root().join("crates"), "rs", &mut files);
    for dir in ["infra/lib", "infra/bin"] {
        sources(&root().join(dir), "ts", &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut switches = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        // A file's test unit may name consumers as data.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for consumer in &consumers {
            if relative.starts_with(&format!("crates/{}/", consumer.crate_name)) {
                continue;
            }
            for name in [&consumer.crate_name, &consumer.name] {
                for quote in ['"', '\''] {
                    let quoted = format!("{quote}{name}{quote}");
                    let shapes = [
                        format!("{quoted} =>"),
                        format!("{quoted} |"),
                        format!("| {quoted}"),
                        format!("case {quoted}"),
                        format!("== {quoted}"),
                        format!("!= {quoted}"),
                        format!("=== {quoted}"),
                        format!("!== {quoted}"),
                        format!("{quoted} =="),
                        format!("{quoted} !="),
                    ];
                    for (n, line) in code.lines().enumerate() {
                        if shapes.iter().any(|shape| line.contains(shape.as_str())) {
                            switches.push(format!("{relative}:{}: {}", n + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        switches.is_empty(),
        "code switching on a consumer's name outside its crate (say it in the consumer's \
         registry entry or descriptor instead):\n{}",
        switches.join("\n")
    );
}
