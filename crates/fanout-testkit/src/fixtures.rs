//! The checked-in stream events in `events/`: the same files feed the tests and
//! `cargo lambda invoke --data-file`.

use std::path::PathBuf;

pub use fanout_registry::workspace_root;

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
