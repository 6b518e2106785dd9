//! The checked-in stream events in `events/`: the same files feed the tests and
//! `cargo lambda invoke --data-file`.

use std::path::PathBuf;

pub use fanout_registry::workspace_root;

/// The table every fixture in `events/` names (`eventSourceARN`, or `tableName` on Kinesis):
/// a consumer under test reads it as its `USERS_TABLE`.
pub const FIXTURE_USERS_TABLE: &str = "Users";

/// The path of a fixture in `events/`.
pub fn fixture_path(name: &str) -> PathBuf {
    workspace_root().join("events").join(name)
}

/// A fixture's text from `events/`.
pub fn fixture_text(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// One event holding the records of several fixtures, in order, as JSON text: a batch as the
/// mapping would deliver it.
pub fn fixture_batch(names: &[&str]) -> String {
    let records: Vec<serde_json::Value> = names
        .iter()
        .flat_map(|name| {
            let event: serde_json::Value = serde_json::from_str(&fixture_text(name))
                .unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"));
            match event["Records"].as_array() {
                Some(records) => records.clone(),
                None => panic!("fixture {name} has no Records"),
            }
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}
