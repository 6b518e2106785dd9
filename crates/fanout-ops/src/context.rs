//! The CDK context a deploy uses: `infra/cdk.json`'s `context`, overridden by `-c key=value`
//! arguments exactly as the CDK CLI takes them, so a check sees what the deploy will.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::OpsError;

/// Context values by key (`fanout:sesIdentity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdkContext(BTreeMap<String, String>);

impl CdkContext {
    /// `cdk_json`'s context, then each `key=value` override.
    pub fn load(cdk_json: &Path, overrides: &[String]) -> Result<Self, OpsError> {
        let text = std::fs::read_to_string(cdk_json).map_err(|e| OpsError::Read {
            path: cdk_json.display().to_string(),
            message: e.to_string(),
        })?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| OpsError::Read {
                path: cdk_json.display().to_string(),
                message: e.to_string(),
            })?;
        let mut values = BTreeMap::new();
        for (key, value) in parsed["context"].as_object().into_iter().flatten() {
            if let Some(text) = value.as_str() {
                values.insert(key.clone(), text.to_owned());
            }
        }
        let mut context = CdkContext(values);
        for pair in overrides {
            context.set(pair)?;
        }
        Ok(context)
    }

    /// One `key=value` override.
    pub fn set(&mut self, pair: &str) -> Result<(), OpsError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| OpsError::Context(format!("{pair:?} is not key=value")))?;
        self.0.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Any key, when set and not empty.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `fanout:<key>`, when set and not empty.
    pub fn fanout(&self, key: &str) -> Option<&str> {
        self.0
            .get(&format!("fanout:{key}"))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_cdk_json_and_must_be_pairs() {
        let cdk_json = fanout_registry::workspace_root().join("infra/cdk.json");
        let context = CdkContext::load(
            &cdk_json,
            &[
                "fanout:crmEventBusName=other".to_owned(),
                "fanout:searchIndex=".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(context.fanout("crmEventBusName"), Some("other"));
        assert_eq!(context.fanout("fromAddress"), Some("welcome@example.com"));
        assert_eq!(context.fanout("searchIndex"), None, "empty counts as unset");
        assert!(CdkContext::load(&cdk_json, &["no-equals".to_owned()]).is_err());
    }
}
