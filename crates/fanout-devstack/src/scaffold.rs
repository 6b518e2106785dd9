//! `make new-consumer`: a new consumer written into its one folder, its registry file and its
//! CODEOWNERS lines, from the templates in `templates/consumer/`. The consumer it writes
//! builds, passes its tests and runs in the demo, the reliability scenarios and `make e2e`'s
//! deploy as it is; its team then replaces its effect.

use std::path::{Path, PathBuf};

/// The scaffold refused, or could not write.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "consumer name {0:?}: use a crate name of lowercase words joined by '-', starting with a letter (plan-metrics)"
    )]
    Name(String),
    #[error("team {0:?}: use a GitHub team as CODEOWNERS names it (@org/team)")]
    Team(String),
    #[error(
        "target {0:?}: the scaffold writes `none` (a consumer whose effect you write, observed by its ledger entries); a target of its own is added after, as docs/consumers.md \"Adding a consumer\" says"
    )]
    Target(String),
    #[error("{0} exists already: pick another name")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to scaffold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsumer {
    /// The crate name, such as `plan-metrics`: also its binary, function, DLQ and ledger prefix.
    pub name: String,
    /// The owning team, such as `@acme/growth`.
    pub team: String,
}

impl NewConsumer {
    /// Checks the name, the team and the target.
    pub fn new(name: &str, team: &str, target: &str) -> Result<Self, ScaffoldError> {
        let words_ok = name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
        if !words_ok || !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.len() > 40 {
            return Err(ScaffoldError::Name(name.to_owned()));
        }
        let team_ok = team
            .strip_prefix('@')
            .and_then(|t| t.split_once('/'))
            .is_some_and(|(org, team)| {
                let part_ok = |s: &str| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                };
                part_ok(org) && part_ok(team)
            });
        if !team_ok {
            return Err(ScaffoldError::Team(team.to_owned()));
        }
        if target != "none" {
            return Err(ScaffoldError::Target(target.to_owned()));
        }
        Ok(NewConsumer {
            name: name.to_owned(),
            team: team.to_owned(),
        })
    }

    /// Its stack and type name: `plan-metrics` is `PlanMetrics`.
    pub fn stack_name(&self) -> String {
        self.name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("__CRATE__", &self.name)
            .replace("__LIB__", &self.name.replace('-', "_"))
            .replace("__STACK__", &self.stack_name())
            .replace("__TYPE__", &self.stack_name())
    }

    /// Writes the consumer into the workspace at `root` and returns the paths written or
    /// changed. Refuses, writing nothing, when its folder, its registry file or its stack name
    /// exists.
    pub fn write(&self, root: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ScaffoldError::Io { path, source }
        };
        let crate_dir = root.join("crates").join(&self.name);
        let registry_file = root
            .join("infra/consumers")
            .join(format!("{}.json", self.name));
        for path in [&crate_dir, &registry_file] {
            if path.exists() {
                return Err(ScaffoldError::Exists(path.clone()));
            }
        }
        let registry =
            fanout_registry::consumers_in(&root.join("infra/consumers")).map_err(|e| {
                ScaffoldError::Io {
                    path: root.join("infra/consumers"),
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
        if registry.iter().any(|c| c.name == self.stack_name()) {
            return Err(ScaffoldError::Exists(PathBuf::from(format!(
                "a consumer with stack name {}",
                self.stack_name()
            ))));
        }

        let templates = root.join("crates/fanout-devstack/templates/consumer");
        let files = [
            ("Cargo.toml.tmpl", crate_dir.join("Cargo.toml")),
            ("lib.rs.tmpl", crate_dir.join("src/lib.rs")),
            ("main.rs.tmpl", crate_dir.join("src/main.rs")),
            (
                "consumer_test.rs.tmpl",
                crate_dir.join(format!("tests/{}.rs", self.name.replace('-', "_"))),
            ),
            ("registry.json.tmpl", registry_file),
        ];
        let mut written = Vec::new();
        for (template, target) in files {
            let source = templates.join(template);
            let text = std::fs::read_to_string(&source).map_err(io(&source))?;
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::write(&target, self.fill(&text)).map_err(io(&target))?;
            written.push(target);
        }

        let owners = root.join(".github/CODEOWNERS");
        let mut text = std::fs::read_to_string(&owners).map_err(io(&owners))?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n{:<43}{}\n{:<43}{}\n",
            format!("/crates/{}/", self.name),
            self.team,
            format!("/infra/consumers/{}.json", self.name),
            self.team
        ));
        std::fs::write(&owners, text).map_err(io(&owners))?;
        written.push(owners);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_teams_and_targets_are_checked_before_anything_is_written() {
        let ok = NewConsumer::new("plan-metrics", "@acme/growth", "none").unwrap();
        assert_eq!(ok.stack_name(), "PlanMetrics");
        for bad in ["Plan", "plan_metrics", "-plan", "plan--x", "9plan", ""] {
            assert!(
                matches!(
                    NewConsumer::new(bad, "@a/b", "none"),
                    Err(ScaffoldError::Name(_))
                ),
                "{bad}"
            );
        }
        for bad in ["acme/growth", "@acme", "@acme/", "@/x"] {
            assert!(
                matches!(
                    NewConsumer::new("x", bad, "none"),
                    Err(ScaffoldError::Team(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            NewConsumer::new("x", "@a/b", "ses"),
            Err(ScaffoldError::Target(_))
        ));
    }

    #[test]
    fn a_registered_name_is_refused() {
        let root = fanout_registry::workspace_root();
        let existing = fanout_registry::consumers().unwrap()[0].crate_name.clone();
        let err = NewConsumer::new(&existing, "@a/b", "none")
            .unwrap()
            .write(&root)
            .unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
    }
}
