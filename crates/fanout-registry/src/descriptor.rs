//! What fanout's own tools need to know of a consumer that its registry entry does not say:
//! where its effects land and what they should be after the writes the demo and the
//! reliability scenarios make. It lives in the consumer's crate, as
//! `[package.metadata.fanout]` in its `Cargo.toml`, owned by its team beside the code that
//! makes the effects; the demo, the reliability scenarios and `make e2e` read it instead of
//! switching on the consumer's name.
//!
//! ```toml
//! [package.metadata.fanout]
//! observed-in = "ses-outbox"
//! effect-call = { upstream = "services", operation = "SendEmail" }
//! refusal-code = "BadRequestException"
//! needs-old-image = true
//!
//! [package.metadata.fanout.effects]
//! created-then-upgraded = ["u1@example.com | Welcome to Pro"]
//! upgraded = ["{email} | Welcome to Pro"]
//! demo = ["ada@example.com | Welcome to Pro"]
//! demo-parked = ["mallory"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{ConsumerEntry, RegistryError, workspace_root};

/// Where a consumer's effects land on the local stack, and so how they are read back. Each
/// effect reads as one line; the same effect made twice reads as two equal lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservedIn {
    /// Mail ministack's SES accepted from the local sender: `<to> | <subject>`.
    SesOutbox,
    /// Events on the local CRM bus (read from a queue a rule feeds): `<detail-type>(<userId>)`.
    CrmBus,
    /// Documents of the `users` index in the search stand-in: `<id> v<version> <plan>`. An
    /// index holds state, not events: a repeat overwrites.
    SearchIndex,
    /// Rows of the audit table: `<userId> <eventName>`.
    AuditTable,
    /// The consumer's COMPLETED ledger entries (key prefix `ledgerKeyPrefix`), the key's parts
    /// after the prefix joined by spaces: `<userId> <plan>` (the engine's park-once entries
    /// are left out). For a consumer whose target the
    /// local stack does not have: it shows each effect recorded once, so a repeat of the call
    /// itself cannot be seen here.
    Ledger,
}

impl ObservedIn {
    /// What the lines are, for reports: `emails in the SES outbox`.
    pub fn describe(self) -> &'static str {
        match self {
            ObservedIn::SesOutbox => "emails in the SES outbox",
            ObservedIn::CrmBus => "events on the CRM bus",
            ObservedIn::SearchIndex => "documents in the search stand-in (not OpenSearch)",
            ObservedIn::AuditTable => "rows in the audit table",
            ObservedIn::Ledger => "effects completed in the ledger",
        }
    }
}

/// Which local service a call goes to (the fault proxies sit in front of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Upstream {
    /// DynamoDB Local: the ledger, the audit table.
    Dynamodb,
    /// ministack: SES, EventBridge, SQS.
    Services,
    /// The search stand-in.
    Search,
}

/// The call that makes the consumer's effect, which the fault scenarios break.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectCall {
    pub upstream: Upstream,
    /// The operation as the fault proxy names it: `SendEmail`, `PUT _doc`.
    pub operation: String,
}

/// The effects expected after the writes of the demo and the reliability scenarios. Lines
/// as [`ObservedIn`] reads them; `{user}` and `{email}` stand for the user written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExpectedEffects {
    /// After `u1` (`u1@example.com`) is created on the free plan (version 1) and then moved
    /// to pro (version 2).
    pub created_then_upgraded: Vec<String>,
    /// After one move of `{user}` from free to pro at version 2.
    pub upgraded: Vec<String>,
    /// After `make demo`'s scenario (`crates/fanout-devstack/scenarios/demo.json`).
    pub demo: Vec<String>,
    /// The users whose records the consumer parks in the demo.
    pub demo_parked: Vec<String>,
}

/// A consumer's `[package.metadata.fanout]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Descriptor {
    pub observed_in: ObservedIn,
    /// `None` for a consumer whose effect is no call the local stack can break: the fault
    /// scenarios on the effect call skip it.
    #[serde(default)]
    pub effect_call: Option<EffectCall>,
    /// The error code its service answers a request it can never take (the consumer parks
    /// the record); `ValidationException` unless said.
    #[serde(default = "validation_exception")]
    pub refusal_code: String,
    /// Whether it needs a change's old image to judge it (a record without one is parked).
    #[serde(default)]
    pub needs_old_image: bool,
    pub effects: ExpectedEffects,
}

fn validation_exception() -> String {
    "ValidationException".to_owned()
}

#[derive(Deserialize)]
struct Manifest {
    package: Package,
}

#[derive(Deserialize)]
struct Package {
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    fanout: Option<Descriptor>,
}

impl Descriptor {
    /// The manifest of `entry`'s crate in this workspace.
    pub fn manifest_of(entry: &ConsumerEntry) -> PathBuf {
        workspace_root()
            .join("crates")
            .join(&entry.crate_name)
            .join("Cargo.toml")
    }

    /// `entry`'s descriptor, from its crate's manifest.
    pub fn of(entry: &ConsumerEntry) -> Result<Self, RegistryError> {
        Self::read(&Self::manifest_of(entry))
    }

    /// The descriptor in the manifest at `path`.
    pub fn read(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// The descriptor in a manifest's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let manifest: Manifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        manifest
            .package
            .metadata
            .and_then(|m| m.fanout)
            .ok_or_else(|| {
                invalid(
                    "no [package.metadata.fanout]: say where the consumer's effects land and what \
                     they should be (see crates/fanout-registry/src/descriptor.rs)"
                        .to_owned(),
                )
            })
    }
}

/// `template` with `{user}` and `{email}` filled in.
///
/// ```
/// use fanout_registry::descriptor::fill;
/// assert_eq!(fill("{email} | hi {user}", "u-1", "u-1@example.com"), "u-1@example.com | hi u-1");
/// ```
pub fn fill(template: &str, user: &str, email: &str) -> String {
    template.replace("{user}", user).replace("{email}", email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_consumer_describes_its_effects() {
        for entry in crate::consumers().unwrap() {
            let descriptor = Descriptor::of(&entry).unwrap();
            assert!(
                !descriptor.effects.created_then_upgraded.is_empty(),
                "{}",
                entry.crate_name
            );
        }
    }

    #[test]
    fn a_manifest_without_a_descriptor_is_refused_with_what_to_add() {
        let err = Descriptor::parse(
            "[package]\nname = \"x\"\n",
            Path::new("crates/x/Cargo.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("crates/x/Cargo.toml") && err.contains("[package.metadata.fanout]"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_place_or_key_is_refused() {
        let manifest = |body: &str| {
            format!(
                "[package]\nname = \"x\"\n[package.metadata.fanout]\n{body}\n[package.metadata.fanout.effects]\ncreated-then-upgraded = []\nupgraded = []\ndemo = []\ndemo-parked = []\n"
            )
        };
        let origin = Path::new("Cargo.toml");
        assert!(Descriptor::parse(&manifest("observed-in = \"ledger\""), origin).is_ok());
        assert!(Descriptor::parse(&manifest("observed-in = \"inbox\""), origin).is_err());
        assert!(
            Descriptor::parse(
                &manifest("observed-in = \"ledger\"\nrefusal = \"X\""),
                origin
            )
            .is_err()
        );
    }
}
