//! The demo's scenario as data: phases of writes to `Users`. What each consumer must have done
//! after them is its own to say, in its crate's descriptor (`effects.demo`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// A scenario file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("scenario {path}: {message}")]
pub struct ScenarioError {
    pub path: PathBuf,
    pub message: String,
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(rename = "$comment", default)]
    pub comment: String,
    pub phases: Vec<Phase>,
}

/// Writes the API makes; then every mapping polls until its stream is idle.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Phase {
    /// What the phase does, in words, for the report.
    pub say: String,
    pub writes: Vec<UserWrite>,
    /// After polling, deliver each consumer's first batch once more, as Lambda may.
    #[serde(default)]
    pub redeliver_first_batch: bool,
}

/// One write to `Users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserWrite {
    Put(UserRow),
    /// Deletes the user with this id.
    Delete(String),
}

/// A row as the API writes it. `version` is normally a number; a string makes a poison record
/// no consumer can decode.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRow {
    pub user_id: String,
    pub name: String,
    pub plan: String,
    pub version: Value,
}

impl Scenario {
    /// The scenario `make demo` runs.
    pub fn default_path() -> PathBuf {
        fanout_registry::workspace_root().join("crates/fanout-devstack/scenarios/demo.json")
    }

    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let fail = |message: String| ScenarioError {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_scenario_reads_and_redelivers_a_batch() {
        let scenario = Scenario::load(&Scenario::default_path()).unwrap();
        assert!(scenario.phases.iter().any(|p| p.redeliver_first_batch));
        assert!(scenario.phases.iter().all(|p| !p.writes.is_empty()));
    }
}
