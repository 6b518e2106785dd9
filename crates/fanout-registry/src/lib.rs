//! fanout-registry: the one registry of consumers, `infra/consumers/<crate>.json`, one file per
//! consumer, owned by its team. The CDK app (`infra/lib/settings.ts`), the local stack, the
//! demo, the operations tool, the Makefile and the tests all read their consumer list from it,
//! so a new consumer is a crate folder and one file there.
//!
//! [`descriptor`] reads what each consumer's crate says of its effects for the demo and the
//! tests (`[package.metadata.fanout]`). [`names`] holds the names a deployment (and its stage) gives its stacks and SSM parameters.
//!
//! **Architecture invariant:** a leaf: it depends on no crate of the workspace.

pub mod descriptor;
pub mod names;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workspace root: the nearest directory at or above the current one that holds a
/// `Cargo.toml` and `infra/consumers/`, so a copy of the workspace (a scratch clone, a
/// second checkout sharing one target directory) reads its own registry; else the one this
/// crate was built in (it lives at `crates/fanout-registry`).
pub fn workspace_root() -> PathBuf {
    let here = std::env::current_dir().ok();
    let found = here.as_deref().and_then(|dir| {
        dir.ancestors()
            .find(|d| d.join("Cargo.toml").is_file() && d.join("infra/consumers").is_dir())
            .map(Path::to_path_buf)
    });
    found.unwrap_or_else(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .nth(2)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| manifest.to_path_buf())
    })
}

/// `infra/consumers/` could not be read as a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no consumer {wanted} in {path}; known: {known}")]
    Unknown {
        wanted: String,
        path: PathBuf,
        known: String,
    },
}

/// What a consumer reads each change's images as (`decodes` in its entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decodes {
    /// The writer's contract (`fanout_core::User`): an item that does not decode is parked.
    User,
    /// The images as they are: only a change without a string `userId` key is parked.
    RawImages,
}

/// One consumer as the registry declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerEntry {
    /// The stack name, such as `WelcomeEmail`.
    pub name: String,
    /// The crate and binary name, such as `welcome-email` (also the function and DLQ name).
    pub crate_name: String,
    /// The whole entry: function, eventSourceMapping, alarms, environment.
    pub settings: Value,
}

impl ConsumerEntry {
    /// An entry read from JSON (a registry file, or the subset a consumer stack publishes in
    /// SSM for fanout-ops); `origin` names where it came from in errors.
    pub fn from_json(settings: Value, origin: &Path) -> Result<Self, RegistryError> {
        let field = |name: &str| {
            settings[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| RegistryError::Invalid {
                    path: origin.to_owned(),
                    message: format!("no `{name}`"),
                })
        };
        Ok(ConsumerEntry {
            name: field("stack")?,
            crate_name: field("crate")?,
            settings: settings.clone(),
        })
    }

    /// The `eventSourceMapping` object, in the shape the local mapping reads.
    pub fn event_source_mapping(&self) -> &Value {
        &self.settings["eventSourceMapping"]
    }

    /// What the consumer reads each change's images as; `None` when the entry does not say
    /// (the CDK app refuses such an entry).
    pub fn decodes(&self) -> Option<Decodes> {
        match self.settings["decodes"].as_str() {
            Some("user") => Some(Decodes::User),
            Some("raw-images") => Some(Decodes::RawImages),
            _ => None,
        }
    }

    /// Whether the consumer reads the table's Kinesis streaming destination (`source:
    /// kinesis`) rather than its DynamoDB stream.
    pub fn reads_kinesis(&self) -> bool {
        self.settings["source"].as_str() == Some("kinesis")
    }

    /// Whether the mapping sends a batch it gives up on, whole, to a bucket of the consumer's
    /// own (`onFailure.destination: bucket`) rather than its position to the DLQ.
    pub fn on_failure_to_bucket(&self) -> bool {
        self.settings["onFailure"]["destination"].as_str() == Some("bucket")
    }

    /// The CDK context keys (`fanout:<key>`) naming outside resources that must exist before
    /// the consumer's stack is deployed (`prerequisites` in its entry).
    pub fn prerequisites(&self) -> Vec<String> {
        self.settings["prerequisites"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The environment variable a local stack exports for this consumer's DLQ URL, such as
    /// `DLQ_URL_WELCOME_EMAIL`.
    pub fn dlq_env_name(&self) -> String {
        format!(
            "DLQ_URL_{}",
            self.crate_name.replace('-', "_").to_uppercase()
        )
    }
}

/// The registry folder of this workspace.
pub fn registry_dir() -> PathBuf {
    workspace_root().join("infra/consumers")
}

/// Every consumer in `dir`, in file-name order.
pub fn consumers_in(dir: &Path) -> Result<Vec<ConsumerEntry>, RegistryError> {
    let read = |path: &Path, e: std::io::Error| RegistryError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let invalid = |message: String| RegistryError::Invalid {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| read(path, e))?;
            let settings: Value =
                serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
            ConsumerEntry::from_json(settings, path)
        })
        .collect()
}

/// Every consumer of this workspace's registry.
pub fn consumers() -> Result<Vec<ConsumerEntry>, RegistryError> {
    consumers_in(&registry_dir())
}

/// One consumer, by stack name (`WelcomeEmail`) or crate name (`welcome-email`).
pub fn consumer(wanted: &str) -> Result<ConsumerEntry, RegistryError> {
    find_in(&consumers()?, wanted, &registry_dir()).cloned()
}

/// One of `consumers` (read from `dir`), by stack or crate name; otherwise an error naming the
/// known ones.
pub fn find_in<'a>(
    consumers: &'a [ConsumerEntry],
    wanted: &str,
    dir: &Path,
) -> Result<&'a ConsumerEntry, RegistryError> {
    consumers
        .iter()
        .find(|c| c.name == wanted || c.crate_name == wanted)
        .ok_or_else(|| RegistryError::Unknown {
            wanted: wanted.to_owned(),
            path: dir.to_owned(),
            known: consumers
                .iter()
                .map(|c| c.crate_name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_consumer_is_a_crate_of_the_workspace() {
        let all = consumers().unwrap();
        assert!(!all.is_empty());
        for entry in &all {
            let manifest = workspace_root()
                .join("crates")
                .join(&entry.crate_name)
                .join("Cargo.toml");
            assert!(
                manifest.is_file(),
                "{} has no crate at {}",
                entry.name,
                manifest.display()
            );
            assert!(entry.event_source_mapping().is_object(), "{}", entry.name);
        }
    }

    #[test]
    fn finds_a_consumer_by_either_name_and_names_the_known_ones_otherwise() {
        assert_eq!(consumer("crm-sync").unwrap().name, "CrmSync");
        assert_eq!(consumer("CrmSync").unwrap().crate_name, "crm-sync");
        assert_eq!(
            consumer("welcome-email").unwrap().dlq_env_name(),
            "DLQ_URL_WELCOME_EMAIL"
        );
        let err = consumer("nope").unwrap_err().to_string();
        assert!(
            err.contains("welcome-email") && err.contains("nope"),
            "{err}"
        );
    }
}
